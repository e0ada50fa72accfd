"""End-to-end throughput of SmolLM2-135M-Instruct under each compression config.

Decode tokens/s (one token at a time with the KV cache, batch 1) and prefill tokens/s
(one 128-token forward) for every config, each reported with its ratio to the fp32
model measured in the same run, plus the model's bytes. The configs in
:data:`COMPILED` are also decoded through ``torch.compile(model.forward, dynamic=True)``
(ratio to the compiled fp32 model): eager decode of a 135M model spends about half its
time in the Python and dispatch of some 2,400 small ops a token, which compilation
fuses away, so the compiled ratio is the one that shows the kernels. Run with

    pytest bench/bench_models.py --benchmark-only -s

(``-s`` prints the summary table). Threads follow ``torch.get_num_threads()``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from squeezeprompt import models
from squeezeprompt.models.presets import PRESETS

DECODE_TOKENS = 16
PREFILL_TOKENS = 128
# Compiling takes 1-2 minutes a model on 2 cores: only the int4 family and its baseline.
COMPILED = ("fp32", "int4_g128", "int4_g128+head", "w4a8+head", "w4a8+head4")


# fp32 first: every other config is reported as a ratio to it. Then bf16, then the
# other presets in their order (a key repeated in **PRESETS keeps its first place).
CONFIGS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "fp32": lambda m: m,
    "bf16": PRESETS["bf16"],
    **PRESETS,
}


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's saved state, tied tensors counted once."""
    seen: set[int] = set()
    total = 0
    for t in model.state_dict().values():
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
    return total


class Results:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}

    def add(self, config: str, key: str, value: float) -> None:
        self.rows.setdefault(config, {})[key] = value

    def table(self) -> str:
        base = self.rows.get("fp32", {})
        lines = [
            f"threads={torch.get_num_threads()}",
            "| config | MB | decode tok/s | x fp32 | prefill tok/s | x fp32 "
            "| compiled decode tok/s | x fp32 |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, r in self.rows.items():
            cells = [name, f"{r.get('bytes', 0) / 1e6:.1f}"]
            for key in ("decode", "prefill", "decode_compiled"):
                v, b = r.get(key), base.get(key)
                cells += [f"{v:.1f}" if v else "-", f"{v / b:.2f}" if v and b else "-"]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@pytest.fixture(scope="module")
def results():
    r = Results()
    yield r
    print("\n" + r.table())


@pytest.fixture(scope="module")
def base() -> nn.Module:
    model, _ = models.load("smollm2-135m-instruct")
    return model


_built: dict[str, nn.Module] = {}


def _model(base: nn.Module, name: str) -> nn.Module:
    # Keep one compressed copy at a time: the 2:4 conversions are not cheap.
    if name not in _built:
        _built.clear()
        _built[name] = CONFIGS[name](copy.deepcopy(base)).eval()
    return _built[name]


def _decode(model: nn.Module, ids: torch.Tensor, step: Callable[..., Any] | None = None) -> float:
    """Seconds for DECODE_TOKENS greedy steps after a prefill of ``ids`` (prefill not timed).

    Inference mode, as a server would run it: it also skips the autograd bookkeeping
    that ``no_grad`` still pays on every custom-op call (about 9 µs of a 15 µs call).
    ``step`` (default: the model) runs each decode step, e.g. a compiled forward.
    """
    step = model if step is None else step
    with torch.inference_mode():
        out = model(ids, use_cache=True)
        past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(DECODE_TOKENS):
            out = step(input_ids=tok, past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[:, -1:].argmax(-1)
        return time.perf_counter() - start


def _bench_decode(
    benchmark, model: nn.Module, results: Results, name: str, compiled: bool = False
) -> None:
    ids = torch.randint(0, 1000, (1, 16), generator=torch.Generator().manual_seed(0))
    step = torch.compile(model.forward, dynamic=True) if compiled else None
    _decode(model, ids, step)  # warm-up (and, compiled, the compilation)
    times: list[float] = []
    benchmark.pedantic(lambda: times.append(_decode(model, ids, step)), rounds=3, iterations=1)
    tps = DECODE_TOKENS / min(times)
    key = "decode_compiled" if compiled else "decode"
    results.add(name, key, tps)
    results.add(name, "bytes", model_bytes(model))
    benchmark.extra_info.update({f"{key}_tokens_per_s": tps, "model_bytes": model_bytes(model)})


def _bench_prefill(benchmark, model: nn.Module, results: Results, name: str) -> None:
    ids = torch.randint(0, 1000, (1, PREFILL_TOKENS), generator=torch.Generator().manual_seed(0))

    def run() -> None:
        with torch.inference_mode():
            model(ids, use_cache=False)

    run()  # warm-up
    benchmark.pedantic(run, rounds=3, iterations=1)
    tps = PREFILL_TOKENS / benchmark.stats.stats.min
    results.add(name, "prefill", tps)
    benchmark.extra_info.update(prefill_tokens_per_s=tps)


# Config-major order, so each compressed model is built once for both measurements.
PHASES = [
    (n, p)
    for n in CONFIGS
    for p in ("decode", "prefill", "decode_compiled")
    if p != "decode_compiled" or n in COMPILED
]


@pytest.mark.parametrize(("name", "phase"), PHASES)
def test_model_throughput(benchmark, base, results, name: str, phase: str) -> None:
    model = _model(base, name)
    if phase == "prefill":
        _bench_prefill(benchmark, model, results, name)
    else:
        _bench_decode(benchmark, model, results, name, compiled=phase == "decode_compiled")
