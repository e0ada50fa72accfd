"""sparse24_int4_linear and its packing against their references, on every CPU ISA path.

The linear accumulates in float32 like its reference, over the kept columns only (the
reference's pruned products are exact zeros), so ``linear_bound`` covers any order.
Weights are dequantized exactly as the reference does, ``(code - zero) * scale``.
Shapes: K a multiple of 4 and of the group, not of 64; group sizes that take the SIMD
path (multiples of 16, with and without an odd 16-column step per group) and the
portable one (24, 4).
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from squeezeprompt.formats import (
    dequantize_int4,
    pack_int4,
    sparse24_int4_pack,
    sparse24_int4_unpack,
)
from squeezeprompt.ops import (
    sparse24_int4_linear,
    sparse24_int4_linear_ref,
    sparse24_pack,
    sparse24_pack_ref,
)
from squeezeprompt.quantize.rtn import quantize_int4

from .samples import (
    DTYPE_IDS,
    DTYPES,
    F32_EPS,
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
    sparse24_int4_weight,
)

OPS = torch.ops.squeezeprompt
ISAS = tuple(OPS._cpu_isas_available())
N = 37
# (K, group): 16-column steps in pairs, a lone step per group, portable path x2.
SHAPES = ((96, 32), (80, 16), (72, 24), (100, 4))


@contextmanager
def forced_isa(name: str):
    previous = OPS._set_cpu_isa(name)
    try:
        yield
    finally:
        OPS._set_cpu_isa(previous)


def _args(p, x, bias=None):
    return (x, p.values, p.meta, p.scales, p.zeros, p.group_size, bias)


def _dense(p) -> torch.Tensor:
    return sparse24_int4_unpack(p.values, p.meta, p.scales, p.zeros, p.group_size)


# ---- packing -----------------------------------------------------------------------------


def test_pack_known_values_and_layout():
    # Group 0 keeps columns 1 and 3 (meta nibble 1 | 3 << 2 = 13), codes 11 and 3 in one
    # byte, slot 0 low: 11 | 3 << 4 = 59. Group 1 keeps only column 6 (code 9): its empty
    # slot is the lowest free column, 4, holding the zero point 8 -> exact 0; nibble
    # 0 | 2 << 2 = 8 in the high half of the meta byte; byte 8 | 9 << 4 = 152.
    codes = torch.tensor([[8, 11, 8, 3, 8, 8, 9, 8]], dtype=torch.uint8)
    mask = torch.tensor([[False, True, False, True, False, False, True, False]])
    p = sparse24_int4_pack(pack_int4(codes), torch.ones(1, 1), torch.full((1, 1), 8.0), 8, mask)
    assert p.values.tolist() == [[59, 152]]
    assert p.meta.tolist() == [[13 | (8 << 4)]]
    assert p.dequantize().tolist() == [[0.0, 3.0, 0.0, -5.0, 0.0, 0.0, 1.0, 0.0]]


@pytest.mark.parametrize(("k", "group"), SHAPES)
@pytest.mark.parametrize("symmetric", [False, True], ids=["asym", "sym"])
def test_pack_keeps_the_int4_weight_and_sparse24_pack_meta(k, group, symmetric):
    w = sparse24_dense(N, k)
    q = quantize_int4(w, group, symmetric=symmetric)
    p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, group, mask=w != 0)
    # Pruned entries quantize to code == zero (an exact 0): packing loses nothing.
    assert torch.equal(p.dequantize(), q.dequantize())
    assert torch.equal(p.meta, sparse24_pack_ref(w)[1])
    assert torch.equal(p.meta, sparse24_pack(w)[1])
    assert p.values.shape == (N, k // 4) and p.values.dtype == torch.uint8
    # Without a mask the pattern is read from the dequantized weight.
    bare = sparse24_int4_pack(q.qweight, q.scales, q.zeros, group)
    assert torch.equal(bare.dequantize(), q.dequantize())


def test_pack_zeroes_unkept_weights_and_refuses_what_it_cannot_hold():
    q = quantize_int4(torch.randn(4, 32), 16)
    keep = sparse24_dense(4, 32) != 0
    p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, 16, keep)
    want = dequantize_int4(q.qweight, q.scales, q.zeros, 16) * keep
    assert torch.equal(p.dequantize(), want)
    with pytest.raises(ValueError, match="not 2:4"):
        sparse24_int4_pack(q.qweight, q.scales, q.zeros, 16, torch.ones(4, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="not 2:4"):
        sparse24_int4_pack(q.qweight, q.scales, q.zeros, 16)  # dense weight, no mask
    one_kept = torch.zeros(4, 32, dtype=torch.bool)
    one_kept[:, 0] = True
    with pytest.raises(ValueError, match="zero point"):
        sparse24_int4_pack(q.qweight, q.scales, q.zeros + 0.5, 16, one_kept)


# ---- the linear --------------------------------------------------------------------------


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_linear_matches_ref_on_every_isa(case, with_bias):
    i = X_CASES.index(case)
    dtype = DTYPES[i % 3]
    for k, group in SHAPES:
        p = sparse24_int4_weight(N, k, group, integer_zeros=i % 2 == 0)
        x = make_x(case, k, dtype)
        bias = maybe_bias(with_bias, N, dtype)
        want = sparse24_int4_linear_ref(*_args(p, x, bias))
        bound = linear_bound(x, _dense(p), bias, want, F32_EPS)
        for isa in ISAS:
            with forced_isa(isa):
                got = sparse24_int4_linear(*_args(p, x, bias))
            assert got.shape == (*case.lead, N) and got.dtype == dtype
            assert_within(got, want, bound, f"{case.name} k{k} g{group} {isa}")


@pytest.mark.parametrize("m", [1, 4, 17])
def test_non_finite_activation_in_a_pruned_column_gives_nan(m):
    # F.linear multiplies the pruned columns by 0: NaN or Inf there makes the output NaN,
    # though the kernels never read those columns. A code equal to its zero is an exact
    # 0 too: a huge activation there must not leak a rounding residue.
    p = sparse24_int4_weight(N, 96, 32, integer_zeros=True)
    dense = _dense(p)
    x = torch.randn(m, 96)
    pruned = int((dense[5] == 0).nonzero()[0])
    x[0, pruned] = float("inf")
    for isa in ISAS:
        with forced_isa(isa):
            got = sparse24_int4_linear(*_args(p, x))
        want = sparse24_int4_linear_ref(*_args(p, x))
        assert bool(got[0, 5].isnan()) and bool(want[0, 5].isnan()), isa
        assert torch.equal(got.isnan(), want.isnan()), isa


@pytest.mark.parametrize("case", X_CASES[1:6], ids=X_CASE_IDS[1:6])
def test_grads_match_ref(case):
    i = X_CASES.index(case)
    dtype = DTYPES[i % 3]
    k, group = SHAPES[i % len(SHAPES)]
    p = sparse24_int4_weight(N, k, group)
    x0 = make_x(case, k, dtype)
    b0 = maybe_bias(True, N, dtype)
    x, b, rx_, rb_ = leaf(x0), leaf(b0), leaf(x0), leaf(b0)
    out = sparse24_int4_linear(*_args(p, x, b))
    g = torch.randn(out.shape).to(dtype)
    gx, gb = torch.autograd.grad(out, [x, b], g)
    rx, rb = torch.autograd.grad(sparse24_int4_linear_ref(*_args(p, rx_, rb_)), [rx_, rb_], g)
    assert_within(gx, rx, linear_bound(g, _dense(p).T, None, rx, F32_EPS), "grad_x")
    rows = g.reshape(-1, N).double()
    bound_b = (rows.shape[0] + 1) * F32_EPS * rows.abs().sum(0)
    if dtype != torch.float32:
        info = torch.finfo(dtype)
        bound_b = bound_b + info.eps * rb.double().abs() + info.smallest_normal
    assert_within(gb, rb, bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    for (k, group), lead, with_bias in (((96, 32), (3,), True), ((100, 4), (2, 9), False)):
        p = sparse24_int4_weight(N, k, group)
        x = torch.randn(*lead, k).to(dtype).requires_grad_(True)
        bias = maybe_bias(with_bias, N, dtype)
        bias = None if bias is None else bias.requires_grad_(True)
        torch.library.opcheck(OPS.sparse24_int4_linear, _args(p, x, bias))


def test_compile_fullgraph_forward_and_backward():
    p = sparse24_int4_weight(N, 96, 32, integer_zeros=True)
    dense = _dense(p)

    @torch.compile(fullgraph=True)
    def apply(x, bias):
        return sparse24_int4_linear(*_args(p, x, bias)) * 2

    x = torch.randn(6, 96, requires_grad=True)
    bias = torch.randn(N, requires_grad=True)
    y = apply(x, bias)
    want = sparse24_int4_linear_ref(*_args(p, x, bias)) * 2
    assert_within(y, want, 2 * linear_bound(x, dense, bias, want, F32_EPS), "compiled y")
    y.sum().backward()
    want_gx = 2 * dense.sum(0).expand(6, -1)
    twos = torch.full((6, N), 2.0)
    assert_within(x.grad, want_gx, linear_bound(twos, dense.T, None, want_gx, F32_EPS), "grad_x")
    assert torch.equal(bias.grad, torch.full((N,), 12.0))


@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernel_matches_real_metadata(case):
    i = X_CASES.index(case)
    k, group = SHAPES[i % len(SHAPES)]
    p = sparse24_int4_weight(N, k, group)
    dtype = DTYPES[i % 3]
    assert_fake_matches_real(
        OPS.sparse24_int4_linear, _args(p, make_x(case, k, dtype), maybe_bias(True, N, dtype))
    )


# ---- bad inputs --------------------------------------------------------------------------


def _linear_args(**override):
    p = sparse24_int4_weight(N, 96, 32)
    args = {
        "x": torch.randn(3, 96),
        "values": p.values,
        "meta": p.meta,
        "scales": p.scales,
        "zeros": p.zeros,
        "group_size": 32,
        "bias": torch.randn(N),
    }
    args.update(override)
    return tuple(args.values())


_SHAPE_ERRORS = {
    "values_int8": (dict(values=torch.zeros(N, 24, dtype=torch.int8)), "values"),
    "values_1d": (dict(values=torch.zeros(24, dtype=torch.uint8)), "values"),
    "values_3d": (dict(values=torch.zeros(2, N, 24, dtype=torch.uint8)), "values"),
    "x_not_multiple_of_4": (dict(x=torch.randn(3, 94)), "x.shape[-1]"),
    "x_last_dim": (dict(x=torch.randn(3, 100)), "x.shape[-1]"),
    "x_int": (dict(x=torch.ones(3, 96, dtype=torch.int32)), "x"),
    "x_scalar": (dict(x=torch.tensor(1.0)), "x"),
    "meta_shape": (dict(meta=torch.zeros(N, 13, dtype=torch.uint8)), "meta"),
    "meta_dtype": (dict(meta=torch.zeros(N, 12, dtype=torch.int32)), "meta"),
    "group_zero": (dict(group_size=0), "group_size"),
    "group_negative": (dict(group_size=-32), "group_size"),
    "group_not_dividing": (dict(group_size=40), "group_size"),
    "scales_shape": (dict(scales=torch.ones(N, 2)), "scales"),
    "scales_int": (dict(scales=torch.ones(N, 3, dtype=torch.int32)), "scales"),
    "zeros_shape": (dict(zeros=torch.ones(N + 1, 3)), "zeros"),
    "zeros_uint8": (dict(zeros=torch.ones(N, 3, dtype=torch.uint8)), "zeros"),
    "bias_shape": (dict(bias=torch.ones(N - 1)), "bias"),
    "bias_int": (dict(bias=torch.ones(N, dtype=torch.int64)), "bias"),
    "values_device": (dict(values=torch.zeros(N, 24, dtype=torch.uint8, device="meta")), "values"),
    "meta_device": (dict(meta=torch.zeros(N, 12, dtype=torch.uint8, device="meta")), "meta"),
    "scales_device": (dict(scales=torch.ones(N, 3, device="meta")), "scales"),
    "zeros_device": (dict(zeros=torch.ones(N, 3, device="meta")), "zeros"),
}


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(_SHAPE_ERRORS))
def test_rejects_bad_shapes_dtypes_and_devices(name, fake):
    override, arg = _SHAPE_ERRORS[name]
    args = _linear_args(**override)
    assert_rejects(OPS.sparse24_int4_linear, args, "sparse24_int4_linear", arg, fake)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_rejects_bad_scale_values(value):
    scales = torch.ones(N, 3)
    scales[7, 1] = value
    args = _linear_args(scales=scales)
    assert_rejects(OPS.sparse24_int4_linear, args, "sparse24_int4_linear", "scales")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_rejects_non_finite_zeros(value):
    zeros = torch.full((N, 3), 8.0)
    zeros[0, 2] = value
    args = _linear_args(zeros=zeros)
    assert_rejects(OPS.sparse24_int4_linear, args, "sparse24_int4_linear", "zeros")
