"""Training a soft prompt with the model frozen: against labels, or against a teacher.

* ``Objective.LABELS``: cross-entropy over the label words' log-likelihoods at the
  answer position (``LabelBatch``), the classification side; ``label_nll_weight`` adds
  the gold word's negative log-likelihood over the whole vocabulary, which pulls the
  answer towards the label words themselves (an instruct model would rather say
  "Positive" or "The", so the two label words' comparison is otherwise made far out
  in the tail of the distribution).
* ``Objective.TEACHER_KL``: KL(teacher || student) of the next-token distributions over
  every text position (``TextBatch``), the language-modelling side: the student is
  the compressed model with the soft prompt, the teacher the uncompressed model
  without it.

Gradients reach the soft prompt through the frozen model, including our quantized
and sparse linears (they all have gradients with respect to their input). The same
loop trains a deep prompt (``PrefixPrompt``): every ``soft`` argument below takes
either kind (``LearnedPrompt``).

Example:
    >>> SoftTrainConfig(objective=Objective.TEACHER_KL, steps=10).objective.value
    'teacher_kl'
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezeprompt.prompt.soft_batches import (
    LabelBatch,
    LearnedPrompt,
    TextBatch,
    label_log_likelihoods,
    text_logits,
)
from squeezeprompt.recover.train import LrSchedule, lr_factor


class Objective(enum.Enum):
    LABELS = "labels"
    TEACHER_KL = "teacher_kl"


@dataclass(frozen=True)
class SoftTrainConfig:
    """Optimiser settings; the batches, the model and the teacher are arguments.

    Example:
        >>> SoftTrainConfig(steps=50, lr=1e-2).steps
        50
    """

    objective: Objective = Objective.LABELS
    steps: int = 100
    lr: float = 1e-2
    max_grad_norm: float = 1.0
    label_nll_weight: float = 0.0  # LABELS only: weight of the gold word's full-vocab NLL
    # COSINE: batches of 8 reviews make the label loss noisy, and at a constant lr the
    # prompt's bias swings with the last few batches; decaying to 0 damps the swings
    # (on the study's deep prompt: a steadier middle of the run, not a better end).
    schedule: LrSchedule = LrSchedule.CONSTANT

    def __post_init__(self) -> None:
        if not isinstance(self.objective, Objective):
            raise TypeError(
                f"SoftTrainConfig.objective must be an Objective, got {self.objective!r} "
                f"(expected one of {[o.value for o in Objective]})"
            )
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"SoftTrainConfig.steps must be an int >= 1, got {self.steps!r}")
        if not isinstance(self.schedule, LrSchedule):
            raise TypeError(
                f"SoftTrainConfig.schedule must be an LrSchedule, got {self.schedule!r}"
            )
        if not self.label_nll_weight >= 0:
            raise ValueError(
                f"SoftTrainConfig.label_nll_weight must be >= 0, got {self.label_nll_weight}"
            )
        if not (self.lr > 0 and self.max_grad_norm > 0):
            raise ValueError(
                f"SoftTrainConfig: lr and max_grad_norm must be > 0, "
                f"got lr={self.lr}, max_grad_norm={self.max_grad_norm}"
            )


def label_loss(
    model: Any,
    soft: LearnedPrompt | None,
    batch: LabelBatch,
    teacher: Any = None,
    nll_weight: float = 0.0,
) -> Tensor:
    """Cross-entropy of the true label among the label words (full-word log-likelihoods),
    plus ``nll_weight`` x the true word's negative log-likelihood over the vocabulary.

    Example (needs a model):
        >>> label_loss(model, soft, batch)  # doctest: +SKIP
        tensor(0.6931, grad_fn=...)
    """
    log_likelihoods = label_log_likelihoods(model, soft, batch).float()
    labels = batch.labels.to(log_likelihoods.device)
    loss = F.cross_entropy(log_likelihoods, labels)
    if nll_weight:
        loss = loss - nll_weight * log_likelihoods.gather(1, labels[:, None]).mean()
    return loss


def teacher_kl_loss(
    model: Any, soft: LearnedPrompt | None, batch: TextBatch, teacher: Any
) -> Tensor:
    """Mean over text positions of KL(teacher || student), teacher without a soft prompt.

    Example (needs two models):
        >>> teacher_kl_loss(compressed, soft, batch, teacher=dense)  # doctest: +SKIP
    """
    if teacher is None:
        raise ValueError("teacher_kl_loss: Objective.TEACHER_KL needs a teacher model, got None")
    with torch.no_grad():
        target = F.log_softmax(text_logits(teacher, None, batch).float(), dim=-1)
    student = F.log_softmax(text_logits(model, soft, batch).float(), dim=-1)
    target = target.to(student.device)
    return F.kl_div(student, target, log_target=True, reduction="none").sum(-1).mean()


LossFn = Callable[[Any, LearnedPrompt | None, Any, Any], Tensor]
LOSSES: dict[Objective, LossFn] = {
    Objective.LABELS: label_loss,
    Objective.TEACHER_KL: teacher_kl_loss,
}


@dataclass(frozen=True)
class SoftTrainResult:
    """Per-step training losses (the batch loss before each update)."""

    losses: tuple[float, ...]


def train_soft_prompt(
    model: Any,
    soft: LearnedPrompt,
    batches: Sequence[LabelBatch] | Sequence[TextBatch],
    config: SoftTrainConfig,
    teacher: Any = None,
    on_step: Callable[[int, float], None] | None = None,
) -> SoftTrainResult:
    """Adam on ``soft``'s parameters only, cycling through ``batches`` in order.

    The model's parameters are frozen for the run and their ``requires_grad`` flags
    restored afterwards. Shuffle the batches beforehand (with a seeded ``rng``) if
    wanted: this loop adds no randomness of its own. ``on_step(step, loss)`` runs after
    each update (1-based step), e.g. to watch a held-out loss without restarting Adam.

    Example (needs a model):
        >>> train_soft_prompt(model, soft, batches, SoftTrainConfig(steps=20))  # doctest: +SKIP
    """
    if not batches:
        raise ValueError("train_soft_prompt: expected at least one batch, got none")
    loss_fn = LOSSES[config.objective]
    if config.objective is Objective.LABELS and config.label_nll_weight:
        loss_fn = functools.partial(label_loss, nll_weight=config.label_nll_weight)
    soft.to(next(model.parameters()).device)
    flags = [(p, p.requires_grad) for p in model.parameters()]
    was_training = model.training
    params = list(soft.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr)
    losses: list[float] = []
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        model.eval()  # dropout off: the target must not move under the soft prompt
        for step in range(config.steps):
            loss = loss_fn(model, soft, batches[step % len(batches)], teacher)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"train_soft_prompt: loss is {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(config.schedule, step, config.steps)
            optimizer.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step + 1, losses[-1])
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    return SoftTrainResult(tuple(losses))


@torch.no_grad()
def evaluate_loss(
    model: Any,
    soft: LearnedPrompt | None,
    batches: Sequence[LabelBatch] | Sequence[TextBatch],
    objective: Objective,
    teacher: Any = None,
) -> float:
    """Mean loss over ``batches`` (weighted by rows), without updating anything."""
    total, rows = 0.0, 0
    for batch in batches:
        n = batch.labels.shape[0] if isinstance(batch, LabelBatch) else batch.windows.shape[0]
        total += LOSSES[objective](model, soft, batch, teacher).item() * n
        rows += n
    return total / rows
