"""Triton fake quantization: forward and LSQ-style backward, per group along the last dim.

Registered as ``squeezeprompt::fake_quantize_triton`` and
``squeezeprompt::fake_quantize_backward_triton`` with the schemas and meaning of
``fake_quantize`` / ``fake_quantize_backward`` (``fake_quantize_ref`` and
``fake_quantize_backward_ref``): IEEE division (``div_rn``; Triton's ``/`` is
approximate on GPUs) and round half to even.
"""

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

# The checks and autograd of the main op, so errors and gradients match every backend.
from squeezeprompt.ops.fake_quant import (
    check_fake_quantize_backward_inputs,
    check_fake_quantize_inputs,
    fake_quantize_input_grads,
    fake_quantize_setup_context,
)
from squeezeprompt.ops.triton._rounding import grid_zero, round_half_even

_FORWARD_BLOCK = 1024
_BACKWARD_ELEMENTS = 4096  # elements per backward program: groups x columns
_MAX_GROUP_BLOCK = 256


@triton.jit
def _fake_quantize_kernel(
    x_ptr, s_ptr, z_ptr, y_ptr, total, K, G, qmin, qmax, BLOCK: tl.constexpr
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    g = (offs // K) * (K // G) + (offs % K) // G
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + g, mask=mask, other=1.0)
    z = grid_zero(tl.load(z_ptr + g, mask=mask, other=0.0), qmin, qmax)
    # The reference's clamp keeps NaN; GPU min/max drop it unless told otherwise.
    nan = tl.PropagateNan.ALL
    q = round_half_even(tl.math.div_rn(x, s)) + z
    q = tl.minimum(tl.maximum(q, qmin, propagate_nan=nan), qmax, propagate_nan=nan)
    tl.store(y_ptr + offs, ((q - z) * s).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _fake_quantize_backward_kernel(
    grad_ptr, x_ptr, s_ptr, z_ptr, gx_ptr, gs_ptr, gz_ptr, groups, G, qmin, qmax,
    BLOCK_GROUPS: tl.constexpr, BLOCK_COLS: tl.constexpr,
):  # fmt: skip
    # Groups tile each row, so group g is the contiguous run [g * G, (g + 1) * G); a
    # program owns whole groups and sums their scale/zero gradients without atomics.
    rg = tl.program_id(0).to(tl.int64) * BLOCK_GROUPS + tl.arange(0, BLOCK_GROUPS)
    group_mask = rg < groups
    s = tl.load(s_ptr + rg, mask=group_mask, other=1.0)
    z = grid_zero(tl.load(z_ptr + rg, mask=group_mask, other=0.0), qmin, qmax)
    ds_sum = tl.zeros((BLOCK_GROUPS,), dtype=tl.float32)
    dz_sum = tl.zeros((BLOCK_GROUPS,), dtype=tl.float32)
    for c0 in range(0, G, BLOCK_COLS):
        rc = c0 + tl.arange(0, BLOCK_COLS)
        mask = group_mask[:, None] & (rc[None, :] < G)
        idx = rg[:, None] * G + rc[None, :]
        g = tl.load(grad_ptr + idx, mask=mask, other=0.0).to(tl.float32)
        v = tl.math.div_rn(tl.load(x_ptr + idx, mask=mask, other=0.0).to(tl.float32), s[:, None])
        r = round_half_even(v)
        q = r + z[:, None]
        below = q < qmin
        above = q > qmax
        inside = ~(below | above)
        tl.store(gx_ptr + idx, tl.where(inside, g, 0.0).to(gx_ptr.dtype.element_ty), mask=mask)
        ds = tl.where(below, qmin - z[:, None], tl.where(above, qmax - z[:, None], r - v))
        dz = tl.where(inside, 0.0, -s[:, None])
        ds_sum += tl.sum(g * ds, axis=1)
        dz_sum += tl.sum(g * dz, axis=1)
    tl.store(gs_ptr + rg, ds_sum, mask=group_mask)
    tl.store(gz_ptr + rg, dz_sum, mask=group_mask)


def _per_group(t: Tensor, shape: list[int]) -> Tensor:
    return t.float().expand(shape).contiguous()


@triton_op(
    "squeezeprompt::fake_quantize_triton",
    mutates_args=(),
    schema="(Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, int group_size) "
    "-> Tensor",
)
def fake_quantize_triton(
    x: Tensor, scale: Tensor, zero_point: Tensor, qmin: int, qmax: int, group_size: int
) -> Tensor:
    """Triton kernel for :func:`squeezeprompt.ops.fake_quantize` (same arguments).

    Example:
        >>> y = fake_quantize_triton(torch.randn(2, 8), torch.full((2, 1), 0.1),
        ...                          torch.zeros(2, 1), -8, 7, 8)  # doctest: +SKIP
        >>> y.shape  # doctest: +SKIP
        torch.Size([2, 8])
    """
    shape = check_fake_quantize_inputs(x, scale, zero_point, qmin, qmax, group_size)
    xc = x.contiguous()
    y = torch.empty_like(xc)
    total = xc.numel()
    if total:
        s, z = _per_group(scale, shape), _per_group(zero_point, shape)
        # Float bounds: Triton specialises the int 1 to a constant, and the math is float.
        wrap_triton(_fake_quantize_kernel)[(triton.cdiv(total, _FORWARD_BLOCK),)](
            xc, s, z, y, total, x.shape[-1], group_size, float(qmin), float(qmax),
            BLOCK=_FORWARD_BLOCK,
        )  # fmt: skip
    return y


@triton_op(
    "squeezeprompt::fake_quantize_backward_triton",
    mutates_args=(),
    schema="(Tensor grad, Tensor x, Tensor scale, Tensor zero_point, int qmin, int qmax, "
    "int group_size) -> (Tensor, Tensor, Tensor)",
)
def fake_quantize_backward_triton(
    grad: Tensor,
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    qmin: int,
    qmax: int,
    group_size: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Triton kernel for ``fake_quantize_backward``: ``(grad_x, grad_scale, grad_zero)``.

    Example:
        >>> x = torch.randn(2, 8)
        >>> gx, gs, gz = fake_quantize_backward_triton(torch.ones(2, 8), x,
        ...     torch.full((2, 1), 0.1), torch.zeros(2, 1), -8, 7, 8)  # doctest: +SKIP
        >>> gs.shape  # doctest: +SKIP
        torch.Size([2, 1])
    """
    shape = check_fake_quantize_backward_inputs(grad, x, scale, zero_point, qmin, qmax, group_size)
    xc = x.contiguous()
    gc = grad.to(x.dtype).contiguous()
    grad_x = torch.empty_like(xc)
    grad_s = xc.new_empty(shape, dtype=torch.float32)
    grad_z = torch.empty_like(grad_s)
    groups = grad_s.numel()
    if groups:
        s, z = _per_group(scale, shape), _per_group(zero_point, shape)
        block_cols = min(triton.next_power_of_2(group_size), _MAX_GROUP_BLOCK)
        block_groups = max(1, _BACKWARD_ELEMENTS // block_cols)
        wrap_triton(_fake_quantize_backward_kernel)[(triton.cdiv(groups, block_groups),)](
            gc, xc, s, z, grad_x, grad_s, grad_z, groups, group_size, float(qmin), float(qmax),
            BLOCK_GROUPS=block_groups, BLOCK_COLS=block_cols,
        )  # fmt: skip
    return grad_x, grad_s, grad_z


def _backward(ctx, grad):
    return fake_quantize_input_grads(ctx, grad, fake_quantize_backward_triton)


# triton_op's own fake kernel runs the function; under TRITON_INTERPRET=1 that would
# run the interpreter on fake tensors, so the ops register fakes like the main ops'.
@fake_quantize_triton.register_fake
def _fake(x, scale, zero_point, qmin, qmax, group_size):
    check_fake_quantize_inputs(x, scale, zero_point, qmin, qmax, group_size)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@fake_quantize_backward_triton.register_fake
def _backward_fake(grad, x, scale, zero_point, qmin, qmax, group_size):
    shape = check_fake_quantize_backward_inputs(grad, x, scale, zero_point, qmin, qmax, group_size)
    grad_s = x.new_empty(shape, dtype=torch.float32)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        grad_s,
        torch.empty_like(grad_s),
    )


fake_quantize_triton.register_autograd(_backward, setup_context=fake_quantize_setup_context)
