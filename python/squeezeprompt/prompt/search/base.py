"""``search(task, scorer, budget, rng)``: the one entry point of every strategy.

The driver builds the space (instruction pool, train-only demonstration pool, the dev
examples to score on), scores the task's default prompt first so the result is never
worse than it on dev, runs the strategy registered for ``config.strategy``, and turns
whatever was scored into a ``SearchResult``. ``task.test`` is never read.

Example:
    >>> import random
    >>> from squeezeprompt.data.tasks import Example, LabelledTask
    >>> xs = tuple(Example(f"r{i}", i % 2) for i in range(8))
    >>> task = LabelledTask("toy", ("negative", "positive"), "Positive or negative?", xs, xs, xs)
    >>> def scorer(c, examples):  # a fake model that likes short prompts
    ...     return [1.0 if len(c.instruction) < 40 else 0.0 for _ in examples]
    >>> r = search(task, scorer, budget=400, rng=random.Random(0),
    ...            config=SearchConfig(strategy=Strategy.BEAM))
    >>> r.score, r.calls_used <= 400
    (1.0, True)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.demos import demo_pool
from squeezeprompt.prompt.library import sentiment_instructions
from squeezeprompt.prompt.proposer import Proposer
from squeezeprompt.prompt.scoring import (
    BudgetExhausted,
    CandidateScorer,
    ScoreBook,
    ScoredCandidate,
)
from squeezeprompt.prompt.search.config import SearchConfig, StopReason, Strategy
from squeezeprompt.prompt.search.space import SearchSpace


class Progress:
    """Round counting, patience and the target check shared by the strategies."""

    def __init__(self, book: ScoreBook, config: SearchConfig) -> None:
        self._book = book
        self._config = config
        self.rounds = 0
        self._best = -math.inf
        self._stale = 0

    def start(self) -> None:
        """Call once the starting candidates are scored: patience counts from their best."""
        best = self._book.best()
        self._best = best.score if best is not None else -math.inf

    def reached_target(self) -> bool:
        best = self._book.best()
        return (
            self._config.target is not None
            and best is not None
            and (best.score >= self._config.target)
        )

    def end_round(self) -> StopReason | None:
        """Call after each round; returns why to stop, or None to go on."""
        self.rounds += 1
        best = self._book.best()
        score = best.score if best is not None else -math.inf
        if self.reached_target():
            return StopReason.TARGET
        if score > self._best:
            self._best, self._stale = score, 0
        else:
            self._stale += 1
        if self._stale >= self._config.patience:
            return StopReason.PATIENCE
        if self.rounds >= self._config.max_rounds:
            return StopReason.EXHAUSTED
        return None


StrategyFn = Callable[[SearchSpace, ScoreBook, SearchConfig, Progress], StopReason]
_STRATEGIES: dict[Strategy, StrategyFn] = {}


def register_strategy(strategy: Strategy) -> Callable[[StrategyFn], StrategyFn]:
    """Register the function that runs ``strategy`` (decorator).

    Example:
        >>> Strategy.BEAM in _STRATEGIES
        True
    """

    def decorator(fn: StrategyFn) -> StrategyFn:
        if strategy in _STRATEGIES:
            raise ValueError(f"strategy {strategy.value!r} is already registered")
        _STRATEGIES[strategy] = fn
        return fn

    return decorator


@dataclass(frozen=True)
class SearchResult:
    """Best candidate, its dev score, the default prompt's dev score, and the trail."""

    best: PromptCandidate
    score: float
    default_score: float
    calls_used: int
    budget: int
    rounds: int
    stop: StopReason
    history: tuple[ScoredCandidate, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the history as instruction, demos, score rows).

        Example:
            >>> r = SearchResult(PromptCandidate("A?"), 1.0, 0.5, 8, 10, 1, StopReason.TARGET, ())
            >>> r.to_dict()["stop"]
            'target'
        """
        return {
            "best": {"instruction": self.best.instruction, "demos": list(self.best.demos)},
            "score": self.score,
            "default_score": self.default_score,
            "calls_used": self.calls_used,
            "budget": self.budget,
            "rounds": self.rounds,
            "stop": self.stop.value,
            "history": [
                {
                    "instruction": e.candidate.instruction,
                    "demos": list(e.candidate.demos),
                    "score": e.score,
                }
                for e in self.history
            ],
        }


def search(
    task: Any,
    scorer: CandidateScorer,
    budget: int,
    rng: random.Random,
    config: SearchConfig | None = None,
    proposer: Proposer | None = None,
    instructions: Sequence[str] | None = None,
) -> SearchResult:
    """Find the prompt candidate with the best mean ``scorer`` value on ``task.dev``.

    ``budget`` counts model calls: every scored example costs one, a candidate costs
    ``len(dev)`` (or ``config.dev_size``), and re-scoring a seen candidate is free.
    ``instructions`` replaces the built-in sentiment library. Uses ``task.train`` (for
    demonstrations), ``task.dev``, ``task.default_instruction`` and ``task.label_words``;
    never ``task.test``. Same ``rng`` seed and scorer give the same result.

    Example: see the module docstring.
    """
    config = config or SearchConfig()
    if not isinstance(rng, random.Random):
        raise TypeError(f"search: rng must be a random.Random, got {type(rng).__name__}")
    dev = list(task.dev)
    if config.dev_size is not None and config.dev_size < len(dev):
        # A fixed subset, in dev order: every candidate is scored on the same examples.
        dev = [dev[i] for i in sorted(rng.sample(range(len(dev)), config.dev_size))]
    library = sentiment_instructions(task.label_words) if instructions is None else instructions
    pool = tuple(dict.fromkeys((task.default_instruction, *library[: config.instructions])))
    demos = demo_pool(task.train, config.demo_pool, rng)
    space = SearchSpace(
        instructions=pool,
        demo_pool=demos,
        max_demos=config.max_demos,
        proposer=proposer,
        rng=rng,
        demo_labels={i: task.train[i].label for i in demos},
    )
    book = ScoreBook(scorer, dev, budget)
    if not book.can_afford():
        raise ValueError(
            f"search: budget {budget} cannot score one candidate ({book.cost} dev examples)"
        )
    progress = Progress(book, config)
    default_score = book.score(PromptCandidate(task.default_instruction))
    try:
        stop = _STRATEGIES[config.strategy](space, book, config, progress)
    except BudgetExhausted:
        stop = StopReason.BUDGET
    best = book.best()
    assert best is not None  # the default prompt was scored above
    return SearchResult(
        best=best.candidate,
        score=best.score,
        default_score=default_score,
        calls_used=book.calls_used,
        budget=budget,
        rounds=progress.rounds,
        stop=stop,
        history=book.history(),
    )
