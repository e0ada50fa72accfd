"""The inverse-Hessian factor shared by GPTQ and SparseGPT.

Both walk the columns of a weight in order and, after fixing column ``i``, spread its
error over the columns not yet fixed in proportion to row ``i`` of the upper Cholesky
factor of ``H^-1`` (the optimal-brain-surgeon update, one column at a time).
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_hessian(fn: str, weight: Tensor, hessian: Tensor) -> None:
    """Raises a clear error unless ``hessian`` is a finite ``[K, K]`` for ``weight [N, K]``."""
    if weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(
            f"{fn}: weight must be a 2-D float [out_features, in_features], "
            f"got {weight.dtype} {list(weight.shape)}"
        )
    k = weight.shape[1]
    if tuple(hessian.shape) != (k, k):
        raise ValueError(
            f"{fn}: hessian must be [in_features, in_features] = [{k}, {k}], "
            f"got {list(hessian.shape)}"
        )
    if not bool(torch.isfinite(hessian).all()):
        raise ValueError(f"{fn}: hessian has non-finite entries")


def inverse_hessian_factor(weight: Tensor, hessian: Tensor, damp: float) -> tuple[Tensor, Tensor]:
    """``(weight, U)`` with ``U`` the upper Cholesky factor of ``(H + damp * mean(diag H) I)^-1``.

    Input channels that never fired (``H_jj == 0``) carry no information: their weight
    is zeroed and their diagonal set to 1 so the factorisation stays defined. Both
    results are float32 copies; ``weight`` on the way out has those columns zeroed.

    Example:
        >>> w, u = inverse_hessian_factor(torch.ones(2, 3), torch.eye(3), damp=0.0)
        >>> torch.allclose(u, torch.eye(3)), w.tolist()
        (True, [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    """
    if damp < 0:
        raise ValueError(f"inverse_hessian_factor: damp must be >= 0, got {damp}")
    w = weight.detach().float().clone()
    h = hessian.detach().to(device=w.device, dtype=torch.float64).clone()
    dead = torch.diagonal(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    diag = torch.arange(h.shape[0], device=h.device)
    h[diag, diag] += damp * torch.diagonal(h).mean()
    # float64 keeps the factorisation stable on the nearly singular Hessians of
    # correlated activations; the result is small ([K, K]) so the cost is negligible.
    chol, info = torch.linalg.cholesky_ex(h)
    if int(info) != 0:
        raise ValueError(
            "inverse_hessian_factor: hessian + damping is not positive definite "
            f"(damp={damp}); increase damp"
        )
    hinv = torch.cholesky_inverse(chol)
    return w, torch.linalg.cholesky(hinv, upper=True).float()
