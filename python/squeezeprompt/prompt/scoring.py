"""The scorer interface and the book that spends the scoring budget.

A scorer is any callable ``scorer(candidate, examples) -> per-example scores`` (higher
is better; 1.0/0.0 for right/wrong makes the mean an accuracy). The search never
calls it directly: it goes through a ``ScoreBook``, which

* scores only the dev examples it was given (the search hands it ``task.dev``, never
  ``task.test``),
* counts every scored example against the budget, refusing a candidate it cannot
  afford in full (``BudgetExhausted``) so no score rests on part of the dev set,
* caches by candidate, so re-visiting a candidate costs nothing.

Example:
    >>> book = ScoreBook(lambda c, xs: [1.0] * len(xs), examples=["a", "b"], budget=4)
    >>> book.score(PromptCandidate("Sentiment?")), book.calls_used
    (1.0, 2)
    >>> book.score(PromptCandidate("Sentiment?")), book.calls_used   # cached: free
    (1.0, 2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from squeezeprompt.prompt.candidate import PromptCandidate


class CandidateScorer(Protocol):
    """Scores one candidate on a batch of examples, one float per example."""

    def __call__(self, candidate: PromptCandidate, examples: Sequence[Any]) -> Sequence[float]: ...


class BudgetExhausted(Exception):
    """Raised by ``ScoreBook.score`` when a candidate would overrun the budget."""


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate, its mean dev score, and when it was scored (0 = first)."""

    candidate: PromptCandidate
    score: float
    order: int


class ScoreBook:
    """Budgeted, cached scoring of candidates on a fixed list of examples.

    Example:
        >>> book = ScoreBook(lambda c, xs: [0.0] * len(xs), examples=[1, 2, 3], budget=5)
        >>> _ = book.score(PromptCandidate("a"))
        >>> book.can_afford(), book.remaining
        (False, 2)
    """

    def __init__(self, scorer: CandidateScorer, examples: Sequence[Any], budget: int) -> None:
        if not examples:
            raise ValueError("ScoreBook: expected at least one example to score on, got none")
        if not isinstance(budget, int) or budget < 0:
            raise ValueError(
                f"ScoreBook: budget must be an int >= 0 (scored examples), got {budget!r}"
            )
        self._scorer = scorer
        self._examples = list(examples)
        self.budget = budget
        self.calls_used = 0
        self._cache: dict[PromptCandidate, ScoredCandidate] = {}

    @property
    def cost(self) -> int:
        """Model calls (scored examples) one new candidate costs."""
        return len(self._examples)

    @property
    def remaining(self) -> int:
        return self.budget - self.calls_used

    def can_afford(self) -> bool:
        return self.remaining >= self.cost

    def seen(self, candidate: PromptCandidate) -> bool:
        return candidate in self._cache

    def score(self, candidate: PromptCandidate) -> float:
        """Mean score of ``candidate`` over the examples; cached; raises if unaffordable."""
        if candidate in self._cache:
            return self._cache[candidate].score
        if not self.can_afford():
            raise BudgetExhausted(
                f"scoring needs {self.cost} calls, {self.remaining} of {self.budget} left"
            )
        values = list(self._scorer(candidate, self._examples))
        if len(values) != len(self._examples):
            raise ValueError(
                f"scorer returned {len(values)} scores for {len(self._examples)} examples"
            )
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"scorer returned a non-finite score for {candidate!r}: {values}")
        self.calls_used += self.cost
        entry = ScoredCandidate(candidate, sum(values) / len(values), len(self._cache))
        self._cache[candidate] = entry
        return entry.score

    def history(self) -> tuple[ScoredCandidate, ...]:
        """Every scored candidate in the order it was scored."""
        return tuple(self._cache.values())

    def ranked(self) -> list[ScoredCandidate]:
        """Scored candidates best first; ties go to the one scored earlier (deterministic)."""
        return sorted(self._cache.values(), key=lambda e: (-e.score, e.order))

    def best(self) -> ScoredCandidate | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None
