"""The recovery study: its report on fabricated stage records, and a quick run of the
whole machinery on the tiny random Llama (numbers meaningless, files and reuse real)."""

from __future__ import annotations

import json
import logging
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "pipeline"))  # the tiny model source

import tiny  # noqa: E402

from squeezeprompt.pipeline.context import RunContext  # noqa: E402
from squeezeprompt.pipeline.recipe import Recipe  # noqa: E402
from squeezeprompt.pipeline.stage_configs import RecoverConfig  # noqa: E402
from squeezeprompt.pipeline.stages.recover import resolved, training_batches  # noqa: E402
from squeezeprompt.pipeline.validate import load_and_validate  # noqa: E402
from squeezeprompt.studies import recovery  # noqa: E402
from squeezeprompt.studies.recovery_report import cell_result, markdown  # noqa: E402
from squeezeprompt.studies.recovery_rows import CELLS, SETTINGS  # noqa: E402
from squeezeprompt.studies.recovery_sweep import heldback_batches  # noqa: E402


def _record(stage: str, ppl: float, summary: dict | None = None) -> dict:
    return {
        "stage": stage,
        "seconds": 120.0,
        "metrics": {"perplexity": {"perplexity": ppl}},
        "summary": summary or {},
    }


def _records(before: float, after: float | None, stage: str = "prune") -> list[dict]:
    records = [_record("dense", 20.0), _record("calibrate", 20.0), _record(stage, before)]
    if after is not None:
        summary = {"steps": 80, "lr": 3e-4}
        records.append(_record("recover", after, summary))
    return records


@pytest.mark.parametrize(
    ("before", "after", "passed"),
    # the log gap: ln 80 - ln 20 = 2 ln 2; half of it closed is ppl 40 exactly
    [(80.0, 39.0, True), (80.0, 41.0, False), (80.0, 90.0, False)],
)
def test_the_share_is_of_the_log_perplexity_gap(before: float, after: float, passed: bool) -> None:
    r = cell_result(_records(before, after))
    expected = (math.log(before) - math.log(after)) / (math.log(before) - math.log(20.0))
    assert r["share"] == pytest.approx(expected) and r["passed"] is passed
    assert (r["dense"], r["before"], r["after"]) == (20.0, before, after)
    assert (r["steps"], r["lr"], r["minutes"]) == (80, 3e-4, 2.0)


def test_before_is_the_last_compression_stage_and_no_gap_has_no_verdict() -> None:
    records = _records(50.0, None, "prune") + [_record("quantize", 60.0)]
    r = cell_result(records)
    assert r["before"] == 60.0 and r["after"] is None and r["passed"] is None
    flat = cell_result(_records(19.0, 18.0))  # compression opened no gap
    assert flat["share"] is None and flat["passed"] is None


def test_markdown_shows_each_cell_with_its_verdict() -> None:
    rows = [
        {"start_label": "50% Wanda", "method": "distill", **cell_result(_records(80.0, 39.0))},
        {"start_label": "int4 g64 RTN", "method": "qat", **cell_result(_records(30.0, None))},
    ]
    text = markdown(rows, "# caption")
    assert (
        "| 50% Wanda | distill | 80 | 0.0003 | 80.00 | 39.00 | 20.00 | 52% | 2.0 | PASS |" in text
    )
    assert "| int4 g64 RTN | qat | – | – | 30.00 | – | 20.00 | – | – | – |" in text


def test_cells_state_the_resolved_defaults() -> None:
    """Written out, the defaults are part of the fingerprint: changing them redoes only
    the recover stages."""
    for cell in CELLS:
        config = recovery.cell_recipe(cell, SETTINGS).stages[-1]
        assert config == resolved(RecoverConfig(method=cell.method))


# -- the machinery on the tiny model ---------------------------------------------------


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tiny.register()
    root = tmp_path_factory.mktemp("recovery")
    out, results = root / "runs", root / "results"
    argv = ["--quick", "--model", tiny.TINY, "--out", str(out), "--results", str(results)]
    assert recovery.main([*argv, "--no-progress"]) == 0
    return out, results


def test_quick_study_writes_every_cell(quick_study: tuple[Path, Path]) -> None:
    _, results = quick_study
    data = json.loads((results / "recovery.json").read_text())
    assert [c["key"] for c in data["cells"]] == [c.key for c in CELLS]
    for cell in data["cells"]:
        assert cell["after"] is not None and cell["steps"] == recovery.QUICK_STEPS
    text = (results / "recovery.md").read_text()
    assert "NOT the default budget" in text and "Not finished yet" not in text


def test_start_points_are_compressed_once_and_linked(quick_study: tuple[Path, Path]) -> None:
    out, _ = quick_study
    source = out / "int4-rtn" / "stages" / "01-quantize" / "metrics.json"
    for method in ("distill", "qat", "lora"):
        copy = out / f"int4-rtn-{method}" / "stages" / "01-quantize" / "metrics.json"
        assert copy.read_text() == source.read_text()  # re-measuring would change the time
        assert (out / f"int4-rtn-{method}" / "stages" / "02-recover").is_dir()


# -- the sweep's held-back windows -----------------------------------------------------


def _sweep_context(steps: int) -> tuple[RunContext, RecoverConfig]:
    tiny.register()
    config = RecoverConfig(steps=steps, batch_size=2, seq_len=32)
    recipe = Recipe(model=tiny.TINY, stages=(config,))
    model, tokenizer, source = load_and_validate(recipe)
    ctx = RunContext(recipe, model, tokenizer, source, logging.getLogger("test"), progress=False)
    return ctx, config


def test_heldback_windows_are_never_trained_on() -> None:
    ctx, config = _sweep_context(steps=4)
    trained = {tuple(row.tolist()) for b in training_batches(ctx, config) for row in b["input_ids"]}
    held = [tuple(row.tolist()) for b in heldback_batches(ctx, config, 8) for row in b["input_ids"]]
    assert len(held) == 8 and len(trained) > 1
    assert not trained.intersection(held)


def test_heldback_windows_refuse_a_pool_that_reaches_them() -> None:
    ctx, config = _sweep_context(steps=100_000)
    with pytest.raises(ValueError, match="too few to keep 8 apart"):
        heldback_batches(ctx, config, 8)
