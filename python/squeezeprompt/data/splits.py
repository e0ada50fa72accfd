"""Deterministic split helpers: pure functions on lists, no file access."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def deduplicate_labelled(items: Sequence[tuple[K, int]]) -> list[tuple[K, int]]:
    """Keep the first of each key; drop every key seen with more than one label.

    A text labelled both ways carries no signal, and keeping one copy in train and
    another in test would leak, so duplicates collapse before any split.

    Example:
        >>> deduplicate_labelled([("a", 1), ("b", 0), ("a", 1), ("c", 0), ("c", 1)])
        [('a', 1), ('b', 0)]
    """
    labels: dict[K, set[int]] = {}
    for key, label in items:
        labels.setdefault(key, set()).add(label)
    seen: set[K] = set()
    kept: list[tuple[K, int]] = []
    for key, label in items:
        if key in seen or len(labels[key]) > 1:
            continue
        seen.add(key)
        kept.append((key, label))
    return kept


def shuffled_three_way(
    items: Sequence[T], dev_fraction: float, test_fraction: float, seed: int
) -> tuple[list[T], list[T], list[T]]:
    """Shuffle with ``random.Random(seed)`` and cut into (train, dev, test).

    Sizes are ``round(n * fraction)`` for dev and test; train takes the rest.

    Example:
        >>> tr, dv, te = shuffled_three_way(list(range(10)), 0.2, 0.3, seed=0)
        >>> len(tr), len(dv), len(te), sorted(tr + dv + te) == list(range(10))
        (5, 2, 3, True)
    """
    if not (dev_fraction >= 0 and test_fraction >= 0 and dev_fraction + test_fraction < 1):
        raise ValueError(
            "expected dev_fraction, test_fraction >= 0 with sum < 1, "
            f"got dev_fraction={dev_fraction}, test_fraction={test_fraction}"
        )
    order = list(items)
    random.Random(seed).shuffle(order)
    n_test = round(len(order) * test_fraction)
    n_dev = round(len(order) * dev_fraction)
    test = order[:n_test]
    dev = order[n_test : n_test + n_dev]
    train = order[n_test + n_dev :]
    return train, dev, test


def stable_hash(text: str) -> str:
    """SHA-256 hex digest of ``text``: the same on every machine and Python run.

    (``hash()`` is salted per process, so it cannot define a split.)

    Example:
        >>> stable_hash("Anarchism")[:8]
        '6add4388'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
