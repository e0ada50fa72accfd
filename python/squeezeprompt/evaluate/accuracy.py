"""Task accuracy with a 95% Wilson interval."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from squeezeprompt.data.tasks import Example
from squeezeprompt.evaluate.prefix import PrefixState
from squeezeprompt.evaluate.prompt import Prompt
from squeezeprompt.evaluate.scoring import score_examples
from squeezeprompt.evaluate.stats import wilson_interval


@dataclass(frozen=True)
class AccuracyResult:
    """Accuracy over ``n`` examples with its 95% Wilson interval ``[ci_low, ci_high]``."""

    accuracy: float
    correct: int
    n: int
    ci_low: float
    ci_high: float
    predictions: tuple[int, ...]
    seconds: float

    def __str__(self) -> str:
        return (
            f"accuracy {self.accuracy:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] "
            f"({self.correct}/{self.n}, {self.seconds:.1f} s)"
        )


def accuracy(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    examples: Sequence[Example],
    label_words: Sequence[str],
    batch_size: int = 16,
    soft_prompt: torch.Tensor | None = None,
    progress: bool = True,
    deep_prompt: PrefixState | None = None,
) -> AccuracyResult:
    """Score ``examples`` with ``prompt`` and count how many the model gets right.

    ``soft_prompt`` and ``deep_prompt`` are as in ``score_examples``.

    Example:
        >>> task = load_task()  # doctest: +SKIP
        >>> prompt = default_prompt(task)  # doctest: +SKIP
        >>> print(accuracy(model, tok, prompt, task.test[:300], task.label_words))  # doctest: +SKIP
        accuracy 0.673 [0.619, 0.722] (202/300, 25.0 s)
    """
    if not examples:
        raise ValueError("accuracy needs at least one example, got none")
    start = time.perf_counter()
    scores = score_examples(
        model,
        tokenizer,
        prompt,
        examples,
        label_words,
        batch_size,
        soft_prompt,
        progress,
        deep_prompt,
    )
    correct = sum(scores.correct(examples))
    low, high = wilson_interval(correct, len(examples))
    return AccuracyResult(
        accuracy=correct / len(examples),
        correct=correct,
        n=len(examples),
        ci_low=low,
        ci_high=high,
        predictions=scores.predictions,
        seconds=time.perf_counter() - start,
    )
