"""The calibrate stage: fixes the calibration windows later stages collect statistics on.

The statistics themselves are gathered by the prune/quantize stage that needs them,
layer by layer on the model as it is then (so GPTQ after pruning sees pruned inputs);
this stage only draws and records the token windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.stage_configs import CalibrateConfig, StageConfig
from squeezeprompt.pipeline.stages.registry import register_stage


@register_stage(CalibrateConfig)
class CalibrateStage:
    changes_model = False

    def check(
        self, config: CalibrateConfig, model: nn.Module, earlier: Sequence[StageConfig]
    ) -> None:
        pass

    def run(self, ctx: RunContext, config: CalibrateConfig) -> dict[str, Any]:
        batches = ctx.calibration_batches(config.samples, config.seq_len)
        return {"samples": len(batches), "tokens": sum(b.numel() for b in batches)}
