"""Visiting the targeted Linears, with their input statistics when a method needs them.

With statistics, the walk goes block by block through ``calibrate_layerwise``, so a
change to one block's layers is seen by the inputs of the next (GPTQ/SparseGPT's
sequential mode). Without, it is a plain loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from squeezeprompt.calibration import CalibrationConfig, calibrate_layerwise
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.targets import linear_targets
from squeezeprompt.quantize.stats import InputStats

Visit = Callable[[str, Any, InputStats | None], None]


def for_each_target(
    ctx: RunContext,
    exclude: Sequence[str],
    visit: Visit,
    stats: bool,
    hessian: bool = False,
) -> None:
    """Calls ``visit(name, module, stats-or-None)`` once for every targeted Linear.

    Raises if a targeted Linear lies outside the decoder blocks when statistics are
    needed (``calibrate_layerwise`` only sees the blocks).

    Example: ``stages/prune.py`` and ``stages/quantize.py``.
    """
    targets = linear_targets(ctx.model, exclude)
    if not stats:
        for name, module in targets.items():
            visit(name, module, None)
        return
    calib = ctx.recipe.calibration
    batches = ctx.calibration_batches(calib.samples, calib.seq_len)
    seen: set[str] = set()

    def on_linear(name: str, module: nn.Linear, s: InputStats) -> None:
        if name in targets:
            seen.add(name)
            visit(name, module, s)

    calibrate_layerwise(
        ctx.model, batches, on_linear, CalibrationConfig(hessian=hessian, progress=ctx.progress)
    )
    missed = sorted(set(targets) - seen)
    if missed:
        raise ValueError(
            f"calibration saw no inputs for {missed[:3]} (outside the decoder blocks, or not "
            "a plain nn.Linear); add them to the stage's exclude list"
        )
