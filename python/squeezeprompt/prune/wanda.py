"""Wanda: prune by ``|w_ij| * ||x_j||_2``, compared within each output row.

Sun et al., "A Simple and Effective Pruning Approach for Large Language Models"
(2023). The score is the size of each weight's contribution to the output, so a
small weight on a loud input channel survives; no weight update is made.
"""

from __future__ import annotations

from torch import Tensor

from squeezeprompt.prune.config import Sparsity
from squeezeprompt.prune.mask import keep_mask


def wanda_mask(weight: Tensor, channel_norm: Tensor, sparsity: Sparsity) -> Tensor:
    """Keep-mask of ``weight [N, K]`` given the inputs' norms ``||x_j||_2``.

    ``channel_norm`` comes from ``InputStats.channel_norm()``.

    Example:
        >>> import torch
        >>> w = torch.tensor([[1.0, 1.0, 2.0, 2.0]])
        >>> wanda_mask(w, torch.tensor([10.0, 10.0, 1.0, 1.0]), Sparsity(0.5)).tolist()
        [[True, True, False, False]]
    """
    if weight.dim() != 2 or tuple(channel_norm.shape) != (weight.shape[1],):
        raise ValueError(
            "wanda_mask: expected weight [N, K] and channel_norm [K], got "
            f"{list(weight.shape)} and {list(channel_norm.shape)}"
        )
    scores = weight.detach().abs().float() * channel_norm.float().to(weight.device)[None, :]
    return keep_mask(scores, sparsity)
