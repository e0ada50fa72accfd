"""AWQ and SmoothQuant in the pipeline: per-block scale search, fold, then round.

Both methods pick one per-input-channel scale vector for each :class:`ScaleGroup` of a
block (the Linears reading one tensor, see :mod:`.scale_groups`), fold it into the
module writing that tensor, and then quantize the block's Linears round-to-nearest.
Every group of a block is searched on the block as calibrated before any is folded:
folding changes ``v_proj`` and ``up_proj``, whose weights the first and third groups'
searches read. Only targeted Linears take part in a search; an excluded member of a
group still has its columns scaled, so the model's function is kept. The math lives in
:mod:`squeezeprompt.quantize.awq` and :mod:`squeezeprompt.quantize.smoothquant`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.stages.collect import for_each_block
from squeezeprompt.pipeline.stages.scale_groups import ScaleGroup, fold_group, llama_groups
from squeezeprompt.pipeline.targets import dense_weight, linear_targets, set_module
from squeezeprompt.quantize.awq import AWQConfig, awq_quantize
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.smoothquant import SmoothQuantConfig, smoothquant_scales
from squeezeprompt.quantize.stats import InputStats

# (group, the targeted members' weights stacked [N, K], their shared input stats)
#   -> (scales [K] in the members' input space, JSON details of the choice)
ChooseScales = Callable[[ScaleGroup, Tensor, InputStats], tuple[Tensor, dict[str, float]]]
QuantizeLayer = Callable[[nn.Module], nn.Module]  # float Linear/MaskedLinear -> packed layer


def awq_chooser(grid: WeightGrid) -> ChooseScales:
    """AWQ's searched ``alpha`` on the group's joint output error.

    With tied heads (``v_proj -> o_proj`` under grouped-query attention) the salience
    ``E|x|`` is averaged over the heads sharing a value channel, so the scales come
    out tied and the search still measures ``o_proj``'s whole output error.

    Example:
        >>> choose = awq_chooser(WeightGrid(group_size=8))
        >>> x = torch.randn(64, 8) * torch.linspace(0.1, 4, 8)
        >>> stats = InputStats(8); stats.update(x)
        >>> s, info = choose(ScaleGroup("n", ("a",)), torch.randn(4, 8), stats)
        >>> s.shape, info["error"] <= info["rtn_error"]
        (torch.Size([8]), True)
    """
    config = AWQConfig(grid=grid)

    def choose(group: ScaleGroup, weight: Tensor, stats: InputStats) -> tuple[Tensor, dict]:
        salience = group.expand(group.reduce(stats.mean_abs(), "mean"))
        r = awq_quantize(weight, stats.hessian(), salience, config)
        return r.scales, {"alpha": r.alpha, "error": r.error, "rtn_error": r.rtn_error}

    return choose


def smoothquant_chooser(alpha: float) -> ChooseScales:
    """SmoothQuant's ``max|x|^alpha / max|W|^(1 - alpha)``, with tied heads' maxima pooled.

    Example:
        >>> stats = InputStats(2); stats.update(torch.tensor([[16.0, 1.0]]))
        >>> s, _ = smoothquant_chooser(0.5)(ScaleGroup("n", ("a",)), torch.ones(3, 2), stats)
        >>> s.tolist()
        [4.0, 1.0]
    """
    config = SmoothQuantConfig(alpha=alpha)

    def choose(group: ScaleGroup, weight: Tensor, stats: InputStats) -> tuple[Tensor, dict]:
        act = group.reduce(stats.max_abs(), "max")
        return group.expand(smoothquant_scales(act, group.tie_columns(weight), config)), {}

    return choose


def scale_block(
    model: nn.Module,
    prefix: str,
    block: nn.Module,
    found: dict[str, tuple[Any, InputStats]],
    targets: set[str],
    choose: ChooseScales,
) -> list[dict[str, float]]:
    """Chooses every group's scales on the unchanged block, then folds them all.

    Leaves the model computing the same function (up to float rounding); returns the
    details of each choice.

    Example: :func:`run_scaled`; ``tests/pipeline/test_awq_stage.py`` calls it alone.
    """
    chosen: list[tuple[ScaleGroup, Tensor]] = []
    details = []
    for group in llama_groups(prefix, block):
        members = [m for m in group.members if m in targets]
        if not members:
            continue
        weight = torch.cat([dense_weight(found[m][0]) for m in members])
        s, info = choose(group, weight, found[members[0]][1])
        chosen.append((group, s))
        details.append(info)
    for group, s in chosen:
        fold_group(model, group, s)
    return details


def run_scaled(
    ctx: RunContext,
    exclude: Sequence[str],
    choose: ChooseScales,
    quantize: QuantizeLayer,
    hessian: bool,
) -> tuple[int, list[dict[str, float]]]:
    """Calibrates block by block, scales each block, then quantizes its targeted Linears.

    Returns the number of layers quantized and the details of every group's choice.

    Example: ``stages/quantize.py`` (AWQ, and W8A8 with ``smoothquant_alpha``).
    """
    targets = set(linear_targets(ctx.model, exclude))
    details: list[dict[str, float]] = []
    done = 0

    def on_block(prefix: str, block: nn.Module, found: dict[str, Any]) -> None:
        nonlocal done
        details.extend(scale_block(ctx.model, prefix, block, found, targets, choose))
        for name, (module, _) in found.items():
            if name in targets:
                set_module(ctx.model, name, quantize(module))
                done += 1

    for_each_block(ctx, exclude, on_block, hessian=hessian)
    return done, details
