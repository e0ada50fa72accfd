"""Counts the cases Hypothesis ran per test and prints them at the end of the session.

The issue asks CI to state how many generated cases it ran, not just that property
tests passed. Hypothesis hands its run statistics to ``hypothesis.statistics.collector``
(its pytest plugin installs a callback there around each test call); the wrapper below
sits inside the plugin's, counts the executed examples (passing and failing, every
phase: explicit, reuse, generate, shrink), and passes the statistics on unchanged.
``conftest.py`` imports these hooks; the summary line reads, e.g.:

    hypothesis: 2360 generated cases in 59 tests (profile ci), most in test_x (40)
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.statistics import collector

_COUNTS_KEY = pytest.StashKey[dict[str, int]]()
_EXECUTED = ("valid", "interesting")  # "invalid"/"overrun" draws never reach the test body


def executed_cases(stats: dict[str, Any]) -> int:
    """Test-body runs recorded in one Hypothesis statistics dict, over all phases.

    Example:
        >>> executed_cases({"generate-phase": {"test-cases": [{"status": "valid"}] * 3}})
        3
    """
    total = 0
    for key, phase in stats.items():
        if key.endswith("-phase") and isinstance(phase, dict):
            total += sum(1 for case in phase.get("test-cases", ()) if case["status"] in _EXECUTED)
    return total


def _counts(config: pytest.Config) -> dict[str, int]:
    return config.stash.setdefault(_COUNTS_KEY, {})


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Counts the cases of a Hypothesis test, then hands the statistics on."""
    outer: Callable[[dict[str, Any]], None] | None = collector.value

    def note(stats: dict[str, Any]) -> None:
        _counts(item.config)[item.nodeid] = executed_cases(stats)
        if outer is not None:
            outer(stats)

    with collector.with_value(note):
        yield


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """One line: generated cases run, tests that ran them, the active profile."""
    counts = _counts(config)
    if not counts:
        return
    top = max(counts, key=counts.__getitem__)
    profile = settings._current_profile  # no public getter; only used for the message
    terminalreporter.write_line(
        f"hypothesis: {sum(counts.values())} generated cases in {len(counts)} tests "
        f"(profile {profile}), most in {top.split('::')[-1]} ({counts[top]})"
    )
