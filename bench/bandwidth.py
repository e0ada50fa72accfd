"""This machine's read bandwidth: the roofline that decode kernels are judged against."""

from __future__ import annotations

import torch

from bench.timing import time_interleaved

_BYTES = 256 * 2**20  # far beyond any L3, so every byte comes from DRAM


def read_bandwidth_gbs(threads: int, nbytes: int = _BYTES) -> dict[str, float]:
    """Median read bandwidth (GB/s) of a streaming float32 sum over ``nbytes``, with ``threads``.

    A sum does one add per 4 bytes, far below what the cores can do, so it measures the
    memory system, like our decode kernels which also only read.

    Example:
        >>> bw = read_bandwidth_gbs(threads=1, nbytes=2**20)
        >>> bw["median_gbs"] > 0
        True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.ones(nbytes // 4, dtype=torch.float32)
        r = time_interleaved({"sum": lambda: a.sum()}, min_rounds=7, budget_s=2.0)["sum"]
    finally:
        torch.set_num_threads(previous)
    return {
        "median_gbs": nbytes / r["median_s"] / 1e9,
        "best_gbs": nbytes / r["min_s"] / 1e9,
        "bytes": float(nbytes),
    }
