"""Which Linears a stage touches, swapping a module in place, and deployable sizes.

Example:
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Linear(4, 2))
    >>> list(linear_targets(m, exclude=("1",)))
    ['0']
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch
from torch import nn

from squeezeprompt.nn.base import QuantizedLinearBase
from squeezeprompt.nn.sparse import MaskedLinear
from squeezeprompt.prune.mask import is_semi_24

LinearLike = nn.Linear | QuantizedLinearBase


def linear_targets(model: nn.Module, exclude: Sequence[str]) -> dict[str, LinearLike]:
    """Every ``nn.Linear`` or drop-in layer whose qualified name matches no ``exclude`` glob.

    A glob matches the whole name or its last component (``lm_head``, ``*.down_proj``).

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
        >>> list(linear_targets(m, exclude=()))
        ['0']
    """
    found: dict[str, LinearLike] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, QuantizedLinearBase)):
            continue
        leaf = name.rsplit(".", 1)[-1]
        if any(fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(leaf, g) for g in exclude):
            continue
        found[name] = module
    return found


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Replaces the submodule called ``name`` (``a.b.c``) with ``module``.

    Example:
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
        >>> set_module(m, "0", torch.nn.Identity()); type(m[0]).__name__
        'Identity'
    """
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, module)


def dense_weight(module: LinearLike) -> torch.Tensor:
    """The float ``[out, in]`` weight a layer computes with (masked weights zeroed).

    Example:
        >>> dense_weight(torch.nn.Linear(3, 2)).shape
        torch.Size([2, 3])
    """
    if isinstance(module, nn.Linear):
        return module.weight.detach().float()
    return module.dequantize().detach()


def _weight_bytes(module: LinearLike) -> int:
    """Bytes of the weight as deployed (bias excluded)."""
    if isinstance(module, MaskedLinear):
        n, k = module.weight.shape
        elem = module.weight.element_size()
        if is_semi_24(module.mask):
            # Deployed as packed 2:4 (Sparse24Linear): half the values + 4 bits of metadata
            # per group of 4; the training-time bool mask is not shipped.
            return n * (k // 2) * elem + n * ((k // 4 + 1) // 2)
        return n * k * elem  # unstructured zeros have no packed format: stored dense
    if isinstance(module, nn.Linear):
        return module.weight.numel() * module.weight.element_size()
    total = sum(b.numel() * b.element_size() for b in module.buffers(recurse=False))
    return total + sum(
        p.numel() * p.element_size()
        for n, p in module.named_parameters(recurse=False)
        if n != "bias"
    )


def model_size(model: nn.Module, exclude: Sequence[str] = ("lm_head",)) -> dict[str, float]:
    """Deployable bytes of the whole model and bits per weight of its targeted Linears.

    Shared tensors (a tied ``lm_head``) count once.

    Example:
        >>> s = model_size(torch.nn.Sequential(torch.nn.Linear(8, 4, bias=False)), ())
        >>> s["bytes"], s["bits_per_weight"]
        (128, 32.0)
    """
    targets = linear_targets(model, exclude)
    weight_bits = 0
    weights = 0
    total = 0
    skip: set[int] = set()
    for module in targets.values():
        nbytes = _weight_bytes(module)
        weight_bits += 8 * nbytes
        weights += module.in_features * module.out_features
        total += nbytes
        for name, t in [
            *module.named_parameters(recurse=False),
            *module.named_buffers(recurse=False),
        ]:
            if name != "bias":
                skip.add(t.untyped_storage().data_ptr())
    seen: set[int] = set()
    for t in [*model.parameters(), *model.buffers()]:
        ptr = t.untyped_storage().data_ptr()
        if ptr in skip or ptr in seen:
            continue
        seen.add(ptr)
        total += t.numel() * t.element_size()
    return {
        "bytes": total,
        "bits_per_weight": weight_bits / weights if weights else 0.0,
        "target_weights": weights,
    }
