"""Layers are safe to call from several threads at once: each thread's results equal
the serial ones bit for bit (the kernels keep no shared mutable state)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from squeezeprompt.nn import (
    Int4WeightOnlyLinear,
    Int8DynamicLinear,
    Int8WeightOnlyLinear,
    Sparse24Linear,
)

THREADS = 4
CALLS_PER_THREAD = 8

LAYERS = {
    "int8": lambda lin: Int8WeightOnlyLinear.from_linear(lin),
    "int4": lambda lin: Int4WeightOnlyLinear.from_linear(lin, group_size=32),
    "w8a8": lambda lin: Int8DynamicLinear.from_linear(lin),
    "2:4": lambda lin: Sparse24Linear.from_linear(lin),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("rows", [1, 24])  # the streaming and the GEMM paths
def test_threads_hammering_one_layer_match_serial_results(name: str, rows: int) -> None:
    layer = LAYERS[name](torch.nn.Linear(96, 40))
    inputs = [torch.randn(rows, 96) for _ in range(THREADS * CALLS_PER_THREAD)]
    with torch.no_grad():
        serial = [layer(x) for x in inputs]

        def worker(first: int) -> list[torch.Tensor]:
            return [layer(inputs[i]) for i in range(first, len(inputs), THREADS)]

        with ThreadPoolExecutor(THREADS) as pool:
            per_thread = list(pool.map(worker, range(THREADS)))
    for t, outs in enumerate(per_thread):
        for j, out in enumerate(outs):
            assert torch.equal(out, serial[t + j * THREADS]), (name, t, j)
