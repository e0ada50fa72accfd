"""The quantize stage: every targeted Linear becomes a packed int4/int8 layer.

A layer pruned earlier keeps its zeros: 2:4 + int4 becomes ``Sparse24Int4Linear``, 2:4 +
int8 a ``Sparse24Linear`` with int8 values, unstructured zeros are quantized in place
(both grids represent 0 exactly). The rounding math lives in :mod:`squeezeprompt.quantize`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.nn.dynamic import Int8DynamicLinear
from squeezeprompt.nn.sparse import MaskedLinear, Sparse24Int4Linear, Sparse24Linear
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear, Int8WeightOnlyLinear
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.stage_configs import (
    Bits,
    PruneConfig,
    QuantizeConfig,
    QuantMethod,
    StageConfig,
)
from squeezeprompt.pipeline.stages.collect import for_each_target
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.pipeline.targets import linear_targets, set_module
from squeezeprompt.prune import Pattern, is_semi_24
from squeezeprompt.quantize.gptq import GPTQConfig, gptq_quantize
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.stats import InputStats


def _grid(config: QuantizeConfig) -> WeightGrid:
    if config.bits is Bits.INT8:
        return WeightGrid(Bits.INT8, group_size=None, symmetric=True)
    return WeightGrid(Bits.INT4, group_size=config.group_size, symmetric=config.symmetric)


def _as_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    n, k = weight.shape
    lin = nn.Linear(k, n, bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    return lin


def _rtn_layer(lin: nn.Linear, mask: Tensor | None, config: QuantizeConfig) -> nn.Module:
    """Round-to-nearest layer of ``lin`` (whose weight is already zero where ``mask`` is)."""
    semi = mask is not None and is_semi_24(mask)
    group = config.group_size or lin.in_features
    if config.bits is Bits.INT4:
        if semi:
            return Sparse24Int4Linear.from_linear(lin, group, config.symmetric, mask=mask)
        return Int4WeightOnlyLinear.from_linear(lin, group, config.symmetric)
    if semi:
        return Sparse24Linear.from_linear(lin, mask, int8_values=True)
    if config.dynamic_activations:
        return Int8DynamicLinear.from_linear(lin)
    return Int8WeightOnlyLinear.from_linear(lin)


def _packed_layer(q: Int4Weight | Int8Weight, lin: nn.Linear, config: QuantizeConfig) -> nn.Module:
    if isinstance(q, Int4Weight):
        return Int4WeightOnlyLinear.from_int4(q, lin.bias, symmetric=config.symmetric)
    layer = Int8WeightOnlyLinear(lin.in_features, lin.out_features, lin.bias is not None)
    layer.qweight.copy_(q.qweight)
    layer.scales.copy_(q.scales)
    layer._copy_bias(lin)
    return layer


Quantizer = Callable[[nn.Linear, Tensor | None, InputStats | None, QuantizeConfig], nn.Module]


def _rtn(
    lin: nn.Linear, mask: Tensor | None, _s: InputStats | None, c: QuantizeConfig
) -> nn.Module:
    return _rtn_layer(lin, mask, c)


def _gptq(
    lin: nn.Linear, mask: Tensor | None, s: InputStats | None, c: QuantizeConfig
) -> nn.Module:
    assert s is not None
    q = gptq_quantize(lin.weight.detach().float(), s.hessian(), GPTQConfig(grid=_grid(c)))
    if mask is None:
        return _packed_layer(q, lin, c)
    # GPTQ's error feedback refills pruned entries; zero them again and re-pack. The
    # values are already on the grid, so re-rounding moves only groups whose extreme
    # entry was pruned.
    return _rtn_layer(_as_linear(q.dequantize() * mask, lin.bias), mask, c)


QUANTIZERS: dict[QuantMethod, tuple[Quantizer, bool]] = {  # method -> (fn, needs stats)
    QuantMethod.RTN: (_rtn, False),
    QuantMethod.GPTQ: (_gptq, True),
}


def _prior_pattern(earlier: Sequence[StageConfig]) -> Pattern | None:
    prunes = [s for s in earlier if isinstance(s, PruneConfig)]
    return prunes[-1].sparsity.pattern if prunes else None


@register_stage(QuantizeConfig)
class QuantizeStage:
    changes_model = True

    def check(
        self, config: QuantizeConfig, model: nn.Module, earlier: Sequence[StageConfig]
    ) -> None:
        if config.method not in QUANTIZERS:
            raise RecipeError(
                "method",
                f"{config.method.value} has no pipeline adapter yet; expected one of "
                f"{[m.value for m in QUANTIZERS]}",
            )
        pattern = _prior_pattern(earlier)
        if pattern is Pattern.SEMI_24 and config.dynamic_activations:
            raise RecipeError(
                "dynamic_activations", "no 2:4 W8A8 layer exists; use bits 8 weight-only"
            )
        targets = linear_targets(model, config.exclude)
        if not targets:
            raise RecipeError("exclude", "leaves no Linear layer to quantize")
        for name, module in targets.items():
            k = module.in_features
            if config.bits is Bits.INT4 and config.group_size is not None and k % config.group_size:
                raise RecipeError(
                    "group_size",
                    f"must divide in_features {k} of {name}, got {config.group_size}",
                )
            if config.bits is Bits.INT4 and k % 2:
                raise RecipeError(
                    "bits", f"int4 packs two codes a byte; {name} has odd in_features {k}"
                )

    def run(self, ctx: RunContext, config: QuantizeConfig) -> dict[str, Any]:
        fn, needs_stats = QUANTIZERS[config.method]
        masks: dict[str, Tensor] = {}
        # Pruned layers go back to plain Linears with zeroed weights for the walk (the
        # block-wise calibration only sees nn.Linear); their masks are kept aside.
        for name, module in linear_targets(ctx.model, config.exclude).items():
            if isinstance(module, MaskedLinear):
                masks[name] = module.mask.clone()
                bias = None if module.bias is None else module.bias.detach()
                set_module(ctx.model, name, _as_linear(module.dequantize(), bias))
        done = 0

        def quantize_one(name: str, module: nn.Linear, stats: InputStats | None) -> None:
            nonlocal done
            set_module(ctx.model, name, fn(module, masks.get(name), stats, config))
            done += 1

        for_each_target(ctx, config.exclude, quantize_one, stats=needs_stats, hessian=needs_stats)
        return {"layers": done, "method": config.method.value, "bits": config.bits.value}
