"""Running the tiny recipe end to end, and resuming after a crash or a kill."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tiny
from conftest import deterministic

from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import run
from squeezeprompt.pipeline.stage_configs import RecoverConfig
from squeezeprompt.pipeline.stages.registry import ADAPTERS, load_builtin_adapters

STAGES = ["00-dense", "01-calibrate", "02-prune", "03-quantize", "04-recover", "05-prompt"]


def test_run_writes_every_stage_and_the_report(reference_run: tuple[Path, list]) -> None:
    out, metrics = reference_run
    assert sorted(p.name for p in (out / "stages").iterdir()) == STAGES
    for name in STAGES[2:]:
        assert (out / "stages" / name / "model" / "manifest.json").is_file()
    assert not (out / "stages" / "01-calibrate" / "model").exists()  # weights unchanged
    for name in ("report.json", "report.md", "run.log", "recipe.json"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "plots").iterdir()) == [
        "accuracy_vs_size.png",
        "layer_loss_02-prune.png",
        "layer_loss_03-quantize.png",
        "layer_loss_04-recover.png",
        "stages.png",
    ]
    by_stage = {m["stage"]: m for m in metrics}
    # Packed 2:4 + int4 g32: half the weights kept at 4 bits (2), 2:4 indices (1), and an
    # fp32 scale and zero per 32 columns (2).
    assert by_stage["quantize"]["metrics"]["size"]["bits_per_weight"] == pytest.approx(5.0)
    assert by_stage["prune"]["summary"]["sparsity"] == pytest.approx(0.5)
    assert by_stage["dense"]["metrics"]["size"]["bits_per_weight"] == 32.0
    assert (
        by_stage["quantize"]["metrics"]["size"]["bytes"]
        < by_stage["dense"]["metrics"]["size"]["bytes"]
    )
    rows = json.loads((out / "report.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == [s[3:] for s in STAGES]


def _last_stage_metrics(out: Path) -> list[dict]:
    return json.loads((out / "report.json").read_text())["stages"]


class _Crash(RuntimeError):
    pass


def _crash_in_recover(recipe: Recipe, out: Path) -> None:
    """Runs ``recipe`` with recovery raising half-way (an exception, as Ctrl-C would)."""
    load_builtin_adapters()
    real = ADAPTERS[RecoverConfig]

    class Crashing:
        changes_model = True

        def check(self, *args):  # noqa: ANN002, ANN201
            return real.check(*args)

        def run(self, ctx, config):  # noqa: ANN001, ANN201
            raise _Crash("injected mid-recovery")

    ADAPTERS[RecoverConfig] = Crashing()  # type: ignore[assignment]
    try:
        with pytest.raises(_Crash):
            run(recipe, out, progress=False)
    finally:
        ADAPTERS[RecoverConfig] = real


def test_resume_after_sigkill_then_an_exception_gives_the_same_metrics(
    recipe: Recipe, reference_run: tuple[Path, list], tmp_path: Path
) -> None:
    recipe_file = tmp_path / "recipe.yaml"
    recipe_file.write_text(tiny.TEST_RECIPE)
    out = tmp_path / "out"
    # 1. a separate process, SIGKILLed once the prune stage's checkpoint is on disk
    killed = subprocess.run(
        [sys.executable, str(Path(tiny.__file__)), str(recipe_file), str(out), "prune"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    leftovers = sorted(p.name for p in (out / "stages").iterdir())
    assert leftovers[1:] == STAGES[:2] and leftovers[0].startswith(".02-prune.tmp-")
    # 2. resumed here, and crashing inside the recover stage
    _crash_in_recover(recipe, out)
    assert (
        "resuming after 01-calibrate (no stage changed the weights)"
        in (out / "run.log").read_text()
    )
    assert sorted(p.name for p in (out / "stages").iterdir()) == STAGES[:4]
    # 3. resumed again: finishes, with exactly the uninterrupted run's numbers
    metrics = run(recipe, out, progress=False)
    assert "resuming after 03-quantize" in (out / "run.log").read_text()
    assert sorted(p.name for p in (out / "stages").iterdir()) == STAGES
    assert deterministic(metrics) == deterministic(reference_run[1])


def test_changed_stage_is_rerun_from_there(
    recipe: Recipe, reference_run: tuple[Path, list], tmp_path: Path
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference_run[0], out)
    data = recipe.to_dict()
    data["stages"][3]["recover"]["steps"] = 2  # recover and everything after it changes
    changed = Recipe.from_dict(data)
    run(changed, out, progress=False)
    log = (out / "run.log").read_text()
    assert "resuming after 03-quantize" in log
    assert json.loads((out / "recipe.json").read_text())["fingerprint"] == changed.fingerprint()
