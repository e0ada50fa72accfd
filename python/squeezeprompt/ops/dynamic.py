"""W8A8: per-token dynamic int8 activations times int8 weights, int32 accumulation.

Each activation row is quantized with its own scale ``max|x_row| / 127`` (round half to
even, clamp to [-127, 127]; a row holding NaN or Inf gives a NaN output row); the int32
dot products are rescaled by the row scale and the weight's per-channel scale. The
backward treats the activation rounding as the identity (straight-through), giving
``grad @ dequantized_weight``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.ops import _checks as C
from squeezeprompt.ops._autograd import linear_input_grads, save_bias_info
from squeezeprompt.ops._dispatch import call_op

_OPS = torch.ops.squeezeprompt
INT8_MAX = 127


def quantize_activations_ref(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row symmetric int8 codes ``[M, K]`` and float32 scales ``[M]`` of 2-D-flattened ``x``.

    A row holding NaN or Inf has no int8 grid: its codes are 0 and its scale NaN, so
    its output row is NaN (where ``F.linear`` gives NaN or Inf) and other rows are
    untouched. A row of tiny subnormals, whose ``amax / 127`` underflows to 0, gets the
    smallest subnormal as its scale rather than a zero that would divide it into NaN.
    """
    xf = x.float().reshape(-1, x.shape[-1])
    amax = xf.abs().amax(dim=1)  # NaN or Inf when the row holds one
    finite = amax.isfinite()
    tiny = torch.finfo(torch.float32).smallest_normal * torch.finfo(torch.float32).eps
    scale = torch.where(amax > 0, (amax / INT8_MAX).clamp(min=tiny), torch.ones_like(amax))
    scale = torch.where(finite, scale, torch.full_like(scale, float("nan")))
    q = torch.round(xf / scale[:, None]).clamp(-INT8_MAX, INT8_MAX)
    q = torch.where(finite[:, None], q, torch.zeros_like(q)).to(torch.int8)
    return q, scale


def int8_dynamic_linear_ref(
    x: Tensor, qweight: Tensor, w_scales: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Reference meaning of :func:`int8_dynamic_linear` (exact integer accumulation)."""
    q, s = quantize_activations_ref(x)
    acc = (q.double() @ qweight.double().T).to(torch.int32)  # exact: |acc| < 2**31
    y = acc.float() * s[:, None] * w_scales.float()[None, :]
    if bias is not None:
        y = y + bias.float()
    return y.reshape(*x.shape[:-1], qweight.shape[0]).to(x.dtype)


def int8_dynamic_linear(
    x: Tensor, qweight: Tensor, w_scales: Tensor, bias: Tensor | None = None
) -> Tensor:
    """W8A8 linear: int8 weight ``[N, K]``, per-channel ``w_scales``, per-token int8 activations.

    Example:
        >>> from squeezeprompt.quantize import quantize_int8
        >>> qw = quantize_int8(torch.randn(16, 32))
        >>> int8_dynamic_linear(torch.randn(4, 32), qw.qweight, qw.scales).shape
        torch.Size([4, 16])
    """
    return call_op(_OPS.int8_dynamic_linear, x, qweight, w_scales, bias)


@torch.library.register_fake("squeezeprompt::int8_dynamic_linear")
def _int8_dynamic_linear_fake(x, qweight, w_scales, bias):
    op = "int8_dynamic_linear"
    C.check_dtype(op, "qweight", qweight, torch.int8)
    C.check_2d(op, "qweight", qweight, "[out_features, in_features]")
    n, k = qweight.shape
    C.check_activation(op, x, k)
    C.check_float(op, "w_scales", w_scales)
    C.check_shape(op, "w_scales", w_scales, [n])
    C.check_same_device(op, x, qweight=qweight, w_scales=w_scales)
    C.check_bias(op, x, bias, n)
    return C.output_like(x, n)


def _setup(ctx, inputs, output):
    _, qweight, w_scales, bias = inputs
    ctx.save_for_backward(qweight, w_scales)
    save_bias_info(ctx, bias)


def _backward(ctx, grad):
    qweight, w_scales = ctx.saved_tensors
    w = qweight.float() * w_scales.float()[:, None]
    grad_x, grad_b = linear_input_grads(ctx, grad, w)
    return grad_x, None, None, grad_b


torch.library.register_autograd(
    "squeezeprompt::int8_dynamic_linear", _backward, setup_context=_setup
)
