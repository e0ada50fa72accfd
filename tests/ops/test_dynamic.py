"""int8_dynamic_linear (W8A8) against its reference.

The forward is exact arithmetic after the same float32 activation quantization
(integer products summed in int32, then the same two float32 multiplies and bias
add), so kernel and reference must agree bit for bit in every activation dtype.
The backward is straight-through: the gradient of ``x @ dequantized_weight.T``.
"""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.ops import int8_dynamic_linear, int8_dynamic_linear_ref, int8_weight_linear_ref
from squeezeprompt.ops.dynamic import quantize_activations_ref

from .samples import (
    DTYPE_IDS,
    DTYPES,
    F32_EPS,
    INT8_K,
    INT8_N,
    X_CASE_IDS,
    X_CASES,
    assert_fake_matches_real,
    assert_rejects,
    assert_within,
    int8_weight,
    leaf,
    linear_bound,
    make_x,
    maybe_bias,
)

OPS = torch.ops.squeezeprompt
OP = "int8_dynamic_linear"


def _assert_bitwise(got, want, what):
    assert got.dtype == want.dtype and got.shape == want.shape, what
    diff = (got.float() - want.float()).abs()
    assert torch.equal(got, want), (
        f"{what}: not bitwise equal to the reference; max |diff| {diff.max().item():.3e} "
        f"at {int(diff.argmax())}, {int((diff > 0).sum())} of {diff.numel()} differ"
    )


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int8_dynamic_linear_is_bitwise_equal_to_ref(case, dtype, with_bias):
    q, s = int8_weight()
    x = make_x(case, INT8_K, dtype)
    bias = maybe_bias(with_bias, INT8_N, dtype)
    got = int8_dynamic_linear(x, q, s, bias)
    assert got.shape == (*case.lead, INT8_N)
    _assert_bitwise(got, int8_dynamic_linear_ref(x, q, s, bias), f"{OP} {case.name}")


def test_int8_dynamic_linear_rounds_ties_to_even_and_handles_zero_rows():
    # Row 0: amax 127 gives scale 1, so 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 (half to even).
    # Row 1 is all zeros: its scale is 1 and its output is exactly zero.
    x = torch.tensor([[127.0, 0.5, 1.5, 2.5], [0.0, 0.0, 0.0, 0.0]])
    q = torch.eye(4, dtype=torch.int8)
    y = int8_dynamic_linear(x, q, torch.ones(4))
    assert y.tolist() == [[127.0, 0.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]
    codes, scales = quantize_activations_ref(x)
    assert codes.tolist()[0] == [127, 0, 2, 2] and scales.tolist() == [1.0, 1.0]


def test_int8_dynamic_linear_quantization_error_is_bounded():
    # Against the float product with the same weight: per-token rounding moves each
    # activation by at most half a step, amax / 254.
    q, s = int8_weight()
    x = torch.randn(9, INT8_K)
    w = q.float() * s[:, None]
    exact = x.double() @ w.double().T
    step = x.abs().amax(1, keepdim=True).double() / 127
    bound = 0.5 * step * w.double().abs().sum(1) + linear_bound(x, w, None, x, F32_EPS)
    err = (int8_dynamic_linear(x, q, s).double() - exact).abs()
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3e}"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int8_dynamic_linear_grads_are_straight_through(case, dtype):
    # The reference rounds through int8 and has no gradient, so the documented
    # straight-through meaning is checked against the weight-only reference instead.
    q, s = int8_weight()
    x = make_x(case, INT8_K, dtype)
    bias = maybe_bias(True, INT8_N, dtype)
    xa, ba, xb, bb = leaf(x), leaf(bias), leaf(x), leaf(bias)
    out = int8_dynamic_linear(xa, q, s, ba)
    g = torch.randn(out.shape).to(dtype)
    gx, gb = torch.autograd.grad(out, [xa, ba], g)
    wx, wb = torch.autograd.grad(int8_weight_linear_ref(xb, q, s, bb), [xb, bb], g)
    w = q.float() * s[:, None]
    assert_within(gx, wx, linear_bound(g, w.T, None, wx, F32_EPS), "grad_x")
    rows = g.reshape(-1, INT8_N).double()
    bound_b = (rows.shape[0] + 1) * F32_EPS * rows.abs().sum(0)
    if dtype != torch.float32:
        bound_b = bound_b + torch.finfo(dtype).eps * wb.double().abs()
    assert_within(gb, wb, bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    q, s = int8_weight()
    for lead, with_bias in (((3,), True), ((2, 9), False), ((20,), True)):
        x = torch.randn(*lead, INT8_K).to(dtype).requires_grad_(True)
        bias = maybe_bias(with_bias, INT8_N, dtype)
        bias = None if bias is None else bias.requires_grad_(True)
        torch.library.opcheck(OPS.int8_dynamic_linear, (x, q, s, bias))


def test_compile_fullgraph_forward_and_backward():
    q, s = int8_weight()

    @torch.compile(fullgraph=True)
    def f(x, bias):
        return int8_dynamic_linear(x, q, s, bias)

    x = torch.randn(4, 6, INT8_K, requires_grad=True)
    bias = torch.randn(INT8_N, requires_grad=True)
    y = f(x, bias)
    _assert_bitwise(y, int8_dynamic_linear_ref(x, q, s, bias), "compiled")
    y.sum().backward()
    w = q.float() * s[:, None]
    want = w.sum(0).expand(4, 6, -1)
    ones = torch.ones(4, 6, INT8_N)
    assert_within(x.grad, want, linear_bound(ones, w.T, None, want, F32_EPS), "grad_x")
    assert torch.equal(bias.grad, torch.full((INT8_N,), 24.0))


@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernel_matches_real_metadata(case):
    dtype = DTYPES[X_CASES.index(case) % 3]  # the dtype cycles with the case
    q, s = int8_weight()
    args = (make_x(case, INT8_K, dtype), q, s, maybe_bias(True, INT8_N, dtype))
    assert_fake_matches_real(OPS.int8_dynamic_linear, args)


def _args(**override):
    q, s = int8_weight()
    args = {"x": torch.randn(3, INT8_K), "qweight": q, "w_scales": s, "bias": torch.randn(INT8_N)}
    args.update(override)
    return tuple(args.values())


_SHAPE_ERRORS = {
    "x_int": (dict(x=torch.ones(3, INT8_K, dtype=torch.int8)), "x"),
    "x_last_dim": (dict(x=torch.randn(3, INT8_K - 1)), "x.shape[-1]"),
    "qweight_float": (dict(qweight=torch.randn(INT8_N, INT8_K)), "qweight"),
    "qweight_1d": (dict(qweight=torch.ones(INT8_K, dtype=torch.int8)), "qweight"),
    "w_scales_n_plus_1": (dict(w_scales=torch.ones(INT8_N + 1)), "w_scales"),
    "w_scales_2d": (dict(w_scales=torch.ones(INT8_N, 1)), "w_scales"),
    "w_scales_int": (dict(w_scales=torch.ones(INT8_N, dtype=torch.int32)), "w_scales"),
    "bias_shape": (dict(bias=torch.ones(INT8_N + 1)), "bias"),
    "w_scales_device": (dict(w_scales=torch.ones(INT8_N, device="meta")), "w_scales"),
    "qweight_device": (
        dict(qweight=torch.ones(INT8_N, INT8_K, dtype=torch.int8, device="meta")),
        "qweight",
    ),
}


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_SHAPE_ERRORS))
def test_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = _SHAPE_ERRORS[name]
    assert_rejects(OPS.int8_dynamic_linear, _args(**override), OP, arg, fake)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -0.5])
def test_rejects_bad_scale_values(value):
    w_scales = torch.ones(INT8_N)
    w_scales[3] = value
    assert_rejects(OPS.int8_dynamic_linear, _args(w_scales=w_scales), OP, "w_scales")
