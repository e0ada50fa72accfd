"""Magnitude pruning: drop the smallest ``|w|``, blind to the inputs."""

from __future__ import annotations

from torch import Tensor

from squeezeprompt.prune.config import Sparsity
from squeezeprompt.prune.mask import keep_mask


def magnitude_mask(weight: Tensor, sparsity: Sparsity) -> Tensor:
    """Keep-mask of ``weight [N, K]`` by ``|w|``, per output row or per 2:4 group.

    Example:
        >>> import torch
        >>> magnitude_mask(torch.tensor([[0.1, -3.0, 2.0, 0.5]]), Sparsity(0.5)).tolist()
        [[False, True, True, False]]
    """
    if weight.dim() != 2:
        raise ValueError(f"magnitude_mask: weight must be 2-D [N, K], got {list(weight.shape)}")
    return keep_mask(weight.detach().abs(), sparsity)
