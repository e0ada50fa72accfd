"""The kernel benchmark's cold timing: evict, warm the contender's code path, then time."""

from __future__ import annotations

import pytest

pytest.importorskip("bench")  # the repository's benchmark package, not installed
from bench import report  # noqa: E402
from bench.cases import Case, Kind  # noqa: E402
from bench.timing import time_interleaved  # noqa: E402


@pytest.fixture(autouse=True)
def _keep_threads():
    """run_case sets torch's thread count for its case; later tests expect theirs back."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_before_each_gets_the_contender_name():
    seen: list[str] = []
    calls: list[str] = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    time_interleaved(fns, min_rounds=2, max_rounds=2, before_each=seen.append)
    # Warm-up calls first (untimed, no before_each), then each timed call after its hook.
    assert calls[:2] == ["a", "b"]
    assert seen == calls[2:]


def test_cold_case_evicts_then_warms_the_same_contender(monkeypatch):
    """Before every timed call of a cold case: the eviction, then the same contender on
    a WARM_TWIN_ROWS-row weight; the timed call itself uses the full weight."""
    events: list[str] = []
    built: list[Case] = []
    real_build = report.build

    def build(case):
        built.append(case)
        c = real_build(case)
        tag = "warm" if case.n == report.WARM_TWIN_ROWS else "timed"

        def logged(fns):
            return {
                name: (lambda name=name, fn=fn: (events.append(f"{tag} {name}"), fn()))
                for name, fn in fns.items()
            }

        c.ours, c.baselines = logged(c.ours), logged(c.baselines)
        return c

    monkeypatch.setattr(report, "build", build)
    monkeypatch.setattr(report, "evict_caches", lambda: events.append("evict"))
    monkeypatch.setattr(report, "EVICT_MIN_WEIGHT_BYTES", 0)
    case = Case(Kind.INT8_WEIGHT_ONLY, m=1, k=128, n=96)
    report.run_case(case, threads=1, bandwidth=1.0, gemm_gflops=1.0)

    assert [c.n for c in built] == [96, report.WARM_TWIN_ROWS]
    timed = [e for e in events if e.startswith("timed")]
    names = {e.split(" ", 1)[1] for e in timed}
    # After the untimed warm-up pass, every timed call follows "evict", "warm <same name>".
    first = events.index("evict")
    rest = events[first:]
    triples = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    assert all(t[0] == "evict" and t[1] == "warm " + t[2][len("timed ") :] for t in triples)
    assert {t[2][len("timed ") :] for t in triples} == names


def test_warm_case_does_not_evict(monkeypatch):
    events: list[str] = []
    monkeypatch.setattr(report, "evict_caches", lambda: events.append("evict"))
    case = Case(Kind.INT8_WEIGHT_ONLY, m=1, k=128, n=96)  # far under EVICT_MIN_WEIGHT_BYTES
    report.run_case(case, threads=1, bandwidth=1.0, gemm_gflops=1.0)
    assert events == []
