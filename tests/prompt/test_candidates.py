"""Candidates, demonstrations, moves, the score book and configs."""

from __future__ import annotations

import random

import pytest

from squeezeprompt.data.tasks import Example
from squeezeprompt.prompt import (
    BudgetExhausted,
    PromptCandidate,
    ScoreBook,
    SearchConfig,
    demo_pool,
    sentiment_instructions,
    to_prompt,
)
from squeezeprompt.prompt.proposer import clean_rewrite
from squeezeprompt.prompt.search import SearchSpace, Strategy, crossover, mutate

from .prompt_toys import ToyTask, toy_proposer


def test_candidate_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        PromptCandidate("  ")
    with pytest.raises(ValueError, match="tuple of train indices"):
        PromptCandidate("a", demos=[1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeats"):
        PromptCandidate("a", demos=(1, 1))


def test_to_prompt_carries_train_demos_in_order() -> None:
    train = ToyTask().train
    prompt = to_prompt(PromptCandidate("Q?", (3, 0)), train)
    assert prompt.instruction == "Q?"
    assert prompt.demonstrations == (train[3], train[0])
    with pytest.raises(IndexError, match="outside the train split"):
        to_prompt(PromptCandidate("Q?", (99,)), train)


def test_library_has_24_distinct_filled_instructions() -> None:
    filled = sentiment_instructions(("negative", "positive"))
    assert len(set(filled)) == 24
    assert all("{labels}" not in s for s in filled)
    assert sum("positive or negative" in s for s in filled) >= 12


def test_demo_pool_is_label_balanced_and_distinct() -> None:
    train = [Example(f"t{i}", int(i < 3)) for i in range(20)]  # only 3 of label 1
    pool = demo_pool(train, 6, random.Random(0))
    labels = [train[i].label for i in pool]
    assert len(set(pool)) == 6
    assert labels.count(1) == 3  # all that exist, the rest filled from label 0


def test_moves_stay_inside_the_space() -> None:
    rng = random.Random(0)
    space = SearchSpace(("A", "B", "C"), (4, 5, 6, 7), 2, toy_proposer(), rng)
    c = PromptCandidate("A")
    for _ in range(300):
        c = mutate(c, space) if rng.random() < 0.7 else crossover(c, mutate(c, space), space)
        assert len(c.demos) <= 2
        assert set(c.demos) <= {4, 5, 6, 7}
        assert c.instruction in {"A", "B", "C"}


def test_score_book_caches_and_refuses_partial_scoring() -> None:
    calls = []

    def scorer(c: PromptCandidate, xs: list) -> list[float]:
        calls.append(c)
        return [float(len(c.instruction))] * len(xs)

    book = ScoreBook(scorer, examples=[0, 1, 2], budget=7)
    assert book.score(PromptCandidate("ab")) == 2.0
    assert book.score(PromptCandidate("a")) == 1.0
    assert book.score(PromptCandidate("ab")) == 2.0
    assert len(calls) == 2 and book.calls_used == 6
    with pytest.raises(BudgetExhausted, match="3 calls, 1 of 7 left"):
        book.score(PromptCandidate("abc"))
    assert [e.candidate.instruction for e in book.ranked()] == ["ab", "a"]


def test_score_book_checks_scorer_output() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 examples"):
        ScoreBook(lambda c, xs: [1.0, 1.0], [0, 1, 2], 10).score(PromptCandidate("a"))
    with pytest.raises(ValueError, match="non-finite"):
        ScoreBook(lambda c, xs: [float("nan")], [0], 10).score(PromptCandidate("a"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "beam"}, "must be a Strategy"),
        ({"max_demos": 5, "demo_pool": 4}, "cannot exceed demo_pool"),
        ({"beam_width": 0}, "beam_width must be an int >= 1"),
        ({"crossover_rate": 1.5}, "crossover_rate"),
        ({"dev_size": 0}, "dev_size"),
        ({"screen_size": 0}, "screen_size must be an int >= 1"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        SearchConfig(**kwargs)


def test_config_defaults() -> None:
    assert SearchConfig().strategy is Strategy.HALVING


def test_clean_rewrite() -> None:
    assert clean_rewrite('\n  Rewritten instruction: "Is it good?"\nMore text') == "Is it good?"
    assert clean_rewrite("   \n") == ""
