"""The report's derived figures and files, from synthetic stage metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from squeezeprompt.pipeline.report import markdown_table, report_rows, write_report


def _stage(name: str, mb: float, acc: float, ppl: float, tps: float) -> dict:
    return {
        "stage": name,
        "metrics": {
            "size": {"bytes": mb * 1e6, "bits_per_weight": 32.0 * mb / 100},
            "accuracy": {"accuracy": acc, "ci_low": acc - 0.05, "ci_high": acc + 0.05, "n": 500},
            "perplexity": {"perplexity": ppl},
            "decode": {"tokens_per_s": tps},
        },
    }


STAGES = [
    _stage("dense", 100, 0.70, 20.0, 10.0),
    _stage("prune", 60, 0.60, 30.0, 12.0),
    _stage("quantize", 20, 0.50, 40.0, 30.0),
    _stage("recover", 20, 0.55, 25.0, 30.0),
    _stage("prompt", 20, 0.68, 25.0, 30.0),
]


def test_recovery_shares_and_speedups() -> None:
    rows = report_rows(STAGES)
    # 0.20 lost to compression; recover won 0.05 back (25%), the prompt 0.13 (65%).
    shares = [r["accuracy_recovered_share"] for r in rows]
    assert shares[:3] == [None, None, None]
    assert shares[3] == pytest.approx(0.25) and shares[4] == pytest.approx(0.65)
    # perplexity in log space: ln(40/20) lost, ln(40/25) won back by recover
    assert rows[3]["perplexity_recovered_share"] == pytest.approx(math.log(1.6) / math.log(2))
    assert rows[4]["perplexity_recovered_share"] == pytest.approx(0.0)
    assert [r["decode_speedup"] for r in rows] == pytest.approx([1.0, 1.2, 3.0, 3.0, 3.0])


def test_no_share_without_a_loss() -> None:
    rows = report_rows([_stage("dense", 100, 0.5, 20, 1), _stage("quantize", 25, 0.6, 21, 1)])
    assert all(r["accuracy_recovered_share"] is None for r in rows)


def test_files_are_written(tmp_path: Path) -> None:
    paths = write_report(tmp_path, STAGES)
    names = sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert names == [
        "plots/accuracy_vs_size.png",
        "plots/stages.png",
        "report.json",
        "report.md",
    ]
    for png in tmp_path.glob("plots/*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "report.md").read_text().splitlines()
    assert table[2].startswith("| stage | MB |")
    assert "| prompt | 20.00 | 6.40 | 25.000 | 0.680 [0.630, 0.730] | 3.00× | 65% |" in table
    assert len(json.loads((tmp_path / "report.json").read_text())["rows"]) == 5


def test_missing_speed_is_a_plain_dash() -> None:
    stage = {"stage": "dense", "metrics": {"size": {"bytes": 1e6, "bits_per_weight": 32.0}}}
    line = markdown_table(report_rows([stage])).splitlines()[2]
    assert line == "| dense | 1.00 | 32.00 | – | – | – | – |"
