"""Perplexity: windows, agreement with transformers' own loss, a known optimum."""

from __future__ import annotations

import math

import pytest
import torch

from squeezeprompt.data import load_wikipedia
from squeezeprompt.evaluate import perplexity, token_windows, window_nll
from squeezeprompt.evaluate.encode import encode_text


@pytest.fixture(scope="module")
def texts() -> tuple[str, ...]:
    return load_wikipedia().heldout[:2]


def test_windows_are_the_stream_cut_without_overlap(tokenizer, texts) -> None:
    stream = encode_text(tokenizer, texts[0]) + encode_text(tokenizer, "\n\n")
    stream += encode_text(tokenizer, texts[1])
    windows = token_windows(tokenizer, texts, seq_len=64, max_tokens=None)
    assert windows.shape == (len(stream) // 64, 64)
    assert windows.flatten().tolist() == stream[: windows.numel()]
    bounded = token_windows(tokenizer, texts, seq_len=64, max_tokens=200)
    assert torch.equal(bounded, windows[:3])  # 200 // 64 full windows, a prefix of the stream


def test_window_errors_name_the_values(tokenizer) -> None:
    with pytest.raises(ValueError, match="seq_len must be >= 2"):
        token_windows(tokenizer, ["abc"], seq_len=1, max_tokens=None)
    with pytest.raises(ValueError, match="max_tokens=10, seq_len=64"):
        token_windows(tokenizer, ["abc"], seq_len=64, max_tokens=10)
    with pytest.raises(ValueError, match="fewer than one window"):
        token_windows(tokenizer, ["abc"], seq_len=64, max_tokens=None)


def test_matches_transformers_loss(tiny_model, tokenizer, texts) -> None:
    result = perplexity(tiny_model, tokenizer, texts, seq_len=64, max_tokens=640, batch_size=3)
    windows = token_windows(tokenizer, texts, seq_len=64, max_tokens=640)
    with torch.no_grad():
        # transformers averages over the 63 predicted tokens of each equal-length window
        losses = [tiny_model(input_ids=w[None], labels=w[None]).loss for w in windows]
    expected = math.exp(torch.stack(losses).double().mean().item())
    assert result.n_windows == 10 and result.n_predicted == 10 * 63
    assert math.isclose(result.perplexity, expected, rel_tol=1e-5)
    again = perplexity(tiny_model, tokenizer, texts, seq_len=64, max_tokens=640, batch_size=10)
    assert math.isclose(again.nll, result.nll, rel_tol=1e-6)


def test_uniform_model_has_perplexity_equal_to_vocab_size(tiny_model, tokenizer, texts) -> None:
    head = tiny_model.get_output_embeddings()
    saved = head.weight.detach().clone()
    try:
        with torch.no_grad():
            head.weight.zero_()  # tied to the input embedding: also zeroes inputs, fine
        result = perplexity(tiny_model, tokenizer, texts, seq_len=32, max_tokens=128)
    finally:
        with torch.no_grad():
            head.weight.copy_(saved)
    assert math.isclose(result.perplexity, tiny_model.config.vocab_size, rel_tol=1e-5)


def test_soft_prompt_only_adds_context(tiny_model, tokenizer, texts) -> None:
    windows = token_windows(tokenizer, texts, seq_len=32, max_tokens=64)
    soft = torch.randn(4, tiny_model.config.hidden_size).requires_grad_()
    nll = window_nll(tiny_model, windows, soft)
    embed = tiny_model.get_input_embeddings()
    for i, w in enumerate(windows):
        logits = tiny_model(inputs_embeds=torch.cat([soft, embed(w)])[None]).logits[0, 4:-1]
        expected = torch.nn.functional.cross_entropy(logits, w[1:], reduction="sum")
        torch.testing.assert_close(nll[i], expected, atol=1e-3, rtol=1e-5)
    (grad,) = torch.autograd.grad(nll.sum(), soft)
    assert grad.abs().sum() > 0
    plain = window_nll(tiny_model, windows)
    assert not torch.allclose(plain, nll.detach())
