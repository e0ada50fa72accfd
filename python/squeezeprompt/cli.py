"""``squeezeprompt demo | run RECIPE | eval MODEL_DIR | layers MODEL_DIR | bench``.

Exit codes: 0 success; 2 bad input (a recipe that cannot run, a missing file, an
output directory holding something else), with a one-line message; 1 a failure during
the work; 130 interrupted (re-run the same command to resume).

Example (the message goes to stderr):
    >>> main(["run", "no-such-recipe.yaml", "--out", "out"])
    2
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
LOG = logging.getLogger("squeezeprompt.pipeline")


class BadInput(Exception):
    """Input the user must fix (maps to exit code 2)."""


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from squeezeprompt.analysis import ArchitectureMismatch
    from squeezeprompt.checkpoint import CheckpointError
    from squeezeprompt.pipeline.errors import RecipeError

    return (
        BadInput,
        RecipeError,
        FileNotFoundError,
        FileExistsError,
        CheckpointError,
        ArchitectureMismatch,
    )


# -- commands ---------------------------------------------------------------------------


def _run_recipe(recipe: Any, out: Path, progress: bool) -> int:
    from squeezeprompt.pipeline.report import LAYER_HEADING
    from squeezeprompt.pipeline.runner import run

    metrics = run(recipe, out, progress=progress)
    report = (out / "report.md").read_text(encoding="utf-8")
    # The per-layer tables run to hundreds of lines: the terminal gets the stage table.
    summary, layers, _ = report.partition(LAYER_HEADING)
    print(summary.rstrip("\n"))
    if layers:
        print(f"\nper-layer loss of every stage that changed the weights: {out / 'report.md'}")
    print(f"wrote {len(metrics)} stages and the report to {out}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from squeezeprompt.pipeline.defaults import default_recipe

    return _run_recipe(default_recipe(args.model), Path(args.out), not args.no_progress)


def cmd_run(args: argparse.Namespace) -> int:
    from squeezeprompt.pipeline.recipe import Recipe

    recipe = Recipe.from_file(args.recipe)
    out = (
        Path(args.out)
        if args.out
        else Path(args.recipe).with_suffix("").with_name(Path(args.recipe).stem + "-out")
    )
    return _run_recipe(recipe, out, not args.no_progress)


def _stage_dir_info(model_dir: Path) -> tuple[Path, dict[str, Any], str | None, int]:
    """(checkpoint dir, run state, model name and seed from the run's recipe if found).

    The seed matters: it fixes the task splits, so the state's demonstration indices
    and the test examples mean what they meant during the run.
    """
    from squeezeprompt.checkpoint import MANIFEST_NAME
    from squeezeprompt.pipeline.store import MODEL_DIR, RECIPE_FILE, STATE_FILE, read_json

    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    ckpt = model_dir / MODEL_DIR if (model_dir / MODEL_DIR).is_dir() else model_dir
    if not (ckpt / MANIFEST_NAME).is_file():
        raise BadInput(f"{model_dir} holds no checkpoint ({MANIFEST_NAME} not found)")
    state_file = model_dir / STATE_FILE
    state = read_json(state_file) if state_file.is_file() else {}
    recipe_file = model_dir.parent.parent / RECIPE_FILE
    recorded = read_json(recipe_file)["recipe"] if recipe_file.is_file() else {}
    return ckpt, state, recorded.get("model"), int(recorded.get("seed", 0))


def cmd_eval(args: argparse.Namespace) -> int:
    from squeezeprompt import checkpoint
    from squeezeprompt.pipeline.context import RunContext
    from squeezeprompt.pipeline.measure import measure_all
    from squeezeprompt.pipeline.recipe import EvaluateConfig, Recipe
    from squeezeprompt.pipeline.validate import resolve_source

    ckpt, state, recorded, seed = _stage_dir_info(Path(args.model_dir))
    name = args.model or recorded
    if name is None:
        raise BadInput("cannot tell which model this checkpoint came from; pass --model NAME")
    evaluate = EvaluateConfig(
        task=args.task,
        test_examples=args.examples,
        perplexity_tokens=args.perplexity_tokens,
        seq_len=args.seq_len,
        decode_tokens=args.decode_tokens,
    )
    recipe = Recipe(model=name, evaluate=evaluate, seed=seed)
    source = resolve_source(recipe)
    _, tokenizer = source()
    model = checkpoint.load(ckpt, model=lambda: source()[0]).eval()
    ctx = RunContext(recipe, model, tokenizer, source, LOG, not args.no_progress, state)
    print(json.dumps(measure_all(ctx), indent=2))
    return EXIT_OK


def _load_dense(spec: str | None, name: str) -> Any:
    """The dense reference: a checkpoint directory, a model name, or (None) ``name``."""
    from squeezeprompt import checkpoint
    from squeezeprompt.pipeline.recipe import Recipe
    from squeezeprompt.pipeline.validate import resolve_source

    if spec is not None and Path(spec).is_dir():
        ckpt, _, _, _ = _stage_dir_info(Path(spec))
        source = resolve_source(Recipe(model=name))
        return checkpoint.load(ckpt, model=lambda: source()[0]).eval()
    return resolve_source(Recipe(model=spec or name))()[0].eval()


def cmd_layers(args: argparse.Namespace) -> int:
    import dataclasses

    from squeezeprompt import checkpoint
    from squeezeprompt.analysis import (
        layer_loss_png,
        layer_losses,
        single_layer_kl,
        to_markdown,
        worst,
    )
    from squeezeprompt.data import load_wikipedia
    from squeezeprompt.evaluate import token_windows
    from squeezeprompt.pipeline.recipe import Recipe
    from squeezeprompt.pipeline.store import write_bytes_atomic, write_json_atomic
    from squeezeprompt.pipeline.validate import resolve_source

    if args.samples <= 0 or args.seq_len < 2 or args.top <= 0:
        raise BadInput("--samples and --top must be > 0 and --seq-len >= 2")
    model_dir = Path(args.model_dir)
    ckpt, _, recorded, _ = _stage_dir_info(model_dir)
    name = args.model or recorded
    if name is None:
        raise BadInput("cannot tell which model this checkpoint came from; pass --model NAME")
    source = resolve_source(Recipe(model=name))
    dense, tokenizer = source()
    compressed = checkpoint.load(ckpt, model=lambda: source()[0]).eval()
    if args.dense is not None:
        dense = _load_dense(args.dense, name)
    # The first windows of the calibration articles (never the perplexity hold-out).
    text = load_wikipedia().calibration
    windows = token_windows(tokenizer, text, args.seq_len, args.samples * args.seq_len)
    batches = [windows[i : i + 1] for i in range(windows.shape[0])]
    t0 = time.perf_counter()
    rows = layer_losses(compressed, dense.eval(), batches, progress=not args.no_progress)
    LOG.info("per-layer loss of %d layers in %.1f s", len(rows), time.perf_counter() - t0)
    if args.kl:
        t0 = time.perf_counter()
        kl = single_layer_kl(compressed, dense, batches, progress=not args.no_progress)
        rows = [dataclasses.replace(r, kl=kl[r.name]) for r in rows]
        LOG.info("single-layer KL of %d layers in %.1f s", len(rows), time.perf_counter() - t0)
    measure = "single-layer KL" if args.kl else "error share"
    print(f"The {min(args.top, len(rows))} layers with the largest {measure}:\n")
    print(to_markdown(worst(rows, args.top)), end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "layers.json", [r.to_dict() for r in rows])
        write_bytes_atomic(out / "layers.md", to_markdown(rows).encode())
        title = f"per-layer loss: {model_dir.name}"
        write_bytes_atomic(out / "layer_loss.png", layer_loss_png(rows, title))
        print(f"wrote layers.json, layers.md and layer_loss.png to {out}")
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from squeezeprompt.pipeline.context import RunContext
    from squeezeprompt.pipeline.measure import MEASURES
    from squeezeprompt.pipeline.recipe import EvaluateConfig, Recipe
    from squeezeprompt.pipeline.stage_configs import QuantizeConfig
    from squeezeprompt.pipeline.stages.quantize import QuantizeStage
    from squeezeprompt.pipeline.validate import load_and_validate

    quant = QuantizeConfig(group_size=args.group_size)
    recipe = Recipe(
        model=args.model, stages=(quant,), evaluate=EvaluateConfig(decode_tokens=args.tokens)
    )
    model, tokenizer, source = load_and_validate(recipe)
    ctx = RunContext(recipe, model, tokenizer, source, LOG, progress=False)
    rows = [("fp32", MEASURES["decode"](ctx), MEASURES["size"](ctx))]
    t0 = time.perf_counter()
    QuantizeStage().run(ctx, quant)
    LOG.info("quantized in %.1f s", time.perf_counter() - t0)
    rows.append((f"int4 g{args.group_size} rtn", MEASURES["decode"](ctx), MEASURES["size"](ctx)))
    base = rows[0][1]["tokens_per_s"]
    print("| model | MB | bits/weight | decode tokens/s | speed-up |\n|---|---|---|---|---|")
    for label, decode, size in rows:
        print(
            f"| {label} | {size['bytes'] / 1e6:.1f} | {size['bits_per_weight']:.2f} "
            f"| {decode['tokens_per_s']:.1f} | {decode['tokens_per_s'] / base:.2f}× |"
        )
    return EXIT_OK


# -- argument parsing -------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``squeezeprompt`` argument parser (one sub-command per task).

    Example:
        >>> build_parser().parse_args(["run", "r.yaml", "--out", "o"]).out
        'o'
    """
    from squeezeprompt.pipeline.defaults import DEMO_MODEL

    parser = argparse.ArgumentParser(
        prog="squeezeprompt",
        description="Compress a language model (prune, quantize), win accuracy back "
        "(distillation, prompt search) and report size, perplexity, accuracy and speed.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    demo = sub.add_parser(
        "demo",
        help="run the built-in bounded recipe on SmolLM2-135M-Instruct",
        description="Wanda 50% pruning + int4 g64 + short distillation + prompt search, "
        "evaluated on held-out Wikipedia and Rotten Tomatoes. Re-run to resume.",
    )
    demo.add_argument("--out", default="squeezeprompt-demo", help="output directory")
    demo.add_argument("--model", default=DEMO_MODEL, help="model name (default: %(default)s)")
    common(demo)
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="run a recipe (YAML or JSON); re-running the same command resumes",
        description="Validates RECIPE against the model, then runs its stages, writing a "
        "checkpoint and metrics per stage and report.{json,md} and plots/ into --out.",
    )
    run.add_argument("recipe", help="recipe file (.yaml/.yml, or .json)")
    run.add_argument("--out", help="output directory (default: RECIPE's name + '-out')")
    common(run)
    run.set_defaults(func=cmd_run)

    ev = sub.add_parser(
        "eval",
        help="measure a saved stage (size, perplexity, accuracy, decode speed) as JSON",
        description="MODEL_DIR is a stage directory of a run (stages/NN-name) or a "
        "checkpoint directory; the prompt chosen by a prompt stage is used when present.",
    )
    ev.add_argument("model_dir", help="stage or checkpoint directory")
    ev.add_argument("--model", help="source model name (default: read from the run's recipe)")
    ev.add_argument(
        "--task", default="rotten_tomatoes", help="labelled task (default: %(default)s)"
    )
    ev.add_argument(
        "--examples", type=int, default=500, help="test examples (default: %(default)s)"
    )
    ev.add_argument(
        "--perplexity-tokens", type=int, default=8192, help="held-out tokens (default: %(default)s)"
    )
    ev.add_argument(
        "--seq-len", type=int, default=256, help="perplexity window (default: %(default)s)"
    )
    ev.add_argument(
        "--decode-tokens", type=int, default=32, help="tokens timed, 0 skips (default: %(default)s)"
    )
    common(ev)
    ev.set_defaults(func=cmd_eval)

    layers = sub.add_parser(
        "layers",
        help="where accuracy was lost: per-layer SQNR and error share against the dense model",
        description="Feeds calibration text through the dense model; every Linear of the "
        "compressed model gets its dense twin's input. Reports weight SQNR, output SQNR and "
        "each layer's share of the summed relative output error, worst layers first.",
    )
    layers.add_argument("model_dir", help="stage or checkpoint directory (compressed model)")
    layers.add_argument(
        "--dense",
        help="dense reference: a model name or a checkpoint directory "
        "(default: the source model itself)",
    )
    layers.add_argument("--model", help="source model name (default: read from the run's recipe)")
    layers.add_argument("--out", help="write layers.json, layers.md and layer_loss.png here")
    layers.add_argument(
        "--samples", type=int, default=4, help="calibration sequences (default: %(default)s)"
    )
    layers.add_argument(
        "--seq-len", type=int, default=256, help="tokens per sequence (default: %(default)s)"
    )
    layers.add_argument(
        "--top", type=int, default=10, help="layers printed, worst first (default: %(default)s)"
    )
    layers.add_argument(
        "--kl",
        action="store_true",
        help="also the final-logit KL with only that layer compressed (one forward of the "
        "model per layer and sequence: use few, short sequences); ranks layers by it",
    )
    common(layers)
    layers.set_defaults(func=cmd_layers)

    bench = sub.add_parser(
        "bench",
        help="decode tokens/s of the fp32 model against int4 weight-only",
        description="Loads the model, times greedy decoding, quantizes every Linear but the "
        "head to int4 (round to nearest) and times it again, in one run.",
    )
    bench.add_argument("--model", default=DEMO_MODEL, help="model name (default: %(default)s)")
    bench.add_argument(
        "--tokens", type=int, default=64, help="tokens decoded (default: %(default)s)"
    )
    bench.add_argument(
        "--group-size", type=int, default=64, help="int4 group (default: %(default)s)"
    )
    bench.set_defaults(func=cmd_bench)
    return parser


def _console_logging() -> Callable[[], None]:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)
    return lambda: LOG.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``squeezeprompt`` command; returns the exit code.

    Example: see the module docstring.
    """
    args = build_parser().parse_args(argv)  # exits 2 on bad arguments
    detach = _console_logging()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("squeezeprompt: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _bad_input_types() as e:
        print(f"squeezeprompt: error: {_one_line(e)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as e:
        LOG.exception("failed")
        print(f"squeezeprompt: failed: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        detach()


def _one_line(e: BaseException) -> str:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return " ".join(str(text).split())


if __name__ == "__main__":
    sys.exit(main())
