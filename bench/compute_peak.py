"""This machine's float32 multiply-add rate: the roofline of decode kernels at M = 8.

A weight-only kernel with float32 activations does one multiply-add per weight and
activation row whatever its weight format, so at M = 8 and above it is bound by the
FMA units, not by memory. torch's float32 GEMM on cache-resident operands runs close to
that peak and stands in for it.
"""

from __future__ import annotations

import torch

from bench.timing import time_interleaved

_N = 512  # three 1 MiB operands: in L2/L3, so the GEMM is compute-bound


def fp32_gemm_gflops(threads: int, n: int = _N) -> dict[str, float]:
    """Median and best GFLOP/s (2 flops per multiply-add) of ``torch.mm`` on ``n x n`` float32.

    Example:
        >>> peak = fp32_gemm_gflops(threads=1, n=64)
        >>> peak["median_gflops"] > 0
        True
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        r = time_interleaved({"mm": lambda: torch.mm(a, b, out=out)}, min_rounds=7, budget_s=1.0)[
            "mm"
        ]
    finally:
        torch.set_num_threads(previous)
    flops = 2.0 * n**3
    return {"median_gflops": flops / r["median_s"] / 1e9, "best_gflops": flops / r["min_s"] / 1e9}
