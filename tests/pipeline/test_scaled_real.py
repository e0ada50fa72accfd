"""Folding AWQ and SmoothQuant scales into the packaged SmolLM2-135M keeps its function."""

from __future__ import annotations

import pytest
import torch
from outliers import logits

from squeezeprompt.calibration import CalibrationConfig, calibrate_blockwise
from squeezeprompt.data import load_wikipedia
from squeezeprompt.evaluate import token_windows
from squeezeprompt.pipeline.stages.scaled import awq_chooser, scale_block, smoothquant_chooser
from squeezeprompt.pipeline.targets import linear_targets
from squeezeprompt.quantize.grid import WeightGrid

pytestmark = pytest.mark.slow(bounded=True)


BLOCKS = 3  # the first blocks of the real model: real weights, bounded time


def test_folded_scales_keep_smollm2s_logits(smollm2) -> None:
    model, tok = smollm2
    model.model.layers = model.model.layers[:BLOCKS]
    model.config.num_hidden_layers = BLOCKS
    calib = token_windows(tok, load_wikipedia().calibration, 128, 2 * 128)
    held = token_windows(tok, load_wikipedia().heldout, 128, 2 * 128)
    before = logits(model, held)
    norms = [b.input_layernorm.weight.detach().clone() for b in model.model.layers]
    targets = set(linear_targets(model, ("lm_head",)))
    awq = awq_chooser(WeightGrid(group_size=64))
    smooth = smoothquant_chooser(0.5)

    def on_block(prefix: str, block: torch.nn.Module, found: dict) -> None:
        # AWQ on the first block, SmoothQuant on the others: SmolLM2 has grouped-query
        # attention (9 heads, 3 KV), so v_proj -> o_proj uses tied scales.
        index = int(prefix.rsplit(".", 1)[-1])
        scale_block(model, prefix, block, found, targets, awq if index == 0 else smooth)

    calibrate_blockwise(model, [w[None] for w in calib], on_block, CalibrationConfig(hessian=True))
    for block, norm in zip(model.model.layers, norms, strict=True):
        ratio = block.input_layernorm.weight.detach() / norm
        assert float(ratio.max() / ratio.min()) > 2.0, "non-trivial scales were folded"
    after = logits(model, held)
    # float32 rounding only: measured 7e-7 of the largest logit (4 blocks).
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5 * float(before.abs().max()))
