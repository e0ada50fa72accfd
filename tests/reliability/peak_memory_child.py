"""Measures the peak memory of compressing a model, in a process of its own.

Run by ``test_peak_memory.py`` as ``python peak_memory_child.py --model tiny ...``; prints
one JSON line. After loading the model and warming every code path up once (so lazy
library initialisation is not counted), it resets the kernel's high-water mark of the
resident set (``/proc/self/clear_refs``: 5), compresses, and reports ``VmHWM - VmRSS
before``: the memory compression added on top of the loaded model, as the OS saw it
(``tracemalloc`` would miss every tensor).

Modes:
  layerwise    ``calibrate_layerwise`` + GPTQ int4 on every Linear, each swapped for an
               ``Int4WeightOnlyLinear``: what the pipeline's quantize stage does.
  all_at_once  the naive alternative: one pass of the whole model with hooks keeping
               every Linear's inputs, then GPTQ from those. Holds every block's
               activations at once; it exists to show the bound is not trivially met.

:func:`memory_bound` states what layer-by-layer calibration may add, from the model's
shape alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

MB = 1 << 20
# Allocator slack and arenas (glibc keeps freed blocks), the autograd-free forward's
# small temporaries: a fixed allowance, the same for every model.
MARGIN_BYTES = 48 * MB
# Resident bytes per live byte of the long-lived block inputs: small tensors that
# outlive the temporaries allocated between them fragment the heap. Measured 1.3 at
# the block hand-over of the tiny model (51 MB resident for 40 MB of tensors).
ALLOCATOR_FACTOR = 2
# int4 codes + a float32 scale and zero per group of 128: 4.5 bits per 32-bit weight;
# rounded up to a quarter of the float bytes.
QUANTIZED_FRACTION = 0.25

TINY_SHAPE = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
)
TINY_VOCAB = 256


@dataclass(frozen=True)
class Bound:
    """What calibrating and compressing one block at a time may add to a loaded model."""

    activations: int  # one block's input for every sample: S * T * hidden * 4 B
    block_inputs: int  # inputs + outputs of one block, with the rotary tables of each call
    transient: int  # one call through one block, its float64 statistics update, GPTQ's work
    stats: int  # float64 statistics (Hessians) of one block's Linears
    quantized: int  # the int4 layers that replace the float ones
    margin: int

    @property
    def total(self) -> int:
        return self.block_inputs + self.transient + self.stats + self.quantized + self.margin


def memory_bound(config, linear_bytes: int, samples: int, seq_len: int) -> Bound:
    """The bound for a Llama-style ``config`` with ``linear_bytes`` of float Linear weights.

    Held for the whole run: each block's inputs (hidden states, 4 B each) and the
    per-call rotary ``cos``/``sin`` (2 * head_dim) and position ids (8 B), plus the
    block's outputs while they replace the inputs: ``(2 * hidden + 2 * head_dim + 2) * 4
    B`` per token, times ``ALLOCATOR_FACTOR``. Transient, one call at a time: the
    projections and MLP of one sequence (``4 B * T * (8 * hidden + 6 * intermediate + 2
    * heads * T)``, attention scores included) and the statistics' float64 copy of it,
    and GPTQ's working set for the layer where it is largest (:func:`_gptq_work`).
    Statistics: one ``K x K`` float64 Hessian per Linear of one block (q, k, v, o, gate,
    up: hidden; down: intermediate).

    Example:
        >>> from transformers import LlamaConfig
        >>> b = memory_bound(LlamaConfig(**TINY_SHAPE), 0, samples=2, seq_len=8)
        >>> b.activations
        8192
    """
    h, inter = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    tokens = samples * seq_len
    one_call = 4 * seq_len * (8 * h + 6 * inter + 2 * heads * seq_len) + 8 * seq_len * max(h, inter)
    # (out, in) of q/k/v/o, gate/up and down: GPTQ's largest working set.
    gptq = max(_gptq_work(n, k) for n, k in ((h, h), (inter, h), (h, inter)))
    return Bound(
        activations=tokens * h * 4,
        block_inputs=ALLOCATOR_FACTOR * tokens * (2 * h + 2 * head_dim + 2) * 4,
        transient=one_call + gptq,
        stats=(6 * h * h + inter * inter) * 8,
        quantized=int(linear_bytes * QUANTIZED_FRACTION),
        margin=MARGIN_BYTES,
    )


def _gptq_work(out_features: int, in_features: int) -> int:
    """Bytes GPTQ holds for one layer (quantize/gptq.py, quantize/hessian.py): four float64
    ``[K, K]`` (damped Hessian, Cholesky factor, inverse, its factor), two float32 ones
    (the statistics' Hessian and ``U``) and four float32 ``[N, K]`` (the permuted and
    working weights, codes, the packed result's staging)."""
    k2 = in_features * in_features
    return 4 * k2 * 8 + 2 * k2 * 4 + 4 * out_features * in_features * 4


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _load(name: str) -> nn.Module:
    if name == "tiny":
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=TINY_VOCAB, **TINY_SHAPE)).eval()
    import squeezeprompt

    model, _tokenizer = squeezeprompt.models.load("smollm2-135m-instruct")
    return model.eval()


def _gptq_layer(lin: nn.Linear, hessian: torch.Tensor) -> nn.Module:
    from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear
    from squeezeprompt.quantize.gptq import GPTQConfig, gptq_quantize
    from squeezeprompt.quantize.grid import WeightGrid

    grid = WeightGrid(group_size=64 if lin.in_features % 128 else 128)
    q = gptq_quantize(lin.weight.detach().float(), hessian, GPTQConfig(grid=grid))
    return Int4WeightOnlyLinear.from_int4(q, lin.bias, symmetric=False)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _layerwise(model: nn.Module, batches: list[torch.Tensor]) -> None:
    from squeezeprompt.calibration import calibrate_layerwise

    calibrate_layerwise(
        model, batches, lambda name, m, s: _set_module(model, name, _gptq_layer(m, s.hessian()))
    )


@torch.no_grad()
def _all_at_once(model: nn.Module, batches: list[torch.Tensor]) -> None:
    from squeezeprompt.calibration import find_blocks

    prefix, _ = find_blocks(model)
    inputs: dict[str, list[torch.Tensor]] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and name.startswith(prefix):
            store = inputs.setdefault(name, [])
            handles.append(m.register_forward_hook(lambda _m, a, _o, s=store: s.append(a[0])))
    for batch in batches:
        model(input_ids=batch, use_cache=False)
    for h in handles:
        h.remove()
    for name, xs in inputs.items():
        x = torch.cat([t.reshape(-1, t.shape[-1]) for t in xs]).double()
        hessian = (x.T @ x / x.shape[0]).float()
        _set_module(model, name, _gptq_layer(model.get_submodule(name), hessian))


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments, compresses, prints the JSON result line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    p.add_argument("--samples", type=int, required=True)
    p.add_argument("--seq-len", type=int, required=True)
    p.add_argument("--mode", choices=("layerwise", "all_at_once"), default="layerwise")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the OpenMP pool's per-thread buffers are not the subject
    model = _load(args.model)
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    batches = [
        torch.randint(0, vocab, (1, args.seq_len), generator=gen) for _ in range(args.samples)
    ]
    linear_bytes = sum(
        m.weight.numel() * m.weight.element_size()
        for m in model.modules()
        if isinstance(m, nn.Linear) and m is not model.get_output_embeddings()
    )
    # Warm-up on a copy-free short run: first-call allocations of torch and BLAS land
    # in the baseline, not in the measurement.
    with torch.no_grad():
        model(input_ids=batches[0][:, :16], use_cache=False)
    lin = nn.Linear(128, 64)
    _gptq_layer(lin, torch.eye(128))
    del lin
    gc.collect()
    before_kb = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    run = _layerwise if args.mode == "layerwise" else _all_at_once
    run(model, batches)
    peak_kb = _status_kb("VmHWM")
    bound = memory_bound(model.config, linear_bytes, args.samples, args.seq_len)
    result = {
        "mode": args.mode,
        "model": args.model,
        "samples": args.samples,
        "seq_len": args.seq_len,
        "baseline_bytes": before_kb * 1024,
        "added_bytes": (peak_kb - before_kb) * 1024,
        "linear_bytes": linear_bytes,
        "bound": asdict(bound) | {"total": bound.total},
    }
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
