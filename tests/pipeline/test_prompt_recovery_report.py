"""The prompt-recovery study's table, from hand-written step results (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squeezeprompt.studies.prompt_recovery import study_recipe
from squeezeprompt.studies.prompt_recovery_report import gap_closed, write_report


def _acc(correct: int, n: int = 500) -> dict:
    return {
        "accuracy": correct / n,
        "correct": correct,
        "n": n,
        "ci_low": 0.0,
        "ci_high": 1.0,
        "minutes": 1.0,
    }


def test_gap_closed() -> None:
    assert gap_closed(0.7, 0.5, 0.6) == pytest.approx(0.5)
    assert gap_closed(0.7, 0.5, 0.8) == pytest.approx(1.5)
    assert gap_closed(0.5, 0.6, 0.7) is None  # compression cost nothing: no gap to close


def test_report_lists_every_row_and_the_share_closed(tmp_path: Path) -> None:
    steps = tmp_path / "run" / "steps"
    steps.mkdir(parents=True)
    for name, correct in [
        ("dense_default", 350),
        ("compressed_default", 250),
        ("compressed_searched", 300),
    ]:
        (steps / f"{name}.json").write_text(json.dumps(_acc(correct)))
    (steps / "ppl_dense.json").write_text(
        json.dumps({"perplexity": 30.0, "tokens": 4080, "minutes": 1.0})
    )
    md = write_report(tmp_path / "run", tmp_path / "docs", study_recipe()).read_text()
    assert "| compressed, searched prompt | 0.600 [0.000, 1.000] | 500 | 50% | 1.0 |" in md
    assert "| compressed, searched prompt + soft prompt (labels) | not run |" in md
    assert "| dense | 30.00 | 4080 | 1.0 |" in md
    data = json.loads((tmp_path / "docs" / "prompt_recovery.json").read_text())
    assert data["recipe"]["stages"][2]["quantize"]["group_size"] == 64
