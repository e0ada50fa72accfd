"""The quantize stage: every targeted Linear becomes a packed int4/int8 layer.

With ``dynamic_activations`` the layer also rounds its input per token to int8 at run
time: ``Int8DynamicLinear`` (W8A8) or ``Int4DynamicLinear`` (W4A8, the same int4 grid
as the weight-only layer, so RTN, GPTQ and AWQ all build it).

A layer pruned earlier keeps its zeros: 2:4 + int4 becomes ``Sparse24Int4Linear``, 2:4 +
int8 a ``Sparse24Linear`` with int8 values, unstructured zeros are quantized in place
(both grids represent 0 exactly). The rounding math lives in :mod:`squeezeprompt.quantize`.

RTN and GPTQ work layer by layer; AWQ, and W8A8 with ``smoothquant_alpha``, first fold
per-channel scales into each block (:mod:`.scaled`), then round every layer to nearest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.calibration import find_blocks
from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.nn.dynamic import Int4DynamicLinear, Int8DynamicLinear
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
from squeezeprompt.pipeline.stages.collect import for_each_target, outside_blocks
from squeezeprompt.pipeline.stages.registry import register_stage
from squeezeprompt.pipeline.stages.scale_groups import llama_groups
from squeezeprompt.pipeline.stages.scaled import awq_chooser, run_scaled, smoothquant_chooser
from squeezeprompt.pipeline.targets import dense_weight, linear_targets, set_module
from squeezeprompt.prune import Pattern, is_semi_24
from squeezeprompt.quantize.gptq import GPTQConfig, gptq_quantize
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.stats import InputStats


def grid_of(config: QuantizeConfig) -> WeightGrid:
    """The weight grid a quantize stage rounds onto.

    Example:
        >>> grid_of(QuantizeConfig(group_size=64)).group_size
        64
    """
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


def _float_linear(module: nn.Linear | MaskedLinear) -> tuple[nn.Linear, Tensor | None]:
    """A plain Linear computing what ``module`` computes (masked weights zeroed), and its
    mask (None for a dense layer)."""
    if isinstance(module, MaskedLinear):
        bias = None if module.bias is None else module.bias.detach()
        return _as_linear(dense_weight(module), bias), module.mask.clone()
    return module, None


def _int4_class(config: QuantizeConfig) -> type[Int4WeightOnlyLinear]:
    return Int4DynamicLinear if config.dynamic_activations else Int4WeightOnlyLinear


def _rtn_layer(lin: nn.Linear, mask: Tensor | None, config: QuantizeConfig) -> nn.Module:
    """Round-to-nearest layer of ``lin`` (whose weight is already zero where ``mask`` is)."""
    semi = mask is not None and is_semi_24(mask)
    group = config.group_size or lin.in_features
    if config.bits is Bits.INT4:
        if semi:
            return Sparse24Int4Linear.from_linear(lin, group, config.symmetric, mask=mask)
        return _int4_class(config).from_linear(lin, group, config.symmetric)
    if semi:
        return Sparse24Linear.from_linear(lin, mask, int8_values=True)
    if config.dynamic_activations:
        return Int8DynamicLinear.from_linear(lin)
    return Int8WeightOnlyLinear.from_linear(lin)


def _packed_layer(q: Int4Weight | Int8Weight, lin: nn.Linear, config: QuantizeConfig) -> nn.Module:
    if isinstance(q, Int4Weight):
        return _int4_class(config).from_int4(q, lin.bias, symmetric=config.symmetric)
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
    q = gptq_quantize(lin.weight.detach().float(), s.hessian(), GPTQConfig(grid=grid_of(c)))
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


def _check_scaled(config: QuantizeConfig, model: nn.Module) -> None:
    """AWQ and SmoothQuant fold into Llama-style blocks only; say so before any work."""
    field = "method" if config.method is QuantMethod.AWQ else "smoothquant_alpha"
    prefix, modules = find_blocks(model)
    for i, block in enumerate(modules):
        try:
            llama_groups(f"{prefix}.{i}", block)
        except ValueError as e:
            raise RecipeError(field, f"cannot fold scales: {e}") from None


@register_stage(QuantizeConfig)
class QuantizeStage:
    changes_model = True

    def check(
        self, config: QuantizeConfig, model: nn.Module, earlier: Sequence[StageConfig]
    ) -> None:
        pattern = _prior_pattern(earlier)
        if pattern is Pattern.SEMI_24 and config.dynamic_activations:
            raise RecipeError(
                "dynamic_activations",
                "no 2:4 layer with dynamic activations exists; drop dynamic_activations",
            )
        targets = linear_targets(model, config.exclude)
        if not targets:
            raise RecipeError("exclude", "leaves no Linear layer to quantize")
        if config.needs_calibration:
            outside = outside_blocks(model, list(targets))
            if outside:
                raise RecipeError(
                    "exclude",
                    f"{outside[0]} lies outside the decoder blocks, which calibration "
                    f"alone reaches; exclude it or use method: rtn",
                )
        if _scaled(config):
            _check_scaled(config, model)
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
        summary: dict[str, Any] = {"method": config.method.value, "bits": config.bits.value}
        if _scaled(config):
            return summary | _run_scaled(ctx, config)
        fn, needs_stats = QUANTIZERS[config.method]
        done = 0

        # Pruned layers arrive as MaskedLinear (calibration hooks them like Linears);
        # their masks are re-applied to whatever the quantizer produces.
        def quantize_one(name: str, module: nn.Linear | MaskedLinear, s: InputStats | None) -> None:
            nonlocal done
            lin, mask = _float_linear(module)
            set_module(ctx.model, name, fn(lin, mask, s, config))
            done += 1

        for_each_target(ctx, config.exclude, quantize_one, stats=needs_stats, hessian=needs_stats)
        return summary | {"layers": done}


def _scaled(config: QuantizeConfig) -> bool:
    return config.method is QuantMethod.AWQ or config.smoothquant_alpha is not None


def _run_scaled(ctx: RunContext, config: QuantizeConfig) -> dict[str, Any]:
    def quantize(module: nn.Module) -> nn.Module:
        return _rtn_layer(*_float_linear(module), config)  # type: ignore[arg-type]

    if config.method is QuantMethod.AWQ:
        done, details = run_scaled(
            ctx, config.exclude, awq_chooser(grid_of(config)), quantize, hessian=True
        )
        n = max(len(details), 1)
        return {
            "layers": done,
            "scale_groups": len(details),
            "mean_alpha": sum(d["alpha"] for d in details) / n,
            # Calibration output error of the searched scales over plain RTN's (<= 1).
            "error_vs_rtn": sum(d["error"] for d in details)
            / max(sum(d["rtn_error"] for d in details), 1e-30),
        }
    assert config.smoothquant_alpha is not None  # _scaled: AWQ or smoothing
    chooser = smoothquant_chooser(config.smoothquant_alpha)
    done, details = run_scaled(ctx, config.exclude, chooser, quantize, hessian=False)
    return {
        "layers": done,
        "scale_groups": len(details),
        "smoothquant_alpha": config.smoothquant_alpha,
    }
