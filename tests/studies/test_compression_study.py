"""The compression study: its rows, its checks on fabricated numbers, and a quick run of
the whole machinery on the tiny random Llama (numbers meaningless, files and reuse real)."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))  # the tiny model source

import tiny  # noqa: E402

from squeezeprompt.pipeline.stage_configs import RecoverConfig  # noqa: E402
from squeezeprompt.pipeline.stages.recover import resolved  # noqa: E402
from squeezeprompt.studies import compression  # noqa: E402
from squeezeprompt.studies.compression_checks import (  # noqa: E402
    comparison_check,
    compute_checks,
    int8_check,
    recovery_check,
)
from squeezeprompt.studies.compression_report import markdown, row_result  # noqa: E402
from squeezeprompt.studies.compression_rows import (  # noqa: E402
    QUICK,
    StudySettings,
    recipe_for,
    row_by_key,
    study_rows,
)

QUICK_ROWS = ["dense", "int4-rtn", "24-int4"]


def _ppl(before: float, after: float | None = None) -> dict:
    return {
        "before": {"perplexity": before},
        "after": None if after is None else {"perplexity": after},
    }


# -- rows ---------------------------------------------------------------------------------


def test_every_row_shares_the_dense_baseline_fingerprint() -> None:
    settings = StudySettings()
    fps = {recipe_for(r, settings).fingerprint(upto=-1) for r in study_rows()}
    assert len(fps) == 1  # what lets the study measure dense once for all rows


def test_rows_end_in_the_default_recovery_and_calibrate_only_when_needed() -> None:
    settings = StudySettings()
    for row in study_rows():
        kinds = [s.kind.value for s in recipe_for(row, settings).stages]
        if row.is_dense:
            assert kinds == []
            continue
        assert kinds[-1] == "recover"
        # The defaults written out, so a changed default re-runs the recover stages.
        assert recipe_for(row, settings).stages[-1] == resolved(RecoverConfig())
        assert ("calibrate" in kinds) == row.needs_calibration
    assert not row_by_key("int4-rtn").needs_calibration
    assert row_by_key("int4-awq").needs_calibration
    assert row_by_key("w8a8-smoothquant").needs_calibration


def test_unknown_row_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="int4-gptq"):
        row_by_key("int3")


# -- checks on fabricated numbers ------------------------------------------------------


def test_comparisons_need_strictly_lower_perplexity_and_both_rows() -> None:
    r = {"int4-gptq": _ppl(30.0), "int4-rtn": _ppl(31.0), "int4-awq": _ppl(31.0)}
    assert comparison_check(r, "int4-gptq", "int4-rtn").passed is True
    assert comparison_check(r, "int4-awq", "int4-rtn").passed is False  # equal is not below
    assert comparison_check(r, "50-wanda", "50-magnitude").passed is None


def test_int8_within_one_percent_of_dense_either_side() -> None:
    assert int8_check({"dense": _ppl(20.0), "int8-rtn": _ppl(20.19)}).passed is True
    assert int8_check({"dense": _ppl(20.0), "int8-rtn": _ppl(19.81)}).passed is True
    assert int8_check({"dense": _ppl(20.0), "int8-rtn": _ppl(20.21)}).passed is False
    assert int8_check({"int8-rtn": _ppl(20.0)}).passed is None


def test_recovery_share_is_measured_in_log_perplexity() -> None:
    dense = _ppl(10.0)
    # log gap 40 -> 10 is ln 4; 40 -> 20 closes ln 2: exactly half.
    assert recovery_check({"dense": dense, "x": _ppl(40.0, 20.0)}, "x").passed is True
    # Half the gap in raw perplexity (25) is less than half in log space.
    assert recovery_check({"dense": dense, "x": _ppl(40.0, 25.0)}, "x").passed is False
    assert recovery_check({"dense": dense, "x": _ppl(9.0, 9.5)}, "x").passed is None  # no gap
    assert recovery_check({"dense": dense, "x": _ppl(40.0)}, "x").passed is None  # not run


def test_compute_checks_covers_every_comparison_and_each_recovered_row() -> None:
    results = {
        "dense": _ppl(20.0),
        "int8-rtn": _ppl(20.1, 20.05),
        "int4-rtn": _ppl(30.0, 24.0),
        "int4-gptq": _ppl(25.0, 23.0),
    }
    checks = {c.name: c.passed for c in compute_checks(results)}
    assert checks["int4-gptq perplexity < int4-rtn"] is True
    assert checks["int4-awq perplexity < int4-rtn"] is None
    assert checks["int8 RTN within 1% of dense"] is True
    assert checks["recovery closes >= 1/2 of the gap: int4-rtn"] is True  # ln1.5 vs ln1.25
    assert checks["recovery closes >= 1/2 of the gap: int4-gptq"] is False  # ln1.25 vs ln1.087
    assert "recovery closes >= 1/2 of the gap: dense" not in checks


def test_row_result_takes_the_last_compression_stage_as_before() -> None:
    def stage(name: str, ppl: float, seconds: float) -> dict:
        return {"stage": name, "seconds": seconds, "metrics": {"perplexity": {"perplexity": ppl}}}

    r = row_result(
        [
            stage("dense", 10.0, 100.0),
            stage("calibrate", 10.0, 1.0),
            stage("prune", 30.0, 2.0),
            stage("quantize", 40.0, 3.0),
            stage("recover", 20.0, 4.0),
        ]
    )
    assert (r["before"]["perplexity"], r["after"]["perplexity"]) == (40.0, 20.0)
    assert r["seconds"] == {"compress": 6.0, "recover": 4.0}  # the shared dense left out


def test_markdown_refuses_rows_whose_size_changed_in_recovery() -> None:
    figs = {"perplexity": 1.0, "accuracy": None, "bytes": 10}
    row = {"key": "x", "label": "x", "before": figs, "after": {**figs, "bytes": 9}}
    row["seconds"] = {"compress": 0.0, "recover": 0.0}
    with pytest.raises(ValueError, match="size"):
        markdown([row], [], "c")


def _figures(ppl: float, mb: float) -> dict:
    return {"perplexity": ppl, "accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7, "bytes": mb * 1e6}


def test_partial_results_are_written_with_what_is_pending(tmp_path: Path) -> None:
    seconds = {"compress": 60.0, "recover": 0.0}
    rows = [
        {"key": "dense", "label": "dense fp32", "after": None, "seconds": seconds},
        {"key": "int4-rtn", "label": "int4 g64 RTN", "after": None, "seconds": seconds},
    ]
    rows[0]["before"], rows[1]["before"] = _figures(30.0, 538.0), _figures(40.0, 180.0)
    skipped = {"int4-awq": "no adapter"}
    compression.write_results(rows, StudySettings(), skipped, tmp_path, "cmd")
    text = (tmp_path / "compression.md").read_text()
    assert "| int4 g64 RTN | 180.0 | 40.00 | 0.600 [0.500, 0.700] | – | – | – | 1.0 |" in text
    assert "int4-rtn (recovery)" in text and "int4-gptq (row)" in text
    assert "- int4-awq: no adapter" in text and "int4-awq (row)" not in text
    checks = json.loads((tmp_path / "compression.json").read_text())["checks"]
    assert {c["name"]: c["passed"] for c in checks}["int4-gptq perplexity < int4-rtn"] is None
    assert (tmp_path / "compression.png").stat().st_size > 0


# -- the machinery on the tiny model ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tiny.register()
    root = tmp_path_factory.mktemp("study")
    out, results = root / "runs", root / "results"
    argv = ["--quick", "--model", tiny.TINY, "--out", str(out), "--results", str(results)]
    assert compression.main([*argv, "--no-progress", "--rows", *QUICK_ROWS]) == 0
    return out, results


def test_quick_study_writes_table_json_and_png(quick_study: tuple[Path, Path]) -> None:
    _, results = quick_study
    data = json.loads((results / "compression.json").read_text())
    assert [r["key"] for r in data["rows"]] == QUICK_ROWS
    for row in data["rows"]:
        assert row["before"]["perplexity"] > 1.0
        assert 0.0 <= row["before"]["accuracy"] <= 1.0
        assert (row["after"] is None) == (row["key"] == "dense")
    by_key = {r["key"]: r for r in data["rows"]}
    # Recomputed from the written numbers, the checks come out as the study wrote them.
    expected = [(c.name, c.passed) for c in compute_checks(by_key)]
    assert [(c["name"], c["passed"]) for c in data["checks"]] == expected
    assert by_key["24-int4"]["before"]["bytes"] < by_key["dense"]["before"]["bytes"]
    text = (results / "compression.md").read_text()
    for row in data["rows"]:
        assert f"| {row['label']} |" in text
    assert "Acceptance checks:" in text and "int8 RTN within 1% of dense" in text
    assert (results / "compression.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dense_is_measured_once_and_copied_into_every_row(quick_study: tuple[Path, Path]) -> None:
    out, _ = quick_study
    dense = (out / "dense" / "stages" / "00-dense" / "metrics.json").read_text()
    for key in QUICK_ROWS[1:]:
        # A re-measurement would record its own timing; the copy is byte for byte the same.
        assert (out / key / "stages" / "00-dense" / "metrics.json").read_text() == dense


def test_report_only_rewrites_the_same_table(
    quick_study: tuple[Path, Path], tmp_path: Path
) -> None:
    out, results = quick_study
    argv = ["--quick", "--model", tiny.TINY, "--out", str(out), "--results", str(tmp_path)]
    assert compression.main([*argv, "--report-only"]) == 0
    for name in ("compression.md", "compression.json"):
        assert (tmp_path / name).read_text() == (results / name).read_text()


def test_new_recovery_settings_redo_only_the_recover_stage(
    quick_study: tuple[Path, Path],
) -> None:
    out, _ = quick_study
    settings = replace(QUICK, model=tiny.TINY)
    row = row_by_key("int4-rtn")
    stages = out / row.key / "stages"
    kept = {p.name: (p / "metrics.json").read_text() for p in stages.iterdir()}
    retuned = replace(settings, recover=replace(settings.recover, steps=3))
    assert compression.run_rows([row], retuned, out, progress=False) == {}
    now = {p.name: (p / "metrics.json").read_text() for p in stages.iterdir()}
    assert sorted(now) == sorted(kept)
    recover = next(name for name in kept if name.endswith("-recover"))
    assert all(now[n] == kept[n] for n in kept if n != recover)
    assert now[recover] != kept[recover]
    assert json.loads(now[recover])["config"]["steps"] == 3


@pytest.mark.slow(bounded=True)
def test_every_row_validates_on_smollm2() -> None:
    from squeezeprompt.models import load
    from squeezeprompt.pipeline.validate import check_against_model, check_static

    model, _ = load("smollm2-135m-instruct")
    for row in study_rows():
        recipe = recipe_for(row, StudySettings())
        check_static(recipe)
        check_against_model(recipe, model)
