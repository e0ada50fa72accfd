"""The scorer interface and the book that spends the scoring budget.

A scorer is any callable ``scorer(candidate, examples) -> per-example scores`` (higher
is better; 1.0/0.0 for right/wrong makes the mean an accuracy). The search never
calls it directly: it goes through a ``ScoreBook``, which

* scores only the dev examples it was given (the search hands it ``task.dev``, never
  ``task.test``),
* counts every scored example against the budget, refusing a candidate it cannot
  afford (``BudgetExhausted``) so no score rests on fewer examples than asked for,
* caches each candidate's per-example scores, so re-visiting a candidate costs nothing,
  and a candidate screened on the first ``n`` examples (``score(c, n)``, for
  successive halving) pays only for the examples it has not been scored on yet.

Only candidates scored on every example count as results (``ranked``, ``best``,
``history``); a screen's partial means are read with ``partial_score``.

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
    """A candidate, its mean dev score, and when it was first scored (0 = first)."""

    candidate: PromptCandidate
    score: float
    order: int


@dataclass
class _Entry:
    order: int
    values: list[float]


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
        self._cache: dict[PromptCandidate, _Entry] = {}

    @property
    def cost(self) -> int:
        """Model calls (scored examples) one new candidate costs."""
        return len(self._examples)

    @property
    def size(self) -> int:
        """How many examples a full score is taken over."""
        return len(self._examples)

    @property
    def remaining(self) -> int:
        return self.budget - self.calls_used

    def can_afford(self) -> bool:
        return self.remaining >= self.cost

    def seen(self, candidate: PromptCandidate) -> bool:
        """Whether ``candidate`` has been scored on every example."""
        entry = self._cache.get(candidate)
        return entry is not None and len(entry.values) == self.size

    def scored_on(self, candidate: PromptCandidate) -> int:
        """On how many (leading) examples ``candidate`` has been scored so far."""
        entry = self._cache.get(candidate)
        return 0 if entry is None else len(entry.values)

    def score(self, candidate: PromptCandidate, n: int | None = None) -> float:
        """Mean score of ``candidate`` over the first ``n`` examples (None: all of them).

        Only the examples not scored yet are scored (and paid for); raises
        ``BudgetExhausted`` before scoring anything if they are unaffordable.

        Example:
            >>> book = ScoreBook(lambda c, xs: [float(x) for x in xs], [1, 0, 1, 1], budget=8)
            >>> book.score(PromptCandidate("a"), n=2), book.calls_used
            (0.5, 2)
            >>> book.score(PromptCandidate("a")), book.calls_used   # pays for 2 more only
            (0.75, 4)
        """
        n = self.size if n is None else n
        if not 1 <= n <= self.size:
            raise ValueError(f"ScoreBook.score: n must be in [1, {self.size}], got {n}")
        entry = self._cache.get(candidate)
        done = 0 if entry is None else len(entry.values)
        if done < n:
            need = n - done
            if need > self.remaining:
                raise BudgetExhausted(
                    f"scoring needs {need} calls, {self.remaining} of {self.budget} left"
                )
            values = list(self._scorer(candidate, self._examples[done:n]))
            if len(values) != need:
                raise ValueError(f"scorer returned {len(values)} scores for {need} examples")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"scorer returned a non-finite score for {candidate!r}: {values}")
            self.calls_used += need
            if entry is None:
                entry = self._cache[candidate] = _Entry(len(self._cache), [])
            entry.values += values
        assert entry is not None
        return sum(entry.values[:n]) / n

    def partial_score(self, candidate: PromptCandidate, n: int) -> float:
        """Mean over the first ``n`` examples of a candidate already scored on them."""
        entry = self._cache.get(candidate)
        if entry is None or len(entry.values) < n:
            raise KeyError(f"{candidate!r} has not been scored on {n} examples")
        return sum(entry.values[:n]) / n

    def history(self) -> tuple[ScoredCandidate, ...]:
        """Every candidate scored on all examples, in the order it was first scored."""
        return tuple(
            ScoredCandidate(c, sum(e.values) / self.size, e.order)
            for c, e in self._cache.items()
            if len(e.values) == self.size
        )

    def ranked(self) -> list[ScoredCandidate]:
        """Fully scored candidates best first; ties go to the one scored earlier."""
        return sorted(self.history(), key=lambda e: (-e.score, e.order))

    def best(self) -> ScoredCandidate | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None
