"""The output directory of a run, written so that a killed run leaves nothing half-done.

Layout::

    recipe.json                  the recipe (plain data) and its fingerprint
    run.log                      appended by every invocation
    stages/00-dense/metrics.json the uncompressed baseline
    stages/01-prune/model/       checkpoint (squeezeprompt.checkpoint)
    stages/01-prune/state.json   run state after the stage (e.g. the chosen prompt)
    stages/01-prune/metrics.json stage summary and measurements
    report.json, report.md, plots/*.png

A stage directory is built under a temporary name and renamed into place in one step,
so it either exists whole or not at all; a finished stage is reused only if its recorded
fingerprint matches the recipe's settings up to that stage.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_json_atomic(Path(d) / "x.json", {"a": 1}); read_json(Path(d) / "x.json")
    {'a': 1}
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

RECIPE_FILE = "recipe.json"
METRICS_FILE = "metrics.json"
STATE_FILE = "state.json"
MODEL_DIR = "model"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to a sibling temporary file, fsyncs, then renames it over ``path``.

    Example: see the module docstring.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, keys in insertion order) written atomically.

    Example: see the module docstring.
    """
    write_bytes_atomic(path, (json.dumps(data, indent=2) + "\n").encode())


def read_json(path: Path) -> Any:
    """The parsed JSON file (see the module docstring)."""
    return json.loads(path.read_text(encoding="utf-8"))


def stage_dir_name(index: int, name: str) -> str:
    """``01-quantize``: sorts in run order.

    Example:
        >>> stage_dir_name(1, "quantize")
        '01-quantize'
    """
    return f"{index:02d}-{name}"


class RunStore:
    """Reads and writes one run's output directory.

    Example:
        >>> import tempfile
        >>> store = RunStore(tempfile.mkdtemp())
        >>> store.create({"model": "m"}, "fp")
        >>> _ = store.write_stage(0, "dense", {"fingerprint": "f0"}, {}, None)
        >>> store.finished(0, "dense", "f0"), store.finished(0, "dense", "other")
        ({'fingerprint': 'f0'}, None)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.stages = self.root / "stages"

    def check_usable(self) -> None:
        """Refuses a non-empty directory that is not a squeezeprompt run (never clobber)."""
        if self.root.exists() and not self.root.is_dir():
            raise FileExistsError(f"output path exists and is not a directory: {self.root}")
        foreign = not (self.root / RECIPE_FILE).is_file()
        if self.root.is_dir() and any(self.root.iterdir()) and foreign:
            raise FileExistsError(
                f"output directory {self.root} is not empty and holds no {RECIPE_FILE}; "
                "choose a new or empty directory"
            )

    def create(self, recipe_data: dict[str, Any], fingerprint: str) -> None:
        self.stages.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.root / RECIPE_FILE, {"fingerprint": fingerprint, "recipe": recipe_data}
        )
        for leftover in self.stages.glob(".*.tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # a killed run's half-built stage

    def stage_path(self, index: int, name: str) -> Path:
        return self.stages / stage_dir_name(index, name)

    def finished(self, index: int, name: str, fingerprint: str) -> dict[str, Any] | None:
        """The stage's metrics if it finished with the same settings, else None."""
        path = self.stage_path(index, name) / METRICS_FILE
        if not path.is_file():
            return None
        metrics = read_json(path)
        return metrics if metrics.get("fingerprint") == fingerprint else None

    def discard_from(self, index: int) -> list[str]:
        """Removes stage directories ``index`` and later (stale after a recipe change)."""
        removed = []
        for path in sorted(self.stages.iterdir()) if self.stages.is_dir() else []:
            if path.name[:2].isdigit() and int(path.name[:2]) >= index:
                shutil.rmtree(path)
                removed.append(path.name)
        return removed

    def write_stage(
        self,
        index: int,
        name: str,
        metrics: dict[str, Any],
        state: dict[str, Any],
        save_model: Callable[[Path], None] | None,
    ) -> Path:
        """Builds the stage directory aside, then renames it into place (all or nothing)."""
        final = self.stage_path(index, name)
        tmp = self.stages / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if save_model is not None:
            save_model(tmp / MODEL_DIR)
        write_json_atomic(tmp / STATE_FILE, state)
        write_json_atomic(tmp / METRICS_FILE, metrics)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        return final

    def all_metrics(self) -> list[dict[str, Any]]:
        """Metrics of every finished stage, in run order."""
        if not self.stages.is_dir():
            return []
        out = []
        for path in sorted(self.stages.iterdir()):
            if path.name[:2].isdigit() and (path / METRICS_FILE).is_file():
                out.append(read_json(path / METRICS_FILE))
        return out
