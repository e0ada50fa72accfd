"""Demonstration selection: which train examples a candidate may show (*combine* step).

Demonstrations come from ``task.train`` only, so dev scores stay honest and test
examples never appear in a prompt. The pool is label-balanced: a prompt whose
demonstrations all carry one label biases a small model towards that label.

Example:
    >>> import random
    >>> from squeezeprompt.data.tasks import Example
    >>> train = [Example(str(i), i % 2) for i in range(10)]
    >>> pool = demo_pool(train, size=4, rng=random.Random(0))
    >>> sorted(train[i].label for i in pool)
    [0, 0, 1, 1]
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from squeezeprompt.data.tasks import Example


def demo_pool(
    train: Sequence[Example], size: int, rng: random.Random, max_chars: int = 300
) -> tuple[int, ...]:
    """``size`` train indices, drawn round-robin over labels so each label gets its share.

    Texts longer than ``max_chars`` are skipped when enough short ones exist: they
    lengthen every scored prompt.

    Example:
        >>> from squeezeprompt.data.tasks import Example
        >>> demo_pool([Example("a", 0), Example("b", 1)], 2, random.Random(1))
        (1, 0)
    """
    if size < 0:
        raise ValueError(f"demo_pool: size must be >= 0, got {size}")
    by_label: dict[int, list[int]] = {}
    for i, example in enumerate(train):
        by_label.setdefault(example.label, []).append(i)
    for indices in by_label.values():
        rng.shuffle(indices)
        # Stable sort: short texts first, shuffled order kept among them.
        indices.sort(key=lambda i: len(train[i].text) > max_chars)
    labels = sorted(by_label)
    rng.shuffle(labels)
    pool: list[int] = []
    while len(pool) < size and any(by_label.values()):
        for label in labels:
            if by_label[label] and len(pool) < size:
                pool.append(by_label[label].pop(0))
    return tuple(pool)


def sample_demos(pool: Sequence[int], k: int, rng: random.Random) -> tuple[int, ...]:
    """``k`` distinct indices from ``pool`` in random order (all of it if shorter).

    Example:
        >>> sorted(sample_demos((4, 5, 6), 2, random.Random(0)))
        [5, 6]
    """
    return tuple(rng.sample(list(pool), min(k, len(pool))))
