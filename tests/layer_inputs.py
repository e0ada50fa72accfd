"""Seeded synthetic calibration data: correlated inputs with uneven channel scales.

Shared by the quantize and prune tests (``tests/`` is on ``sys.path`` via its conftest).
"""

from __future__ import annotations

import torch
from torch import Tensor


def correlated_layer(
    seed: int, n: int = 48, k: int = 128, tokens: int = 512
) -> tuple[Tensor, Tensor]:
    """``(x [tokens, k], w [n, k])``: mixed Gaussian inputs, log-normal channel scales.

    The mixing makes the Hessian far from diagonal (where error compensation matters);
    the uneven scales mimic LLM activations, whose channels differ by orders of magnitude.
    """
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g) / k**0.5
    scales = torch.exp(torch.randn(k, generator=g))
    x = torch.randn(tokens, k, generator=g) @ mix + 0.1 * torch.randn(tokens, k, generator=g)
    w = torch.randn(n, k, generator=g)
    return x * scales, w


def output_error(x: Tensor, w: Tensor, approx: Tensor) -> float:
    """``||x w^T - x approx^T||_F^2``: the layer's reconstruction error on ``x``."""
    return float(((x.double() @ (w.double() - approx.double()).T) ** 2).sum())
