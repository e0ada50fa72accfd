"""Visiting the targeted Linears, with their input statistics when a method needs them.

With statistics, the walk goes block by block through ``calibrate_blockwise``, so a
change to one block's layers is seen by the inputs of the next (GPTQ/SparseGPT's
sequential mode). Without, it is a plain loop. Pruned ``MaskedLinear`` layers are
visited like plain Linears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from squeezeprompt.calibration import (
    CalibrationConfig,
    OnBlock,
    calibrate_blockwise,
    find_blocks,
)
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.targets import linear_targets
from squeezeprompt.quantize.stats import InputStats

Visit = Callable[[str, Any, InputStats | None], None]


def outside_blocks(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Those of ``names`` that no calibration pass reaches (not inside the decoder blocks).

    Example:
        >>> m = nn.Sequential(nn.ModuleList([nn.Linear(2, 2)] * 2), nn.Linear(2, 2))
        >>> outside_blocks(m, ["0.1", "1"])
        ['1']
    """
    prefix, _ = find_blocks(model)
    return [n for n in names if not n.startswith(f"{prefix}.")]


def for_each_block(
    ctx: RunContext, exclude: Sequence[str], visit: OnBlock, hessian: bool = False
) -> None:
    """Calls ``visit(prefix, block, found)`` for every decoder block, ``found`` holding
    every float Linear of the block (targeted or not) with its input statistics.

    Raises if a targeted Linear was never seen (it lies outside the decoder blocks).

    Example: ``stages/quantize.py`` (AWQ, SmoothQuant).
    """
    targets = linear_targets(ctx.model, exclude)
    calib = ctx.recipe.calibration
    batches = ctx.calibration_batches(calib.samples, calib.seq_len)
    seen: set[str] = set()

    def on_block(prefix: str, block: nn.Module, found: dict[str, Any]) -> None:
        seen.update(name for name in found if name in targets)
        visit(prefix, block, found)

    calibrate_blockwise(
        ctx.model, batches, on_block, CalibrationConfig(hessian=hessian, progress=ctx.progress)
    )
    _check_seen(targets, seen)


def for_each_target(
    ctx: RunContext,
    exclude: Sequence[str],
    visit: Visit,
    stats: bool,
    hessian: bool = False,
) -> None:
    """Calls ``visit(name, module, stats-or-None)`` once for every targeted Linear.

    Raises if a targeted Linear lies outside the decoder blocks when statistics are
    needed (``calibrate_blockwise`` only sees the blocks).

    Example: ``stages/prune.py`` and ``stages/quantize.py``.
    """
    targets = linear_targets(ctx.model, exclude)
    if not stats:
        for name, module in targets.items():
            visit(name, module, None)
        return

    def on_block(_prefix: str, _block: nn.Module, found: dict[str, Any]) -> None:
        for name, (module, s) in found.items():
            if name in targets:
                visit(name, module, s)

    for_each_block(ctx, exclude, on_block, hessian)


def _check_seen(targets: dict[str, Any], seen: set[str]) -> None:
    missed = sorted(set(targets) - seen)
    if missed:
        raise ValueError(
            f"calibration saw no inputs for {missed[:3]} (outside the decoder blocks, or "
            "already quantized); add them to the stage's exclude list"
        )
