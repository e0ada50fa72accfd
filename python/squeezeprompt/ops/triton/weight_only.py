"""Triton weight-only matmuls: int4 (group-wise) and int8 (per channel).

Registered as ``squeezeprompt::int4_weight_linear_triton`` and
``squeezeprompt::int8_weight_linear_triton`` with the schemas and meaning of
``int4_weight_linear`` / ``int8_weight_linear`` (their ``*_ref`` functions). Weights
are dequantized tile by tile in registers; float32 activations multiply in IEEE
float32 (no tf32), bf16/fp16 activations on the tensor cores in their own dtype
(the int4 weight is rounded to that dtype first, as in csrc/cuda/mma_tile.cuh).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

from squeezeprompt.ops._checks import output_like
from squeezeprompt.ops.triton._autotune import interpreting, linear_configs

# The checks and autograd of the main ops, so errors and gradients match every backend.
from squeezeprompt.ops.weight_only import (
    check_int4_weight_linear_inputs,
    check_int8_weight_linear_inputs,
    int4_weight_linear_backward,
    int4_weight_linear_setup_context,
    int8_weight_linear_backward,
    int8_weight_linear_setup_context,
)


@triton.autotune(configs=linear_configs(), key=["M", "N", "K"])
@triton.jit
def _int4_linear_kernel(
    x_ptr, q_ptr, s_ptr, z_ptr, b_ptr, y_ptr, M, N, K, G,
    HAS_BIAS: tl.constexpr, FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rm = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    groups = K // G
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x_mask = (rm[:, None] < M) & (rk[None, :] < K)
        x = tl.load(x_ptr + rm[:, None] * K + rk[None, :], mask=x_mask, other=0.0)
        w_mask = (rn[:, None] < N) & (rk[None, :] < K)
        # Byte k // 2 holds column k in its low (k even) or high (k odd) nibble.
        byte = tl.load(q_ptr + rn[:, None] * (K // 2) + rk[None, :] // 2, mask=w_mask, other=0)
        code = (byte.to(tl.int32) >> ((rk[None, :] % 2) * 4)) & 0xF
        g = rn[:, None] * groups + rk[None, :] // G
        s = tl.load(s_ptr + g, mask=w_mask, other=0.0)
        z = tl.load(z_ptr + g, mask=w_mask, other=0.0)
        w = (code.to(tl.float32) - z) * s  # [BLOCK_N, BLOCK_K], exactly as dequantize_int4
        if FP32:
            acc += tl.dot(x.to(tl.float32), tl.trans(w), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w.to(x.dtype)))
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0)[None, :]
    y_mask = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(y_ptr + rm[:, None] * N + rn[None, :], acc.to(y_ptr.dtype.element_ty), mask=y_mask)


@triton.autotune(configs=linear_configs(), key=["M", "N", "K"])
@triton.jit
def _int8_linear_kernel(
    x_ptr, q_ptr, s_ptr, b_ptr, y_ptr, M, N, K,
    HAS_BIAS: tl.constexpr, FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    rm = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    rn = (tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x_mask = (rm[:, None] < M) & (rk[None, :] < K)
        x = tl.load(x_ptr + rm[:, None] * K + rk[None, :], mask=x_mask, other=0.0)
        w_mask = (rn[:, None] < N) & (rk[None, :] < K)
        q = tl.load(q_ptr + rn[:, None] * K + rk[None, :], mask=w_mask, other=0)
        # int8 codes are exact in bf16/fp16, so the channel scale is applied to the
        # float32 accumulator instead of rounding q * scale to the activation dtype.
        if FP32:
            acc += tl.dot(x.to(tl.float32), tl.trans(q.to(tl.float32)), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(q.to(x.dtype)))
    acc *= tl.load(s_ptr + rn, mask=rn < N, other=0.0)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0)[None, :]
    y_mask = (rm[:, None] < M) & (rn[None, :] < N)
    tl.store(y_ptr + rm[:, None] * N + rn[None, :], acc.to(y_ptr.dtype.element_ty), mask=y_mask)


def _dot_in_fp32(x: Tensor) -> bool:
    """float32 activations keep IEEE float32 products (no tf32) to match the references.

    bf16 also goes through float32 in the interpreter: Triton 3.9's interpreter returns
    garbage from ``tl.dot`` on two bf16 operands (fp16 is fine), so CPU tests of the
    bf16 path exercise the same dequantization with a float32 product.
    """
    return x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and interpreting())


def _grid(m: int, n: int):
    return lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(n, meta["BLOCK_N"]))


def _float_or(t: Tensor | None, fallback: Tensor) -> Tensor:
    # Triton needs a pointer even when HAS_BIAS is off; `fallback` is never read then.
    return fallback if t is None else t.float().contiguous()


@triton_op(
    "squeezeprompt::int4_weight_linear_triton",
    mutates_args=(),
    schema="(Tensor x, Tensor qweight, Tensor scales, Tensor zeros, int group_size, "
    "Tensor? bias) -> Tensor",
)
def int4_weight_linear_triton(
    x: Tensor,
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    bias: Tensor | None = None,
) -> Tensor:
    """Triton kernel for :func:`squeezeprompt.ops.int4_weight_linear` (same arguments).

    Example:
        >>> from squeezeprompt.quantize import quantize_int4
        >>> qw = quantize_int4(torch.randn(32, 64), group_size=32)
        >>> int4_weight_linear_triton(torch.randn(2, 64), qw.qweight, qw.scales,
        ...                           qw.zeros, 32).shape  # doctest: +SKIP
        torch.Size([2, 32])
    """
    check_int4_weight_linear_inputs(x, qweight, scales, zeros, group_size, bias)
    n, k = qweight.shape[0], qweight.shape[1] * 2
    x2 = x.reshape(-1, k).contiguous()
    m = x2.shape[0]
    y = x2.new_empty((m, n))
    if m and n:
        s, z = scales.float().contiguous(), zeros.float().contiguous()
        wrap_triton(_int4_linear_kernel)[_grid(m, n)](
            x2, qweight.contiguous(), s, z, _float_or(bias, s), y, m, n, k, group_size,
            HAS_BIAS=bias is not None, FP32=_dot_in_fp32(x),
        )  # fmt: skip
    return y.reshape(*x.shape[:-1], n)


@triton_op(
    "squeezeprompt::int8_weight_linear_triton",
    mutates_args=(),
    schema="(Tensor x, Tensor qweight, Tensor scales, Tensor? bias) -> Tensor",
)
def int8_weight_linear_triton(
    x: Tensor, qweight: Tensor, scales: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Triton kernel for :func:`squeezeprompt.ops.int8_weight_linear` (same arguments).

    Example:
        >>> from squeezeprompt.quantize import quantize_int8
        >>> qw = quantize_int8(torch.randn(32, 64))
        >>> int8_weight_linear_triton(torch.randn(2, 64), qw.qweight,
        ...                           qw.scales).shape  # doctest: +SKIP
        torch.Size([2, 32])
    """
    check_int8_weight_linear_inputs(x, qweight, scales, bias)
    n, k = qweight.shape
    x2 = x.reshape(-1, k).contiguous()
    m = x2.shape[0]
    y = x2.new_empty((m, n))
    if m and n:
        s = scales.float().contiguous()
        wrap_triton(_int8_linear_kernel)[_grid(m, n)](
            x2, qweight.contiguous(), s, _float_or(bias, s), y, m, n, k,
            HAS_BIAS=bias is not None, FP32=_dot_in_fp32(x),
        )  # fmt: skip
    return y.reshape(*x.shape[:-1], n)


# triton_op's own fake kernel runs the function; under TRITON_INTERPRET=1 that would
# run the interpreter on fake tensors, so the ops register fakes like the main ops'.
@int4_weight_linear_triton.register_fake
def _int4_fake(x, qweight, scales, zeros, group_size, bias=None):
    check_int4_weight_linear_inputs(x, qweight, scales, zeros, group_size, bias)
    return output_like(x, qweight.shape[0])


@int8_weight_linear_triton.register_fake
def _int8_fake(x, qweight, scales, bias=None):
    check_int8_weight_linear_inputs(x, qweight, scales, bias)
    return output_like(x, qweight.shape[0])


int4_weight_linear_triton.register_autograd(
    int4_weight_linear_backward, setup_context=int4_weight_linear_setup_context
)
int8_weight_linear_triton.register_autograd(
    int8_weight_linear_backward, setup_context=int8_weight_linear_setup_context
)
