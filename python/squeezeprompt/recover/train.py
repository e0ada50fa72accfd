"""A small generic training loop for recovery: distillation, QAT, LoRA, soft prompts.

Only parameters with ``requires_grad`` are optimised, so the caller decides what
trains (adapters, fake-quant scales, a whole layer) by freezing the rest. The loss is
any ``loss_fn(model, batch)``; batches are cycled until the step budget is spent.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


class OptimizerKind(Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class LrSchedule(Enum):
    """How the learning rate moves over the step budget.

    ``constant`` keeps ``lr``; ``cosine`` starts at ``lr`` and decays along half a
    cosine to zero at the last step, so the final steps average out the noise of the
    early, large ones (Loshchilov & Hutter, "SGDR", 2017, without restarts).
    """

    CONSTANT = "constant"
    COSINE = "cosine"


def lr_factor(schedule: LrSchedule, step: int, steps: int) -> float:
    """The multiplier of ``lr`` at optimiser step ``step`` (0-based) of ``steps``.

    Example:
        >>> [round(lr_factor(LrSchedule.COSINE, t, 4), 3) for t in range(4)]
        [1.0, 0.854, 0.5, 0.146]
        >>> lr_factor(LrSchedule.CONSTANT, 3, 4)
        1.0
    """
    if schedule is LrSchedule.CONSTANT:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


@dataclass(frozen=True)
class TrainConfig:
    """Step budget and optimiser settings; ``grad_clip=None`` disables clipping.

    Example:
        >>> TrainConfig(steps=10, lr=1e-3).optimizer
        <OptimizerKind.ADAMW: 'adamw'>
    """

    steps: int = 100
    lr: float = 1e-4
    optimizer: OptimizerKind = OptimizerKind.ADAMW
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    progress: bool = True
    schedule: LrSchedule = LrSchedule.CONSTANT

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, OptimizerKind):
            raise TypeError(
                f"TrainConfig: optimizer must be an OptimizerKind, got {self.optimizer!r}"
            )
        if not isinstance(self.schedule, LrSchedule):
            raise TypeError(f"TrainConfig: schedule must be an LrSchedule, got {self.schedule!r}")
        if self.steps <= 0:
            raise ValueError(f"TrainConfig: steps must be positive, got {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig: weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: grad_clip must be > 0 or None, got {self.grad_clip}")


# Factories take torch param groups (``[{"params": [...], "lr": ...}]``) and the config.
OptimizerFactory = Callable[[list[dict[str, Any]], TrainConfig], torch.optim.Optimizer]
OPTIMIZERS: dict[OptimizerKind, OptimizerFactory] = {
    OptimizerKind.ADAMW: lambda p, c: torch.optim.AdamW(p, lr=c.lr, weight_decay=c.weight_decay),
    OptimizerKind.SGD: lambda p, c: torch.optim.SGD(p, lr=c.lr, weight_decay=c.weight_decay),
}


def _cycle(batches: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("train: batches is empty (or a spent iterator; pass a list)")


LrScale = Callable[[str, nn.Parameter], float]


def _param_groups(model: nn.Module, lr: float, lr_scale: LrScale | None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning rate (shared parameters listed once)."""
    groups: dict[float, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        factor = 1.0 if lr_scale is None else float(lr_scale(name, p))
        if not factor > 0:
            raise ValueError(f"train: lr_scale must be > 0, got {factor} for {name}")
        groups.setdefault(lr * factor, []).append(p)
    return [{"params": ps, "lr": group_lr} for group_lr, ps in groups.items()]


def train(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Tensor],
    batches: Iterable[Any],
    config: TrainConfig | None = None,
    lr_scale: LrScale | None = None,
    after_step: Callable[[], None] | None = None,
) -> list[float]:
    """Runs ``config.steps`` optimiser steps on the trainable parameters; returns the losses.

    ``lr_scale(name, param)`` multiplies ``config.lr`` per parameter (e.g. smaller steps
    for quantization scales than for weights); ``after_step()`` runs after every optimiser
    step (e.g. to project parameters back into their valid range).

    Example:
        >>> lin = nn.Linear(2, 1)
        >>> data = [(torch.randn(16, 2), torch.zeros(16, 1))]
        >>> mse = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
        >>> losses = train(lin, mse, data, TrainConfig(steps=50, lr=0.1, progress=False))
        >>> losses[-1] < losses[0]
        True
    """
    config = config or TrainConfig()
    groups = _param_groups(model, config.lr, lr_scale)
    if not groups:
        raise ValueError("train: the model has no parameters with requires_grad=True")
    params = [p for g in groups for p in g["params"]]
    optimizer = OPTIMIZERS[config.optimizer](groups, config)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    was_training = model.training
    model.train()
    losses: list[float] = []
    bar = tqdm(total=config.steps, desc="train", disable=not config.progress)
    try:
        for batch in itertools.islice(_cycle(batches), config.steps):
            loss = loss_fn(model, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"train: loss became {loss.item()} at step {len(losses)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            factor = lr_factor(config.schedule, len(losses), config.steps)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * factor
            optimizer.step()
            if after_step is not None:
                after_step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    finally:
        bar.close()
        model.train(was_training)
    return losses
