"""2:4 + int4: a linear whose 2:4 weight keeps its values as group-wise int4 codes.

Layout in ``squeezeprompt.formats`` (``sparse24_int4_pack``): ``values[N, K/4]`` uint8
(the two kept codes of each group of 4 columns), the 2:4 ``meta`` of ``sparse24_linear``,
and ``scales``/``zeros`` ``[N, K/group_size]`` over the original K columns.

Kernels: CPU (scalar, AVX2, AVX-512: a streaming path for M <= 16, dequantized panels
and BLAS above). There is no CUDA kernel: on CUDA tensors the op runs its reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezeprompt.formats import SPARSE_GROUP, sparse24_int4_unpack
from squeezeprompt.ops import _checks as C
from squeezeprompt.ops._autograd import linear_input_grads, save_bias_info
from squeezeprompt.ops._dispatch import call_op

_OPS = torch.ops.squeezeprompt
_OP = "sparse24_int4_linear"


def sparse24_int4_linear_ref(
    x: Tensor,
    values: Tensor,
    meta: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Reference meaning: ``F.linear`` in float32 on the dense dequantized weight
    (``formats.sparse24_int4_unpack``: pruned entries exactly 0), x's dtype out."""
    w = sparse24_int4_unpack(values, meta, scales, zeros, group_size)
    b = None if bias is None else bias.float()
    return F.linear(x.float(), w, b).to(x.dtype)


def sparse24_int4_linear(
    x: Tensor,
    values: Tensor,
    meta: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Linear with a packed 2:4 weight whose kept values are group-wise int4 codes.

    Example:
        >>> from squeezeprompt.formats import sparse24_int4_pack
        >>> from squeezeprompt.quantize import quantize_int4
        >>> w = torch.randn(8, 64) * torch.tensor([0.0, 1.0, 1.0, 0.0]).repeat(16)
        >>> q = quantize_int4(w, group_size=32)
        >>> p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, 32)
        >>> y = sparse24_int4_linear(torch.randn(2, 64), p.values, p.meta, p.scales, p.zeros, 32)
        >>> y.shape
        torch.Size([2, 8])
    """
    return call_op(_OPS.sparse24_int4_linear, x, values, meta, scales, zeros, group_size, bias)


def check_sparse24_int4_linear_inputs(
    x: Tensor,
    values: Tensor,
    meta: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None,
) -> None:
    """The shape, dtype and device checks of ``sparse24_int4_linear`` (csrc/checks.h's words)."""
    C.check_dtype(_OP, "values", values, torch.uint8)
    C.check_2d(
        _OP,
        "values",
        values,
        "[out_features, in_features / 4] (the two kept int4 codes of each group of 4 "
        "columns in one byte)",
    )
    n, k = values.shape[0], values.shape[1] * SPARSE_GROUP
    C.check_activation(_OP, x, k)
    C.check_dtype(_OP, "meta", meta, torch.uint8)
    C.check_shape(_OP, "meta", meta, [n, (k // SPARSE_GROUP + 1) // 2])
    C.check_int4_grid(_OP, n, k, group_size, scales, zeros)
    C.check_same_device(_OP, x, values=values, meta=meta, scales=scales, zeros=zeros)
    C.check_bias(_OP, x, bias, n)


@torch.library.register_fake(f"squeezeprompt::{_OP}")
def _sparse24_int4_linear_fake(x, values, meta, scales, zeros, group_size, bias):
    check_sparse24_int4_linear_inputs(x, values, meta, scales, zeros, group_size, bias)
    return C.output_like(x, values.shape[0])


def _cuda_reference(x, values, meta, scales, zeros, group_size, bias):
    # No CUDA kernel yet: the reference, after the same checks the CPU kernel makes.
    check_sparse24_int4_linear_inputs(x, values, meta, scales, zeros, group_size, bias)
    C.check(
        bool((scales > 0).all()) and bool(scales.isfinite().all()),
        _OP,
        "scales must be finite and > 0",
    )
    C.check(bool(zeros.isfinite().all()), _OP, "zeros must be finite, got NaN or Inf")
    return sparse24_int4_linear_ref(x, values, meta, scales, zeros, group_size, bias)


torch.library.register_kernel(f"squeezeprompt::{_OP}", "cuda", _cuda_reference)


def _setup_context(ctx, inputs, output):
    _, values, meta, scales, zeros, group_size, bias = inputs
    ctx.save_for_backward(values, meta, scales, zeros)
    ctx.group_size = group_size
    save_bias_info(ctx, bias)


def _backward(ctx, grad):
    values, meta, scales, zeros = ctx.saved_tensors
    w = sparse24_int4_unpack(values, meta, scales, zeros, ctx.group_size)
    grad_x, grad_b = linear_input_grads(ctx, grad, w)
    return grad_x, None, None, None, None, None, grad_b


torch.library.register_autograd(f"squeezeprompt::{_OP}", _backward, setup_context=_setup_context)
