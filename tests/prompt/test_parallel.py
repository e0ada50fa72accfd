"""Two gloo ranks on loopback score candidates in shards and find what one process finds."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from squeezeprompt.data.tasks import Example
from squeezeprompt.prompt import PromptCandidate, SearchConfig, Strategy, search
from squeezeprompt.prompt.parallel import ShardedScorer, shard_bounds

from .prompt_toys import LIBRARY, ToyScorer, ToyTask, toy_proposer

WORLD = 2
TIME_LIMIT_S = 90


class ExampleDependentScorer(ToyScorer):
    """Per-example scores that differ by example, so a mis-ordered gather shows."""

    def __call__(self, c: PromptCandidate, examples: list[Example]) -> list[float]:
        self.seen += [e.text for e in examples]
        q = self.quality(c)
        return [q * (1 + int(e.text.split()[1]) % 3) / 3 for e in examples]


def _search(scorer) -> dict:
    config = SearchConfig(strategy=Strategy.EVOLUTION, max_demos=2, demo_pool=8, patience=4)
    result = search(ToyTask(), scorer, 3_000, random.Random(7), config, toy_proposer(), LIBRARY)
    probe = PromptCandidate("I3", (2,))
    return {"result": result.to_dict(), "probe": list(scorer(probe, list(ToyTask().dev)))}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    try:
        inner = ExampleDependentScorer()
        sharded = ShardedScorer(inner)
        found = _search(sharded)
        found["seen"] = inner.seen
        found["local_calls"] = sharded.local_calls
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(found))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_bounds_cover_everything_once() -> None:
    for n in range(12):
        for world in (1, 2, 3, 5):
            spans = [shard_bounds(n, r, world) for r in range(world)]
            assert [i for lo, hi in spans for i in range(lo, hi)] == list(range(n))
    with pytest.raises(ValueError, match="rank < world_size"):
        shard_bounds(4, 2, 2)


def test_two_ranks_match_one_process(tmp_path: Path) -> None:
    single = _search(ExampleDependentScorer())
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + TIME_LIMIT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"two-rank search did not finish in {TIME_LIMIT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                os.kill(p.pid, 9)
    ranks = [json.loads(Path(tmp_path, f"rank{r}.json").read_text()) for r in range(WORLD)]
    for found in ranks:
        assert found["result"] == single["result"]
        assert found["probe"] == single["probe"]
    # Each rank scored only its own half of every candidate's dev examples.
    total = single["result"]["calls_used"] + len(ToyTask().dev)  # + the probe
    assert [r["local_calls"] for r in ranks] == [total // 2, total // 2]
    dev = [e.text for e in ToyTask().dev]
    assert set(ranks[0]["seen"]) == set(dev[:5]) and set(ranks[1]["seen"]) == set(dev[5:])
