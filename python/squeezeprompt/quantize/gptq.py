"""GPTQ: quantize a weight column by column, compensating each column's rounding error.

Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
Transformers" (2022). For a layer with input second moment ``H = E[x x^T]`` the
output error of a weight change ``D`` is ``tr(D H D^T)``; after rounding column ``i``
the remaining columns absorb its error through the inverse Hessian. Columns are
handled in blocks so the rank-one updates become one matrix product per block.

Group parameters: without act-order each group's ``(scale, zero)`` is fitted when its
first column is reached, from the weights as updated so far (so a group never spans
two blocks: the block is rounded down to a multiple of the group). With act-order
(columns in order of decreasing ``H_jj``) or groups wider than a block the parameters
are fitted once from the original weight ("static groups"), which keeps the groups
contiguous in the original column order that the packed formats require.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.hessian import check_hessian, inverse_hessian_factor


@dataclass(frozen=True)
class GPTQConfig:
    """GPTQ settings.

    ``damp`` is added to the Hessian diagonal as a fraction of its mean; ``act_order``
    quantizes the columns with the largest ``H_jj`` first.

    Example:
        >>> GPTQConfig(grid=WeightGrid(group_size=64), act_order=True).block_size
        128
    """

    grid: WeightGrid = field(default_factory=WeightGrid)
    damp: float = 0.01
    block_size: int = 128
    act_order: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.grid, WeightGrid):
            raise TypeError(f"GPTQConfig: grid must be a WeightGrid, got {type(self.grid)}")
        if not self.damp >= 0:
            raise ValueError(f"GPTQConfig: damp must be >= 0, got {self.damp}")
        if self.block_size <= 0:
            raise ValueError(f"GPTQConfig: block_size must be positive, got {self.block_size}")


def gptq_quantize(
    weight: Tensor, hessian: Tensor, config: GPTQConfig | None = None
) -> Int4Weight | Int8Weight:
    """Quantizes ``weight [N, K]`` onto ``config.grid`` minimising ``tr(D H D^T)``.

    ``hessian`` is ``E[x x^T]`` of the layer's inputs (``InputStats.hessian()``); any
    positive multiple gives the same result.

    Example:
        >>> x = torch.randn(256, 32)
        >>> qw = gptq_quantize(torch.randn(8, 32), x.T @ x / 256,
        ...                    GPTQConfig(grid=WeightGrid(group_size=16)))
        >>> qw.dequantize().shape
        torch.Size([8, 32])
    """
    config = config or GPTQConfig()
    check_hessian("gptq_quantize", weight, hessian)
    grid = config.grid
    n, k = weight.shape
    g = grid.group_width(k)
    h = hessian.to(weight.device)
    perm = torch.arange(k, device=weight.device)
    if config.act_order:
        perm = torch.argsort(torch.diagonal(h), descending=True)
        h = h[perm][:, perm]
    w, u = inverse_hessian_factor(weight[:, perm], h, config.damp)
    inv_perm = torch.argsort(perm)
    group_of = perm // g  # group (original order) of each processed column

    static = config.act_order or g > config.block_size
    if static:
        scales, zeros = grid.fit_all(w[:, inv_perm])
        block = config.block_size
    else:
        scales = torch.zeros(n, k // g, device=w.device)
        zeros = torch.zeros_like(scales)
        block = (config.block_size // g) * g

    codes = torch.zeros_like(w)
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].clone()
        u1 = u[i1:i2, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            j = i1 + i
            if not static and j % g == 0:
                scales[:, j // g], zeros[:, j // g] = grid.fit(w1[:, i : i + g])
            s, z = scales[:, group_of[j]], zeros[:, group_of[j]]
            col = w1[:, i]
            codes[:, j] = grid.codes(col, s, z)
            err = (col - (codes[:, j] - z) * s) / u1[i, i]
            # The rank-one OBS update of the rest of this block; later blocks get the
            # accumulated errors in one product below.
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            err1[:, i] = err
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return grid.pack(codes[:, inv_perm], scales, zeros)
