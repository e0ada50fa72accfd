"""Backward helpers shared by the linear ops whose weights are frozen."""

from __future__ import annotations

from torch import Tensor


def save_bias_info(ctx, bias: Tensor | None) -> None:
    """Remembers whether a bias was passed and its dtype, for :func:`linear_input_grads`."""
    ctx.has_bias = bias is not None
    ctx.bias_dtype = None if bias is None else bias.dtype


def linear_input_grads(ctx, grad: Tensor, weight: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``x @ weight.T + bias`` with respect to ``x`` and ``bias``.

    ``weight`` is the dequantized float32 weight; the product runs in float32 and is
    cast back to the gradient's dtype. The bias is the op's last input.
    """
    grad_x = grad_b = None
    if ctx.needs_input_grad[0]:
        grad_x = (grad.float() @ weight).to(grad.dtype)
    if ctx.has_bias and ctx.needs_input_grad[-1]:
        grad_b = grad.float().reshape(-1, grad.shape[-1]).sum(0).to(ctx.bias_dtype)
    return grad_x, grad_b
