"""Fake quantization for quantization-aware training, per group along the last dim.

Forward: ``z = clamp(round(zero_point), qmin, qmax)``,
``q = clamp(round(x / scale) + z, qmin, qmax)``, ``y = (q - z) * scale``.
``scale`` and ``zero_point`` broadcast to ``x.shape[:-1] + [x.shape[-1] / group_size]``
(so per-tensor, per-channel and per-group all use the same op).

Backward (straight-through with learnable scale and zero point, as in LSQ+):
inside the range ``dy/dx = 1``, ``dy/dscale = round(x/scale) - x/scale``,
``dy/dzero = 0``; below ``qmin`` (above ``qmax``) ``dy/dx = 0``,
``dy/dscale = qmin - z`` (``qmax - z``), ``dy/dzero = -scale``. LSQ's gradient
scaling factor is left to the caller (scale the learning rate or the parameter).
"""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.ops import _checks as C

_OPS = torch.ops.squeezeprompt
QUANT_LOWEST, QUANT_HIGHEST = -32768, 65535


def _expand_groups(t: Tensor, x: Tensor, group_size: int) -> Tensor:
    shape = (*x.shape[:-1], x.shape[-1] // group_size)
    return t.float().expand(shape).repeat_interleave(group_size, dim=-1)


def fake_quantize_ref(
    x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int, group_size: int
) -> Tensor:
    """Reference meaning of :func:`fake_quantize` (float32 math, result in x's dtype)."""
    s = _expand_groups(scale, x, group_size)
    z = _expand_groups(zero_point, x, group_size).round().clamp(qmin, qmax)
    q = (torch.round(x.float() / s) + z).clamp(qmin, qmax)
    return ((q - z) * s).to(x.dtype)


def fake_quantize_backward_ref(
    grad: Tensor,
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: int,
    qmax: int,
    group_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Reference gradients: ``(grad_x, grad_scale, grad_zero_point)``, the latter two per group
    at the full broadcast shape ``x.shape[:-1] + [x.shape[-1] / group_size]``."""
    s = _expand_groups(scale, x, group_size)
    z = _expand_groups(zero_point, x, group_size).round().clamp(qmin, qmax)
    v = x.float() / s
    r = torch.round(v)
    q = r + z
    g = grad.float()
    below, above = q < qmin, q > qmax
    inside = ~(below | above)
    grad_x = torch.where(inside, g, torch.zeros_like(g))
    ds = torch.where(below, qmin - z, torch.where(above, qmax - z, r - v))
    dz = torch.where(inside, torch.zeros_like(s), -s)
    group_shape = (*x.shape[:-1], x.shape[-1] // group_size, group_size)
    grad_s = (g * ds).reshape(group_shape).sum(-1)
    grad_z = (g * dz).reshape(group_shape).sum(-1)
    return grad_x.to(x.dtype), grad_s, grad_z


def fake_quantize(
    x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int, group_size: int
) -> Tensor:
    """Quantize-dequantize ``x`` on the grid ``(scale, zero_point, [qmin, qmax])`` per group.

    Example (4-bit asymmetric, per-channel weight of 2 rows, learnable scale):
        >>> w = torch.randn(2, 8)
        >>> scale = torch.full((2, 1), 0.1, requires_grad=True)
        >>> y = fake_quantize(w, scale, torch.full((2, 1), 8.0), 0, 15, group_size=8)
        >>> y.sum().backward(); scale.grad.shape
        torch.Size([2, 1])
    """
    return _OPS.fake_quantize(x, scale, zero_point, qmin, qmax, group_size)


def _check_common(op, x, scale, zero_point, qmin, qmax, group_size):
    C.check(
        x.dtype in C.ACTIVATION_DTYPES, op, f"x must be float32, bfloat16 or float16, got {x.dtype}"
    )
    C.check(x.dim() >= 1, op, "x must have at least 1 dimension, got a scalar")
    C.check(
        qmin < qmax and qmin >= QUANT_LOWEST and qmax <= QUANT_HIGHEST,
        op,
        f"need qmin < qmax within [{QUANT_LOWEST}, {QUANT_HIGHEST}] (16 bits at most), "
        f"got qmin={qmin}, qmax={qmax}",
    )
    k = x.shape[-1]
    C.check(group_size > 0, op, f"group_size must be positive, got {group_size}")
    C.check(
        k % group_size == 0,
        op,
        f"group_size must divide x.shape[-1] (x.shape[-1]={k}, group_size={group_size})",
    )
    C.check_float(op, "scale", scale)
    C.check_float(op, "zero_point", zero_point)
    C.check_same_device(op, x, scale=scale, zero_point=zero_point)
    group_shape = [*x.shape[:-1], k // group_size]
    for name, t in (("scale", scale), ("zero_point", zero_point)):
        ok = t.dim() <= x.dim() and all(
            t.shape[-i] in (1, group_shape[-i]) for i in range(1, t.dim() + 1)
        )
        C.check(
            ok,
            op,
            f"{name} must broadcast to x.shape[:-1] + [x.shape[-1] / group_size] = "
            f"{group_shape}, got shape {list(t.shape)}",
        )
    return group_shape


def check_fake_quantize_inputs(
    x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int, group_size: int
) -> list[int]:
    """The checks of ``fake_quantize``, shared by its backends; returns the per-group shape
    ``x.shape[:-1] + [x.shape[-1] / group_size]``."""
    return _check_common("fake_quantize", x, scale, zero_point, qmin, qmax, group_size)


def check_fake_quantize_backward_inputs(
    grad: Tensor,
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: int,
    qmax: int,
    group_size: int,
) -> list[int]:
    """The checks of ``fake_quantize_backward``, shared by its backends; returns the
    per-group shape like :func:`check_fake_quantize_inputs`."""
    op = "fake_quantize_backward"
    group_shape = _check_common(op, x, scale, zero_point, qmin, qmax, group_size)
    C.check_shape(op, "grad", grad, list(x.shape))
    return group_shape


@torch.library.register_fake("squeezeprompt::fake_quantize")
def _fake_quantize_fake(x, scale, zero_point, qmin, qmax, group_size):
    check_fake_quantize_inputs(x, scale, zero_point, qmin, qmax, group_size)
    # The kernels return contiguous results whatever x's strides.
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.register_fake("squeezeprompt::fake_quantize_backward")
def _fake_quantize_backward_fake(grad, x, scale, zero_point, qmin, qmax, group_size):
    group_shape = check_fake_quantize_backward_inputs(
        grad, x, scale, zero_point, qmin, qmax, group_size
    )
    per_group = x.new_empty(group_shape, dtype=torch.float32)
    grad_x = torch.empty_like(x, memory_format=torch.contiguous_format)
    return grad_x, per_group, torch.empty_like(per_group)


# Autograd shared by every kernel of the op (the Triton one registers it too).
def fake_quantize_setup_context(ctx, inputs, output):
    x, scale, zero_point, qmin, qmax, group_size = inputs
    ctx.save_for_backward(x, scale, zero_point)
    ctx.args = (qmin, qmax, group_size)


def fake_quantize_input_grads(ctx, grad, backward_op):
    """``fake_quantize``'s backward, with ``backward_op`` a kernel of ``fake_quantize_backward``."""
    x, scale, zero_point = ctx.saved_tensors
    grad_x, grad_s, grad_z = backward_op(grad, x, scale, zero_point, *ctx.args)
    # Broadcast inputs get the sum over the dimensions they were broadcast along.
    grad_s = grad_s.sum_to_size(scale.shape).to(scale.dtype)
    grad_z = grad_z.sum_to_size(zero_point.shape).to(zero_point.dtype)
    return grad_x, grad_s, grad_z, None, None, None


def _backward(ctx, grad):
    return fake_quantize_input_grads(ctx, grad, _OPS.fake_quantize_backward)


torch.library.register_autograd(
    "squeezeprompt::fake_quantize", _backward, setup_context=fake_quantize_setup_context
)
