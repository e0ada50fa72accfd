"""Running a recipe: validate, then a dense baseline and each stage in order, resumably.

Every stage ends with a checkpoint, the run state and its measurements written into its
own directory in one rename (see :mod:`squeezeprompt.pipeline.store`). Re-running the same
recipe into the same directory skips the finished stages and reloads the last
checkpoint; each stage and each evaluation is seeded from the recipe's seed and its
index, so a resumed run ends with the same metrics as an uninterrupted one.

Example:
    >>> from squeezeprompt.pipeline.recipe import Recipe
    >>> run(Recipe(model="no-such-model"), "out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    squeezeprompt.pipeline.errors.RecipeError: model: unknown model ...
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path
from typing import Any

import torch

from squeezeprompt import checkpoint
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.layer_measure import measure_layers
from squeezeprompt.pipeline.measure import measure_all
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.report import write_report
from squeezeprompt.pipeline.schema import to_data
from squeezeprompt.pipeline.stages.registry import adapter_for
from squeezeprompt.pipeline.stages.soft_prompt import export_soft_prompt
from squeezeprompt.pipeline.store import MODEL_DIR, STATE_FILE, RunStore, read_json
from squeezeprompt.pipeline.validate import load_and_validate

LOG = logging.getLogger("squeezeprompt.pipeline")
BASELINE = "dense"


def seed_everything(seed: int) -> None:
    """Seeds Python's and torch's generators (the pipeline's only sources of randomness).

    Example:
        >>> seed_everything(0); a = torch.rand(1); seed_everything(0); bool(torch.rand(1) == a)
        True
    """
    random.seed(seed)
    torch.manual_seed(seed)


def _attach_log(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    return handler


def _resume_point(store: RunStore, names: list[str], fps: list[str]) -> int:
    """Index of the last stage finished with matching settings, all before it too (-1: none)."""
    last = -1
    for i, (name, fp) in enumerate(zip(names, fps, strict=True)):
        if store.finished(i, name, fp) is None:
            break
        last = i
    return last


def run(
    recipe: Recipe, out_dir: str | os.PathLike[str], progress: bool = True
) -> list[dict[str, Any]]:
    """Runs (or resumes) ``recipe`` into ``out_dir``; returns every stage's metrics.

    Raises :class:`RecipeError` (and writes nothing) when the recipe cannot run on its
    model, ``FileExistsError`` when ``out_dir`` holds something else.
    """
    store = RunStore(out_dir)
    model, tokenizer, source = load_and_validate(recipe)
    store.check_usable()
    # -- validation passed: from here on the output directory is written --------------
    store.create(recipe.to_dict(), recipe.fingerprint())
    handler = _attach_log(store.root / "run.log")
    try:
        ctx = RunContext(recipe, model, tokenizer, source, LOG, progress)
        return _run_stages(ctx, store)
    finally:
        LOG.removeHandler(handler)
        handler.close()


def _run_stages(ctx: RunContext, store: RunStore) -> list[dict[str, Any]]:
    recipe = ctx.recipe
    names = [BASELINE] + [s.kind.value for s in recipe.stages]
    configs = [None, *recipe.stages]
    fps = [recipe.fingerprint(upto=i - 1) for i in range(len(names))]
    start = _resume_point(store, names, fps)
    if start > 0 and not recipe.output.checkpoints:
        LOG.info("checkpoints are off: cannot resume mid-way, starting over")
        start = -1
    removed = store.discard_from(start + 1)
    if removed:
        LOG.info("discarding unfinished or stale stages: %s", ", ".join(removed))
    LOG.info("run %s: %s, stages %s", recipe.fingerprint(), recipe.model, " -> ".join(names))
    if start >= 1:
        _restore(ctx, store, names, start)
    previous = store.finished(start, names[start], fps[start]) if start >= 0 else None
    for i in range(max(start + 1, 0), len(names)):
        t0 = time.perf_counter()
        config = configs[i]
        adapter = None if config is None else adapter_for(config)
        summary: dict[str, Any] = {}
        if config is not None and adapter is not None:
            LOG.info("stage %d (%s): %s", i, names[i], to_data(config))
            seed_everything(recipe.seed * 1000 + i)
            summary = adapter.run(ctx, config)
        if adapter is None or adapter.changes_model or previous is None:
            seed_everything(recipe.seed * 1000 + i)
            metrics = measure_all(ctx)
            if adapter is not None:  # the dense baseline has nothing to compare with
                metrics["layers"] = _layers(ctx, previous, i, names[i])
        else:
            metrics = previous["metrics"]  # same weights, same prompt: same numbers
        record = {
            "index": i,
            "stage": names[i],
            "fingerprint": fps[i],
            "config": None if config is None else to_data(config),
            "summary": summary,
            "metrics": metrics,
            "seconds": time.perf_counter() - t0,
        }
        save = None
        if adapter is not None and adapter.changes_model and recipe.output.checkpoints:
            model = ctx.model

            def save(path: Path, model: Any = model, state: dict[str, Any] = ctx.state) -> None:
                checkpoint.save(model, path)
                # A trained soft prompt also goes beside the weights as safetensors + JSON,
                # so it can be used without the run state.
                export_soft_prompt(state, path.parent)

        store.write_stage(i, names[i], record, ctx.state, save)
        previous = record
        LOG.info(
            "stage %d (%s) done in %.1f s: %s", i, names[i], record["seconds"], _brief(metrics)
        )
    all_metrics = store.all_metrics()
    write_report(store.root, all_metrics, plots=recipe.output.plots)
    LOG.info("report written to %s", store.root / "report.md")
    return all_metrics


def _layers(ctx: RunContext, previous: dict[str, Any] | None, i: int, name: str) -> Any:
    t0 = time.perf_counter()
    before = None if previous is None else previous["metrics"].get("layers")
    layers = measure_layers(ctx, before)
    how = "same weights as before" if layers is before else f"{len(layers['rows'])} layers"
    LOG.info("stage %d (%s): per-layer loss (%s) in %.1f s", i, name, how, time.perf_counter() - t0)
    return layers


def _restore(ctx: RunContext, store: RunStore, names: list[str], last: int) -> None:
    """Loads the newest checkpoint at or before stage ``last`` and that stage's run state."""
    ctx.state = read_json(store.stage_path(last, names[last]) / STATE_FILE)
    for i in range(last, 0, -1):
        model_dir = store.stage_path(i, names[i]) / MODEL_DIR
        if model_dir.is_dir():
            LOG.info("resuming after %s", store.stage_path(last, names[last]).name)
            ctx.model = checkpoint.load(model_dir, model=lambda: ctx.source()[0]).eval()
            return
    LOG.info(
        "resuming after %s (no stage changed the weights)", store.stage_path(last, names[last]).name
    )


def _brief(metrics: dict[str, Any]) -> str:
    parts = [f"{metrics['size']['bytes'] / 1e6:.2f} MB"]
    if "perplexity" in metrics:
        parts.append(f"ppl {metrics['perplexity']['perplexity']:.3f}")
    if "accuracy" in metrics:
        parts.append(f"acc {metrics['accuracy']['accuracy']:.3f}")
    if "decode" in metrics:
        parts.append(f"{metrics['decode']['tokens_per_s']:.1f} tok/s")
    return ", ".join(parts)
