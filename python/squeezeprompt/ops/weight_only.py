"""Weight-only quantized linears: int8 per output channel, int4 per group.

Activations stay in their float dtype; weights are dequantized inside the kernel.
The backward gives the gradient with respect to ``x`` (and ``bias``) so soft prompts
and LoRA adapters can train through frozen quantized weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezeprompt.formats import dequantize_int4
from squeezeprompt.ops import _checks as C
from squeezeprompt.ops._autograd import linear_input_grads, save_bias_info
from squeezeprompt.ops._dispatch import call_op

_OPS = torch.ops.squeezeprompt


def int8_weight_linear_ref(
    x: Tensor, qweight: Tensor, scales: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Reference meaning: ``x @ (qweight * scales[:, None]).T + bias`` in float32, x's dtype out."""
    w = qweight.float() * scales.float()[:, None]
    b = None if bias is None else bias.float()
    return F.linear(x.float(), w, b).to(x.dtype)


def int4_weight_linear_ref(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Reference meaning: ``x @ ((q - zeros) * scales).T + bias`` per group, in float32."""
    w = dequantize_int4(qweight, scales, zeros, group_size)
    b = None if bias is None else bias.float()
    return F.linear(x.float(), w, b).to(x.dtype)


def int8_weight_linear(
    x: Tensor, qweight: Tensor, scales: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Linear with an int8 weight ``[N, K]`` and one float scale per output channel.

    Example:
        >>> from squeezeprompt.quantize import quantize_int8
        >>> qw = quantize_int8(torch.randn(32, 64))
        >>> int8_weight_linear(torch.randn(2, 64), qw.qweight, qw.scales).shape
        torch.Size([2, 32])
    """
    return call_op(_OPS.int8_weight_linear, x, qweight, scales, bias)


def int4_weight_linear(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Linear with a packed int4 weight ``[N, K / 2]`` and per-group scales and zero points.

    Example:
        >>> from squeezeprompt.quantize import quantize_int4
        >>> qw = quantize_int4(torch.randn(32, 256), group_size=128)
        >>> y = int4_weight_linear(torch.randn(2, 256, dtype=torch.bfloat16),
        ...                        qw.qweight, qw.scales, qw.zeros, 128)
        >>> y.shape, y.dtype
        (torch.Size([2, 32]), torch.bfloat16)
    """
    return call_op(_OPS.int4_weight_linear, x, qweight, scales, zeros, group_size, bias)


def check_int8_weight_linear_inputs(
    x: Tensor, qweight: Tensor, scales: Tensor, bias: Tensor | None
) -> None:
    """The shape, dtype and device checks of ``int8_weight_linear``, shared by its backends."""
    op = "int8_weight_linear"
    C.check_dtype(op, "qweight", qweight, torch.int8)
    C.check_2d(op, "qweight", qweight, "[out_features, in_features]")
    n, k = qweight.shape
    C.check_activation(op, x, k)
    C.check_float(op, "scales", scales)
    C.check_shape(op, "scales", scales, [n])
    C.check_same_device(op, x, qweight=qweight, scales=scales)
    C.check_bias(op, x, bias, n)


def check_int4_weight_linear_inputs(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None,
    op: str = "int4_weight_linear",
) -> None:
    """The shape, dtype and device checks of ``int4_weight_linear``, shared by its backends
    and by ``int4_dynamic_linear`` (same weight arguments; ``op`` names the op in errors)."""
    C.check_dtype(op, "qweight", qweight, torch.uint8)
    C.check_2d(op, "qweight", qweight, "[out_features, in_features / 2] (two int4 codes per byte)")
    n, k = qweight.shape[0], qweight.shape[1] * 2
    C.check_activation(op, x, k)
    C.check_int4_grid(op, n, k, group_size, scales, zeros)
    C.check_same_device(op, x, qweight=qweight, scales=scales, zeros=zeros)
    C.check_bias(op, x, bias, n)


@torch.library.register_fake("squeezeprompt::int8_weight_linear")
def _int8_weight_linear_fake(x, qweight, scales, bias):
    check_int8_weight_linear_inputs(x, qweight, scales, bias)
    return C.output_like(x, qweight.shape[0])


@torch.library.register_fake("squeezeprompt::int4_weight_linear")
def _int4_weight_linear_fake(x, qweight, scales, zeros, group_size, bias):
    check_int4_weight_linear_inputs(x, qweight, scales, zeros, group_size, bias)
    return C.output_like(x, qweight.shape[0])


# Autograd shared by every kernel of these ops (the Triton ones register it too).
def int8_weight_linear_setup_context(ctx, inputs, output):
    _, qweight, scales, bias = inputs
    ctx.save_for_backward(qweight, scales)
    save_bias_info(ctx, bias)


def int8_weight_linear_backward(ctx, grad):
    qweight, scales = ctx.saved_tensors
    grad_x, grad_b = linear_input_grads(ctx, grad, qweight.float() * scales.float()[:, None])
    return grad_x, None, None, grad_b


def int4_weight_linear_setup_context(ctx, inputs, output):
    _, qweight, scales, zeros, group_size, bias = inputs
    ctx.save_for_backward(qweight, scales, zeros)
    ctx.group_size = group_size
    save_bias_info(ctx, bias)


def int4_weight_linear_backward(ctx, grad):
    qweight, scales, zeros = ctx.saved_tensors
    w = dequantize_int4(qweight, scales, zeros, ctx.group_size)
    grad_x, grad_b = linear_input_grads(ctx, grad, w)
    return grad_x, None, None, None, None, grad_b


torch.library.register_autograd(
    "squeezeprompt::int8_weight_linear",
    int8_weight_linear_backward,
    setup_context=int8_weight_linear_setup_context,
)
torch.library.register_autograd(
    "squeezeprompt::int4_weight_linear",
    int4_weight_linear_backward,
    setup_context=int4_weight_linear_setup_context,
)
