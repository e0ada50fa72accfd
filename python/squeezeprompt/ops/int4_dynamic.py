"""W4A8: group-wise int4 weights times activations quantized per token to int8 at run time.

The weight is ``int4_weight_linear``'s (packed codes ``[N, K/2]``, per-group ``scales``
and ``zeros`` ``[N, K/group_size]``, ``w = (q - zero) * scale``); each activation row is
quantized as ``int8_dynamic_linear`` does (``quantize_activations_ref``: symmetric, scale
``max|x_row| / 127``, a row holding NaN or Inf gives a NaN output row). Then::

    out[m, n] = x_scale[m] * sum_g scales[n, g] * sum_{k in g} xq[m, k] * (q[n, k] - zeros[n, g])

plus the bias, in x's dtype. The integer sums are exact, so kernels differ from the
reference only by the float rounding of one product per group.

The backward treats the activation rounding as the identity (straight-through): it is
``int4_weight_linear``'s, ``grad @ dequantized_weight``.

Kernels: CPU (scalar, AVX2, AVX-512 builds of the same source; SIMD for group sizes that
are multiples of 32). There is no CUDA kernel: on CUDA tensors the op runs its reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.formats import unpack_int4
from squeezeprompt.ops import _checks as C
from squeezeprompt.ops._dispatch import call_op
from squeezeprompt.ops.dynamic import quantize_activations_ref
from squeezeprompt.ops.weight_only import (
    check_int4_weight_linear_inputs,
    int4_weight_linear_backward,
    int4_weight_linear_setup_context,
)

_OPS = torch.ops.squeezeprompt
_OP = "int4_dynamic_linear"


def int4_dynamic_linear_ref(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Reference meaning of :func:`int4_dynamic_linear`, computed in float64.

    Integer sums per group are exact in float64 and so is nearly everything after them:
    the result is rounded once, to float32, then to x's dtype (as the kernels finish).

    Example:
        >>> from squeezeprompt.formats import pack_int4
        >>> q = pack_int4(torch.full((1, 4), 9, dtype=torch.uint8))  # codes 9, zero 8: w = 1
        >>> x = torch.tensor([[127.0, 1.4, -2.6, 0.0]])  # x_scale 1: rounds to 127, 1, -3, 0
        >>> int4_dynamic_linear_ref(x, q, torch.ones(1, 1), torch.full((1, 1), 8.0), 4)
        tensor([[125.]])
    """
    xq, xs = quantize_activations_ref(x)
    m, k = xq.shape
    n, groups = qweight.shape[0], k // group_size
    codes = unpack_int4(qweight).double().reshape(n, groups, group_size)
    xg = xq.double().reshape(m, groups, group_size)
    dots = torch.einsum("mgk,ngk->mng", xg, codes)  # exact integers
    zero_terms = zeros.double()[None] * xg.sum(-1)[:, None, :]
    y = xs.double()[:, None] * ((dots - zero_terms) * scales.double()[None]).sum(-1)
    if bias is not None:
        y = y + bias.double()
    return y.float().reshape(*x.shape[:-1], n).to(x.dtype)


def int4_dynamic_linear(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """W4A8 linear: packed int4 weight ``[N, K / 2]`` with per-group scales and zero points,
    activations quantized per token to int8.

    Example:
        >>> from squeezeprompt.quantize import quantize_int4
        >>> qw = quantize_int4(torch.randn(32, 128), group_size=64)
        >>> int4_dynamic_linear(torch.randn(2, 128), qw.qweight, qw.scales, qw.zeros, 64).shape
        torch.Size([2, 32])
    """
    return call_op(_OPS.int4_dynamic_linear, x, qweight, scales, zeros, group_size, bias)


@torch.library.register_fake(f"squeezeprompt::{_OP}")
def _int4_dynamic_linear_fake(x, qweight, scales, zeros, group_size, bias):
    check_int4_weight_linear_inputs(x, qweight, scales, zeros, group_size, bias, op=_OP)
    return C.output_like(x, qweight.shape[0])


def _cuda_reference(x, qweight, scales, zeros, group_size, bias):
    # No CUDA kernel: the reference, after the same checks the CPU kernel makes.
    check_int4_weight_linear_inputs(x, qweight, scales, zeros, group_size, bias, op=_OP)
    C.check(
        bool((scales > 0).all()) and bool(scales.isfinite().all()),
        _OP,
        "scales must be finite and > 0",
    )
    C.check(bool(zeros.isfinite().all()), _OP, "zeros must be finite, got NaN or Inf")
    return int4_dynamic_linear_ref(x, qweight, scales, zeros, group_size, bias)


torch.library.register_kernel(f"squeezeprompt::{_OP}", "cuda", _cuda_reference)

# Same inputs as int4_weight_linear and the same straight-through gradient.
torch.library.register_autograd(
    f"squeezeprompt::{_OP}",
    int4_weight_linear_backward,
    setup_context=int4_weight_linear_setup_context,
)
