"""Layer-by-layer calibration: stream a model's decoder blocks one at a time.

The inputs of block 0 are captured once (the model runs until block 0 is called,
then stops); after that each block is run on its own over the cached inputs:

1. forward hooks on the block's ``nn.Linear`` and ``MaskedLinear`` modules (the layers
   whose float weight a compressor can still rewrite) accumulate
   :class:`~squeezeprompt.quantize.stats.InputStats` (Hessian, channel norms, ranges);
2. ``on_block(prefix, block, found)`` is called with all of them (AWQ and SmoothQuant
   fold one scale into several layers at once), or ``on_linear(name, module, stats)``
   for each in turn: this is where a compressor (GPTQ, SparseGPT, Wanda...) rewrites
   the weight, in place or by swapping the module;
3. the block is run again, now compressed, and its outputs become the next block's
   inputs, so every block is calibrated on what the compressed model really feeds it.

Beyond the model, memory holds one block's hidden states for every calibration
batch and the statistics of one block's linears. The compression math itself lives in
``quantize/`` and ``prune/``; this file only moves activations and calls back.

Works on decoder stacks whose blocks take ``hidden_states`` as their first argument
and return it (alone or first in a tuple): transformers' Llama, Mistral, Qwen2,
SmolLM2 and similar.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from squeezeprompt.nn.sparse import MaskedLinear
from squeezeprompt.quantize.stats import InputStats

# Pruned layers stay MaskedLinear until quantized; their inputs are as good as a Linear's.
CALIBRATED = (nn.Linear, MaskedLinear)
Calibrated = nn.Linear | MaskedLinear
OnLinear = Callable[[str, Calibrated, InputStats], None]
# (block's qualified name, block, {linear's qualified name: (module, its input stats)})
OnBlock = Callable[[str, nn.Module, dict[str, tuple[Calibrated, InputStats]]], None]
Batch = Tensor | Mapping[str, Any]  # input_ids, or keyword arguments of model.forward


@dataclass(frozen=True)
class CalibrationConfig:
    """What to collect and whether to show progress.

    ``hessian=False`` skips the ``[K, K]`` second moments (enough for Wanda and
    SmoothQuant, which read only per-channel vectors).

    Example:
        >>> CalibrationConfig(hessian=False).progress
        False
    """

    hessian: bool = True
    progress: bool = False


class _BlockInputsCaptured(Exception):
    """Raised by the block-0 hook to stop the model once the block's inputs are known."""


@dataclass
class _BlockCall:
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def hidden(self) -> Tensor:
        return self.args[0] if self.args else self.kwargs["hidden_states"]

    def with_hidden(self, hidden: Tensor) -> _BlockCall:
        if self.args:
            return _BlockCall((hidden, *self.args[1:]), self.kwargs)
        return _BlockCall(self.args, {**self.kwargs, "hidden_states": hidden})


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The decoder block list of a transformers-style model and its qualified name.

    The longest ``nn.ModuleList`` whose entries all have the same type is taken, which
    is ``model.layers`` for Llama-style models.

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.Linear(2, 2)] * 3))
        >>> find_blocks(m)[0]
        '1'
    """
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(m) for m in module}) != 1:
            continue
        if best is None or len(module) > len(best[1]):
            best = (name, module)
    if best is None:
        raise ValueError(
            f"find_blocks: no nn.ModuleList of identical blocks in {type(model).__name__}; "
            "pass blocks= explicitly"
        )
    return best


def capture_block_inputs(
    model: nn.Module, block: nn.Module, batches: Iterable[Batch]
) -> list[_BlockCall]:
    """Runs ``model`` on each batch until ``block`` is called and keeps its arguments."""
    calls: list[_BlockCall] = []

    def grab(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append(_BlockCall(args, dict(kwargs)))
        raise _BlockInputsCaptured

    handle = block.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for batch in batches:
            kwargs = dict(batch) if isinstance(batch, Mapping) else {"input_ids": batch}
            kwargs.setdefault("use_cache", False)  # a KV cache would only cost memory here
            with contextlib.suppress(_BlockInputsCaptured):
                model(**kwargs)
    finally:
        handle.remove()
    if not calls:
        raise ValueError("capture_block_inputs: no calibration batches were given")
    return calls


def _run_block(block: nn.Module, call: _BlockCall) -> Tensor:
    out = block(*call.args, **call.kwargs)
    return out[0] if isinstance(out, tuple | list) else out


def _collect(
    block: nn.Module, prefix: str, calls: list[_BlockCall], config: CalibrationConfig
) -> dict[str, tuple[Calibrated, InputStats]]:
    linears = {
        f"{prefix}.{name}": m for name, m in block.named_modules() if isinstance(m, CALIBRATED)
    }
    found = {
        name: (m, InputStats(m.in_features, hessian=config.hessian)) for name, m in linears.items()
    }

    def hook_for(stats: InputStats) -> Callable[..., None]:
        return lambda _m, inputs, _out: stats.update(inputs[0])

    handles = [m.register_forward_hook(hook_for(s)) for m, s in found.values()]
    try:
        for call in calls:
            _run_block(block, call)
    finally:
        for h in handles:
            h.remove()
    return found


@torch.no_grad()
def calibrate_blockwise(
    model: nn.Module,
    batches: Iterable[Batch],
    on_block: OnBlock,
    config: CalibrationConfig | None = None,
    blocks: nn.ModuleList | None = None,
) -> None:
    """Calls ``on_block`` once per decoder block with the input stats of all its Linears.

    The statistics of one block are all taken before ``on_block`` runs (on the block as
    it was, fed by the already compressed blocks before it); whatever ``on_block`` does
    to the block (rewrite weights, swap modules, fold scales into its norms) is seen by
    all later blocks.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...                   num_hidden_layers=2, num_attention_heads=2)
        >>> seen = []
        >>> calibrate_blockwise(LlamaForCausalLM(cfg), [torch.randint(0, 32, (1, 8))],
        ...                     lambda prefix, block, found: seen.append((prefix, len(found))))
        >>> seen
        [('model.layers.0', 7), ('model.layers.1', 7)]
    """
    config = config or CalibrationConfig()
    if blocks is None:
        prefix, blocks = find_blocks(model)
    else:
        names = [n for n, m in model.named_modules() if m is blocks]
        if not names:
            raise ValueError("calibrate_blockwise: blocks= is not a submodule of model")
        prefix = names[0]
    was_training = model.training
    model.eval()
    try:
        calls = capture_block_inputs(model, blocks[0], batches)
        for i, block in enumerate(tqdm(blocks, desc="calibrate", disable=not config.progress)):
            on_block(f"{prefix}.{i}", block, _collect(block, f"{prefix}.{i}", calls, config))
            calls = [call.with_hidden(_run_block(block, call)) for call in calls]
    finally:
        model.train(was_training)


def calibrate_layerwise(
    model: nn.Module,
    batches: Iterable[Batch],
    on_linear: OnLinear,
    config: CalibrationConfig | None = None,
    blocks: nn.ModuleList | None = None,
) -> None:
    """Calls ``on_linear`` for every Linear of every block, in order, with its input stats.

    ``batches`` are ``input_ids`` tensors or dicts of ``model.forward`` arguments.
    ``on_linear`` receives the Linear's qualified name in ``model``, the module (an
    ``nn.Linear`` or a pruned ``MaskedLinear``) and its statistics; whatever it does to
    the module is seen by all later blocks.

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...                   num_hidden_layers=1, num_attention_heads=2)
        >>> seen = []
        >>> calibrate_layerwise(LlamaForCausalLM(cfg), [torch.randint(0, 32, (1, 8))],
        ...                     lambda name, m, s: seen.append((name, s.tokens)))
        >>> seen[0]
        ('model.layers.0.self_attn.q_proj', 8)
    """

    def each(
        _prefix: str, _block: nn.Module, found: dict[str, tuple[Calibrated, InputStats]]
    ) -> None:
        for name, (module, stats) in found.items():
            on_linear(name, module, stats)

    calibrate_blockwise(model, batches, each, config, blocks)
