"""Magnitude masks (pure tensor math): 2:4 semi-structured and unstructured.

The pruning package adds better masks (Wanda, SparseGPT); the layer transforms
accept any precomputed mask and fall back to these only when none is given.

Example:
    >>> magnitude_mask_24(torch.tensor([[1.0, -4.0, 3.0, 2.0]])).tolist()
    [[False, True, True, False]]
"""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.formats import SPARSE_GROUP


def _check_2d(fn: str, w: Tensor) -> None:
    if w.dim() != 2:
        raise ValueError(
            f"{fn}: weight must be 2-D [out_features, in_features], got {list(w.shape)}"
        )


def magnitude_mask_24(weight: Tensor) -> Tensor:
    """Keeps the 2 largest-magnitude weights of every 4 consecutive input columns.

    Ties go to the lower column (``topk`` on a stable order), so the mask is deterministic.

    Example:
        >>> magnitude_mask_24(torch.ones(1, 8)).sum().item()
        4
    """
    _check_2d("magnitude_mask_24", weight)
    n, k = weight.shape
    if k % SPARSE_GROUP:
        raise ValueError(f"magnitude_mask_24: in_features must be a multiple of 4, got {k}")
    groups = weight.detach().abs().float().reshape(n, k // SPARSE_GROUP, SPARSE_GROUP)
    keep = groups.topk(2, dim=-1, sorted=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return mask.reshape(n, k)


def is_24_mask(mask: Tensor) -> bool:
    """Whether every group of 4 consecutive columns keeps at most 2 entries.

    Example:
        >>> is_24_mask(torch.tensor([[True, True, False, False]]))
        True
    """
    n, k = mask.shape
    if k % SPARSE_GROUP:
        return False
    return bool((mask.reshape(n, -1, SPARSE_GROUP).sum(-1) <= 2).all())


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Drops the ``sparsity`` fraction of smallest-magnitude weights of the whole layer.

    Example:
        >>> magnitude_mask(torch.tensor([[1.0, -4.0, 3.0, 2.0]]), 0.5).tolist()
        [[False, True, True, False]]
    """
    _check_2d("magnitude_mask", weight)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"magnitude_mask: sparsity must lie in [0, 1), got {sparsity}")
    n_drop = int(round(sparsity * weight.numel()))
    mask = torch.ones_like(weight, dtype=torch.bool)
    if n_drop:
        drop = weight.detach().abs().flatten().float().topk(n_drop, largest=False).indices
        mask.view(-1)[drop] = False
    return mask
