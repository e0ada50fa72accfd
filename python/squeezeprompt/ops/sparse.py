"""Sparse linears: training-time masks and packed 2:4 semi-structured weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from squeezeprompt.formats import SPARSE_GROUP, sparse24_unpack
from squeezeprompt.ops import _checks as C
from squeezeprompt.ops._autograd import linear_input_grads, save_bias_info
from squeezeprompt.ops._dispatch import call_op

_OPS = torch.ops.squeezeprompt


def masked_linear_ref(
    x: Tensor, weight: Tensor, mask: Tensor, bias: Tensor | None = None
) -> Tensor:
    """Reference meaning: ``F.linear(x, where(mask, weight, 0), bias)``."""
    w = torch.where(mask, weight, torch.zeros_like(weight))
    return F.linear(x, w, None if bias is None else bias.to(x.dtype))


def sparse24_pack_ref(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Reference packing of a 2:4-sparse ``[N, K]`` weight into ``(values [N, K/2], meta)``.

    In each group of 4 the nonzero columns are kept in order; a group with fewer than
    2 nonzeros is filled with its lowest-indexed zero columns (see ``formats.py``).
    """
    n, k = weight.shape
    groups = weight.reshape(n, k // SPARSE_GROUP, SPARSE_GROUP)
    nonzero = groups != 0
    if bool((nonzero.sum(-1) > 2).any()):
        raise ValueError("sparse24_pack_ref: weight is not 2:4 sparse")
    # Rank columns: nonzeros first, then zeros, each by index; keep the first two, sorted.
    col = torch.arange(SPARSE_GROUP, device=weight.device)
    order = (~nonzero).long() * SPARSE_GROUP + col
    idx = order.argsort(dim=-1)[..., :2].sort(dim=-1).values
    values = groups.gather(-1, idx).reshape(n, k // 2)
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)
    if nibble.shape[1] % 2:
        nibble = F.pad(nibble, (0, 1))
    meta = nibble[:, 0::2] | (nibble[:, 1::2] << 4)
    return values, meta


def sparse24_linear_ref(
    x: Tensor,
    values: Tensor,
    meta: Tensor,
    scales: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """Reference meaning: ``x @ sparse24_unpack(values, meta, scales).T + bias`` in float32."""
    w = sparse24_unpack(values, meta, scales).float()
    return F.linear(x.float(), w, None if bias is None else bias.float()).to(x.dtype)


def masked_linear(x: Tensor, weight: Tensor, mask: Tensor, bias: Tensor | None = None) -> Tensor:
    """Linear whose weight is multiplied by a boolean ``mask``; masked weights get no gradient.

    Example:
        >>> w = torch.randn(4, 8, requires_grad=True)
        >>> mask = torch.rand(4, 8) > 0.5
        >>> masked_linear(torch.randn(2, 8), w, mask).sum().backward()
        >>> bool((w.grad[~mask] == 0).all())
        True
    """
    return call_op(_OPS.masked_linear, x, weight, mask, bias)


def sparse24_pack(weight: Tensor) -> tuple[Tensor, Tensor]:
    """Packs a 2:4-sparse weight ``[N, K]`` (K a multiple of 4) into ``(values, meta)``.

    Raises if a group of 4 columns holds more than 2 nonzeros: prune to 2:4 first.

    Example:
        >>> values, meta = sparse24_pack(torch.tensor([[0.0, 1.5, 0.0, -2.0]]))
        >>> values.tolist(), meta.tolist()
        ([[1.5, -2.0]], [[13]])
    """
    return _OPS.sparse24_pack(weight)


def sparse24_linear(
    x: Tensor,
    values: Tensor,
    meta: Tensor,
    scales: Tensor | None = None,
    bias: Tensor | None = None,
) -> Tensor:
    """Linear with a packed 2:4 weight; int8 ``values`` take per-channel ``scales``.

    Example:
        >>> w = torch.randn(8, 16) * torch.tensor([1.0, 0.0, 1.0, 0.0]).repeat(4)
        >>> values, meta = sparse24_pack(w)
        >>> sparse24_linear(torch.randn(3, 16), values, meta).shape
        torch.Size([3, 8])
    """
    return call_op(_OPS.sparse24_linear, x, values, meta, scales, bias)


@torch.library.register_fake("squeezeprompt::masked_linear")
def _masked_linear_fake(x, weight, mask, bias):
    op = "masked_linear"
    C.check_2d(op, "weight", weight, "[out_features, in_features]")
    C.check_activation(op, x, weight.shape[1])
    C.check(
        weight.dtype == x.dtype,
        op,
        f"weight must have the dtype of x ({x.dtype}), got {weight.dtype}",
    )
    C.check_dtype(op, "mask", mask, torch.bool)
    C.check_shape(op, "mask", mask, list(weight.shape))
    C.check_same_device(op, x, weight=weight, mask=mask)
    C.check_bias(op, x, bias, weight.shape[0])
    return C.output_like(x, weight.shape[0])


@torch.library.register_fake("squeezeprompt::sparse24_pack")
def _sparse24_pack_fake(weight):
    op = "sparse24_pack"
    C.check_float(op, "weight", weight)
    C.check_2d(op, "weight", weight, "[out_features, in_features]")
    n, k = weight.shape
    C.check(
        k % SPARSE_GROUP == 0, op, f"in_features must be a multiple of 4 for 2:4 sparsity, got {k}"
    )
    meta_cols = (k // SPARSE_GROUP + 1) // 2
    return weight.new_empty((n, k // 2)), weight.new_empty((n, meta_cols), dtype=torch.uint8)


@torch.library.register_fake("squeezeprompt::sparse24_linear")
def _sparse24_linear_fake(x, values, meta, scales, bias):
    op = "sparse24_linear"
    C.check_2d(op, "values", values, "[out_features, in_features / 2]")
    n, k = values.shape[0], values.shape[1] * 2
    C.check_activation(op, x, k)
    C.check(k % SPARSE_GROUP == 0, op, f"in_features must be a multiple of 4, got {k}")
    C.check_dtype(op, "meta", meta, torch.uint8)
    C.check_shape(op, "meta", meta, [n, (k // SPARSE_GROUP + 1) // 2])
    int8_values = values.dtype == torch.int8
    C.check(
        int8_values or values.dtype in C.ACTIVATION_DTYPES,
        op,
        f"values must be float32, bfloat16, float16 or int8, got {values.dtype}",
    )
    if int8_values:
        C.check(scales is not None, op, f"int8 values need per-channel scales [{n}], got None")
        C.check_float(op, "scales", scales)
        C.check_shape(op, "scales", scales, [n])
    else:
        C.check(
            scales is None,
            op,
            f"scales go with int8 values only, got {values.dtype} values and scales",
        )
    C.check_same_device(op, x, values=values, meta=meta, scales=scales)
    C.check_bias(op, x, bias, n)
    return C.output_like(x, n)


def _masked_setup(ctx, inputs, output):
    x, weight, mask, bias = inputs
    ctx.save_for_backward(x, weight, mask)
    save_bias_info(ctx, bias)


def _masked_backward(ctx, grad):
    x, weight, mask = ctx.saved_tensors
    grad_x = grad_w = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = _OPS.masked_linear(grad, weight.t(), mask.t(), None)
    if ctx.needs_input_grad[1]:
        g2 = grad.reshape(-1, grad.shape[-1])
        full = g2.t() @ x.reshape(-1, x.shape[-1]).to(g2.dtype)
        grad_w = torch.where(mask, full, torch.zeros_like(full)).to(weight.dtype)
    if ctx.has_bias and ctx.needs_input_grad[3]:
        grad_b = grad.reshape(-1, grad.shape[-1]).sum(0).to(ctx.bias_dtype)
    return grad_x, grad_w, None, grad_b


def _sparse24_setup(ctx, inputs, output):
    _, values, meta, scales, bias = inputs
    ctx.save_for_backward(values, meta, scales)
    save_bias_info(ctx, bias)


def _sparse24_backward(ctx, grad):
    values, meta, scales = ctx.saved_tensors
    grad_x, grad_b = linear_input_grads(ctx, grad, sparse24_unpack(values, meta, scales).float())
    return grad_x, None, None, None, grad_b


torch.library.register_autograd(
    "squeezeprompt::masked_linear", _masked_backward, setup_context=_masked_setup
)
torch.library.register_autograd(
    "squeezeprompt::sparse24_linear", _sparse24_backward, setup_context=_sparse24_setup
)
