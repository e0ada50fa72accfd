"""One bounded check on the packaged SmolLM2-135M-Instruct (marked slow)."""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.data import load_task, load_wikipedia
from squeezeprompt.evaluate import accuracy, default_prompt, perplexity, score_examples

pytestmark = pytest.mark.slow(bounded=True)


def test_smollm2_scores_perplexity_and_accuracy(smollm2, full_sequence_log_probs) -> None:
    model, tok = smollm2
    task = load_task()
    prompt = default_prompt(task)

    # Cached-prefix scoring equals uncached full-sequence scoring on the real template.
    few = task.dev[:2]
    with torch.no_grad():
        expected = full_sequence_log_probs(model, tok, prompt, few, task.label_words)
    got = score_examples(model, tok, prompt, few, task.label_words)
    torch.testing.assert_close(got.log_probs, expected, atol=1e-3, rtol=0)

    # The default prompt must beat always answering the majority label on 64 dev reviews
    # (a broken template or label position sits at or below it).
    dev = task.dev[:64]
    result = accuracy(model, tok, prompt, dev, task.label_words, progress=False)
    majority = max(sum(ex.label for ex in dev), sum(1 - ex.label for ex in dev)) / len(dev)
    assert result.accuracy > majority + 0.05, (result, majority)

    # Dense held-out perplexity is about 25 on the first windows; a model fed wrong
    # positions or tokens lands in the hundreds.
    ppl = perplexity(model, tok, load_wikipedia().heldout, seq_len=256, max_tokens=512)
    assert 5 < ppl.perplexity < 40, ppl
