"""int8_weight_linear and int4_weight_linear against their references.

Both the kernel and the reference dequantize the weight with the same single float32
rounding per element and accumulate in float32, so they may differ only by
summation order: ``samples.linear_bound`` with float32 eps.
"""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.formats import dequantize_int4
from squeezeprompt.ops import (
    int4_weight_linear,
    int4_weight_linear_ref,
    int8_weight_linear,
    int8_weight_linear_ref,
)

from .samples import (
    DTYPE_IDS,
    DTYPES,
    F32_EPS,
    INT4_K,
    INT4_N,
    INT4_SHAPE_ERRORS,
    INT8_K,
    INT8_N,
    X_CASE_IDS,
    X_CASES,
    assert_fake_matches_real,
    assert_rejects,
    assert_within,
    int4_args,
    int4_weight,
    int8_weight,
    leaf,
    linear_bound,
    make_x,
    maybe_bias,
)

OPS = torch.ops.squeezeprompt
GROUP_SIZES = (8, 24, 72)  # 72 = K: one group per row


def _int8_dense(q, s):
    return q.float() * s.float()[:, None]


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int8_weight_linear_matches_ref(case, dtype, with_bias):
    q, s = int8_weight()
    x = make_x(case, INT8_K, dtype)
    bias = maybe_bias(with_bias, INT8_N, dtype)
    got = int8_weight_linear(x, q, s, bias)
    want = int8_weight_linear_ref(x, q, s, bias)
    assert got.shape == (*case.lead, INT8_N)
    bound = linear_bound(x, _int8_dense(q, s), bias, want, F32_EPS)
    assert_within(got, want, bound, f"int8_weight_linear {case.name}")


@pytest.mark.parametrize("group_size", GROUP_SIZES)
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int4_weight_linear_matches_ref(case, dtype, with_bias, group_size):
    w = int4_weight(group_size=group_size)
    x = make_x(case, INT4_K, dtype)
    bias = maybe_bias(with_bias, INT4_N, dtype)
    args = (w.qweight, w.scales, w.zeros, w.group_size, bias)
    got = int4_weight_linear(x, *args)
    want = int4_weight_linear_ref(x, *args)
    assert got.shape == (*case.lead, INT4_N)
    dense = dequantize_int4(w.qweight, w.scales, w.zeros, w.group_size)
    assert_within(got, want, linear_bound(x, dense, bias, want, F32_EPS), f"int4 {case.name}")


def test_int4_weight_linear_reads_the_documented_nibble_order():
    # One row, K=2: byte 0x21 holds column 0 = 1 (low nibble) and column 1 = 2 (high).
    qweight = torch.tensor([[0x21]], dtype=torch.uint8)
    scales, zeros = torch.ones(1, 1), torch.zeros(1, 1)
    y = int4_weight_linear(torch.tensor([[1.0, 100.0]]), qweight, scales, zeros, 2)
    assert y.item() == 1.0 * 1 + 100.0 * 2


def _check_input_grads(op, ref, x, weight_args, bias, dense):
    """grad wrt x and bias of the op against autograd through the reference."""
    xa, xb, ba, bb = leaf(x), leaf(x), leaf(bias), leaf(bias)
    out = op(xa, *weight_args, ba)
    g = torch.randn(out.shape).to(out.dtype)
    got = torch.autograd.grad(out, [t for t in (xa, ba) if t is not None], g)
    want = torch.autograd.grad(ref(xb, *weight_args, bb), [t for t in (xb, bb) if t is not None], g)
    # grad_x = g @ W: a length-N dot product per element, in float32 on both sides.
    bound_x = linear_bound(g, dense.T, None, want[0], F32_EPS)
    assert_within(got[0], want[0], bound_x, "grad_x")
    if bias is not None:
        # grad_bias = sum of g over the M rows, in float32, then cast to bias's dtype.
        rows = g.reshape(-1, g.shape[-1]).double()
        bound_b = (rows.shape[0] + 1) * F32_EPS * rows.abs().sum(0)
        if bias.dtype != torch.float32:
            info = torch.finfo(bias.dtype)
            bound_b = bound_b + info.eps * want[1].double().abs() + info.smallest_normal
        assert_within(got[1], want[1], bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int8_weight_linear_grads_match_ref(case, dtype):
    q, s = int8_weight()
    x = make_x(case, INT8_K, dtype)
    bias = maybe_bias(True, INT8_N, dtype)
    _check_input_grads(
        int8_weight_linear, int8_weight_linear_ref, x, (q, s), bias, _int8_dense(q, s)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_int4_weight_linear_grads_match_ref(case, dtype):
    w = int4_weight(group_size=24)
    x = make_x(case, INT4_K, dtype)
    bias = maybe_bias(True, INT4_N, dtype)
    dense = dequantize_int4(w.qweight, w.scales, w.zeros, w.group_size)
    args = (w.qweight, w.scales, w.zeros, w.group_size)
    _check_input_grads(int4_weight_linear, int4_weight_linear_ref, x, args, bias, dense)


def test_int4_weight_linear_grad_without_bias():
    w = int4_weight(group_size=8)
    x = torch.randn(3, INT4_K, requires_grad=True)
    int4_weight_linear(x, w.qweight, w.scales, w.zeros, w.group_size).sum().backward()
    dense = dequantize_int4(w.qweight, w.scales, w.zeros, w.group_size)
    want = dense.sum(0).expand(3, -1)
    assert_within(
        x.grad, want, linear_bound(torch.ones(3, INT4_N), dense.T, None, want, F32_EPS), "gx"
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    q8, s8 = int8_weight()
    w4 = int4_weight(group_size=24)
    for lead, bias in (((3,), True), ((2, 5), False)):
        x8 = torch.randn(*lead, INT8_K).to(dtype).requires_grad_(True)
        b8 = maybe_bias(bias, INT8_N, dtype)
        b8 = None if b8 is None else b8.requires_grad_(True)
        torch.library.opcheck(OPS.int8_weight_linear, (x8, q8, s8, b8))
        x4 = torch.randn(*lead, INT4_K).to(dtype).requires_grad_(True)
        b4 = maybe_bias(bias, INT4_N, dtype)
        b4 = None if b4 is None else b4.requires_grad_(True)
        torch.library.opcheck(
            OPS.int4_weight_linear, (x4, w4.qweight, w4.scales, w4.zeros, w4.group_size, b4)
        )


def test_compile_fullgraph_forward_and_backward():
    q8, s8 = int8_weight()
    w4 = int4_weight(group_size=24)

    @torch.compile(fullgraph=True)
    def both(x8, x4, bias):
        y8 = int8_weight_linear(x8, q8, s8, bias)
        y4 = int4_weight_linear(x4, w4.qweight, w4.scales, w4.zeros, w4.group_size, bias)
        return y8, y4

    x8 = torch.randn(5, INT8_K, requires_grad=True)
    x4 = torch.randn(5, INT4_K, requires_grad=True)
    bias = torch.randn(INT8_N, requires_grad=True)
    y8, y4 = both(x8, x4, bias)
    want8 = int8_weight_linear_ref(x8, q8, s8, bias)
    want4 = int4_weight_linear_ref(x4, w4.qweight, w4.scales, w4.zeros, w4.group_size, bias)
    dense4 = dequantize_int4(w4.qweight, w4.scales, w4.zeros, w4.group_size)
    assert_within(y8, want8, linear_bound(x8, _int8_dense(q8, s8), bias, want8, F32_EPS), "y8")
    assert_within(y4, want4, linear_bound(x4, dense4, bias, want4, F32_EPS), "y4")
    (y8.sum() + y4.sum()).backward()
    want_gx8 = _int8_dense(q8, s8).sum(0).expand(5, -1)
    ones = torch.ones(5, INT8_N)
    assert_within(
        x8.grad, want_gx8, linear_bound(ones, _int8_dense(q8, s8).T, None, want_gx8, F32_EPS), "gx8"
    )
    want_gx4 = dense4.sum(0).expand(5, -1)
    assert_within(x4.grad, want_gx4, linear_bound(ones, dense4.T, None, want_gx4, F32_EPS), "gx4")
    assert torch.equal(bias.grad, torch.full((INT8_N,), 10.0))  # 5 rows from each op


@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernels_match_real_metadata(case):
    dtype = DTYPES[X_CASES.index(case) % 3]  # the dtype cycles with the case
    q8, s8 = int8_weight()
    bias8 = maybe_bias(True, INT8_N, dtype)
    assert_fake_matches_real(OPS.int8_weight_linear, (make_x(case, INT8_K, dtype), q8, s8, bias8))
    w = int4_weight(group_size=24)
    x4 = make_x(case, INT4_K, dtype)
    args = (x4, w.qweight, w.scales, w.zeros, w.group_size, None)
    assert_fake_matches_real(OPS.int4_weight_linear, args)


# ---- bad inputs --------------------------------------------------------------------------


def _int8_args(**override):
    q, s = int8_weight()
    args = {
        "x": torch.randn(3, INT8_K),
        "qweight": q,
        "scales": s,
        "bias": torch.randn(INT8_N),
    }
    args.update(override)
    return tuple(args.values())


_SHAPE_ERRORS_INT8 = {
    "x_int": (dict(x=torch.ones(3, INT8_K, dtype=torch.int32)), "x"),
    "x_float64": (dict(x=torch.randn(3, INT8_K, dtype=torch.float64)), "x"),
    "x_scalar": (dict(x=torch.tensor(1.0)), "x"),
    "x_last_dim": (dict(x=torch.randn(3, INT8_K + 1)), "x.shape[-1]"),
    "qweight_float": (dict(qweight=torch.randn(INT8_N, INT8_K)), "qweight"),
    "qweight_uint8": (dict(qweight=torch.ones(INT8_N, INT8_K, dtype=torch.uint8)), "qweight"),
    "qweight_1d": (dict(qweight=torch.ones(INT8_K, dtype=torch.int8)), "qweight"),
    "scales_n_plus_1": (dict(scales=torch.ones(INT8_N + 1)), "scales"),
    "scales_int": (dict(scales=torch.ones(INT8_N, dtype=torch.int32)), "scales"),
    "bias_shape": (dict(bias=torch.ones(INT8_N + 1)), "bias"),
    "bias_int": (dict(bias=torch.ones(INT8_N, dtype=torch.int64)), "bias"),
    "scales_device": (dict(scales=torch.ones(INT8_N, device="meta")), "scales"),
    "qweight_device": (
        dict(qweight=torch.ones(INT8_N, INT8_K, dtype=torch.int8, device="meta")),
        "qweight",
    ),
    "bias_device": (dict(bias=torch.ones(INT8_N, device="meta")), "bias"),
}


def _value_scales(n, g=None):
    shape = (n,) if g is None else (n, g)
    cases = {
        "nan": torch.full(shape, float("nan")),
        "inf": torch.full(shape, float("inf")),
        "zero": torch.zeros(shape),
        "negative": -torch.ones(shape),
    }
    one_bad = torch.ones(shape)
    one_bad.view(-1)[-1] = float("nan")
    cases["one_nan"] = one_bad
    return cases


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_SHAPE_ERRORS_INT8))
def test_int8_weight_linear_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = _SHAPE_ERRORS_INT8[name]
    assert_rejects(OPS.int8_weight_linear, _int8_args(**override), "int8_weight_linear", arg, fake)


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(INT4_SHAPE_ERRORS))
def test_int4_weight_linear_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = INT4_SHAPE_ERRORS[name]
    assert_rejects(OPS.int4_weight_linear, int4_args(**override), "int4_weight_linear", arg, fake)


@pytest.mark.parametrize("kind", ["nan", "inf", "zero", "negative", "one_nan"])
def test_weight_only_rejects_bad_scale_values(kind):
    s8 = _value_scales(INT8_N)[kind]
    assert_rejects(OPS.int8_weight_linear, _int8_args(scales=s8), "int8_weight_linear", "scales")
    s4 = _value_scales(INT4_N, 3)[kind]
    assert_rejects(OPS.int4_weight_linear, int4_args(scales=s4), "int4_weight_linear", "scales")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_int4_weight_linear_rejects_non_finite_zeros(value):
    zeros = torch.full((INT4_N, 3), 8.0)
    zeros[1, 2] = value
    assert_rejects(OPS.int4_weight_linear, int4_args(zeros=zeros), "int4_weight_linear", "zeros")
