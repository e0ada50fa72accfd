"""End to end on the packaged SmolLM2-135M-Instruct: every config generates, compiles, saves.

Slow (real model). The first run converts the GGUF file (20-60 s) into the user cache.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from squeezeprompt import checkpoint, models
from squeezeprompt.models.presets import PRESETS, int4_g128

pytestmark = pytest.mark.slow

PROMPT = "What is the capital of France?"
NEW_TOKENS = 6


# Quantization alone keeps this model's answer; one-shot magnitude 2:4 pruning without
# recovery does not (it breaks a 135M model), so those only need to run and stay finite.
SAME_ANSWER = {"int8", "int4_g128", "w8a8", "bf16"}


@pytest.fixture(scope="module")
def base() -> tuple[nn.Module, object, torch.Tensor]:
    model, tok = models.load("smollm2-135m-instruct")
    msgs = [{"role": "user", "content": PROMPT}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
    return model, tok, ids["input_ids"]


def greedy(model: nn.Module, ids: torch.Tensor) -> list[int]:
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=NEW_TOKENS, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def reference(base) -> list[int]:
    model, tok, ids = base
    tokens = greedy(model, ids)
    assert "Paris" in tok.decode(tokens)
    return tokens


# CI runs the int4 case (the package's default compression); `--slow=all` runs every config.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow(bounded=True)) if n == "int4_g128" else n
        for n in sorted(PRESETS)
    ],
)
def test_compressed_model_generates(base, reference, name: str) -> None:
    model, tok, ids = base
    compressed = PRESETS[name](copy.deepcopy(model))
    tokens = greedy(compressed, ids)
    assert len(tokens) == NEW_TOKENS
    with torch.no_grad():
        assert bool(torch.isfinite(compressed(ids).logits).all())
    if name in SAME_ANSWER:
        assert tokens[:4] == reference[:4], tok.decode(tokens)


@pytest.mark.slow(bounded=True)
def test_int4_model_compiles_and_survives_save_load(base, tmp_path: Path) -> None:
    model, _, ids = base
    q = int4_g128(copy.deepcopy(model))
    with torch.no_grad():
        eager = q(ids).logits
        compiled = torch.compile(q)(ids).logits
    assert torch.allclose(compiled, eager, rtol=1e-3, atol=1e-3)
    back = checkpoint.load(checkpoint.save(q, tmp_path / "int4"))
    with torch.no_grad():
        assert torch.equal(back(ids).logits, eager)
