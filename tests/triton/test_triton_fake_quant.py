"""Triton fake_quantize forward and backward in the interpreter, against the references.

The forward is exact: the same float32 division (IEEE), round-half-to-even and clamps
as the reference, so float32 and float16 results are bit-identical. bfloat16 is within
one bf16 ulp: the interpreter truncates float32 to bf16 where torch rounds (a GPU
rounds). grad_x is exact; the per-group sums differ from the reference only in
summation order, at most ``G * eps * sum|g * d|`` per group.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from squeezeprompt.ops import fake_quantize_backward_ref, fake_quantize_ref  # noqa: E402
from squeezeprompt.ops.triton.fake_quant import fake_quantize_triton  # noqa: E402

OPS = torch.ops.squeezeprompt
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (x shape, group size, scale shape): per tensor, per channel, per group, odd sizes,
# a group wider than one backward block (300 > 256 columns).
CASES = [
    ((7, 24), 8, (7, 3)),
    ((3, 5, 12), 12, (5, 1)),
    ((5, 30), 3, (1,)),
    ((2, 600), 300, (2, 2)),
    ((9,), 9, ()),
]
GRIDS = [(0, 15), (-8, 7), (-128, 127)]


def make(shape, group, scale_shape, dtype, qmin, qmax):
    x = (torch.randn(shape) * 2).to(dtype)
    scale = torch.rand(scale_shape) * 0.3 + 0.02
    # Non-integer zero points exercise the round-then-clamp of the reference.
    zero = torch.rand(scale_shape) * (qmax - qmin) + qmin - 1.5
    return x, scale, zero


def assert_forward_matches(y, ref):
    if y.dtype == torch.bfloat16:
        ulp = torch.finfo(torch.bfloat16).eps * ref.float().abs().clamp_min(1e-30)
        assert bool(((y.float() - ref.float()).abs() <= ulp).all())
    else:
        assert torch.equal(y, ref)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,group,scale_shape", CASES)
@pytest.mark.parametrize("qmin,qmax", GRIDS)
def test_forward_matches_reference(dtype, shape, group, scale_shape, qmin, qmax):
    x, scale, zero = make(shape, group, scale_shape, dtype, qmin, qmax)
    y = OPS.fake_quantize_triton(x, scale, zero, qmin, qmax, group)
    assert_forward_matches(y, fake_quantize_ref(x, scale, zero, qmin, qmax, group))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape,group,scale_shape", CASES)
def test_backward_matches_reference(dtype, shape, group, scale_shape):
    qmin, qmax = -8, 7
    x, scale, zero = make(shape, group, scale_shape, dtype, qmin, qmax)
    grad = torch.randn(shape).to(dtype)
    got = OPS.fake_quantize_backward_triton(grad, x, scale, zero, qmin, qmax, group)
    want = fake_quantize_backward_ref(grad, x, scale, zero, qmin, qmax, group)
    assert torch.equal(got[0], want[0])
    # Summation order only: |dy/dscale| <= qmax - qmin and |dy/dzero| <= scale bound
    # each summed term, so a group's sum moves by at most G * eps * sum|g| * that.
    eps = torch.finfo(torch.float32).eps
    abs_grad = grad.float().abs().reshape(*shape[:-1], shape[-1] // group, group).sum(-1)
    per_group_scale = scale.expand(want[1].shape)
    bounds = (abs_grad * (qmax - qmin), abs_grad * per_group_scale)
    for g, w, bound in zip(got[1:], want[1:], bounds, strict=True):
        assert g.shape == w.shape and g.dtype == torch.float32
        assert bool(((g - w).abs() <= group * eps * bound).all())


def test_ties_round_half_to_even():
    # x / scale lands exactly on .5 and just below it; torch.round rounds ties to even.
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 3.5, -3.49999976, 40001.5])
    one = torch.ones(1)
    y = OPS.fake_quantize_triton(x, one, torch.zeros(1), -(2**15), 2**16 - 1, x.numel())
    assert torch.equal(y, fake_quantize_ref(x, one, torch.zeros(1), -(2**15), 2**16 - 1, 10))
    assert torch.equal(y, torch.round(x))


def test_autograd_sums_broadcast_scales():
    x = torch.randn(4, 16, requires_grad=True)
    scale = torch.full((4, 1), 0.1, requires_grad=True)
    zero = torch.full((1, 2), 7.6, requires_grad=True)
    fake_quantize_triton(x, scale, zero, 0, 15, 8).square().sum().backward()
    xr, sr, zr = (t.detach().clone().requires_grad_() for t in (x, scale, zero))
    gx, gs, gz = fake_quantize_backward_ref(
        2 * fake_quantize_ref(xr, sr, zr, 0, 15, 8), xr, sr, zr, 0, 15, 8
    )
    assert torch.equal(x.grad, gx)
    torch.testing.assert_close(scale.grad, gs.sum_to_size(4, 1))
    torch.testing.assert_close(zero.grad, gz.sum_to_size(1, 2))


def test_bad_group_size_names_the_problem():
    with pytest.raises(RuntimeError, match="group_size must divide"):
        OPS.fake_quantize_triton(torch.randn(2, 10), torch.ones(1), torch.zeros(1), 0, 15, 4)


INTERPRETER_OPCHECKS = ("test_schema", "test_autograd_registration", "test_faketensor")


def test_opcheck():
    x, scale, zero = make((3, 16), 8, (3, 2), torch.float32, 0, 15)
    args = (x, scale.requires_grad_(), zero, 0, 15, 8)
    torch.library.opcheck(OPS.fake_quantize_triton, args, test_utils=INTERPRETER_OPCHECKS)
    args = (torch.randn(3, 16), x, scale.detach(), zero, 0, 15, 8)
    torch.library.opcheck(OPS.fake_quantize_backward_triton, args, test_utils=INTERPRETER_OPCHECKS)
