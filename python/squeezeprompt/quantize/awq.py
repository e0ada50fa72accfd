"""AWQ: activation-aware per-input-channel scaling before round-to-nearest.

Lin et al., "AWQ: Activation-aware Weight Quantization for LLM Compression and
Acceleration" (2023). Input channels with large activations matter most; scaling
their weight columns up by ``s_j`` (and the inputs down by the same factor) gives
them a finer effective grid. ``s = mean|x|^alpha`` (normalised so that
``max(s) * min(s) = 1``) and ``alpha`` is chosen on a grid by the layer's output
error.

The output error is computed from the input second moment ``H = E[x x^T]`` instead
of stored activations: for ``D = W - Q(W diag(s)) diag(s)^-1`` it is exactly
``E||x D^T||^2 = tr(D H D^T)``, with memory ``[K, K]`` whatever the token count.
``alpha = 0`` is on the grid and gives ``s = 1``, i.e. plain round-to-nearest, so the
chosen scales are never worse than RTN on the calibration statistics.

Linears that share one input (q/k/v, gate/up) share the scales: pass their weights
concatenated along the output dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.quantize.fold import scale_weight_inputs
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.hessian import check_hessian


@dataclass(frozen=True)
class AWQConfig:
    """AWQ settings: the grid and how many ``alpha`` values in ``[0, 1]`` to try.

    Example:
        >>> AWQConfig(n_alpha=11).alphas()[:3].tolist()
        [0.0, 0.10000000149011612, 0.20000000298023224]
    """

    grid: WeightGrid = field(default_factory=WeightGrid)
    n_alpha: int = 20

    def __post_init__(self) -> None:
        if not isinstance(self.grid, WeightGrid):
            raise TypeError(f"AWQConfig: grid must be a WeightGrid, got {type(self.grid)}")
        if self.n_alpha < 2:
            raise ValueError(
                f"AWQConfig: n_alpha must be >= 2 (0 and 1 at least), got {self.n_alpha}"
            )

    def alphas(self) -> Tensor:
        return torch.linspace(0.0, 1.0, self.n_alpha)


@dataclass(frozen=True)
class AWQResult:
    """The chosen scales and the quantized scaled weight.

    The layer computes ``(x / scales) @ dequantize(weight)^T``: fold ``1 / scales`` into
    the op producing ``x`` (``fold.fold_into_norm`` / ``fold.fold_into_linear_outputs``).
    """

    scales: Tensor  # [K] float32, > 0
    alpha: float
    weight: Int4Weight | Int8Weight  # quantized W diag(scales)
    error: float  # tr(D H D^T) at the chosen alpha
    rtn_error: float  # the same at alpha = 0 (plain round-to-nearest)


def output_error(weight: Tensor, approx: Tensor, hessian: Tensor) -> float:
    """``tr(D H D^T)`` with ``D = weight - approx``: the mean squared output error per token.

    Example:
        >>> output_error(torch.ones(1, 2), torch.zeros(1, 2), torch.eye(2))
        2.0
    """
    # float32 products, float64 sum: the alpha search calls this n_alpha times per layer
    # (half of AWQ's time), and float32 rounding (~1e-6 relative) is far below the gaps
    # between the errors it compares.
    d = weight.float() - approx.float()
    return float(((d @ hessian.float()) * d).sum(dtype=torch.float64))


def awq_scales(mean_abs: Tensor, alpha: float) -> Tensor:
    """``mean|x|^alpha``, normalised to ``max * min = 1`` (so ``alpha = 0`` gives ones).

    Example:
        >>> awq_scales(torch.tensor([1.0, 4.0]), 1.0).tolist()
        [0.5, 2.0]
    """
    s = mean_abs.float().clamp(min=1e-4).pow(alpha)
    return s / (s.max() * s.min()).sqrt()


def _round_rows(grid: WeightGrid, w: Tensor) -> Tensor:
    """``grid.round_weight(w)``, with each group laid out as one contiguous row.

    The same numbers: a group's ``(scale, zero)`` only reads that group. Reducing over
    contiguous rows instead of column slices of ``w`` makes the search several times
    faster on wide layers.
    """
    n, k = w.shape
    g = grid.group_width(k)
    if g == k or g % 2:  # one group per row already, or int4 rows of odd width
        return grid.round_weight(w)
    return grid.round_weight(w.reshape(n * (k // g), g)).reshape(n, k)


def awq_quantize(
    weight: Tensor, hessian: Tensor, mean_abs: Tensor, config: AWQConfig | None = None
) -> AWQResult:
    """Searches ``alpha`` minimising the output error of round-to-nearest on ``W diag(s)``.

    ``hessian`` is ``E[x x^T]`` and ``mean_abs`` is ``E|x_j|`` of the layer's inputs
    (``InputStats.hessian()``, ``InputStats.mean_abs()``).

    Example:
        >>> x = torch.randn(256, 32) * torch.linspace(0.1, 10, 32)
        >>> cfg = AWQConfig(grid=WeightGrid(group_size=16))
        >>> r = awq_quantize(torch.randn(8, 32), x.T @ x / 256, x.abs().mean(0), cfg)
        >>> r.error <= r.rtn_error
        True
    """
    config = config or AWQConfig()
    check_hessian("awq_quantize", weight, hessian)
    if tuple(mean_abs.shape) != (weight.shape[1],):
        raise ValueError(
            f"awq_quantize: mean_abs must have one entry per input column ({weight.shape[1]}), "
            f"got {list(mean_abs.shape)}"
        )
    w = weight.detach().float()
    h = hessian.to(w.device)
    best: tuple[float, float, Tensor] | None = None
    rtn_error = float("nan")
    for alpha in config.alphas().tolist():
        s = awq_scales(mean_abs.to(w.device), alpha)
        approx = _round_rows(config.grid, scale_weight_inputs(w, s)) / s[None, :]
        err = output_error(w, approx, h)
        if alpha == 0.0:
            rtn_error = err
        if best is None or err < best[0]:
            best = (err, alpha, s)
    assert best is not None  # the alpha grid is never empty (n_alpha >= 2)
    err, alpha, s = best
    scaled = scale_weight_inputs(w, s)
    packed = config.grid.pack(config.grid.codes_all(scaled), *config.grid.fit_all(scaled))
    return AWQResult(scales=s, alpha=alpha, weight=packed, error=err, rtn_error=rtn_error)
