"""The prune stage: every targeted Linear becomes a ``MaskedLinear`` of the chosen sparsity.

``MaskedLinear`` keeps the float weight trainable (masked entries get no gradient), so a
later recover stage can fine-tune without losing the pattern; a later quantize stage
turns it into the packed format. The pruning math lives in :mod:`squeezeprompt.prune`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.nn.sparse import MaskedLinear
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.stage_configs import PruneConfig, PruneMethod, StageConfig
from squeezeprompt.pipeline.stages.collect import for_each_target
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.pipeline.targets import linear_targets, set_module
from squeezeprompt.prune import Pattern, Sparsity, magnitude_mask, sparsegpt_prune, wanda_mask
from squeezeprompt.quantize.stats import InputStats


@dataclass(frozen=True)
class Pruner:
    """How one method prunes: ``fn(weight, stats, sparsity) -> (new weight, keep-mask)``."""

    fn: Callable[[Tensor, InputStats | None, Sparsity], tuple[Tensor, Tensor]]
    hessian: bool = False  # needs the [K, K] second moment (not only channel vectors)


def _magnitude(w: Tensor, _stats: InputStats | None, s: Sparsity) -> tuple[Tensor, Tensor]:
    return w, magnitude_mask(w, s)


def _wanda(w: Tensor, stats: InputStats | None, s: Sparsity) -> tuple[Tensor, Tensor]:
    assert stats is not None
    return w, wanda_mask(w, stats.channel_norm(), s)


def _sparsegpt(w: Tensor, stats: InputStats | None, s: Sparsity) -> tuple[Tensor, Tensor]:
    assert stats is not None
    result = sparsegpt_prune(w, stats.hessian(), s)
    return result.weight.to(w.dtype), result.mask


PRUNERS: dict[PruneMethod, Pruner] = {
    PruneMethod.MAGNITUDE: Pruner(_magnitude),
    PruneMethod.WANDA: Pruner(_wanda),
    PruneMethod.SPARSEGPT: Pruner(_sparsegpt, hessian=True),
}


@register_stage(PruneConfig)
class PruneStage:
    changes_model = True

    def check(self, config: PruneConfig, model: nn.Module, earlier: Sequence[StageConfig]) -> None:
        targets = linear_targets(model, config.exclude)
        if not targets:
            raise RecipeError("exclude", "leaves no Linear layer to prune")
        for name, module in targets.items():
            if not isinstance(module, nn.Linear):
                raise RecipeError(
                    "method", f"{name} is already a {type(module).__name__}; prune dense Linears"
                )
            if config.sparsity.pattern is Pattern.SEMI_24 and module.in_features % 4:
                raise RecipeError(
                    "sparsity",
                    f"2:4 needs in_features divisible by 4; {name} has {module.in_features}",
                )

    def run(self, ctx: RunContext, config: PruneConfig) -> dict[str, Any]:
        pruner = PRUNERS[config.method]
        kept = 0
        total = 0

        def prune_one(name: str, module: nn.Linear, stats: InputStats | None) -> None:
            nonlocal kept, total
            weight, mask = pruner.fn(module.weight.detach(), stats, config.sparsity)
            with torch.no_grad():
                module.weight.copy_(weight)
            set_module(ctx.model, name, MaskedLinear.from_linear(module, mask))
            kept += int(mask.sum())
            total += mask.numel()

        needs_stats = config.needs_calibration
        for_each_target(ctx, config.exclude, prune_one, stats=needs_stats, hessian=pruner.hessian)
        return {"sparsity": 1.0 - kept / total, "method": config.method.value}
