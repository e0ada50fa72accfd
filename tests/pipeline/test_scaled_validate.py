"""AWQ and SmoothQuant recipes that cannot run fail at validation, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny
import torch
from test_validate import _fails

from squeezeprompt.pipeline.sources import register_source

NOT_LLAMA = "tiny-llama-layernorm-test"


def _layernorm_llama() -> tuple[torch.nn.Module, object]:
    model = tiny.tiny_llama()
    model.model.layers[0].input_layernorm = torch.nn.LayerNorm(64)
    return model, tiny.byte_tokenizer()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "stages: [{quantize: {bits: 8, group_size: null, smoothquant_alpha: 0.5}}]",
            "stages[0].quantize.smoothquant_alpha: needs dynamic_activations: true",
        ),
        (
            "stages: [{quantize: {bits: 8, group_size: null, dynamic_activations: true, "
            "smoothquant_alpha: 1.5}}]",
            "stages[0].quantize.smoothquant_alpha: must lie in [0, 1], got 1.5",
        ),
        (
            "stages: [{quantize: {method: awq, bits: 8, group_size: null, "
            "dynamic_activations: true}}]",
            "stages[0].quantize.dynamic_activations: W8A8 needs method: rtn, got awq",
        ),
        (
            "stages: [{quantize: {group_size: 32, dynamic_activations: true, "
            "smoothquant_alpha: 0.5}}]",
            "stages[0].quantize.smoothquant_alpha: smooths W8A8 inputs: needs bits: 8",
        ),
        (
            "stages: [{quantize: {method: awq, group_size: 100}}]",
            "stages[0].quantize.group_size: must divide in_features 64",
        ),
        (
            "stages: [{quantize: {method: awq, group_size: 32, exclude: []}}]",
            "stages[0].quantize.exclude: lm_head lies outside the decoder blocks",
        ),
    ],
)
def test_errors(body: str, expected: str, tmp_path: Path) -> None:
    assert _fails(body, tmp_path).startswith(expected)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{method: awq, group_size: 32}", "method"),
        (
            "{bits: 8, group_size: null, dynamic_activations: true, smoothquant_alpha: 0.5}",
            "smoothquant_alpha",
        ),
    ],
)
def test_scales_need_a_foldable_norm(body: str, field: str, tmp_path: Path) -> None:
    register_source(NOT_LLAMA, _layernorm_llama)
    message = _fails(f"stages: [{{quantize: {body}}}]", tmp_path, model=NOT_LLAMA)
    assert message.startswith(
        f"stages[0].quantize.{field}: cannot fold scales: "
        "model.layers.0.input_layernorm is a LayerNorm"
    )
