"""The recover stage: distil the dense model's next-token distribution into the compressed one.

What trains: the float weights of pruned layers (``MaskedLinear``, whose mask keeps the
pattern), every bias and every norm scale. Packed quantized weights are buffers and stay
fixed; tuning the norms in front of them still moves the outputs they feed. The loss and
the loop live in :mod:`squeezeprompt.recover`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from squeezeprompt.nn.sparse import MaskedLinear
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.stage_configs import RecoverConfig, RecoverMethod, StageConfig
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.recover.distill import distill_loss_fn
from squeezeprompt.recover.train import TrainConfig, train

SUPPORTED = (RecoverMethod.DISTILL,)


def mark_trainable(model: nn.Module) -> int:
    """Freezes ``model`` except masked weights, biases and norm scales; returns the count.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        >>> mark_trainable(m)  # bias of the Linear + weight and bias of the norm
        12
    """
    model.requires_grad_(False)
    count = 0
    for module in model.modules():
        chosen = []
        if isinstance(module, MaskedLinear):
            chosen.append(module.weight)
        if "norm" in type(module).__name__.lower():
            chosen += list(module.parameters(recurse=False))
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            chosen.append(bias)
        for p in {id(p): p for p in chosen}.values():
            p.requires_grad_(True)
            count += p.numel()
    return count


@register_stage(RecoverConfig)
class RecoverStage:
    changes_model = True

    def check(
        self, config: RecoverConfig, model: nn.Module, earlier: Sequence[StageConfig]
    ) -> None:
        if config.method not in SUPPORTED:
            raise RecipeError(
                "method",
                f"{config.method.value} has no pipeline adapter yet; expected one of "
                f"{[m.value for m in SUPPORTED]}",
            )

    def run(self, ctx: RunContext, config: RecoverConfig) -> dict[str, Any]:
        windows = ctx.calibration_batches(config.steps * config.batch_size, config.seq_len)
        # A different draw than calibration's: the same seed offset by the stage's role.
        random.Random(ctx.recipe.seed + 1).shuffle(windows)
        batches = [
            {"input_ids": torch.cat(windows[i : i + config.batch_size])}
            for i in range(0, len(windows), config.batch_size)
        ]
        trainable = mark_trainable(ctx.model)
        if trainable == 0:
            raise ValueError("recover: the compressed model has no trainable parameter left")
        losses = train(
            ctx.model,
            distill_loss_fn(ctx.teacher, config.temperature),
            batches,
            TrainConfig(steps=config.steps, lr=config.lr, progress=ctx.progress),
        )
        ctx.model.eval().requires_grad_(False)
        return {
            "trainable_parameters": trainable,
            "loss_first": losses[0],
            "loss_last": losses[-1],
        }
