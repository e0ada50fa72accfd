"""Timing on a shared, noisy machine: interleave the contenders, repeat, take medians.

Interleaving (A, B, C, then the same contenders in another order, ...) exposes every
contender to the same background load, so their *ratio* is meaningful even when
absolute times drift; shuffling each round keeps any one contender from always
following the same neighbour.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import torch

# Nine times this machine's L3 (32 MiB). A 96 MiB read was not enough: the L3 kept part
# of a weight read just before it (int4 4096 x 4096 at M = 1, one thread: 0.78 ms per
# call reading the same weight twice in a row, 0.81-0.85 ms cycling three weights, 0.86
# ms after writing 256 MiB), and with 288 MiB our decode calls took 10-15% longer again,
# as they do inside a model, where every other layer's weight is read between two calls
# of one layer. Reading it takes about 15 ms at one thread.
EVICT_BYTES = 288 * 2**20
_evict_buffer: torch.Tensor | None = None


def evict_caches() -> None:
    """Reads a buffer larger than the last-level cache, so the next call finds its weights
    in DRAM, as a decode step of a model whose layers together exceed the cache does.

    Example:
        >>> evict_caches()
    """
    global _evict_buffer
    if _evict_buffer is None:
        _evict_buffer = torch.ones(EVICT_BYTES // 4)
    _evict_buffer.sum()


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    min_rounds: int = 5,
    max_rounds: int = 41,
    budget_s: float = 3.0,
    before_each: Callable[[str], object] | None = None,
) -> dict[str, dict[str, float]]:
    """Median, min and IQR (seconds) of each callable, measured in interleaved rounds.

    ``before_each(name)`` runs, untimed, before every timed call of the callable ``name``
    (e.g. one that calls :func:`evict_caches`).

    Example:
        >>> r = time_interleaved({"noop": lambda: None}, min_rounds=3, max_rounds=3)
        >>> r["noop"]["rounds"]
        3.0
    """
    for fn in fns.values():  # warm-up: allocator, thread pool, lazy init
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    # A new order every round (seeded, so runs repeat): the call after a long one (a
    # 24 ms bf16 F.linear) or after an idle pause ran 12% slower than after a short call
    # on this machine, and in a fixed order the same contender would always pay that.
    rng = random.Random(0)
    names = list(fns)
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - start < budget_s):
        rng.shuffle(names)
        for name in names:
            fn = fns[name]
            if before_each is not None:
                before_each(name)
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        rounds += 1
    out = {}
    for name, ts in samples.items():
        q = statistics.quantiles(ts, n=4) if len(ts) >= 2 else [ts[0]] * 3
        out[name] = {
            "median_s": statistics.median(ts),
            "min_s": min(ts),
            "iqr_s": q[2] - q[0],
            "rounds": float(len(ts)),
        }
    return out
