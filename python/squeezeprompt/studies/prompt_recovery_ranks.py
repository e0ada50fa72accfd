"""The prompt study's search on the compressed model, sharded over ``torchrun`` ranks.

Every rank runs the same seeded search; ``ShardedScorer`` splits each candidate's dev
examples across the ranks and gathers the scores, so the winner must be the one a
single process finds. Run it both ways and compare the JSON files it writes:

    python -m squeezeprompt.studies.prompt_recovery_ranks --out runs/prompt/ranks1
    torchrun --nproc-per-node 2 -m squeezeprompt.studies.prompt_recovery_ranks \\
        --out runs/prompt/ranks2

The compressed model is the study's cached checkpoint (``--study`` directory; run
``squeezeprompt.studies.prompt_recovery`` first). Torch runs on one thread per rank.

Example:
    python -m squeezeprompt.studies.prompt_recovery_ranks --budget 256 --dev-size 32
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from pathlib import Path

import torch
import torch.distributed as dist

from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.validate import load_and_validate
from squeezeprompt.prompt import SearchConfig, ShardedScorer, TaskScorer, init_from_env, search
from squeezeprompt.studies.prompt_recovery import LOG, _compressed, study_recipe


def main(argv: list[str] | None = None) -> int:
    """Command line; writes ``--out/rank<r>.json`` (winner, dev score, calls, minutes)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", type=Path, default=Path("runs/prompt"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=256, help="scored dev examples")
    parser.add_argument("--dev-size", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    distributed = init_from_env()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    recipe = study_recipe(budget=args.budget, dev_size=args.dev_size, soft_tokens=0)
    model, tokenizer, source = load_and_validate(recipe)
    ctx = RunContext(recipe, model.eval(), tokenizer, source, LOG, progress=False)
    _compressed(ctx, args.study)
    prompt_config = recipe.stages[3]
    config = SearchConfig(
        strategy=prompt_config.search,
        max_demos=prompt_config.demos,
        demo_pool=max(prompt_config.demos, 16),  # as the prompt stage builds it
        dev_size=prompt_config.dev_size,
        instructions=prompt_config.candidates,
    )
    scorer = ShardedScorer(TaskScorer(ctx.model, ctx.tokenizer, ctx.task))
    start = time.perf_counter()
    result = search(ctx.task, scorer, args.budget, random.Random(recipe.seed), config=config)
    minutes = (time.perf_counter() - start) / 60
    summary = result.to_dict()
    summary.update(world_size=world, rank=rank, local_calls=scorer.local_calls, minutes=minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"rank{rank}.json").write_text(json.dumps(summary, indent=2) + "\n")
    LOG.info(
        "rank %d/%d: best %s (dev %.3f), %.1f min",
        rank,
        world,
        summary["best"],
        result.score,
        minutes,
    )
    if distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
