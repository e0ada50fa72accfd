"""The short learning-rate sweep behind the recover stage's per-method defaults.

    python -m squeezeprompt.studies.recovery_sweep --start int4-rtn --method lora \\
        --lrs 3e-4 1e-3 3e-3 --steps 20

builds one start point in memory (the compression stages of the recovery study's
recipe, run through their pipeline adapters), then for each learning rate trains a
fresh copy with the recover stage's own method and loop, and every ``--eval-every``
steps measures the distillation loss on HELD-BACK calibration windows: the last
windows of the calibration stream, past every window the training draws from (see
:func:`heldback_batches`), and never the perplexity hold-out. One JSON line per
evaluation goes to stdout; ``--summarize LOG...`` prints those lines of one or more
logs as a Markdown table per start point and method (the lowest loss at the last
step marked), e.g. ``docs/results/recovery_sweep.md``.

Example:
    >>> build_parser().parse_args(["--start", "int4-rtn", "--method", "qat"]).lrs
    [0.0001, 0.0003, 0.001]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from squeezeprompt.evaluate import token_windows
from squeezeprompt.pipeline.context import POOL_FACTOR, RunContext
from squeezeprompt.pipeline.runner import LOG, seed_everything
from squeezeprompt.pipeline.stage_configs import RecoverConfig, RecoverMethod
from squeezeprompt.pipeline.stages.recover import METHODS, resolved, training_batches
from squeezeprompt.pipeline.stages.registry import adapter_for
from squeezeprompt.pipeline.validate import load_and_validate
from squeezeprompt.recover.distill import distill_loss_fn
from squeezeprompt.recover.train import TrainConfig, train
from squeezeprompt.studies.compression_rows import row_by_key
from squeezeprompt.studies.recovery_rows import SETTINGS, recovery_recipe


def heldback_batches(
    ctx: RunContext, config: RecoverConfig, windows: int
) -> list[dict[str, torch.Tensor]]:
    """The last ``windows`` calibration windows of ``config.seq_len`` tokens, batched.

    The recover stage draws its training windows from the first ``POOL_FACTOR * steps *
    batch_size`` windows of the same stream, so these are disjoint from them whenever
    the stream is long enough (checked).

    Example: see :func:`sweep`.
    """
    stream = token_windows(ctx.tokenizer, ctx.wikipedia.calibration, config.seq_len, None)
    pool = POOL_FACTOR * config.steps * config.batch_size
    if stream.shape[0] - windows < pool:
        raise ValueError(
            f"calibration holds {stream.shape[0]} windows: too few to keep {windows} "
            f"apart from a training pool of {pool}"
        )
    tail = stream[-windows:]
    b = config.batch_size
    return [{"input_ids": tail[i : i + b]} for i in range(0, windows, b)]


def _heldback_loss(ctx: RunContext, batches: list[dict[str, torch.Tensor]], t: float) -> float:
    loss_fn = distill_loss_fn(ctx.teacher, t)
    was = ctx.model.training
    ctx.model.eval()
    with torch.no_grad():
        total = sum(loss_fn(ctx.model, b).item() for b in batches)
    ctx.model.train(was)
    return total / len(batches)


def sweep(
    start: str,
    method: RecoverMethod,
    lrs: Sequence[float],
    steps: int,
    eval_every: int,
    windows: int = 16,
) -> None:
    """Prints one JSON line per (lr, step) with the held-back distillation loss.

    Example:
        >>> sweep("int4-rtn", RecoverMethod.LORA, [1e-3], 20, 10)  # doctest: +SKIP
        {"start": "int4-rtn", "method": "lora", "lr": 0.001, "step": 0, ...}
    """
    config = resolved(RecoverConfig(method=method, steps=steps, lr=lrs[0]))
    recipe = recovery_recipe(row_by_key(start, SETTINGS.group_size), config)
    model, tokenizer, source = load_and_validate(recipe)
    ctx = RunContext(recipe, model, tokenizer, source, LOG, progress=False)
    for i, stage in enumerate(recipe.stages[:-1], start=1):
        seed_everything(recipe.seed * 1000 + i)
        adapter = adapter_for(stage)
        assert adapter is not None
        adapter.run(ctx, stage)
    compressed = copy.deepcopy(ctx.model)
    heldback = heldback_batches(ctx, config, windows)
    for lr in lrs:
        config = replace(config, lr=lr)
        ctx.recipe = replace(recipe, stages=(*recipe.stages[:-1], config))
        ctx.model = copy.deepcopy(compressed)
        seed_everything(recipe.seed * 1000 + len(recipe.stages))
        # Step 0 is the same model for every lr: measured once.
        _train_one(ctx, config, heldback, eval_every, start, baseline=lr == lrs[0])


def _train_one(
    ctx: RunContext,
    config: RecoverConfig,
    heldback: list[dict[str, torch.Tensor]],
    eval_every: int,
    start: str,
    baseline: bool = True,
) -> None:
    """The recover stage's training of ``ctx.model``, measured every ``eval_every`` steps."""
    assert config.steps is not None and config.lr is not None and config.schedule is not None
    method = METHODS[config.method]
    batches = training_batches(ctx, config)
    method.prepare(ctx, config)
    t0 = time.perf_counter()
    done = 0

    def report() -> None:
        row = {
            "start": start,
            "method": config.method.value,
            "lr": config.lr,
            "step": done,
            "heldback_loss": round(_heldback_loss(ctx, heldback, config.temperature), 5),
            "train_s": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(row), flush=True)

    def after_step() -> None:
        nonlocal done
        done += 1
        if method.after_step is not None:
            method.after_step(ctx.model)
        if done % eval_every == 0 or done == config.steps:
            report()

    if baseline:
        report()
    train(
        ctx.model,
        distill_loss_fn(ctx.teacher, config.temperature),
        batches,
        TrainConfig(steps=config.steps, lr=config.lr, schedule=config.schedule, progress=False),
        lr_scale=method.lr_scale,
        after_step=after_step,
    )


def summarize(lines: Iterable[str]) -> str:
    """Markdown tables of the sweep's JSON lines (other lines are ignored).

    Example:
        >>> rows = [{"start": "s", "method": "qat", "lr": lr, "step": n, "heldback_loss": x}
        ...         for lr, n, x in [(1e-4, 0, 0.5), (1e-4, 10, 0.4), (1e-3, 10, 0.3)]]
        >>> print(summarize(json.dumps(r) for r in rows))
        ### qat from s
        <BLANKLINE>
        | lr | step 0 | step 10 |
        |---|---|---|
        | 0.0001 | 0.5000 | 0.4000 |
        | 0.001 | 0.5000 | **0.3000** |
        <BLANKLINE>
    """
    runs: dict[tuple[str, str], dict[float, dict[int, float]]] = {}
    for line in lines:
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        by_lr = runs.setdefault((r["start"], r["method"]), {})
        by_lr.setdefault(r["lr"], {})[r["step"]] = r["heldback_loss"]
    out = []
    for (start, method), by_lr in runs.items():
        # Step 0 is measured once (the same model for every lr).
        first = {s: x for losses in by_lr.values() for s, x in losses.items() if s == 0}
        steps = sorted({s for losses in by_lr.values() for s in losses})
        last = steps[-1]
        best = min(losses.get(last, float("inf")) for losses in by_lr.values())
        out += [f"### {method} from {start}", ""]
        out += ["| lr | " + " | ".join(f"step {s}" for s in steps) + " |"]
        out += ["|" + "---|" * (len(steps) + 1)]
        for lr in sorted(by_lr):
            losses = {**first, **by_lr[lr]}
            cells = []
            for s in steps:
                x = losses.get(s)
                text = "–" if x is None else f"{x:.4f}"
                cells.append(f"**{text}**" if s == last and x == best else text)
            out.append(f"| {lr:g} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring).

    Example: see the module docstring.
    """
    p = argparse.ArgumentParser(prog="python -m squeezeprompt.studies.recovery_sweep")
    p.add_argument("--start", help="compression study row key, e.g. int4-rtn")
    p.add_argument("--method", choices=[m.value for m in RecoverMethod])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=10)
    p.add_argument("--windows", type=int, default=16, help="held-back windows")
    p.add_argument("--summarize", type=Path, nargs="+", help="print tables of these logs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one sweep; returns the exit code.

    Example: see the module docstring.
    """
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.summarize:
        lines = [x for path in a.summarize for x in path.read_text().splitlines()]
        print(summarize(lines))
        return 0
    if a.start is None or a.method is None:
        parser.error("--start and --method are required (unless --summarize)")
    torch.set_num_threads(1)
    sweep(a.start, RecoverMethod(a.method), a.lrs, a.steps, a.eval_every, a.windows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
