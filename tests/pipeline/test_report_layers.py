"""The per-layer loss in a pipeline run and its report; labels of the accuracy plot."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from squeezeprompt.analysis import LayerLoss
from squeezeprompt.pipeline.report import layer_sections, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def _by_stage(metrics: list[dict]) -> dict[str, dict]:
    return {m["stage"]: m["metrics"] for m in metrics}


def test_weight_changing_stages_carry_a_layer_loss(reference_run: tuple[Path, list]) -> None:
    _, metrics = reference_run
    by_stage = _by_stage(metrics)
    assert "layers" not in by_stage["dense"] and "layers" not in by_stage["calibrate"]
    quantize = by_stage["quantize"]["layers"]
    assert quantize["samples"] == 4 and quantize["tokens"] == 4 * 64  # calibrate: 4 x 64
    rows = [LayerLoss.from_dict(r) for r in quantize["rows"]]
    assert len(rows) == 2 * 7 + 1  # 7 Linears per block, and the (excluded) head
    for r in rows:
        if r.name == "lm_head":
            assert math.isinf(r.weight_sqnr_db) and r.share == 0.0
        else:
            assert r.layer_type == "Sparse24Int4Linear" and 0 < r.weight_sqnr_db < 20
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    # Distillation trains the int4 layers' scales, so the weights change again; the
    # prompt search trains nothing and reuses recover's rows.
    recover = by_stage["recover"]["layers"]
    assert recover["digest"] != quantize["digest"]
    assert {LayerLoss.from_dict(r).layer_type for r in recover["rows"]} == {
        "Sparse24Int4Linear",  # packed back after training
        "Linear",
    }
    assert by_stage["prompt"]["layers"] == recover
    prune = by_stage["prune"]["layers"]
    assert prune["digest"] != quantize["digest"]
    prune_rows = [LayerLoss.from_dict(r) for r in prune["rows"]]
    assert {r.layer_type for r in prune_rows} == {"MaskedLinear", "Linear"}


def test_report_has_a_table_and_a_plot_per_weight_change(
    reference_run: tuple[Path, list],
) -> None:
    out, _ = reference_run
    md = (out / "report.md").read_text()
    for label in ("02-prune", "03-quantize", "04-recover"):
        assert f"### {label}\n\nThe 10 layers with the largest error share" in md
        assert (out / "plots" / f"layer_loss_{label}.png").read_bytes()[:8] == PNG
    assert "### 05-prompt\n\nSame Linear weights as 04-recover.\n" in md
    assert not (out / "plots" / "layer_loss_05-prompt.png").exists()
    assert md.count("<summary>all 15 layers</summary>") == 3
    stages = json.loads((out / "report.json").read_text())["stages"]
    assert stages[3]["metrics"]["layers"]["rows"][-1]["weight_sqnr_db"] is None  # head: ∞


def _row(name: str, share: float, sqnr: float = 20.0) -> dict:
    return LayerLoss(name, 0, name, "Int4WeightOnlyLinear", sqnr, sqnr, share / 10, share).to_dict()


def _stage(index: int, name: str, rows: list[dict] | None, digest: str = "d") -> dict:
    metrics: dict = {"size": {"bytes": 1e6, "bits_per_weight": 4.0}}
    if rows is not None:
        metrics["layers"] = {"digest": digest, "samples": 1, "tokens": 8, "rows": rows}
    return {"index": index, "stage": name, "metrics": metrics}


def test_worst_layers_first_and_sections_only_for_changed_weights(tmp_path: Path) -> None:
    rows = [_row(f"l{i}", s) for i, s in enumerate([0.1, 0.5, 0.05, 0.35])]
    stages = [
        _stage(0, "dense", None),
        _stage(1, "quantize", rows, "a"),
        _stage(2, "prompt", rows, "a"),
    ]
    assert [(label, same) for label, _, same in layer_sections(stages)] == [
        ("01-quantize", None),
        ("02-prompt", "01-quantize"),
    ]
    write_report(tmp_path, stages)
    md = (tmp_path / "report.md").read_text()
    worst_table = md.split("The 4 layers with the largest error share")[1].split("<details>")[0]
    order = [m[1] for m in re.finditer(r"^\| (l\d) \|", worst_table, re.MULTILINE)]
    assert order == ["l1", "l3", "l0", "l2"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "layer_loss_01-quantize.png",
        "stages.png",
    ]
