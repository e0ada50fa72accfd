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


def test_report_names_the_search_winner_and_the_soft_prompt(tmp_path: Path) -> None:
    steps = tmp_path / "run" / "steps"
    steps.mkdir(parents=True)
    summary = {
        "best": {"instruction": "Positive or negative?", "demos": [3, 8]},
        "score": 0.7,
        "default_score": 0.6,
        "calls_used": 2990,
        "budget": 3000,
        "rounds": 3,
        "stop": "budget",
    }
    search = {"summary": summary, "minutes": 12.0, "inputs": {"search": {"search": "halving"}}}
    (steps / "prompt_search.json").write_text(json.dumps(search))
    soft = {
        "tokens": 8,
        "steps": 100,
        "batch_size": 8,
        "lr": 0.003,
        "init": "the default instruction's tokens",
        "heldout_loss_without": 0.69,
        "heldout_loss_with": 0.55,
    }
    (steps / "soft_labels.json").write_text(json.dumps({"summary": soft, "minutes": 9.0}))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "prompt_recovery_notes.md").write_text("## Notes\n\nTried lr 2e-2.\n")
    md = write_report(tmp_path / "run", tmp_path / "docs", study_recipe()).read_text()
    assert "Search: halving, 2990 scored dev examples of a budget of 3000" in md
    assert "dev accuracy 0.600 (default) -> 0.700 (best)" in md
    assert "demonstrations (train indices) [3, 8]" in md
    assert "100 Adam steps of 8 train reviews, lr 0.003; dev label loss 0.690 without" in md
    assert md.endswith("## Notes\n\nTried lr 2e-2.\n")
