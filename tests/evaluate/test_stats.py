"""Wilson interval against published values."""

from __future__ import annotations

import pytest

from squeezeprompt.evaluate import wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),  # Wilson (1927) / Newcombe (1998) worked values
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Table I example
    ],
)
def test_known_intervals(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="successes=5, trials=3"):
        wilson_interval(5, 3)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 3, confidence=1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)
