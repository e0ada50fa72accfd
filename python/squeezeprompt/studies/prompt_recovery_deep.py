"""Choosing a deep prompt's size, learning rate and steps on dev (never test).

Trains a ``PrefixPrompt`` on the study's compressed model (``--out/compressed``, made
by ``prompt_recovery``) against the labels of train reviews, the default prompt on
top, and scores the first ``--dev`` dev reviews every ``--eval-every`` steps: label
cross-entropy, accuracy, and the share answered "positive". One JSON line per run is
appended to ``--out/deep_sweep.jsonl``; the study's table reads it for its "what was
tried" section.

Example:
    python -m squeezeprompt.studies.prompt_recovery_deep --out runs/prompt --threads 1 \\
        --tokens 8 --lr 3e-3 --steps 80 --eval-every 20
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from squeezeprompt.prompt.prefix import PrefixPrompt

LOG = logging.getLogger("squeezeprompt.studies.prompt_recovery_deep")


def dev_figures(
    model: Any, tokenizer: Any, task: Any, deep: PrefixPrompt | None, n: int
) -> dict[str, float]:
    """Label cross-entropy, accuracy and share predicted "positive" on ``task.dev[:n]``.

    Example (needs a model):
        >>> dev_figures(model, tok, task, None, 128)["accuracy"]  # doctest: +SKIP
        0.594
    """
    from squeezeprompt.evaluate import default_prompt, score_examples

    examples = task.dev[:n]
    state = None if deep is None else deep.state(model)
    scores = score_examples(
        model, tokenizer, default_prompt(task), examples, task.label_words, deep_prompt=state
    )
    labels = torch.tensor([ex.label for ex in examples])
    positive = task.label_words.index("positive")
    return {
        "ce": F.cross_entropy(scores.log_probs, labels).item(),
        "accuracy": sum(scores.correct(examples)) / len(examples),
        "positive": sum(p == positive for p in scores.predictions) / len(examples),
    }


def run(ctx: Any, args: argparse.Namespace) -> dict[str, Any]:
    """One training run with periodic dev figures (see the module docstring)."""
    from squeezeprompt.evaluate import default_prompt
    from squeezeprompt.pipeline.stages.soft_prompt import LABEL_BATCH
    from squeezeprompt.prompt import SoftTrainConfig, init_token_ids, label_batches
    from squeezeprompt.prompt.soft_train import train_soft_prompt
    from squeezeprompt.recover.train import LrSchedule

    task, model = ctx.task, ctx.model
    rng = random.Random(args.seed)
    ids = init_token_ids(ctx.tokenizer, task.default_instruction)
    deep = PrefixPrompt.from_token_ids(model, ids, args.tokens)
    scale = {
        "key_rms": deep.keys.detach().pow(2).mean().sqrt().item(),
        "value_rms": deep.values.detach().pow(2).mean().sqrt().item(),
    }
    LOG.info("deep prompt %s, %d numbers, %s", list(deep.keys.shape), deep.numel(), scale)
    examples = rng.sample(list(task.train), min(len(task.train), args.steps * LABEL_BATCH))
    prompt = default_prompt(task)
    batches = label_batches(ctx.tokenizer, prompt, examples, task.label_words, LABEL_BATCH, rng)
    curve: list[dict[str, Any]] = [
        {"step": 0, **dev_figures(model, ctx.tokenizer, task, deep, args.dev)}
    ]
    LOG.info("%s", curve[-1])
    start = time.perf_counter()

    def on_step(step: int, loss: float) -> None:
        if step % args.eval_every == 0 or step == args.steps:
            figures = dev_figures(model, ctx.tokenizer, task, deep, args.dev)
            curve.append({"step": step, "train_loss": loss, **figures})
            LOG.info("%s", curve[-1])

    config = SoftTrainConfig(steps=args.steps, lr=args.lr, schedule=LrSchedule(args.schedule))
    result = train_soft_prompt(model, deep, batches, config, on_step=on_step)
    record = {
        "tokens": args.tokens,
        "lr": args.lr,
        "schedule": args.schedule,
        "steps": args.steps,
        "batch": LABEL_BATCH,
        "seed": args.seed,
        "dev": args.dev,
        "init_scale": scale,
        "curve": curve,
        "train_losses": list(result.losses),
        "minutes": (time.perf_counter() - start) / 60,
    }
    if args.save:
        name = f"p{args.tokens}_lr{args.lr:g}_{args.schedule}_s{args.steps}"
        deep.save(args.out / "deep_sweep" / name)
    return record


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    from squeezeprompt.pipeline.context import RunContext
    from squeezeprompt.pipeline.validate import load_and_validate
    from squeezeprompt.studies.prompt_recovery import _compressed, study_recipe

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/prompt"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--dev", type=int, default=128, help="first dev reviews scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", action="store_true", help="also score without a prompt")
    parser.add_argument("--save", action="store_true", help="keep the trained deep prompt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = study_recipe()
    model, tokenizer, source = load_and_validate(recipe)
    ctx = RunContext(recipe, model.eval(), tokenizer, source, LOG, progress=False)
    _compressed(ctx, args.out)
    if args.baseline:
        LOG.info("no deep prompt: %s", dev_figures(ctx.model, tokenizer, ctx.task, None, args.dev))
    record = run(ctx, args)
    with (args.out / "deep_sweep.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
