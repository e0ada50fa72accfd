"""Fixtures of the pipeline tests: the tiny model sources and one reference run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny.py, also run as a subprocess script

import tiny  # noqa: E402

from squeezeprompt.pipeline.recipe import Recipe  # noqa: E402
from squeezeprompt.pipeline.runner import run  # noqa: E402


def deterministic(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seeded part of every stage's metrics (timings and decode speed left out)."""
    out = []
    for m in metrics:
        kept = {k: v for k, v in m["metrics"].items() if k != "decode"}
        out.append({"stage": m["stage"], "summary": m["summary"], "metrics": kept})
    return out


@pytest.fixture(scope="session", autouse=True)
def tiny_sources() -> None:
    tiny.register()


@pytest.fixture(scope="session")
def recipe() -> Recipe:
    return Recipe.from_yaml(tiny.TEST_RECIPE)


@pytest.fixture(scope="session")
def reference_run(recipe: Recipe, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """One uninterrupted run of the test recipe: (output dir, stage metrics)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return out, run(recipe, out, progress=False)
