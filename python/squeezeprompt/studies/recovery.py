"""Does each recovery method close half the perplexity gap at its default budget?

    python -m squeezeprompt.studies.recovery

runs every cell of :mod:`.recovery_rows` (a start point of the compression study, then
one recover method at the pipeline's per-method ``steps`` / ``lr``) on SmolLM2-135M and
writes ``docs/results/recovery.{md,json}``: perplexity before and after, the share of
the log-perplexity gap to dense closed, training minutes, and PASS/FAIL of "at least
half".

Runs go under ``--out`` (default ``runs/recovery``): ``dense/`` once, each start point's
compression once in ``<start>/``, and each cell in ``<start>-<method>/``, seeded with
copies of its finished dense and compression stages (same fingerprints), so only the
recover stage runs there. Each cell's recipe states the resolved defaults explicitly:
its fingerprint then changes with them, and a re-run after a change of the defaults
redoes only the recover stages. Re-running resumes; results are rewritten after every
run, so a stopped study leaves a table of what finished.

Example:
    >>> settings_from(build_parser().parse_args(["--quick"])).evaluate.perplexity_tokens
    128
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import BASELINE, run
from squeezeprompt.pipeline.schema import to_data
from squeezeprompt.pipeline.stage_configs import RecoverConfig
from squeezeprompt.pipeline.stages.recover import resolved
from squeezeprompt.pipeline.store import RunStore
from squeezeprompt.studies.compression import DENSE, finished_stages, seed_dense
from squeezeprompt.studies.compression_checks import RECOVERY_SHARE
from squeezeprompt.studies.compression_report import write_json
from squeezeprompt.studies.compression_rows import Row, StudySettings, recipe_for
from squeezeprompt.studies.recovery_report import cell_result, markdown
from squeezeprompt.studies.recovery_rows import (
    CELLS,
    QUICK,
    SETTINGS,
    Cell,
    recovery_recipe,
    start_row,
)

LOG = logging.getLogger("squeezeprompt.studies")
RESULTS_NAME = "recovery"  # recovery.md, recovery.json
QUICK_STEPS = 2  # --quick: a smoke test, not the default budget


def cell_recipe(cell: Cell, settings: StudySettings, steps: int | None = None) -> Recipe:
    """The cell's recipe with the method's default ``steps`` and ``lr`` written out
    (``steps`` overrides the budget, for smoke runs).

    Example:
        >>> cell_recipe(CELLS[3], SETTINGS).stages[-1].lr == resolved(RecoverConfig(
        ...     method=CELLS[3].method)).lr
        True
    """
    config = resolved(RecoverConfig(method=cell.method, steps=steps))
    return recovery_recipe(start_row(cell, settings), config, settings)


def seed_stages(recipe: Recipe, run_dir: Path, source_dir: Path, count: int) -> int:
    """Links (or copies) stages ``0 .. count-1`` that finished in ``source_dir`` with
    ``recipe``'s fingerprints into ``run_dir``; returns how many are there now.

    Example:
        >>> seed_stages(Recipe(model="m"), Path("runs/x"), Path("no-such-dir"), 1)
        0
    """
    source, target = RunStore(source_dir), RunStore(run_dir)
    names = [BASELINE] + [s.kind.value for s in recipe.stages]
    for i in range(count):
        fingerprint = recipe.fingerprint(upto=i - 1)
        if target.finished(i, names[i], fingerprint) is not None:
            continue
        if source.finished(i, names[i], fingerprint) is None:
            return i
        target.check_usable()
        target.create(recipe.to_dict(), recipe.fingerprint())
        final = target.stage_path(i, names[i])
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        # Hard links: the pipeline never rewrites a finished stage's files in place.
        shutil.copytree(source.stage_path(i, names[i]), tmp, copy_function=_link_or_copy)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    return count


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _start_recipe(cell: Cell, settings: StudySettings) -> Recipe:
    return recovery_recipe(start_row(cell, settings), None, settings)


def run_cells(
    cells: Sequence[Cell],
    settings: StudySettings,
    out: Path,
    steps: int | None = None,
    progress: bool = True,
    after_each: Callable[[], None] | None = None,
) -> None:
    """Runs (or resumes) dense, each start point's compression, then each cell.

    Example:
        >>> run_cells(CELLS[:1], SETTINGS, Path("runs/recovery"))  # doctest: +SKIP
    """
    dense = recipe_for(Row(DENSE, "dense"), settings)
    if finished_stages(dense, out / DENSE) is None:
        run(dense, out / DENSE, progress=progress)
    for cell in cells:
        start = _start_recipe(cell, settings)
        if finished_stages(start, out / cell.start) is None:
            seed_dense(start, out / cell.start, out / DENSE)
            run(start, out / cell.start, progress=progress)
    for cell in cells:
        recipe = cell_recipe(cell, settings, steps)
        if finished_stages(recipe, out / cell.key) is not None:
            continue
        t0 = time.perf_counter()
        seed_stages(recipe, out / cell.key, out / cell.start, len(recipe.stages))
        run(recipe, out / cell.key, progress=progress)
        LOG.info("cell %s done in %.1f min", cell.key, (time.perf_counter() - t0) / 60)
        if after_each is not None:
            after_each()


def collect(
    cells: Sequence[Cell], settings: StudySettings, out: Path, steps: int | None = None
) -> list[dict[str, Any]]:
    """One result per cell whose start point finished (``after`` None until it ran).

    Example:
        >>> collect(CELLS, SETTINGS, Path("no-such-dir"))
        []
    """
    results = []
    for cell in cells:
        records = finished_stages(cell_recipe(cell, settings, steps), out / cell.key)
        if records is None:
            records = finished_stages(_start_recipe(cell, settings), out / cell.start)
        if records is None:
            continue
        row = start_row(cell, settings)
        base = {"key": cell.key, "start": cell.start, "start_label": row.label}
        results.append({**base, "method": cell.method.value, **cell_result(records)})
    return results


def caption(settings: StudySettings, command: str, steps: int | None) -> str:
    """What the table measured and how.

    Example:
        >>> "4096 held-out" in caption(SETTINGS, "cmd", None)
        True
    """
    e, c = settings.evaluate, settings.calibrate
    budget = (
        "each method's default `steps` and `lr` (`pipeline/stages/recover.py`)"
        if steps is None
        else f"{steps} steps (a smoke run, NOT the default budget)"
    )
    r = RecoverConfig()
    return "\n".join(
        [
            f"# Recovery at the default budget: {settings.model}",
            "",
            f"Produced by `{command}`.",
            f"Perplexity: {e.perplexity_tokens} held-out Wikipedia tokens (windows of "
            f"{e.seq_len}), disjoint from all calibration and training text.",
            f"Recovery: {budget}; batch {r.batch_size} × {r.seq_len} calibration tokens,",
            "distillation loss (KL to the dense model's next-token distribution).",
            f"Start points: the compression study's rows (int4 group size "
            f"{settings.group_size}; Wanda calibrated on {c.samples} windows of {c.seq_len}).",
            "Log gap closed: (ln ppl before − ln ppl after) / (ln ppl before − ln ppl dense);",
            f"≥ half: at least {RECOVERY_SHARE:.0%} of it (issue 6's acceptance).",
            "Minutes: the recover stage (training, then its perplexity and per-layer",
            "measurements) on a 2-core CPU shared with other jobs, one torch thread.",
            f"Seed {settings.seed}.",
            "How the defaults were chosen (short sweeps judged on held-back calibration",
            "windows): `recovery_sweep.md`.",
        ]
    )


def write_results(
    results: list[dict[str, Any]],
    settings: StudySettings,
    results_dir: Path,
    command: str,
    steps: int | None,
) -> list[Path]:
    """Writes ``recovery.md`` and ``recovery.json``.

    Example:
        >>> write_results([], SETTINGS, Path("docs/results"), "cmd", None)  # doctest: +SKIP
    """
    text = markdown(results, caption(settings, command, steps))
    pending = [c.key for c in CELLS if c.key not in {r["key"] for r in results if r["after"]}]
    if pending:
        text += f"\nNot finished yet (the same command resumes them): {', '.join(pending)}\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    md, js = results_dir / f"{RESULTS_NAME}.md", results_dir / f"{RESULTS_NAME}.json"
    md.write_text(text, encoding="utf-8")
    data = {"command": command, "settings": to_data(settings), "cells": results}
    write_json(js, data)
    return [md, js]


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring).

    Example:
        >>> build_parser().parse_args(["--cells", "int4-rtn-qat"]).cells
        ['int4-rtn-qat']
    """
    p = argparse.ArgumentParser(
        prog="python -m squeezeprompt.studies.recovery",
        description="Runs each recovery method at its default budget (resuming) and "
        "writes the results table and JSON.",
    )
    p.add_argument("--out", type=Path, default=None, help="run directories (runs/recovery)")
    p.add_argument(
        "--results", type=Path, default=None, help="where recovery.{md,json} go (docs/results)"
    )
    keys = [c.key for c in CELLS]
    p.add_argument("--cells", nargs="+", choices=keys, metavar="CELL", help=", ".join(keys))
    p.add_argument("--quick", action="store_true", help=f"smoke settings, {QUICK_STEPS} steps")
    p.add_argument("--model", default=None, help="model source (default: SmolLM2-135M)")
    p.add_argument("--report-only", action="store_true", help="write the table; run nothing")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def settings_from(args: argparse.Namespace) -> StudySettings:
    """The study settings the parsed arguments ask for.

    Example: see the module docstring.
    """
    settings = QUICK if args.quick else SETTINGS
    return replace(settings, model=args.model) if args.model else settings


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the study; returns the exit code.

    Example: see the module docstring.
    """
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    steps = QUICK_STEPS if args.quick else None
    out = args.out or Path("runs/recovery-quick" if args.quick else "runs/recovery")
    results_dir = args.results or (out / "results" if args.quick else Path("docs/results"))
    by_key = {c.key: c for c in CELLS}
    cells = [by_key[k] for k in dict.fromkeys(args.cells or by_key)]
    command = "python -m squeezeprompt.studies.recovery" + " --quick" * args.quick
    if args.model:
        command += f" --model {args.model}"

    def write() -> list[Path]:
        return write_results(
            collect(CELLS, settings, out, steps), settings, results_dir, command, steps
        )

    if not args.report_only:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        for name in ("squeezeprompt.pipeline", LOG.name):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
        run_cells(cells, settings, out, steps, not args.no_progress, after_each=write)
    print("wrote " + ", ".join(str(p) for p in write()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
