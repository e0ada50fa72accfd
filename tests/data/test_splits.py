"""Pure split helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squeezeprompt.data.splits import deduplicate_labelled, shuffled_three_way, stable_hash


def test_deduplicate_drops_conflicts_and_keeps_first() -> None:
    items = [("a", 1), ("b", 0), ("a", 1), ("c", 0), ("c", 1), ("d", 1)]
    assert deduplicate_labelled(items) == [("a", 1), ("b", 0), ("d", 1)]


@given(st.lists(st.integers(0, 1000), max_size=200), st.integers(0, 2**32))
def test_three_way_is_a_partition(items: list[int], seed: int) -> None:
    train, dev, test = shuffled_three_way(items, 0.1, 0.2, seed)
    assert sorted(train + dev + test) == sorted(items)
    assert len(test) == round(len(items) * 0.2)
    assert len(dev) == round(len(items) * 0.1)
    assert shuffled_three_way(items, 0.1, 0.2, seed) == (train, dev, test)


def test_three_way_rejects_bad_fractions() -> None:
    with pytest.raises(ValueError, match="sum < 1"):
        shuffled_three_way([1, 2], 0.5, 0.5, 0)


def test_stable_hash_is_sha256() -> None:
    assert stable_hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
