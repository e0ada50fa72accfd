"""Candidate scoring sharded across ``torch.distributed`` ranks.

Every rank runs the *same* search with the same seed, so they make the same
decisions; only the expensive part, scoring a candidate on the dev examples, is
split: rank ``r`` scores a contiguous slice, and an ``all_gather`` gives every rank
the full list of per-example scores in dev order. The scores are exchanged as
float64, so the search sees exactly the numbers one process would have computed and
returns the same result. Launch with ``torchrun --nproc-per-node=N``; gloo on CPU,
nccl on GPU.

Example:
    >>> shard_bounds(10, rank=1, world_size=3)
    (4, 7)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from squeezeprompt.prompt.candidate import PromptCandidate
from squeezeprompt.prompt.scoring import CandidateScorer


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s slice of ``n`` items; sizes differ by at most one.

    Example:
        >>> [shard_bounds(5, r, 2) for r in range(2)]
        [(0, 3), (3, 5)]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"shard_bounds: expected 0 <= rank < world_size, got {rank}, {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


def init_from_env(timeout_s: float = 300.0) -> bool:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); True if distributed.

    Uses nccl when CUDA is available, gloo otherwise. A no-op when already initialised
    or when run as a single plain process.

    Example:
        >>> init_from_env() if "WORLD_SIZE" not in os.environ else True
        False
    """
    if dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return True


def _gather_device(group: Any) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class ShardedScorer:
    """Wraps a scorer so each rank scores its slice of the examples.

    Without an initialised process group (or with one rank) it just calls the scorer.
    ``local_calls`` counts the examples this rank scored itself.

    Example:
        >>> s = ShardedScorer(lambda c, xs: [float(x) for x in xs])
        >>> s(PromptCandidate("a"), [1, 2]), s.local_calls
        ([1.0, 2.0], 2)
    """

    def __init__(self, scorer: CandidateScorer, group: Any = None) -> None:
        self.scorer = scorer
        self.group = group
        self.local_calls = 0

    def __call__(self, candidate: PromptCandidate, examples: Sequence[Any]) -> list[float]:
        if not (dist.is_available() and dist.is_initialized()):
            self.local_calls += len(examples)
            return [float(v) for v in self.scorer(candidate, examples)]
        world = dist.get_world_size(self.group)
        rank = dist.get_rank(self.group)
        start, stop = shard_bounds(len(examples), rank, world)
        local = (
            [float(v) for v in self.scorer(candidate, examples[start:stop])] if stop > start else []
        )
        if len(local) != stop - start:
            raise ValueError(f"scorer returned {len(local)} scores for {stop - start} examples")
        self.local_calls += stop - start
        width = shard_bounds(len(examples), 0, world)[1]  # rank 0 holds the largest slice
        device = _gather_device(self.group)
        mine = torch.zeros(width, dtype=torch.float64, device=device)
        mine[: len(local)] = torch.tensor(local, dtype=torch.float64)
        gathered = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(gathered, mine, group=self.group)
        out: list[float] = []
        for r, part in enumerate(gathered):
            lo, hi = shard_bounds(len(examples), r, world)
            out += part[: hi - lo].cpu().tolist()
        return out
