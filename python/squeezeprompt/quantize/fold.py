"""Folding per-input-channel scales into the ops around a linear layer.

AWQ and SmoothQuant rewrite ``y = x W^T`` as ``y = (x / s) (W diag(s))^T``: the
weight's columns are multiplied by ``s`` and whatever produced ``x`` divides its
output channels by ``s``, so the model computes the same function before
quantization. These helpers are that rewrite, and nothing else.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(fn: str, s: Tensor, size: int, what: str) -> None:
    if s.dim() != 1 or s.shape[0] != size:
        raise ValueError(
            f"{fn}: scales must be 1-D with {size} entries ({what}), got {list(s.shape)}"
        )
    if not bool((s > 0).all()):
        raise ValueError(f"{fn}: scales must be positive, min is {s.min().item()}")


def _compute_dtype(t: Tensor) -> torch.dtype:
    # bf16/fp16 weights are rescaled in float32 and rounded once; float64 stays float64.
    return torch.promote_types(t.dtype, torch.float32)


def scale_weight_inputs(weight: Tensor, s: Tensor) -> Tensor:
    """``W diag(s)``: multiplies input column ``j`` of ``weight [N, K]`` by ``s[j]``.

    Example:
        >>> import torch
        >>> scale_weight_inputs(torch.ones(1, 2), torch.tensor([2.0, 4.0])).tolist()
        [[2.0, 4.0]]
    """
    _check("scale_weight_inputs", s, weight.shape[1], "one per input column")
    dt = _compute_dtype(weight)
    return (weight.to(dt) * s.to(dt)[None, :]).to(weight.dtype)


def fold_into_norm(norm_weight: Tensor, s: Tensor) -> Tensor:
    """The elementwise weight of a norm (RMSNorm, LayerNorm) whose output is divided by ``s``.

    Example:
        >>> import torch
        >>> fold_into_norm(torch.ones(2), torch.tensor([2.0, 4.0])).tolist()
        [0.5, 0.25]
    """
    _check("fold_into_norm", s, norm_weight.shape[0], "one per normalised channel")
    dt = _compute_dtype(norm_weight)
    return (norm_weight.to(dt) / s.to(dt)).to(norm_weight.dtype)


def fold_into_linear_outputs(
    weight: Tensor, bias: Tensor | None, s: Tensor
) -> tuple[Tensor, Tensor | None]:
    """``(weight, bias)`` of a preceding linear whose output channel ``j`` is divided by ``s[j]``.

    Example:
        >>> import torch
        >>> s = torch.tensor([2.0, 1.0])
        >>> w, b = fold_into_linear_outputs(torch.ones(2, 3), torch.ones(2), s)
        >>> w[:, 0].tolist(), b.tolist()
        ([0.5, 1.0], [0.5, 1.0])
    """
    _check("fold_into_linear_outputs", s, weight.shape[0], "one per output channel")
    dt = _compute_dtype(weight)
    w = (weight.to(dt) / s.to(dt)[:, None]).to(weight.dtype)
    b = None if bias is None else (bias.to(dt) / s.to(dt)).to(bias.dtype)
    return w, b
