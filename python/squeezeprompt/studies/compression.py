"""The compression results table on SmolLM2-135M, from one command.

    python -m squeezeprompt.studies.compression

runs one pipeline recipe per row (:mod:`.compression_rows`: a compression, then the
recover stage) into ``--out/<row>/`` (default ``runs/compression``) and writes
``docs/results/compression.{md,json,png}``: perplexity, task accuracy and model bytes
before and after recovery, and the acceptance checks (:mod:`.compression_checks`).

Every row's compression runs first (the method comparisons need only those), then every
row's recovery, the costly part; the results are rewritten after each run, so a stopped
study leaves a table of what finished. Re-running the same command resumes: the
pipeline reuses every finished stage whose settings are unchanged, so after a change to
the recovery defaults only recover stages run again. The dense baseline is measured
once, in ``--out/dense/``, and seeded into every row's run (its fingerprint covers only
the model, evaluation and seed, which all rows share). A row whose recipe does not
validate (a method without a pipeline adapter) is skipped with its reason.

``--rows`` picks rows (run in the order given), ``--ppl-tokens``, ``--test-examples`` and
``--recover-steps`` shrink the budget (the caption then states it), ``--report-only``
rewrites the table from the finished runs, ``--quick`` runs a smoke configuration
(meaningless numbers, written under ``--out``).

Example:
    >>> settings_from(build_parser().parse_args(["--recover-steps", "20"])).recover.steps
    20
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from squeezeprompt.pipeline.errors import RecipeError
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.runner import BASELINE, run
from squeezeprompt.pipeline.schema import to_data
from squeezeprompt.pipeline.stage_configs import RecoverConfig
from squeezeprompt.pipeline.stages.recover import resolved
from squeezeprompt.pipeline.store import STATE_FILE, RunStore, read_json
from squeezeprompt.studies.compression_checks import compute_checks
from squeezeprompt.studies.compression_report import markdown, row_result, write_json, write_plot
from squeezeprompt.studies.compression_rows import (
    QUICK,
    Row,
    StudySettings,
    recipe_for,
    study_rows,
)

LOG = logging.getLogger("squeezeprompt.studies")
DENSE = "dense"
RESULTS_NAME = "compression"  # compression.md, compression.json, compression.png


def finished_stages(recipe: Recipe, run_dir: Path) -> list[dict[str, Any]] | None:
    """The records of every stage of ``recipe`` if all finished in ``run_dir`` with the
    recipe's settings (later stages of a longer recipe may follow), else None.

    Example:
        >>> finished_stages(Recipe(model="m"), Path("no-such-dir")) is None
        True
    """
    store = RunStore(run_dir)
    names = [BASELINE] + [s.kind.value for s in recipe.stages]
    records = []
    for i, name in enumerate(names):
        record = store.finished(i, name, recipe.fingerprint(upto=i - 1))
        if record is None:
            return None
        records.append(record)
    return records


def seed_dense(recipe: Recipe, run_dir: Path, dense_dir: Path) -> bool:
    """Copies the finished dense stage of ``dense_dir`` into ``run_dir`` when it is what
    ``recipe``'s run would measure (same fingerprint); returns whether it did.

    Example:
        >>> seed_dense(recipe, Path("runs/x"), Path("runs/dense"))  # doctest: +SKIP
        True
    """
    fingerprint = recipe.fingerprint(upto=-1)  # the baseline: no stage applied
    source = RunStore(dense_dir)
    record = source.finished(0, BASELINE, fingerprint)
    if record is None:
        return False
    target = RunStore(run_dir)
    if target.finished(0, BASELINE, fingerprint) is not None:
        return True
    target.check_usable()
    target.create(recipe.to_dict(), recipe.fingerprint())
    state = read_json(source.stage_path(0, BASELINE) / STATE_FILE)
    target.write_stage(0, BASELINE, record, state, None)  # the dense stage saves no model
    return True


def _run_one(recipe: Recipe, row: Row, out: Path, progress: bool) -> str | None:
    """Runs ``recipe`` for ``row`` unless it already finished; the reason if it cannot run."""
    run_dir = out / row.key
    if finished_stages(recipe, run_dir) is not None:
        return None  # never re-run a prefix: the runner would drop the stages after it
    start = time.perf_counter()
    seed_dense(recipe, run_dir, out / DENSE)
    try:
        run(recipe, run_dir, progress=progress)
    except RecipeError as e:  # validation failed before any work: skip, say why
        LOG.warning("row %s skipped: %s", row.key, e)
        return str(e)
    what = "recovery" if recipe.stages[-1].kind.value == "recover" else "compression"
    LOG.info("row %s: %s done in %.1f min", row.key, what, (time.perf_counter() - start) / 60)
    return None


def run_rows(
    rows: Sequence[Row],
    settings: StudySettings,
    out: Path,
    progress: bool = True,
    after_each: Callable[[dict[str, str]], None] | None = None,
) -> dict[str, str]:
    """Runs (or resumes) the dense baseline and every row in ``rows`` under ``out``;
    returns ``{row key: reason}`` for the rows whose recipes did not validate.

    Two passes: first every row's compression (which the method comparisons need), then
    every row's recovery, the costly part. ``after_each(skipped)`` is called after each
    run, so partial results can be written as they come.

    Example:
        >>> run_rows(study_rows()[:2], StudySettings(), Path("runs/c"))  # doctest: +SKIP
        {}
    """
    dense = recipe_for(Row(DENSE, "dense"), settings)
    if finished_stages(dense, out / DENSE) is None:
        run(dense, out / DENSE, progress=progress)
    skipped: dict[str, str] = {}
    for recover in (False, True):
        for row in rows:
            if row.is_dense or row.key in skipped:
                continue
            reason = _run_one(recipe_for(row, settings, recover), row, out, progress)
            if reason is not None:
                skipped[row.key] = reason
            if after_each is not None:
                after_each(skipped)
    return skipped


def collect(settings: StudySettings, out: Path) -> list[dict[str, Any]]:
    """Results of every study row whose compression finished under ``settings``, in
    table order (``after`` is None until its recovery has finished too).

    Example:
        >>> [r["key"] for r in collect(StudySettings(), Path("runs/compression"))]
        ... # doctest: +SKIP
        ['dense', 'int8-rtn', ...]
    """
    results = []
    for row in study_rows(settings.group_size):
        run_dir = out / (DENSE if row.is_dense else row.key)
        records = finished_stages(recipe_for(row, settings), run_dir)
        if records is None:
            records = finished_stages(recipe_for(row, settings, recover=False), run_dir)
        if records is None:
            continue
        stages = [{s.kind.value: to_data(s)} for s in row.compression]
        results.append(
            {"key": row.key, "label": row.label, "stages": stages, **row_result(records)}
        )
    return results


def caption(settings: StudySettings, command: str) -> str:
    """What the table measured and how (printed above it).

    Example:
        >>> "300 held-out" in caption(StudySettings(), "cmd")
        True
    """
    e, c = settings.evaluate, settings.calibrate
    r, default = resolved(settings.recover), resolved(RecoverConfig())
    budget = (
        "the pipeline's defaults for distillation"
        if r == default
        else f"the pipeline's default is {default.steps} steps at lr {default.lr:g}"
    )
    lines = [
        f"# Compression results: {settings.model}",
        "",
        f"Produced by `{command}`.",
        f"Perplexity: {e.perplexity_tokens} held-out Wikipedia tokens (windows of {e.seq_len}).",
        f"Accuracy: {e.test_examples} held-out Rotten Tomatoes reviews, default chat prompt,",
        "with its 95% Wilson interval.",
        "MB: deployable bytes of the whole model (the 113 MB fp32 embedding, tied to",
        "`lm_head`, stays uncompressed; 50% unstructured sparsity has no packed format and is",
        "stored dense).",
        "Before recovery: right after the prune/quantize stage(s); after recovery: after",
        f"distillation from the dense model ({r.steps} steps, batch {r.batch_size} × "
        f"{r.seq_len} tokens, lr {r.lr:g}; {budget}).",
        f"int4 uses group size {settings.group_size} in every layer: SmolLM2-135M's 576-wide",
        "inputs are not divisible by 128, and the quantize stage takes one group size.",
        f"Calibration: {c.samples} windows of {c.seq_len} tokens, disjoint from the",
        "perplexity text.",
        "Perplexity gap closed: share of the log-perplexity gap to dense won back by recovery.",
        "Minutes: compute of the row's own stages (compression, recovery and their",
        "evaluations) on a shared 2-core CPU; the dense row is measured once for all rows.",
        f"Seed {settings.seed}.",
    ]
    return "\n".join(lines)


def write_results(
    results: list[dict[str, Any]],
    settings: StudySettings,
    skipped: dict[str, str],
    results_dir: Path,
    command: str,
) -> list[Path]:
    """Writes ``compression.md``, ``compression.json`` and ``compression.png``.

    Example:
        >>> write_results([], StudySettings(), {}, Path("docs/results"), "cmd")  # doctest: +SKIP
    """
    by_key = {r["key"]: r for r in results}
    checks = compute_checks(by_key)
    text = markdown(results, checks, caption(settings, command))
    r = resolved(settings.recover)
    if r != resolved(RecoverConfig()):
        text += (
            f"\nThe recovery checks above judge this table's budget ({r.steps} steps at lr "
            f"{r.lr:g}), not the pipeline's default one; `docs/results/recovery.md` measures "
            "each recovery method at its default budget.\n"
        )
    if skipped:
        text += "\nRows not run (their recipes did not validate):\n\n"
        text += "".join(f"- {key}: {reason}\n" for key, reason in skipped.items())
    rows = study_rows(settings.group_size)
    pending = [r.key for r in rows if r.key not in by_key and r.key not in skipped]
    pending += [r["key"] for r in results if r["after"] is None and r["key"] != DENSE]
    if pending:
        text += "\nNot finished yet (the same command resumes them): "
        text += ", ".join(f"{k} ({'recovery' if k in by_key else 'row'})" for k in pending)
        text += "\n"
    results_dir.mkdir(parents=True, exist_ok=True)
    md = results_dir / f"{RESULTS_NAME}.md"
    js = results_dir / f"{RESULTS_NAME}.json"
    png = results_dir / f"{RESULTS_NAME}.png"
    md.write_text(text, encoding="utf-8")
    write_json(
        js,
        {
            "command": command,
            "settings": to_data(settings),
            "rows": results,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in checks],
            "skipped": skipped,
        },
    )
    write_plot(png, results, f"{settings.model}: perplexity against size")
    return [md, js, png]


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring).

    Example:
        >>> build_parser().parse_args(["--quick"]).quick
        True
    """
    keys = [r.key for r in study_rows()]
    p = argparse.ArgumentParser(
        prog="python -m squeezeprompt.studies.compression",
        description="Runs the compression study (resuming finished rows) and writes "
        "the results table, JSON and plot.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directories (default: runs/compression, or runs/compression-quick with --quick)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="where compression.{md,json,"
        "png} go (default: docs/results, or OUT/results with --quick)",
    )
    p.add_argument(
        "--rows",
        nargs="+",
        choices=keys,
        metavar="ROW",
        help=f"rows to run, in this order (default: all): {', '.join(keys)}",
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke settings")
    p.add_argument("--model", default=None, help="model source (default: SmolLM2-135M)")
    p.add_argument("--group-size", type=int, default=None, help="int4 group size (64)")
    # Sizes that set the cost: the defaults are the study's; smaller ones are stated in
    # the table's caption and command line.
    p.add_argument("--ppl-tokens", type=int, default=None, help="held-out perplexity tokens")
    p.add_argument("--test-examples", type=int, default=None, help="held-out task examples")
    p.add_argument(
        "--recover-steps",
        type=int,
        default=None,
        help="distillation steps of every row (default: the pipeline's for distill)",
    )
    p.add_argument(
        "--recover-lr",
        type=float,
        default=None,
        help="distillation learning rate of every row (default: the pipeline's for distill)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="write the table from finished runs; run nothing"
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def settings_from(args: argparse.Namespace) -> StudySettings:
    """The study settings the parsed arguments ask for.

    Example:
        >>> settings_from(build_parser().parse_args(["--quick", "--group-size", "32"])).group_size
        32
    """
    settings = QUICK if args.quick else StudySettings()
    if args.model:
        settings = replace(settings, model=args.model)
    if args.group_size:
        settings = replace(settings, group_size=args.group_size)
    if args.recover_steps:
        settings = replace(settings, recover=replace(settings.recover, steps=args.recover_steps))
    if args.recover_lr:
        settings = replace(settings, recover=replace(settings.recover, lr=args.recover_lr))
    sizes = {"perplexity_tokens": args.ppl_tokens, "test_examples": args.test_examples}
    sizes = {k: v for k, v in sizes.items() if v}
    if sizes:
        settings = replace(settings, evaluate=replace(settings.evaluate, **sizes))
    return settings


def reproducing_command(args: argparse.Namespace) -> str:
    """The command line that reproduces the whole table: the settings flags, not the
    row selection or the directories (the table covers every finished row).

    Example:
        >>> reproducing_command(build_parser().parse_args(["--rows", "dense", "--quick"]))
        'python -m squeezeprompt.studies.compression --quick'
    """
    flags = {
        "--model": args.model,
        "--group-size": args.group_size,
        "--ppl-tokens": args.ppl_tokens,
        "--test-examples": args.test_examples,
        "--recover-steps": args.recover_steps,
        "--recover-lr": args.recover_lr,
    }
    parts = ["python -m squeezeprompt.studies.compression"] + ["--quick"] * args.quick
    parts += [f"{flag} {value}" for flag, value in flags.items() if value]
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the study; returns the exit code (2: bad input, as the ``squeezeprompt`` CLI).

    Example: see the module docstring.
    """
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    out = args.out or Path("runs/compression-quick" if args.quick else "runs/compression")
    results_dir = args.results or (out / "results" if args.quick else Path("docs/results"))
    by_key = {r.key: r for r in study_rows(settings.group_size)}
    # Rows run in the order given (the table keeps its own): cheap or key rows first.
    rows = [by_key[k] for k in dict.fromkeys(args.rows or by_key)]
    command = reproducing_command(args)

    def write(skipped: dict[str, str]) -> list[Path]:
        return write_results(collect(settings, out), settings, skipped, results_dir, command)

    if args.report_only:
        print("wrote " + ", ".join(str(p) for p in write({})))
        return 0
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    for name in ("squeezeprompt.pipeline", LOG.name):
        logging.getLogger(name).addHandler(handler)
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        # Written after every run, so a stopped study still leaves its finished rows.
        skipped = run_rows(rows, settings, out, not args.no_progress, after_each=write)
    except (RecipeError, FileExistsError) as e:
        print(f"compression study: error: {e}", file=sys.stderr)
        return 2
    finally:
        for name in ("squeezeprompt.pipeline", LOG.name):
            logging.getLogger(name).removeHandler(handler)
    print("wrote " + ", ".join(str(p) for p in write(skipped)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
