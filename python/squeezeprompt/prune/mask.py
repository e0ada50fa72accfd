"""Turning importance scores into a keep-mask of the requested sparsity."""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.prune.config import Pattern, Sparsity

GROUP = 4  # the 2:4 group width
KEEP = 2  # nonzeros kept per group


def keep_mask(scores: Tensor, sparsity: Sparsity) -> Tensor:
    """Boolean mask ``[N, K]`` (True = keep) dropping the lowest ``scores`` per row or per group.

    Unstructured: each row loses exactly ``sparsity.pruned_per_row(K)`` entries. 2:4:
    each group of 4 consecutive columns keeps its 2 highest scores. Ties go to the
    lower column index, so the result is deterministic.

    Example:
        >>> keep_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), Sparsity.semi_24()).tolist()
        [[True, False, True, False]]
        >>> keep_mask(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), Sparsity(0.25)).tolist()
        [[True, False, True, True]]
    """
    if scores.dim() != 2:
        raise ValueError(f"keep_mask: scores must be 2-D [N, K], got {list(scores.shape)}")
    n, k = scores.shape
    drop = sparsity.pruned_per_row(k)
    if sparsity.pattern is Pattern.SEMI_24:
        groups = scores.reshape(n, k // GROUP, GROUP)
        idx = _stable_order(groups)[..., :KEEP]
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, idx, True)
        return mask.reshape(n, k)
    return keep_top(scores, k - drop)


def keep_top(scores: Tensor, keep: int) -> Tensor:
    """Boolean mask keeping the ``keep`` highest scores of each row (ties: lower column).

    Example:
        >>> keep_top(torch.tensor([[1.0, 3.0, 2.0]]), 1).tolist()
        [[False, True, False]]
    """
    if not 0 <= keep <= scores.shape[-1]:
        raise ValueError(f"keep_top: keep must lie in [0, {scores.shape[-1]}], got {keep}")
    idx = _stable_order(scores)[..., :keep]
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)


def _stable_order(scores: Tensor) -> Tensor:
    # Descending by score; a stable sort breaks ties by column index.
    return torch.sort(scores.float(), dim=-1, descending=True, stable=True).indices


def is_semi_24(mask: Tensor) -> bool:
    """True when every group of 4 consecutive columns of ``mask`` keeps at most 2.

    Example:
        >>> is_semi_24(torch.tensor([[True, True, False, False]]))
        True
    """
    n, k = mask.shape
    if k % GROUP:
        return False
    return bool((mask.reshape(n, k // GROUP, GROUP).sum(-1) <= KEEP).all())
