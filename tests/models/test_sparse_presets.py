"""Calibrated 2:4 (``models.sparse_presets``) on a tiny random Llama with a stand-in tokenizer.

The real model's coherence is checked in ``test_smollm2.py``; here: which layers change,
into what, that SparseGPT's calibration is really used, and the error messages.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from tiny_llama import random_llama
from torch import nn

from squeezeprompt.data import load_wikipedia
from squeezeprompt.models.sparse_presets import (
    ChatCalibration,
    attention_and_mlp_of,
    chat_calibration_windows,
    sparse24_share,
    sparsegpt_24_,
)
from squeezeprompt.nn import LinearFilter, SemiStructured24, SparseValues, sparsify_
from squeezeprompt.nn.sparse import Sparse24Int4Linear, Sparse24Linear

VOCAB = 96
CALIBRATION = ChatCalibration(samples=4, seq_len=32)
# Both blocks' q_proj and o_proj, and the MLP of block 1 only.
CHOSEN = attention_and_mlp_of(range(1, 2))


class CharTokenizer:
    """Enough of a Hugging Face tokenizer for the chat windows: one id per character."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> dict:
        assert kwargs == {"return_tensors": "pt", "return_dict": True}
        self.requests.append(messages[0]["content"])
        text = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return {"input_ids": torch.tensor([[ord(c) % VOCAB for c in text]])}


def _sparse(model: nn.Module, values: SparseValues, filter: LinearFilter = CHOSEN) -> nn.Module:
    config = SemiStructured24(values=values, group_size=32)
    return sparsegpt_24_(model, config, filter, CALIBRATION, tokenizer=CharTokenizer())


@pytest.mark.parametrize("values", list(SparseValues))
def test_chosen_linears_become_2_4_and_the_rest_stay_dense(values: SparseValues) -> None:
    model = _sparse(random_llama(VOCAB), values)
    layer_type = Sparse24Int4Linear if values is SparseValues.INT4 else Sparse24Linear
    for name, module in model.named_modules():
        if not name.endswith(("_proj", "lm_head")):
            continue
        if name.endswith(("q_proj", "o_proj")) or name.startswith("model.layers.1.mlp."):
            assert isinstance(module, layer_type), name
            assert module.config.values is values
        else:
            assert type(module) is nn.Linear, name
    # Per block: q, o 64x64 each, k, v 64x32 each, MLP 3 x 64x128; the MLP of one block.
    per_block = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128
    assert sparse24_share(model) == (2 * 2 * 64 * 64 + 3 * 64 * 128) / (2 * per_block)
    with torch.no_grad():
        assert bool(torch.isfinite(model(torch.arange(16)[None]).logits).all())


def test_sparsegpt_calibration_beats_magnitude_on_its_own_text() -> None:
    dense = random_llama(VOCAB)
    window = chat_calibration_windows(CharTokenizer(), CALIBRATION)[0]
    sparse = _sparse(copy.deepcopy(dense), SparseValues.FLOAT)
    names = tuple(n for n, m in sparse.named_modules() if isinstance(m, Sparse24Linear))
    magnitude = sparsify_(copy.deepcopy(dense), SemiStructured24(), LinearFilter(include=names))
    with torch.no_grad():
        ref = dense(window).logits
        err_sparsegpt = (sparse(window).logits - ref).pow(2).mean()
        err_magnitude = (magnitude(window).logits - ref).pow(2).mean()
    assert err_sparsegpt < err_magnitude


def test_same_inputs_give_the_same_model() -> None:
    a = _sparse(random_llama(VOCAB), SparseValues.INT4).state_dict()
    b = _sparse(random_llama(VOCAB), SparseValues.INT4).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_windows_come_from_calibration_articles_only() -> None:
    tok = CharTokenizer()
    windows = chat_calibration_windows(tok, CALIBRATION)
    assert [tuple(w.shape) for w in windows] == [(1, CALIBRATION.seq_len)] * CALIBRATION.samples
    titles = {r.removeprefix("Tell me about ").removesuffix(".") for r in tok.requests}
    wiki = load_wikipedia()
    assert titles <= set(wiki.calibration_titles)
    assert titles.isdisjoint(wiki.heldout_titles)


def test_bad_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="picks no Linear"):
        _sparse(random_llama(VOCAB), SparseValues.FLOAT, LinearFilter(include=("nothing",)))
    with pytest.raises(ValueError, match="no name_or_path"):
        sparsegpt_24_(nn.Sequential(nn.Linear(8, 8)))
    with pytest.raises(ValueError, match="samples must be a positive int"):
        ChatCalibration(samples=0)
    with pytest.raises(ValueError, match="calibration articles fill"):
        chat_calibration_windows(CharTokenizer(), ChatCalibration(samples=10_000, seq_len=32))
    outside = LinearFilter(include=("lm_head",), exclude=())
    with pytest.raises(ValueError, match="never reached"):
        _sparse(random_llama(VOCAB), SparseValues.FLOAT, outside)
