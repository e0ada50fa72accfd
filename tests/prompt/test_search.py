"""Discrete prompt search on a scripted toy problem with a known optimum."""

from __future__ import annotations

import random

import pytest

from squeezeprompt.prompt import PromptCandidate, SearchConfig, StopReason, Strategy, search

from .prompt_toys import DEFAULT, GOOD, LIBRARY, ToyScorer, ToyTask, toy_proposer

STRATEGIES = list(Strategy)


def _config(strategy: Strategy, **kw: object) -> SearchConfig:
    base = {"strategy": strategy, "max_demos": 2, "demo_pool": 8, "patience": 6}
    return SearchConfig(**{**base, **kw})  # type: ignore[arg-type]


def _run(strategy: Strategy, seed: int = 0, budget: int = 20_000, **kw: object):
    scorer = ToyScorer()
    instructions = LIBRARY + (("BEST",) if strategy is Strategy.EXHAUSTIVE else ())
    result = search(
        ToyTask(),
        scorer,
        budget=budget,
        rng=random.Random(seed),
        config=_config(strategy, **kw),
        proposer=toy_proposer(),
        instructions=instructions,
    )
    return result, scorer


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
def test_finds_known_optimum(strategy: Strategy) -> None:
    result, _ = _run(strategy)
    assert result.best.instruction == "BEST"
    assert set(result.best.demos) == GOOD
    assert result.score == pytest.approx(1.0)
    assert result.stop is StopReason.TARGET
    assert result.default_score == pytest.approx(0.05)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
def test_same_seed_same_result(strategy: Strategy) -> None:
    a, _ = _run(strategy, seed=3, budget=900)
    b, _ = _run(strategy, seed=3, budget=900)
    assert a.to_dict() == b.to_dict()
    assert len(a.history) > 1


def test_different_seeds_explore_differently() -> None:
    a, _ = _run(Strategy.EVOLUTION, seed=1, budget=400)
    b, _ = _run(Strategy.EVOLUTION, seed=2, budget=400)
    assert [e.candidate for e in a.history] != [e.candidate for e in b.history]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
@pytest.mark.parametrize("budget", [10, 19, 35, 101, 333])
def test_budget_is_respected(strategy: Strategy, budget: int) -> None:
    result, scorer = _run(strategy, budget=budget)
    assert result.calls_used == len(scorer.seen) <= budget
    # It stops only when the next candidate would not fit (or it finished early).
    if result.stop is StopReason.BUDGET:
        assert budget - result.calls_used < len(ToyTask().dev)


def test_budget_below_one_candidate_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot score one candidate"):
        _run(Strategy.BEAM, budget=9)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.value)
def test_scores_on_dev_and_draws_demos_from_train_only(strategy: Strategy) -> None:
    # ToyTask.test raises on access, so reaching the end proves it was never read.
    result, scorer = _run(strategy, budget=2_000)
    dev_texts = {e.text for e in ToyTask().dev}
    assert set(scorer.seen) <= dev_texts
    n_train = len(ToyTask().train)
    assert all(0 <= i < n_train for e in result.history for i in e.candidate.demos)


def test_dev_subset_is_fixed_across_candidates() -> None:
    result, scorer = _run(Strategy.BEAM, budget=200, dev_size=4)
    assert result.calls_used == len(scorer.seen) == 4 * len(result.history)
    first = scorer.seen[:4]
    assert all(scorer.seen[i : i + 4] == first for i in range(0, len(scorer.seen), 4))


@pytest.mark.parametrize("strategy", [Strategy.BEAM, Strategy.EVOLUTION], ids=lambda s: s.value)
def test_patience_stops_a_flat_search(strategy: Strategy) -> None:
    calls: list[int] = []

    def flat(c: PromptCandidate, examples: list) -> list[float]:
        calls.append(len(examples))
        return [0.5] * len(examples)

    result = search(
        ToyTask(),
        flat,
        budget=100_000,
        rng=random.Random(0),
        config=_config(strategy, patience=2),
        instructions=LIBRARY,
    )
    assert result.stop is StopReason.PATIENCE
    assert result.rounds == 2
    assert result.best == PromptCandidate(DEFAULT)  # ties go to the earliest scored
    assert sum(calls) == result.calls_used < 100_000


def test_search_never_returns_worse_than_default_on_dev() -> None:
    def default_is_best(c: PromptCandidate, examples: list) -> list[float]:
        return [1.0 if c == PromptCandidate(DEFAULT) else 0.0] * len(examples)

    result = search(
        ToyTask(), default_is_best, 500, random.Random(0), _config(Strategy.EVOLUTION, target=None)
    )
    assert result.best == PromptCandidate(DEFAULT)
    assert result.score == result.default_score == 1.0


def test_rejects_a_non_random_rng() -> None:
    with pytest.raises(TypeError, match="random.Random"):
        search(ToyTask(), ToyScorer(), 100, rng=0, config=_config(Strategy.BEAM))  # type: ignore[arg-type]
