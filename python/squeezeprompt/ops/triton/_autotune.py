"""Autotuning configurations, reduced to one when Triton runs in its interpreter.

``TRITON_INTERPRET=1`` runs kernels on CPU tensors with NumPy, where timing configs
means nothing and every extra config multiplies test time, so one config is used.
The variable is read when the kernels are defined (import time), as Triton does.
"""

from __future__ import annotations

import os

import triton


def interpreting() -> bool:
    """True when Triton's interpreter runs the kernels (``TRITON_INTERPRET=1``).

    Example:
        >>> isinstance(interpreting(), bool)
        True
    """
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def linear_configs() -> list[triton.Config]:
    """Tile shapes for the weight-only matmuls: small-M decode tiles first, then GEMM tiles.

    Example:
        >>> len(linear_configs()) >= 1
        True
    """
    if interpreting():
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32}, num_warps=4)]
    # BLOCK_M = 16 is the smallest tile tl.dot accepts; decode (M <= 16) wants wide
    # N tiles and deep K so each program streams a long run of weight bytes.
    shapes = [
        (16, 64, 128, 4, 4),
        (16, 128, 128, 4, 4),
        (16, 64, 256, 4, 3),
        (32, 64, 128, 4, 4),
        (64, 64, 64, 4, 3),
        (64, 128, 64, 8, 3),
        (128, 128, 32, 8, 3),
        (128, 64, 64, 4, 4),
    ]
    return [
        triton.Config(
            {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages
        )
        for bm, bn, bk, warps, stages in shapes
    ]
