"""Which parameters a recovery run trains: chosen by freezing everything else.

:func:`squeezeprompt.recover.train.train` optimises whatever has ``requires_grad``; these
helpers set that flag for the usual choices and count what they unfroze.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from squeezeprompt.nn.sparse import MaskedLinear


def _unfreeze(params: Iterable[nn.Parameter]) -> int:
    count = 0
    for p in {id(p): p for p in params}.values():
        p.requires_grad_(True)
        count += p.numel()
    return count


def norms_and_biases(model: nn.Module) -> list[nn.Parameter]:
    """Every norm layer's parameters and every module's ``bias`` parameter, each once.

    A norm is a module whose class name contains "norm" (``LlamaRMSNorm``, ``LayerNorm``).

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> sum(p.numel() for p in norms_and_biases(m))
        12
    """
    chosen: list[nn.Parameter] = []
    for module in model.modules():
        if "norm" in type(module).__name__.lower():
            chosen += list(module.parameters(recurse=False))
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            chosen.append(bias)
    return list({id(p): p for p in chosen}.values())  # a norm's bias is both


def mark_trainable(model: nn.Module) -> int:
    """Freezes ``model`` except masked weights, biases and norm scales; returns the count.

    Packed quantized weights are buffers and stay fixed; tuning the norms in front of
    them still moves the outputs they feed. A ``MaskedLinear``'s mask keeps its pattern
    (pruned weights get no gradient).

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> mark_trainable(m)  # bias of the Linear + weight and bias of the norm
        12
    """
    model.requires_grad_(False)
    masked = [m.weight for m in model.modules() if isinstance(m, MaskedLinear)]
    return _unfreeze([*masked, *norms_and_biases(model)])


def trainable_count(model: nn.Module) -> int:
    """Number of scalars with ``requires_grad`` (shared tensors counted once).

    Example:
        >>> trainable_count(nn.Linear(3, 2).requires_grad_(False))
        0
    """
    seen = {id(p): p for p in model.parameters() if p.requires_grad}
    return sum(p.numel() for p in seen.values())
