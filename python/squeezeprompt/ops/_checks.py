"""Shape, dtype and device checks for the fake kernels.

The C++ kernels check the same conditions with the same words (csrc/cpu/common.h),
so an error reads the same in eager mode and under ``torch.compile``. Value checks
(NaN or non-positive scales) need the data and live in the real kernels only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

ACTIVATION_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def check(cond: object, op: str, message: str) -> None:
    """Raises ``RuntimeError("{op}: {message}")`` unless ``cond`` holds (symbolic-shape safe)."""
    torch._check(cond, lambda: f"{op}: {message}")


def check_activation(op: str, x: Tensor, in_features: int) -> None:
    check(
        x.dtype in ACTIVATION_DTYPES,
        op,
        f"x must be float32, bfloat16 or float16, got {x.dtype}",
    )
    check(x.dim() >= 1, op, "x must have at least 1 dimension, got a scalar")
    check(
        x.shape[-1] == in_features,
        op,
        f"x.shape[-1] must equal in_features ({in_features}), got x.shape={list(x.shape)}",
    )


def check_dtype(op: str, name: str, t: Tensor, want: torch.dtype) -> None:
    check(t.dtype == want, op, f"{name} must be {want}, got {t.dtype}")


def check_float(op: str, name: str, t: Tensor) -> None:
    check(t.is_floating_point(), op, f"{name} must be a floating-point tensor, got {t.dtype}")


def check_shape(op: str, name: str, t: Tensor, want: Sequence[int]) -> None:
    check(
        list(t.shape) == list(want),
        op,
        f"{name} must have shape {list(want)}, got {list(t.shape)}",
    )


def check_same_device(op: str, x: Tensor, **others: Tensor | None) -> None:
    for name, t in others.items():
        if t is not None:
            check(
                t.device == x.device,
                op,
                f"{name} must be on the same device as x ({x.device}), got {t.device}",
            )


def check_bias(op: str, x: Tensor, bias: Tensor | None, out_features: int) -> None:
    if bias is None:
        return
    check_float(op, "bias", bias)
    check_shape(op, "bias", bias, [out_features])
    check_same_device(op, x, bias=bias)


def check_2d(op: str, name: str, t: Tensor, layout: str) -> None:
    check(t.dim() == 2, op, f"{name} must be 2-D {layout}, got shape {list(t.shape)}")


def check_int4_grid(
    op: str, out_features: int, in_features: int, group_size: int, scales: Tensor, zeros: Tensor
) -> None:
    """A group size that divides ``in_features`` and float ``[N, K / group_size]`` scales
    and zero points: the int4 grid every int4 op shares."""
    check(group_size > 0, op, f"group_size must be positive, got {group_size}")
    check(
        in_features % group_size == 0,
        op,
        f"group_size must divide in_features (in_features={in_features}, group_size={group_size})",
    )
    check_float(op, "scales", scales)
    check_float(op, "zeros", zeros)
    check_shape(op, "scales", scales, [out_features, in_features // group_size])
    check_shape(op, "zeros", zeros, [out_features, in_features // group_size])


def output_like(x: Tensor, out_features: int) -> Tensor:
    """The empty result of a linear: x's leading shape, ``out_features`` last, x's dtype."""
    return x.new_empty((*x.shape[:-1], out_features))
