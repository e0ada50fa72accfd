"""masked_linear against its reference.

The op computes in x's dtype (as ``F.linear`` does), so kernel and reference may
differ by the summation order of that dtype: ``samples.linear_bound`` with the eps
of x's dtype. Its weight gradient is zero where the mask is False and the dense
gradient ``grad.T @ x`` elsewhere.
"""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.ops import masked_linear, masked_linear_ref

from .samples import (
    DTYPE_IDS,
    DTYPES,
    X_CASE_IDS,
    X_CASES,
    assert_fake_matches_real,
    assert_rejects,
    assert_within,
    leaf,
    linear_bound,
    make_x,
    maybe_bias,
)

OPS = torch.ops.squeezeprompt
OP = "masked_linear"
K, N = 72, 40


def _weight(dtype):
    w = torch.randn(N, K).to(dtype)
    mask = torch.rand(N, K) > 0.5
    return w, mask


def _eps(dtype):
    return torch.finfo(dtype).eps


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_masked_linear_matches_ref(case, dtype, with_bias):
    w, mask = _weight(dtype)
    x = make_x(case, K, dtype)
    bias = maybe_bias(with_bias, N, dtype)
    got = masked_linear(x, w, mask, bias)
    want = masked_linear_ref(x, w, mask, bias)
    assert got.shape == (*case.lead, N)
    dense = torch.where(mask, w, torch.zeros_like(w))
    assert_within(got, want, linear_bound(x, dense, bias, want, _eps(dtype)), f"{OP} {case.name}")


def test_masked_weights_do_not_reach_the_output():
    w = torch.randn(N, K)
    mask = torch.rand(N, K) > 0.5
    x = torch.randn(3, K)
    poisoned = torch.where(mask, w, torch.full_like(w, 1e30))
    torch.testing.assert_close(masked_linear(x, poisoned, mask), masked_linear(x, w, mask))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_masked_linear_grads(case, dtype):
    w0, mask = _weight(dtype)
    x0 = make_x(case, K, dtype)
    b0 = maybe_bias(True, N, dtype)
    x, w, b = leaf(x0), leaf(w0), leaf(b0)
    out = masked_linear(x, w, mask, b)
    g = torch.randn(out.shape).to(dtype)
    gx, gw, gb = torch.autograd.grad(out, [x, w, b], g)
    rx_, rw_, rb_ = leaf(x0), leaf(w0), leaf(b0)
    rx, rw, rb = torch.autograd.grad(masked_linear_ref(rx_, rw_, mask, rb_), [rx_, rw_, rb_], g)
    eps = _eps(dtype)
    dense = torch.where(mask, w0, torch.zeros_like(w0))
    assert_within(gx, rx, linear_bound(g, dense.T, None, rx, eps), "grad_x")

    # The weight gradient: exactly zero where masked, grad.T @ x (length-M sums) elsewhere.
    assert gw.dtype == dtype and gw.shape == (N, K)
    assert bool((gw[~mask] == 0).all()), "masked weights must get exactly zero gradient"
    g2, x2 = g.reshape(-1, N), x0.reshape(-1, K)
    full = (g2.double().T @ x2.double()).to(dtype)
    bound_w = linear_bound(g2.T, x2.T, None, full, eps)
    assert_within(gw[mask], full[mask], bound_w[mask], "grad_weight vs dense gradient")
    assert_within(gw, rw, 2 * bound_w, "grad_weight vs reference")

    rows = g2.double()
    bound_b = (rows.shape[0] + 1) * eps * rows.abs().sum(0)
    if dtype != torch.float32:
        bound_b = bound_b + eps * rb.double().abs() + torch.finfo(dtype).smallest_normal
    assert_within(gb, rb, bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    w, mask = _weight(dtype)
    for lead, with_bias in (((3,), True), ((2, 9), False)):
        x = torch.randn(*lead, K).to(dtype).requires_grad_(True)
        bias = maybe_bias(with_bias, N, dtype)
        bias = None if bias is None else bias.requires_grad_(True)
        torch.library.opcheck(OPS.masked_linear, (x, w.requires_grad_(True), mask, bias))


def test_compile_fullgraph_forward_and_backward():
    @torch.compile(fullgraph=True)
    def f(x, w, mask, bias):
        return masked_linear(x, w, mask, bias)

    w0, mask = _weight(torch.float32)
    x = torch.randn(5, K, requires_grad=True)
    w = w0.clone().requires_grad_(True)
    bias = torch.randn(N, requires_grad=True)
    y = f(x, w, mask, bias)
    want = masked_linear_ref(x, w0, mask, bias)
    dense = torch.where(mask, w0, torch.zeros_like(w0))
    assert_within(y, want, linear_bound(x, dense, bias, want, _eps(torch.float32)), "y")
    y.sum().backward()
    assert bool((w.grad[~mask] == 0).all())
    col_sums = x.detach().sum(0).expand(N, K)
    bound = (6 * _eps(torch.float32) * x.detach().abs().sum(0)).expand(N, K)
    assert_within(w.grad[mask], col_sums[mask], bound[mask], "grad_w")
    assert torch.equal(bias.grad, torch.full((N,), 5.0))


@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernel_matches_real_metadata(case):
    dtype = DTYPES[X_CASES.index(case) % 3]  # the dtype cycles with the case
    w, mask = _weight(dtype)
    args = (make_x(case, K, dtype), w, mask, maybe_bias(True, N, dtype))
    assert_fake_matches_real(OPS.masked_linear, args)


def _args(**override):
    w, mask = _weight(torch.float32)
    args = {"x": torch.randn(3, K), "weight": w, "mask": mask, "bias": torch.randn(N)}
    args.update(override)
    return tuple(args.values())


_SHAPE_ERRORS = {
    "x_int": (dict(x=torch.ones(3, K, dtype=torch.int32)), "x"),
    "x_last_dim": (dict(x=torch.randn(3, K + 4)), "x.shape[-1]"),
    "weight_1d": (dict(weight=torch.randn(K)), "weight"),
    "weight_dtype": (dict(weight=torch.randn(N, K, dtype=torch.float64)), "weight"),
    "mask_float": (dict(mask=torch.ones(N, K)), "mask"),
    "mask_uint8": (dict(mask=torch.ones(N, K, dtype=torch.uint8)), "mask"),
    "mask_shape": (dict(mask=torch.ones(N, K - 1, dtype=torch.bool)), "mask"),
    "bias_shape": (dict(bias=torch.ones(N + 1)), "bias"),
    "mask_device": (dict(mask=torch.ones(N, K, dtype=torch.bool, device="meta")), "mask"),
    "weight_device": (dict(weight=torch.ones(N, K, device="meta")), "weight"),
}


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_SHAPE_ERRORS))
def test_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = _SHAPE_ERRORS[name]
    assert_rejects(OPS.masked_linear, _args(**override), OP, arg, fake)
