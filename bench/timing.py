"""Timing on a shared, noisy machine: interleave the contenders, repeat, take medians.

Interleaving (A, B, C, A, B, C, ...) exposes every contender to the same background
load, so their *ratio* is meaningful even when absolute times drift.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    min_rounds: int = 5,
    max_rounds: int = 41,
    budget_s: float = 3.0,
) -> dict[str, dict[str, float]]:
    """Median, min and IQR (seconds) of each callable, measured in interleaved rounds.

    Example:
        >>> r = time_interleaved({"noop": lambda: None}, min_rounds=3, max_rounds=3)
        >>> r["noop"]["rounds"]
        3.0
    """
    for fn in fns.values():  # warm-up: allocator, thread pool, lazy init
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() - start < budget_s):
        for name, fn in fns.items():
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
