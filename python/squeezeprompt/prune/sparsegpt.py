"""SparseGPT: prune column by column, letting the kept weights absorb the error.

Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot" (2023). The same inverse-Hessian sweep as GPTQ: within a block of columns
the mask is chosen by the OBS saliency ``w^2 / [H^-1]_jj^2`` of the weights as updated
so far, then each column's removed weights are spread over the columns to its right.

Unstructured: block ``[i1, i2)`` removes ``round(r * i2) - round(r * i1)`` weights from
every row, so each row ends with exactly ``round(r * K)`` zeros. 2:4: each group of 4
columns keeps its 2 most salient weights, chosen when the sweep reaches the group.

Joint quantization is optional (``grid``): the kept weights are rounded onto the grid
in the same sweep, with group parameters fitted once from the original weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from squeezeprompt.formats import Int4Weight, Int8Weight
from squeezeprompt.prune.config import Pattern, Sparsity
from squeezeprompt.prune.mask import GROUP, keep_mask, keep_top
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.hessian import check_hessian, inverse_hessian_factor


@dataclass(frozen=True)
class SparseGPTConfig:
    """SparseGPT settings; ``grid=None`` prunes only.

    Example:
        >>> SparseGPTConfig(block_size=64).damp
        0.01
    """

    damp: float = 0.01
    block_size: int = 128
    grid: WeightGrid | None = None

    def __post_init__(self) -> None:
        if not self.damp >= 0:
            raise ValueError(f"SparseGPTConfig: damp must be >= 0, got {self.damp}")
        if self.block_size < GROUP:
            raise ValueError(f"SparseGPTConfig: block_size must be >= 4, got {self.block_size}")
        if self.grid is not None and not isinstance(self.grid, WeightGrid):
            raise TypeError(
                f"SparseGPTConfig: grid must be a WeightGrid or None, got {self.grid!r}"
            )


@dataclass(frozen=True)
class SparseGPTResult:
    """The keep-mask, the updated (zeroed where pruned) weight and, with a grid, its packing."""

    mask: Tensor  # [N, K] bool, True = kept
    weight: Tensor  # [N, K] float32, zero where ~mask; on the grid when one was given
    quantized: Int4Weight | Int8Weight | None


def sparsegpt_prune(
    weight: Tensor, hessian: Tensor, sparsity: Sparsity, config: SparseGPTConfig | None = None
) -> SparseGPTResult:
    """Prunes ``weight [N, K]`` to ``sparsity`` minimising ``tr(D H D^T)``, ``H = E[x x^T]``.

    Example:
        >>> x = torch.randn(256, 16)
        >>> r = sparsegpt_prune(torch.randn(4, 16), x.T @ x / 256, Sparsity.semi_24())
        >>> int(r.mask.sum()), bool((r.weight[~r.mask] == 0).all())
        (32, True)
    """
    config = config or SparseGPTConfig()
    check_hessian("sparsegpt_prune", weight, hessian)
    n, k = weight.shape
    drop_total = sparsity.pruned_per_row(k)
    semi = sparsity.pattern is Pattern.SEMI_24
    w, u = inverse_hessian_factor(weight, hessian.to(weight.device), config.damp)
    grid = config.grid
    if grid is not None:
        g = grid.group_width(k)
        scales, zeros = grid.fit_all(w)
        col_scale = scales.repeat_interleave(g, dim=1)
        col_zero = zeros.repeat_interleave(g, dim=1)
    codes = torch.zeros_like(w)
    mask = torch.ones(n, k, dtype=torch.bool, device=w.device)
    block = (config.block_size // GROUP) * GROUP  # a 2:4 group never spans two blocks
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].clone()
        u1 = u[i1:i2, i1:i2]
        d2 = torch.diagonal(u1)[None, :] ** 2
        err1 = torch.zeros_like(w1)
        if not semi:
            drop = round(drop_total * i2 / k) - round(drop_total * i1 / k)
            mask[:, i1:i2] = keep_top(w1**2 / d2, (i2 - i1) - drop)
        for i in range(i2 - i1):
            j = i1 + i
            if semi and i % GROUP == 0:
                sal = w1[:, i : i + GROUP] ** 2 / d2[:, i : i + GROUP]
                mask[:, j : j + GROUP] = keep_mask(sal, sparsity)
            col = w1[:, i]
            q = torch.where(mask[:, j], col, torch.zeros_like(col))
            if grid is not None:
                s, z = col_scale[:, j], col_zero[:, j]
                codes[:, j] = torch.where(mask[:, j], grid.codes(q, s, z), z)
                q = (codes[:, j] - z) * s
            err = (col - q) / u1[i, i]
            w1[:, i:] -= err[:, None] * u1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = err
        w[:, i1:i2] = w1
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    quantized = None if grid is None else grid.pack(codes, scales, zeros)
    return SparseGPTResult(mask=mask, weight=w, quantized=quantized)
