"""pytest-benchmark view of the kernel cases: ``pytest bench/bench_kernels.py``.

For each case, our kernel and the baseline its DESIGN goal names are two benchmarks
of one group (same inputs), so pytest-benchmark prints them side by side. The full
report (every baseline, interleaved medians, ratios, GB/s, plot) is
``python -m bench.report``.
"""

from __future__ import annotations

import pytest
import torch

from bench.cases import ALL_CASES, Case
from bench.kernels import build


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in ALL_CASES])
@pytest.mark.parametrize("role", ["ours", "baseline"])
def test_kernel(benchmark, case: Case, role: str) -> None:
    torch.manual_seed(0)
    contenders = build(case)
    ours_name, base_name = contenders.goal
    if role == "baseline" and not base_name:
        pytest.skip(f"{case.name}: torch has no counterpart")
    name = ours_name if role == "ours" else base_name
    fn = {**contenders.ours, **contenders.baselines}[name]
    benchmark.group = case.name
    benchmark.extra_info["contender"] = name
    heavy = case.m * case.k * case.n >= 2**31  # seconds per call on a shared 2-core machine
    benchmark.pedantic(fn, rounds=3 if heavy else 25, iterations=1, warmup_rounds=1)
