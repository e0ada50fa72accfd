"""Triton int4/int8 weight-only matmuls in the interpreter, against the references.

Bounds: float32 activations take IEEE float32 products, so the kernel and the
reference differ only in summation order, at most ``K * eps * sum|x||w|`` per output.
16-bit activations are compared by SQNR: fp16 rounds the int4 weight and the output
to fp16 (11 bits, each adding noise near -71 dB); bf16 rounds the output to 8 bits
(about -53 dB; the interpreter truncates instead of rounding, about -47 dB).
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from squeezeprompt.ops import int4_weight_linear_ref, int8_weight_linear_ref  # noqa: E402
from squeezeprompt.ops.triton.weight_only import int4_weight_linear_triton  # noqa: E402
from squeezeprompt.quantize import quantize_int4, quantize_int8  # noqa: E402

OPS = torch.ops.squeezeprompt
MIN_SQNR_DB = {torch.float16: 55.0, torch.bfloat16: 40.0}
# (leading shape of x, K, N, group size): odd M and N, K off the tile size, a group
# that does not divide the 32-wide K tile, and a 3-D x.
INT4_CASES = [((1,), 64, 33, 32), ((7,), 96, 40, 24), ((2, 9), 72, 17, 8), ((20,), 40, 65, 40)]
INT8_CASES = [((1,), 64, 33), ((7,), 100, 40), ((2, 9), 37, 17), ((20,), 48, 65)]
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def sqnr_db(actual: torch.Tensor, reference: torch.Tensor) -> float:
    ref = reference.double()
    noise = (actual.double() - ref).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


def check_close(y: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    assert y.dtype == ref.dtype and y.shape == ref.shape
    if y.dtype == torch.float32:
        k = x.shape[-1]
        bound = k * torch.finfo(torch.float32).eps * (x.float().abs() @ w.abs().T) + 1e-30
        assert bool(((y - ref).abs() <= bound).all()), float(((y - ref).abs() / bound).max())
    else:
        assert sqnr_db(y, ref) >= MIN_SQNR_DB[y.dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead,k,n,group", INT4_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_int4_matches_reference(dtype, lead, k, n, group, with_bias):
    qw = quantize_int4(torch.randn(n, k), group_size=group)
    x = torch.randn(*lead, k).to(dtype)
    bias = torch.randn(n) if with_bias else None
    y = OPS.int4_weight_linear_triton(x, qw.qweight, qw.scales, qw.zeros, group, bias)
    ref = int4_weight_linear_ref(x, qw.qweight, qw.scales, qw.zeros, group, bias)
    check_close(y, ref, x, qw.dequantize())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead,k,n", INT8_CASES)
@pytest.mark.parametrize("with_bias", [False, True])
def test_int8_matches_reference(dtype, lead, k, n, with_bias):
    qw = quantize_int8(torch.randn(n, k))
    x = torch.randn(*lead, k).to(dtype)
    bias = torch.randn(n).to(dtype) if with_bias else None
    y = OPS.int8_weight_linear_triton(x, qw.qweight, qw.scales, bias)
    ref = int8_weight_linear_ref(x, qw.qweight, qw.scales, bias)
    check_close(y, ref, x, qw.dequantize())


def test_empty_batch():
    qw = quantize_int4(torch.randn(8, 32), group_size=16)
    y = int4_weight_linear_triton(torch.randn(0, 32), qw.qweight, qw.scales, qw.zeros, 16)
    assert y.shape == (0, 8)


def test_gradients_match_reference():
    qw = quantize_int4(torch.randn(24, 64), group_size=32)
    x = torch.randn(5, 64, requires_grad=True)
    bias = torch.randn(24, requires_grad=True)
    grad = torch.randn(5, 24)
    OPS.int4_weight_linear_triton(x, qw.qweight, qw.scales, qw.zeros, 32, bias).backward(grad)
    xr = x.detach().clone().requires_grad_()
    br = bias.detach().clone().requires_grad_()
    int4_weight_linear_ref(xr, qw.qweight, qw.scales, qw.zeros, 32, br).backward(grad)
    torch.testing.assert_close(x.grad, xr.grad)
    torch.testing.assert_close(bias.grad, br.grad)


def test_int8_gradient_matches_reference():
    qw = quantize_int8(torch.randn(24, 40))
    x = torch.randn(3, 40, requires_grad=True)
    grad = torch.randn(3, 24)
    OPS.int8_weight_linear_triton(x, qw.qweight, qw.scales, None).backward(grad)
    xr = x.detach().clone().requires_grad_()
    int8_weight_linear_ref(xr, qw.qweight, qw.scales).backward(grad)
    torch.testing.assert_close(x.grad, xr.grad)


def test_bad_group_size_names_the_problem():
    qw = quantize_int4(torch.randn(8, 64), group_size=32)
    with pytest.raises(RuntimeError, match="group_size must divide in_features"):
        OPS.int4_weight_linear_triton(torch.randn(2, 64), qw.qweight, qw.scales, qw.zeros, 48)


# AOT dispatch decomposes a triton_op into its function (so Inductor sees the kernel),
# which under the interpreter would run the kernel on fake tensors; that check and
# torch.compile run on a GPU in tests/cuda/test_cuda_triton.py.
INTERPRETER_OPCHECKS = ("test_schema", "test_autograd_registration", "test_faketensor")


def test_opcheck():
    qw = quantize_int4(torch.randn(16, 32), group_size=16)
    args = (torch.randn(3, 32), qw.qweight, qw.scales, qw.zeros, 16, torch.randn(16))
    torch.library.opcheck(OPS.int4_weight_linear_triton, args, test_utils=INTERPRETER_OPCHECKS)
    q8 = quantize_int8(torch.randn(16, 32))
    args = (torch.randn(3, 32), q8.qweight, q8.scales, None)
    torch.library.opcheck(OPS.int8_weight_linear_triton, args, test_utils=INTERPRETER_OPCHECKS)
