"""SmoothQuant: move activation outliers into the weights before W8A8.

Xiao et al., "SmoothQuant: Accurate and Efficient Post-Training Quantization for
Large Language Models" (2022). Per-token int8 activations lose the small channels
when a few channels are huge. Dividing input channel ``j`` by
``s_j = max|x_j|^alpha / max|W_{:,j}|^(1 - alpha)`` and multiplying the weight column
by the same factor flattens the activations (``alpha`` = migration strength: 0 leaves
them alone, 1 moves all their range into the weights). Apply with
``fold.scale_weight_inputs`` and fold ``1 / s`` into the op producing ``x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SmoothQuantConfig:
    """Migration strength ``alpha`` in ``[0, 1]``.

    Example:
        >>> SmoothQuantConfig(alpha=0.8).alpha
        0.8
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"SmoothQuantConfig: alpha must lie in [0, 1], got {self.alpha}")


def smoothquant_scales(
    act_absmax: Tensor, weight: Tensor, config: SmoothQuantConfig | None = None
) -> Tensor:
    """Per-input-channel smoothing factors ``s [K]`` for ``weight [N, K]``.

    ``act_absmax`` is ``max |x_j|`` over calibration tokens (``InputStats.max_abs()``).
    Linears sharing one input share ``s``: pass their weights concatenated along the
    output dimension. Channels with zero activation or zero weight keep ``s = 1``.

    Example:
        >>> smoothquant_scales(torch.tensor([16.0, 1.0]), torch.ones(3, 2)).tolist()
        [4.0, 1.0]
    """
    config = config or SmoothQuantConfig()
    if weight.dim() != 2 or tuple(act_absmax.shape) != (weight.shape[1],):
        raise ValueError(
            "smoothquant_scales: expected weight [N, K] and act_absmax [K], got "
            f"{list(weight.shape)} and {list(act_absmax.shape)}"
        )
    a = act_absmax.float().to(weight.device)
    w = weight.detach().float().abs().amax(dim=0)
    s = a.pow(config.alpha) / w.pow(1.0 - config.alpha)
    return torch.where((a > 0) & (w > 0) & torch.isfinite(s), s, torch.ones_like(s))
