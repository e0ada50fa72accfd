"""Each layer's own damage to the model's predictions: the final-logit KL divergence when
only that layer is compressed.

A closer measure of a layer's contribution to the model's error than the relative output
error of :mod:`squeezeprompt.analysis.layer_loss` (it weighs errors by how much the rest
of the network amplifies or absorbs them), but it costs one forward of the whole model
per compressed layer and batch: opt-in (``squeezeprompt layers --kl``), on few tokens.

The dense model runs with a forward hook that replaces one Linear's output by its
compressed twin's output on the same input; ``KL(p_dense || p_swapped)`` is averaged over
every predicted token, in nats.

Example:
    >>> import copy
    >>> from squeezeprompt.nn import Int4WeightOnlyLinear
    >>> dense = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 10))
    >>> compressed = copy.deepcopy(dense)
    >>> compressed[1] = Int4WeightOnlyLinear.from_linear(dense[1], group_size=32)
    >>> kl = single_layer_kl(compressed, dense, [torch.randn(8, 64)])
    >>> kl["0"], kl["1"] > 0
    (0.0, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from squeezeprompt.analysis.layer_loss import Batch, _pairs, _progress, _same_linear


def _log_probs(model: nn.Module, batch: Batch) -> Tensor:
    out = model(**batch) if isinstance(batch, Mapping) else model(batch)
    logits = out if isinstance(out, Tensor) else out.logits
    # float64: a layer's KL is a small difference of nearly equal log-probabilities
    return F.log_softmax(logits.double().reshape(-1, logits.shape[-1]), dim=-1)


def single_layer_kl(
    compressed: nn.Module,
    dense: nn.Module,
    batches: Iterable[Batch],
    progress: bool = False,
) -> dict[str, float]:
    """``{layer name: mean per-token KL(dense || dense with only that layer compressed)}``.

    Layers identical to the dense ones get 0.0 without a forward. Modes and hooks are
    restored afterwards. Only one batch's dense log-probabilities are held at a time.

    Example: see the module docstring.
    """
    pairs = [(n, c, d) for n, c, d in _pairs(compressed, dense) if not _same_linear(c, d)]
    total = {name: 0.0 for name, _, _ in _pairs(compressed, dense)}
    tokens = 0
    modes = [(m, m.training) for m in (compressed, dense)]

    def swap_in(twin: nn.Module) -> Any:
        def hook(_module: nn.Module, inputs: tuple[Any, ...], _output: Tensor) -> Tensor:
            return twin(inputs[0])  # a forward hook's return value replaces the output

        return hook

    try:
        compressed.eval()
        dense.eval()
        with torch.no_grad():
            for batch in _progress(batches, progress):
                reference = _log_probs(dense, batch)
                tokens += reference.shape[0]
                for name, c, d in pairs:
                    handle = d.register_forward_hook(swap_in(c))
                    try:
                        swapped = _log_probs(dense, batch)
                    finally:
                        handle.remove()
                    kl = F.kl_div(swapped, reference, log_target=True, reduction="sum")
                    total[name] += float(kl)
    finally:
        for m, training in modes:
            m.train(training)
    return {name: (v / tokens if tokens else 0.0) for name, v in total.items()}
