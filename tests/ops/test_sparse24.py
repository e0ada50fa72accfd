"""sparse24_pack and sparse24_linear against their references.

Packing is exact (op and reference agree bit for bit; ``formats.sparse24_unpack`` is
its inverse). The linear accumulates in float32 like its reference; int8 values are
scaled after the dot product in the kernel and before it in the reference, one more
rounding per product, which ``linear_bound``'s ``K + 2`` factor covers (the kept
values are only K / 2 of the K products).
"""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.formats import sparse24_unpack
from squeezeprompt.ops import sparse24_linear, sparse24_linear_ref, sparse24_pack, sparse24_pack_ref

from .samples import (
    DTYPE_IDS,
    DTYPES,
    F32_EPS,
    SPARSE_KS,
    X_CASE_IDS,
    X_CASES,
    assert_fake_matches_real,
    assert_rejects,
    assert_within,
    leaf,
    linear_bound,
    make_x,
    maybe_bias,
    sparse24_dense,
    sparse24_int8,
)

OPS = torch.ops.squeezeprompt
N = 40
VALUE_KINDS = ("fp32", "bf16", "fp16", "int8")


def _packed(kind: str, k: int):
    """(values, meta, scales, dense float32 weight) for a values dtype."""
    if kind == "int8":
        values, meta, scales = sparse24_int8(N, k)
    else:
        dtype = DTYPES[DTYPE_IDS.index(kind)]
        values, meta = sparse24_pack(sparse24_dense(N, k, dtype))
        scales = None
    return values, meta, scales, sparse24_unpack(values, meta, scales).float()


def test_pack_known_values_and_layout():
    # Group 0 keeps columns 1, 3 -> nibble 1 | 3 << 2 = 13; group 1 (all zero) keeps the
    # lowest zero columns 0, 1 -> nibble 4; group 2 keeps column 2 and fills with 0 ->
    # nibble 0 | 2 << 2 = 8, in the low nibble of the second byte (K = 12: K % 8 == 4).
    w = torch.tensor([[0.0, 1.5, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 7.0, 0.0]])
    values, meta = sparse24_pack(w)
    assert values.tolist() == [[1.5, -2.0, 0.0, 0.0, 0.0, 7.0]]
    assert meta.dtype == torch.uint8 and meta.tolist() == [[13 | (4 << 4), 8]]
    ref_values, ref_meta = sparse24_pack_ref(w)
    assert torch.equal(values, ref_values) and torch.equal(meta, ref_meta)


@pytest.mark.parametrize("k", SPARSE_KS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pack_matches_ref_and_unpacks(dtype, k):
    w = sparse24_dense(N, k, dtype)
    values, meta = sparse24_pack(w)
    ref_values, ref_meta = sparse24_pack_ref(w)
    assert values.dtype == dtype and values.shape == (N, k // 2)
    assert meta.shape == (N, (k // 4 + 1) // 2)
    assert torch.equal(values, ref_values) and torch.equal(meta, ref_meta)
    assert torch.equal(sparse24_unpack(values, meta), w)


def test_pack_accepts_non_contiguous_weight():
    w = sparse24_dense(N, 72).t().contiguous().t()  # column-major: strides (1, N)
    assert not w.is_contiguous()
    values, meta = sparse24_pack(w)
    assert torch.equal(sparse24_unpack(values, meta), w)


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_sparse24_linear_matches_ref(case, kind, with_bias):
    # Each x dtype meets each values dtype across the cases (activation dtype cycles).
    k = SPARSE_KS[X_CASES.index(case) % 2]
    dtype = DTYPES[(X_CASES.index(case) + VALUE_KINDS.index(kind)) % 3]
    values, meta, scales, dense = _packed(kind, k)
    x = make_x(case, k, dtype)
    bias = maybe_bias(with_bias, N, dtype)
    got = sparse24_linear(x, values, meta, scales, bias)
    want = sparse24_linear_ref(x, values, meta, scales, bias)
    assert got.shape == (*case.lead, N) and got.dtype == dtype
    assert_within(got, want, linear_bound(x, dense, bias, want, F32_EPS), f"{case.name} {kind}")


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_sparse24_linear_grads_match_ref(case, kind):
    k = SPARSE_KS[X_CASES.index(case) % 2]
    dtype = DTYPES[(X_CASES.index(case) + VALUE_KINDS.index(kind)) % 3]
    values, meta, scales, dense = _packed(kind, k)
    x0 = make_x(case, k, dtype)
    b0 = maybe_bias(True, N, dtype)
    x, b, rx_, rb_ = leaf(x0), leaf(b0), leaf(x0), leaf(b0)
    out = sparse24_linear(x, values, meta, scales, b)
    g = torch.randn(out.shape).to(dtype)
    gx, gb = torch.autograd.grad(out, [x, b], g)
    rx, rb = torch.autograd.grad(sparse24_linear_ref(rx_, values, meta, scales, rb_), [rx_, rb_], g)
    assert_within(gx, rx, linear_bound(g, dense.T, None, rx, F32_EPS), "grad_x")
    rows = g.reshape(-1, N).double()
    bound_b = (rows.shape[0] + 1) * F32_EPS * rows.abs().sum(0)
    if dtype != torch.float32:
        info = torch.finfo(dtype)
        bound_b = bound_b + info.eps * rb.double().abs() + info.smallest_normal
    assert_within(gb, rb, bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    torch.library.opcheck(OPS.sparse24_pack, (sparse24_dense(N, 100, dtype),))
    for kind, lead, with_bias in (("fp32", (3,), True), ("int8", (2, 9), False)):
        values, meta, scales, _ = _packed(kind, 72)
        x = torch.randn(*lead, 72).to(dtype).requires_grad_(True)
        bias = maybe_bias(with_bias, N, dtype)
        bias = None if bias is None else bias.requires_grad_(True)
        torch.library.opcheck(OPS.sparse24_linear, (x, values, meta, scales, bias))


def test_compile_fullgraph_forward_and_backward():
    w = sparse24_dense(N, 100)

    @torch.compile(fullgraph=True)
    def pack_and_apply(w, x, bias):
        values, meta = sparse24_pack(w)
        return sparse24_linear(x, values, meta, None, bias), values, meta

    x = torch.randn(6, 100, requires_grad=True)
    bias = torch.randn(N, requires_grad=True)
    y, values, meta = pack_and_apply(w, x, bias)
    ref_values, ref_meta = sparse24_pack_ref(w)
    assert torch.equal(values, ref_values) and torch.equal(meta, ref_meta)
    want = sparse24_linear_ref(x, ref_values, ref_meta, None, bias)
    assert_within(y, want, linear_bound(x, w, bias, want, F32_EPS), "compiled y")
    y.sum().backward()
    want_gx = w.sum(0).expand(6, -1)
    ones = torch.ones(6, N)
    assert_within(x.grad, want_gx, linear_bound(ones, w.T, None, want_gx, F32_EPS), "grad_x")
    assert torch.equal(bias.grad, torch.full((N,), 6.0))

    iv, im, isc = sparse24_int8(N, 72)
    xi = torch.randn(2, 72)
    got = torch.compile(sparse24_linear, fullgraph=True)(xi, iv, im, isc)
    want = sparse24_linear_ref(xi, iv, im, isc)
    dense = sparse24_unpack(iv, im, isc)
    assert_within(got, want, linear_bound(xi, dense, None, want, F32_EPS), "compiled int8")


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernels_match_real_metadata(case, kind):
    k = SPARSE_KS[X_CASES.index(case) % 2]
    dtype = DTYPES[(X_CASES.index(case) + VALUE_KINDS.index(kind)) % 3]
    values, meta, scales, dense = _packed(kind, k)
    args = (make_x(case, k, dtype), values, meta, scales, maybe_bias(True, N, dtype))
    assert_fake_matches_real(OPS.sparse24_linear, args)
    if kind != "int8":
        weight = dense.to(values.dtype)
        assert_fake_matches_real(OPS.sparse24_pack, (weight,))
        assert_fake_matches_real(OPS.sparse24_pack, (weight.t().contiguous().t(),))


# ---- bad inputs --------------------------------------------------------------------------


def _linear_args(**override):
    values, meta, scales = sparse24_int8(N, 72)
    args = {
        "x": torch.randn(3, 72),
        "values": values,
        "meta": meta,
        "scales": scales,
        "bias": torch.randn(N),
    }
    args.update(override)
    return tuple(args.values())


_PACK_SHAPE_ERRORS = {
    "k_not_multiple_of_4": (torch.zeros(4, 10), "in_features"),
    "k_6": (torch.zeros(4, 6), "in_features"),
    "int_weight": (torch.zeros(4, 8, dtype=torch.int32), "weight"),
    "weight_1d": (torch.zeros(8), "weight"),
    "weight_3d": (torch.zeros(2, 4, 8), "weight"),
}

_LINEAR_SHAPE_ERRORS = {
    "int8_without_scales": (dict(scales=None), "scales"),
    "float_values_with_scales": (dict(values=torch.ones(N, 36)), "scales"),
    "scales_shape": (dict(scales=torch.ones(N + 1)), "scales"),
    "scales_int": (dict(scales=torch.ones(N, dtype=torch.int32)), "scales"),
    "values_uint8": (dict(values=torch.ones(N, 36, dtype=torch.uint8)), "values"),
    "values_1d": (dict(values=torch.ones(36, dtype=torch.int8)), "values"),
    "k_not_multiple_of_4": (
        dict(x=torch.randn(3, 70), values=torch.ones(N, 35, dtype=torch.int8)),
        "in_features",
    ),
    "meta_shape": (dict(meta=torch.zeros(N, 10, dtype=torch.uint8)), "meta"),
    "meta_dtype": (dict(meta=torch.zeros(N, 9, dtype=torch.int32)), "meta"),
    "x_int": (dict(x=torch.ones(3, 72, dtype=torch.int8)), "x"),
    "x_last_dim": (dict(x=torch.randn(3, 76)), "x.shape[-1]"),
    "bias_shape": (dict(bias=torch.ones(N - 1)), "bias"),
    "meta_device": (dict(meta=torch.zeros(N, 9, dtype=torch.uint8, device="meta")), "meta"),
    "scales_device": (dict(scales=torch.ones(N, device="meta")), "scales"),
}


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_PACK_SHAPE_ERRORS))
def test_pack_rejects_bad_shapes_and_dtypes(name, fake):
    weight, arg = _PACK_SHAPE_ERRORS[name]
    assert_rejects(OPS.sparse24_pack, (weight,), "sparse24_pack", arg, fake)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_pack_rejects_a_weight_that_is_not_2_4(dtype):
    w = sparse24_dense(N, 100, dtype)
    w[N - 1, 96:99] = 1.0  # three nonzeros in the last group of the last row
    assert_rejects(OPS.sparse24_pack, (w,), "sparse24_pack", "weight")
    with pytest.raises(ValueError, match="2:4"):
        sparse24_pack_ref(w)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_pack_rejects_non_finite_weights(value):
    w = sparse24_dense(N, 72)
    w[3, 0], w[3, 1], w[3, 2], w[3, 3] = value, 0.0, 0.0, 0.0
    assert_rejects(OPS.sparse24_pack, (w,), "sparse24_pack", "weight")


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_LINEAR_SHAPE_ERRORS))
def test_linear_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = _LINEAR_SHAPE_ERRORS[name]
    assert_rejects(OPS.sparse24_linear, _linear_args(**override), "sparse24_linear", arg, fake)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_linear_rejects_bad_scale_values(value):
    scales = torch.ones(N)
    scales[7] = value
    assert_rejects(OPS.sparse24_linear, _linear_args(scales=scales), "sparse24_linear", "scales")
