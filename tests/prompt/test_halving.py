"""Successive-halving search: partial scoring, races, and reaching demonstrations."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from squeezeprompt.data.tasks import Example
from squeezeprompt.prompt import (
    BudgetExhausted,
    PromptCandidate,
    ScoreBook,
    SearchConfig,
    StopReason,
    Strategy,
    search,
)
from squeezeprompt.prompt.search.halving import balanced_demos, race, rungs
from squeezeprompt.prompt.search.space import SearchSpace

from .prompt_toys import DEFAULT, GOOD, ToyScorer, ToyTask

BIG_DEV = tuple(Example(f"dev {i}", i % 2) for i in range(64))
LIBRARY = tuple(f"I{k}" for k in range(24))  # a starting pool as large as the real one


def _search(strategy: Strategy, budget: int, seed: int = 0, **kw: object):
    scorer = ToyScorer()
    config = SearchConfig(strategy=strategy, max_demos=4, demo_pool=8, target=None, **kw)  # type: ignore[arg-type]
    result = search(
        ToyTask(dev=BIG_DEV), scorer, budget, random.Random(seed), config, instructions=LIBRARY
    )
    return result, scorer


def test_rungs_double_up_to_the_whole_dev_set() -> None:
    assert rungs(64, 16) == [16, 32, 64]
    assert rungs(100, 16) == [16, 32, 64, 100]
    assert rungs(16, 16) == [16]


def test_score_book_pays_only_for_new_examples() -> None:
    shown: list[list[int]] = []

    def scorer(c: PromptCandidate, xs: list[int]) -> list[float]:
        shown.append(list(xs))
        return [float(x % 2) for x in xs]

    book = ScoreBook(scorer, examples=list(range(8)), budget=10)
    c = PromptCandidate("a")
    assert book.score(c, n=4) == 0.5
    assert not book.seen(c) and book.history() == () and book.best() is None
    assert book.score(c) == 0.5 and book.seen(c)
    assert shown == [[0, 1, 2, 3], [4, 5, 6, 7]] and book.calls_used == 8
    assert book.score(c, n=2) == 0.5 and book.calls_used == 8  # cached prefix: free
    with pytest.raises(BudgetExhausted, match="4 calls, 2 of 10 left"):
        book.score(PromptCandidate("b"), n=4)
    assert book.calls_used == 8


def test_race_keeps_the_better_half_at_each_rung() -> None:
    # Candidate quality k/10; the best is last, so order alone cannot find it.
    def scorer(c: PromptCandidate, xs: list[int]) -> list[float]:
        return [int(c.instruction) / 10] * len(xs)

    book = ScoreBook(scorer, examples=list(range(64)), budget=10_000)
    cands = [PromptCandidate(str(k)) for k in (3, 1, 4, 0, 5, 2, 6, 9)]
    finalists = race(cands, book, SearchConfig(screen_size=16))
    assert finalists == [PromptCandidate("9"), PromptCandidate("6")]
    # 8 on 16, 4 more on 16 (to 32), 2 more on 32 (to 64): half of 8 x 64.
    assert book.calls_used == 8 * 16 + 4 * 16 + 2 * 32 == 256
    assert [e.candidate for e in book.ranked()] == finalists


def test_balanced_demos_have_equal_label_counts() -> None:
    labels = {i: i % 2 for i in range(8)}
    space = SearchSpace(("A",), tuple(range(8)), 4, None, random.Random(0), labels)
    for k in (2, 4):
        for _ in range(20):
            demos = balanced_demos(space, k)
            assert len(demos) == k == len(set(demos))
            assert Counter(labels[i] for i in demos) == {0: k // 2, 1: k // 2}


def test_reaches_demonstrations_where_full_scoring_cannot() -> None:
    # 25 instructions x 64 dev = 1,600 calls: beam spends the whole budget on the pool.
    beam, _ = _search(Strategy.BEAM, budget=1024)
    assert all(not e.candidate.demos for e in beam.history)
    halving, _ = _search(Strategy.HALVING, budget=1024)
    assert halving.rounds >= 1
    assert any(e.candidate.demos for e in halving.history)
    assert halving.score > beam.score


def test_demonstration_sets_stay_label_balanced() -> None:
    result, _ = _search(Strategy.HALVING, budget=3000)
    train = ToyTask().train
    for e in result.history:
        counts = Counter(train[i].label for i in e.candidate.demos)
        assert counts[0] == counts[1], e.candidate


def test_finds_the_optimum_and_stops_on_budget() -> None:
    result, scorer = _search(Strategy.HALVING, budget=6000)
    assert set(result.best.demos) == GOOD
    assert result.calls_used == len(scorer.seen) <= 6000
    if result.stop is StopReason.BUDGET:
        assert 6000 - result.calls_used < 64


def test_default_is_scored_on_all_of_dev_first() -> None:
    result, scorer = _search(Strategy.HALVING, budget=500)
    assert result.history[0].candidate == PromptCandidate(DEFAULT)
    assert scorer.seen[:64] == [e.text for e in BIG_DEV]
