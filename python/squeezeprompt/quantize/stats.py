"""Statistics of a linear layer's inputs, accumulated batch by batch.

Every calibration-based method reads one of these: GPTQ and SparseGPT the second
moment ``H = E[x x^T]`` (the Hessian of the layer's squared output error, up to a
factor 2), Wanda the per-channel norm ``||x_j||_2``, AWQ the mean ``|x_j|`` and
SmoothQuant the absmax ``max |x_j|``. Accumulation is in float64 so that millions of
tokens do not lose the small channels.
"""

from __future__ import annotations

import torch
from torch import Tensor


class InputStats:
    """Running statistics of inputs ``[..., in_features]`` to one linear layer.

    ``hessian=False`` skips the ``[K, K]`` second moment when only the per-channel
    vectors are needed (Wanda, SmoothQuant).

    Example:
        >>> s = InputStats(4)
        >>> s.update(torch.ones(3, 4))
        >>> s.tokens, s.hessian()[0, 0].item(), s.sq_norm.tolist()
        (3, 1.0, [3.0, 3.0, 3.0, 3.0])
    """

    def __init__(self, in_features: int, hessian: bool = True) -> None:
        self.in_features = in_features
        self.tokens = 0
        self._xtx = torch.zeros(in_features, in_features, dtype=torch.float64) if hessian else None
        self.sq_norm = torch.zeros(in_features, dtype=torch.float64)
        self.abs_sum = torch.zeros(in_features, dtype=torch.float64)
        self.absmax = torch.zeros(in_features, dtype=torch.float64)

    def update(self, x: Tensor) -> None:
        """Adds a batch of inputs (any leading shape; last dim = ``in_features``)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"InputStats.update: expected inputs with last dim {self.in_features}, "
                f"got shape {list(x.shape)}"
            )
        x = x.detach().reshape(-1, self.in_features).to(device="cpu", dtype=torch.float64)
        self.tokens += x.shape[0]
        if self._xtx is not None:
            self._xtx += x.T @ x
        self.sq_norm += (x * x).sum(dim=0)
        self.abs_sum += x.abs().sum(dim=0)
        self.absmax = torch.maximum(self.absmax, x.abs().amax(dim=0))

    def _need_tokens(self, what: str) -> None:
        if self.tokens == 0:
            raise ValueError(f"InputStats.{what}: no inputs seen yet (call update first)")

    def hessian(self) -> Tensor:
        """``E[x x^T]`` over all tokens seen, float32 ``[K, K]``."""
        self._need_tokens("hessian")
        if self._xtx is None:
            raise ValueError("InputStats.hessian: built with hessian=False")
        return (self._xtx / self.tokens).float()

    def channel_norm(self) -> Tensor:
        """``||x_j||_2`` over all tokens seen, float32 ``[K]`` (Wanda's activation term)."""
        self._need_tokens("channel_norm")
        return self.sq_norm.sqrt().float()

    def mean_abs(self) -> Tensor:
        """``E|x_j|``, float32 ``[K]`` (AWQ's activation salience)."""
        self._need_tokens("mean_abs")
        return (self.abs_sum / self.tokens).float()

    def max_abs(self) -> Tensor:
        """``max |x_j|``, float32 ``[K]`` (SmoothQuant's activation range)."""
        self._need_tokens("max_abs")
        return self.absmax.float()
