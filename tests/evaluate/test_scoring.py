"""Label scoring with a cached prefix equals scoring each full sequence from scratch."""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.data import Example, load_task
from squeezeprompt.evaluate import (
    Prompt,
    PromptFormat,
    accuracy,
    compute_prefix,
    encode_prompt,
    label_log_probs,
    score_examples,
    wilson_interval,
)

# fp32 through a 2-layer model: cached vs uncached attention differ only by summation
# order, a few ulps of logits of magnitude ~10.
ATOL = 1e-4


@pytest.fixture(scope="module")
def examples() -> tuple[Example, ...]:
    return load_task().dev[:12]


@pytest.mark.parametrize(
    "words",
    [
        ("negative", "positive"),  # one token each: one row per example
        ("quite bad really", "good"),  # different lengths: one row per (example, label)
    ],
)
@pytest.mark.parametrize("fmt", list(PromptFormat))
def test_prefix_reuse_matches_full_sequence(
    tiny_model, tokenizer, examples, words, fmt, full_sequence_log_probs
) -> None:
    prompt = Prompt("Is this movie review positive or negative?", format=fmt)
    with torch.no_grad():
        expected = full_sequence_log_probs(tiny_model, tokenizer, prompt, examples, words)
    got = score_examples(tiny_model, tokenizer, prompt, examples, words, batch_size=5)
    torch.testing.assert_close(got.log_probs, expected, atol=ATOL, rtol=0)
    assert got.predictions == tuple(expected.argmax(1).tolist())
    # log-likelihoods of whole words: negative, and not all labels tie
    assert (got.log_probs < 0).all()
    assert (got.log_probs[:, 0] != got.log_probs[:, 1]).all()


def test_batch_size_does_not_change_scores(tiny_model, tokenizer, examples) -> None:
    prompt = Prompt("Sentiment?", demonstrations=load_task().train[:2])
    words = ("negative", "positive")
    one = score_examples(tiny_model, tokenizer, prompt, examples, words, batch_size=1)
    many = score_examples(tiny_model, tokenizer, prompt, examples, words, batch_size=64)
    torch.testing.assert_close(one.log_probs, many.log_probs, atol=ATOL, rtol=0)


def test_soft_prompt_scores_and_gradients_match_full_sequence(
    tiny_model, tokenizer, examples, full_sequence_log_probs
) -> None:
    words = ("negative", "positive")
    prompt = Prompt("Review sentiment?")
    hidden = tiny_model.config.hidden_size
    soft = torch.randn(3, hidden, generator=torch.Generator().manual_seed(1)).requires_grad_()

    enc = encode_prompt(prompt, tokenizer, words)
    prefix = compute_prefix(tiny_model, enc, soft)
    assert prefix.length == enc.prefix_len + 3
    ids = [enc.example_ids(tokenizer, ex.text) for ex in examples[:4]]
    got = label_log_probs(tiny_model, enc, prefix, ids)
    (grad_got,) = torch.autograd.grad(got[:, 1].sum(), soft)

    expected = full_sequence_log_probs(tiny_model, tokenizer, prompt, examples[:4], words, soft)
    (grad_expected,) = torch.autograd.grad(expected[:, 1].sum(), soft)

    torch.testing.assert_close(got.double(), expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(grad_got, grad_expected, atol=ATOL, rtol=1e-4)
    assert grad_got.abs().sum() > 0

    scored = score_examples(tiny_model, tokenizer, prompt, examples[:4], words, soft_prompt=soft)
    torch.testing.assert_close(scored.log_probs, expected.detach(), atol=ATOL, rtol=0)
    plain = score_examples(tiny_model, tokenizer, prompt, examples[:4], words)
    assert not torch.allclose(plain.log_probs, scored.log_probs)  # the soft prompt is used


def test_soft_prompt_shape_is_checked(tiny_model, tokenizer, examples) -> None:
    with pytest.raises(ValueError, match=r"\[num_virtual_tokens, 64\]"):
        score_examples(
            tiny_model, tokenizer, Prompt("x"), examples, ("a", "b"), soft_prompt=torch.ones(3)
        )


def test_accuracy_counts_predictions(tiny_model, tokenizer, examples) -> None:
    words = ("negative", "positive")
    prompt = Prompt("Sentiment?")
    scores = score_examples(tiny_model, tokenizer, prompt, examples, words)
    result = accuracy(tiny_model, tokenizer, prompt, examples, words, progress=False)
    correct = sum(p == ex.label for p, ex in zip(scores.predictions, examples, strict=True))
    assert result.correct == correct and result.n == len(examples)
    assert result.accuracy == correct / len(examples)
    assert (result.ci_low, result.ci_high) == wilson_interval(correct, len(examples))
    assert result.predictions == scores.predictions


def test_model_mode_is_restored(tiny_model, tokenizer, examples) -> None:
    tiny_model.train()
    try:
        score_examples(tiny_model, tokenizer, Prompt("x"), examples[:2], ("no", "yes"))
        assert tiny_model.training
    finally:
        tiny_model.eval()


def test_bad_labels_are_rejected(tiny_model, tokenizer) -> None:
    with pytest.raises(ValueError, match="label 2"):
        score_examples(tiny_model, tokenizer, Prompt("x"), [Example("t", 2)], ("no", "yes"))
    with pytest.raises(ValueError, match="at least one example"):
        accuracy(tiny_model, tokenizer, Prompt("x"), [], ("no", "yes"))
