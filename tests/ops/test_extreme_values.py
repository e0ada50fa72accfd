"""Extreme activations through every op, on every CPU ISA this machine runs.

Hypothesis draws shapes (M = 0, 1, primes, M > 16; K and N primes or 1), dtypes,
layouts (transposed, strided views with NaN in the gaps) and extreme values (±max,
subnormals, zeros, all-equal and all-subnormal rows, NaN, ±Inf): see ``extremes.py``.

What is expected, per op:

* Weight-only and 2:4 linears compute ``F.linear`` on the dequantized weight, so each
  output element must fall in the class the exact products give (NaN, ±Inf, or finite
  within ``(K + 2) * eps * sum|x w|``; see ``extremes.expected_linear``), on every ISA,
  and the ``*_ref`` reference must too. A NaN or Inf in row m of x makes every output
  of row m non-finite, because a product with a zero weight is NaN: kernels that skip
  zero (pruned) weights must still give it.
* ``masked_linear`` is ``F.linear`` on ``where(mask, w, 0)``: masked NaN/Inf/max weights
  must not reach the output, accumulation in x's dtype (the reference's).
* W8A8 (``int8_dynamic_linear``): a row of x holding NaN or Inf has no int8 scale, so
  its whole output row is NaN (where ``F.linear`` gives NaN or Inf); the other rows are
  unaffected (bit-equal to the op on those rows alone), and everything is bit-equal to
  ``int8_dynamic_linear_ref``. Rows of subnormals or zeros quantize to finite outputs.
* W4A8 (``int4_dynamic_linear``): the same NaN rows as W8A8; other rows within the
  bound of ``w4a8.py`` around the exact value (or the same infinity where it surely
  overflows), and bit-equal to the op on those rows alone.
* ``fake_quantize`` is bit-equal to its reference (NaN stays NaN, ±Inf clamps to the
  grid's ends) and its backward's per-group sums are within the summation bound.

Run more cases with ``HYPOTHESIS_PROFILE=thorough``.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from squeezeprompt.formats import dequantize_int4, pack_int4, sparse24_int4_unpack, sparse24_unpack
from squeezeprompt.ops import (
    fake_quantize_backward_ref,
    fake_quantize_ref,
    int4_dynamic_linear_ref,
    int4_weight_linear_ref,
    int8_dynamic_linear_ref,
    int8_weight_linear_ref,
    masked_linear_ref,
    sparse24_int4_linear_ref,
    sparse24_linear_ref,
    sparse24_pack,
)

from .extremes import (
    F32_EPS,
    XSpec,
    assert_matches_expected,
    expected_linear,
    make_extreme_x,
    x_specs,
)
from .samples import sparse24_int4_weight
from .w4a8 import assert_w4a8_close, w4a8_expected

OPS = torch.ops.squeezeprompt
ISAS = tuple(OPS._cpu_isas_available())
# Output channels: 1, primes, and a composite.
NS = st.sampled_from((1, 2, 3, 5, 7, 13, 17, 24))
PRIME_KS = st.sampled_from((1, 2, 3, 5, 7, 13, 31, 61, 127))


@contextmanager
def forced_isa(name: str):
    previous = OPS._set_cpu_isa(name)
    try:
        yield
    finally:
        OPS._set_cpu_isa(previous)


def each_isa():
    """Yields every ISA this CPU runs, with the kernels forced to it."""
    for name in ISAS:
        with forced_isa(name):
            yield name


def assert_identical(got: torch.Tensor, want: torch.Tensor, isa: str) -> None:
    """Bit-for-bit equality, NaN where NaN, naming the ISA."""
    torch.testing.assert_close(
        got, want, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{isa}: {m}"
    )


def _gen(spec: XSpec) -> torch.Generator:
    # Weights from their own stream, seeded by the case: a failing case reproduces.
    return torch.Generator().manual_seed(spec.seed + 1)


def _bias(with_bias: bool, n: int, spec: XSpec) -> torch.Tensor | None:
    return torch.randn(n, generator=_gen(spec)).to(spec.dtype) if with_bias else None


# Cases that failed before the kernels were fixed, kept as explicit examples (the
# Hypothesis database is local, so CI would not replay them otherwise). K >= 16 puts
# the special value inside the SIMD loops, not only in their scalar tails.
F32 = torch.float32


def _spec(k: int, *specials: tuple[str, int, int], lead=(3,), layout="contiguous") -> XSpec:
    return XSpec(lead, k, F32, layout, "unit", tuple(specials), seed=0)


# ---------------------------------------------------------------- weight-only linears


@given(
    spec=st.one_of(PRIME_KS, st.integers(1, 130)).flatmap(x_specs), n=NS, with_bias=st.booleans()
)
def test_int8_weight_linear_extremes(spec: XSpec, n: int, with_bias: bool) -> None:
    x = make_extreme_x(spec)
    gen = _gen(spec)
    q = torch.randint(-128, 128, (n, spec.k), dtype=torch.int8, generator=gen)
    s = torch.rand(n, generator=gen) * 0.02 + 0.001
    bias = _bias(with_bias, n, spec)
    w = q.float() * s[:, None]  # the reference's dequantized weight
    assert_matches_expected(
        int8_weight_linear_ref(x, q, s, bias), expected_linear(x, w, bias), "ref"
    )
    # The kernels sum x * q and scale once: their partial sums are 1/s larger.
    exp = expected_linear(x, w, bias, partial_scale=s)
    for isa in each_isa():
        assert_matches_expected(OPS.int8_weight_linear(x, q, s, bias), exp, f"int8 {isa}")


@st.composite
def int4_cases(draw):
    group_size = draw(st.sampled_from((2, 6, 8, 14, 16, 24, 32)))
    spec = draw(x_specs(group_size * draw(st.integers(1, 4))))
    return spec, group_size, draw(st.booleans())


@given(case=int4_cases(), n=NS, with_bias=st.booleans())
# An FMA dequantization left a rounding residue where code == zero: max * residue.
@example(case=(_spec(32, ("max", 0, 0)), 16, True), n=5, with_bias=False)
@example(case=(_spec(32, ("inf", 1, 17)), 16, True), n=5, with_bias=False)
def test_int4_weight_linear_extremes(case, n: int, with_bias: bool) -> None:
    spec, group_size, integer_zeros = case
    x = make_extreme_x(spec)
    gen = _gen(spec)
    g = spec.k // group_size
    codes = torch.randint(0, 16, (n, spec.k), dtype=torch.uint8, generator=gen)
    scales = torch.rand(n, g, generator=gen) * 0.05 + 0.005
    zeros = torch.rand(n, g, generator=gen) * 15
    if integer_zeros:  # what RTN produces: then code == zero gives an exact zero weight
        zeros = zeros.round()
    packed = pack_int4(codes)
    bias = _bias(with_bias, n, spec)
    w = dequantize_int4(packed, scales, zeros, group_size)
    ref = int4_weight_linear_ref(x, packed, scales, zeros, group_size, bias)
    assert_matches_expected(ref, expected_linear(x, w, bias), "ref")
    exp = expected_linear(x, w, bias)
    for isa in each_isa():
        got = OPS.int4_weight_linear(x, packed, scales, zeros, group_size, bias)
        assert_matches_expected(got, exp, f"int4 g{group_size} {isa}")


# ---------------------------------------------------------------- W8A8


@given(
    spec=st.one_of(PRIME_KS, st.integers(1, 130)).flatmap(x_specs), n=NS, with_bias=st.booleans()
)
# The absmax dropped NaN (scalar and SIMD), and a subnormal row's scale underflowed to 0.
@example(spec=_spec(40, ("nan", 1, 9)), n=5, with_bias=True)
@example(spec=_spec(40, ("-inf", 2, 33)), n=5, with_bias=False)
@example(spec=_spec(40, ("subnormal_row", 0, 0)), n=3, with_bias=False)
def test_int8_dynamic_linear_extremes(spec: XSpec, n: int, with_bias: bool) -> None:
    x = make_extreme_x(spec)
    gen = _gen(spec)
    q = torch.randint(-127, 128, (n, spec.k), dtype=torch.int8, generator=gen)
    s = torch.rand(n, generator=gen) * 0.02 + 0.001
    bias = _bias(with_bias, n, spec)
    ref = int8_dynamic_linear_ref(x, q, s, bias)
    rows = x.reshape(-1, spec.k)
    bad_rows = ~rows.isfinite().all(-1)
    ref2 = ref.reshape(-1, n)
    assert bool(ref2[bad_rows].isnan().all()), "ref: a row with NaN/Inf must give a NaN row"
    if bool((~bad_rows).any()):
        alone = int8_dynamic_linear_ref(rows[~bad_rows], q, s, bias)
        torch.testing.assert_close(ref2[~bad_rows], alone, rtol=0, atol=0, equal_nan=True)
        # Finite rows stay finite unless the int32 sum times both scales can overflow.
        amax = rows[~bad_rows].float().abs().amax(-1)
        worst = amax[:, None] * 127 * spec.k * s[None, :] + 2 * (
            bias.float().abs() if with_bias else 0
        )
        can_overflow = worst >= torch.finfo(spec.dtype).max / 2
        assert bool((alone.isfinite() | can_overflow).all()), "ref: finite rows gave non-finite"
    for isa in each_isa():
        got = OPS.int8_dynamic_linear(x, q, s, bias)
        assert_identical(got, ref, isa)


# ---------------------------------------------------------------- W4A8


@st.composite
def w4a8_cases(draw):
    group_size = draw(st.sampled_from((2, 6, 8, 32, 64, 96)))
    spec = draw(x_specs(group_size * draw(st.integers(1, 4))))
    return spec, group_size, draw(st.booleans())


@given(case=w4a8_cases(), n=NS, with_bias=st.booleans())
@example(case=(_spec(96, ("nan", 1, 70)), 32, False), n=5, with_bias=True)
@example(case=(_spec(128, ("max_row", 0, 0), ("-inf", 2, 3)), 64, True), n=7, with_bias=False)
def test_int4_dynamic_linear_extremes(case, n: int, with_bias: bool) -> None:
    spec, group_size, integer_zeros = case
    x = make_extreme_x(spec)
    gen = _gen(spec)
    g = spec.k // group_size
    packed = pack_int4(torch.randint(0, 16, (n, spec.k), dtype=torch.uint8, generator=gen))
    scales = torch.rand(n, g, generator=gen) * 0.05 + 0.005
    zeros = torch.rand(n, g, generator=gen) * 15
    if integer_zeros:
        zeros = zeros.round()
    bias = _bias(with_bias, n, spec)
    args = (packed, scales, zeros, group_size)
    exp = w4a8_expected(x, *args, bias)
    rows = x.reshape(-1, spec.k)
    bad_rows = ~rows.isfinite().all(-1)
    assert bool(exp.value.reshape(-1, n)[bad_rows].isnan().all())
    assert_w4a8_close(int4_dynamic_linear_ref(x, *args, bias), exp, "ref")
    for isa in each_isa():
        got = OPS.int4_dynamic_linear(x, *args, bias)
        assert_w4a8_close(got, exp, f"w4a8 g{group_size} {isa}")
        if bool((~bad_rows).any()):
            alone = OPS.int4_dynamic_linear(rows[~bad_rows], *args, bias)
            assert_identical(got.reshape(-1, n)[~bad_rows], alone, isa)


# ---------------------------------------------------------------- fake quantization

GRIDS = ((0, 15), (-8, 7), (-128, 127), (0, 255))


@st.composite
def fake_quant_cases(draw):
    group_size = draw(st.sampled_from((1, 3, 8, 9, 16, 32)))
    spec = draw(x_specs(group_size * draw(st.integers(1, 4))))
    return spec, group_size, draw(st.sampled_from(GRIDS)), draw(st.booleans())


def _grid(spec: XSpec, group_size: int, qmin: int, qmax: int, per_tensor: bool):
    gen = _gen(spec)
    shape = (1,) if per_tensor else (*spec.lead, spec.k // group_size)
    steps = qmax - qmin
    scale = (torch.rand(shape, generator=gen) + 0.5) * (4.0 / steps)
    zero = (qmin + qmax) / 2 + (torch.rand(shape, generator=gen) - 0.5) * steps * 0.3
    return scale, zero


@given(case=fake_quant_cases())
# The SIMD clamp turned NaN into qmin.
@example(case=(_spec(32, ("nan", 0, 3), ("nan", 2, 30)), 16, (0, 15), False))
def test_fake_quantize_extremes(case) -> None:
    spec, group_size, (qmin, qmax), per_tensor = case
    x = make_extreme_x(spec)
    scale, zero = _grid(spec, group_size, qmin, qmax, per_tensor)
    args = (scale, zero, qmin, qmax, group_size)
    want = fake_quantize_ref(x, *args)
    # NaN stays NaN; everything else lands on the grid, ±Inf at its ends.
    assert bool((want.isnan() == x.isnan()).all()), "ref: NaN must map to NaN and only NaN"
    for isa in each_isa():
        got = OPS.fake_quantize(x, *args)
        assert_identical(got, want, isa)


@given(case=fake_quant_cases())
def test_fake_quantize_backward_extremes(case) -> None:
    spec, group_size, (qmin, qmax), per_tensor = case
    x = make_extreme_x(spec)
    scale, zero = _grid(spec, group_size, qmin, qmax, per_tensor)
    grad = torch.randn(x.shape, generator=_gen(spec)).to(spec.dtype)
    args = (scale, zero, qmin, qmax, group_size)
    want_x, want_s, want_z = fake_quantize_backward_ref(grad, x, *args)
    # Per-element terms of the two sums (group_size 1 leaves each term alone) bound them.
    k = spec.k
    per = (*spec.lead, k)
    s_el = scale.expand(*spec.lead, k // group_size).repeat_interleave(group_size, -1).reshape(per)
    z_el = zero.expand(*spec.lead, k // group_size).repeat_interleave(group_size, -1).reshape(per)
    _, terms_s, terms_z = fake_quantize_backward_ref(grad, x, s_el, z_el, qmin, qmax, 1)
    for isa in each_isa():
        got_x, got_s, got_z = OPS.fake_quantize_backward(grad, x, *args)
        assert_identical(got_x, want_x, isa)
        for name, got, want, terms in (
            ("scale", got_s, want_s, terms_s),
            ("zero", got_z, want_z, terms_z),
        ):
            mag = terms.double().abs().reshape(*want.shape, group_size).sum(-1)
            bound = (group_size + 1) * F32_EPS * mag
            assert bool((got.isnan() == want.isnan()).all()), (
                f"{isa} grad_{name}: NaN positions differ"
            )
            finite = ~want.isnan()
            err = (got.double() - want.double()).abs()[finite]
            assert bool((err <= bound[finite]).all()), f"{isa} grad_{name}: out of bound"


# ---------------------------------------------------------------- sparse linears


@st.composite
def masked_cases(draw):
    spec = draw(st.one_of(PRIME_KS, st.integers(1, 100)).flatmap(x_specs))
    hidden = draw(st.sampled_from(("nan", "inf", "-inf", "max", "none")))
    return spec, hidden


@given(case=masked_cases(), n=NS, with_bias=st.booleans())
def test_masked_linear_extremes(case, n: int, with_bias: bool) -> None:
    spec, hidden = case
    x = make_extreme_x(spec)
    gen = _gen(spec)
    w = torch.randn(n, spec.k, generator=gen).to(spec.dtype)
    mask = torch.rand(n, spec.k, generator=gen) > 0.5
    info = torch.finfo(spec.dtype)
    if hidden != "none":  # values behind the mask must not reach the output
        value = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf"), "max": info.max}
        w = torch.where(mask, w, torch.full_like(w, value[hidden]))
    bias = _bias(with_bias, n, spec)
    dense = torch.where(mask, w, torch.zeros_like(w))
    if spec.dtype == torch.float32:
        exp = expected_linear(x, dense, bias)
    else:  # the reference accumulates in x's dtype (BLAS may keep 16-bit partial sums)
        tiny = info.smallest_normal * info.eps
        exp = expected_linear(x, dense, bias, eps=info.eps, acc_max=info.max, tiny_step=tiny)
    assert_matches_expected(masked_linear_ref(x, w, mask, bias), exp, "ref")
    for isa in each_isa():
        assert_matches_expected(OPS.masked_linear(x, w, mask, bias), exp, f"masked {isa}")


@st.composite
def sparse24_cases(draw):
    spec = draw(x_specs(4 * draw(st.integers(1, 33))))
    values_dtype = draw(st.sampled_from((torch.float32, torch.bfloat16, torch.float16, torch.int8)))
    return spec, values_dtype


def _sparse24_weight(n: int, k: int, values_dtype: torch.dtype, gen: torch.Generator):
    """Packed 2:4 ``(values, meta, scales)``: groups with 0, 1 or 2 nonzeros."""
    rank = torch.rand(n, k // 4, 4, generator=gen).argsort(-1).argsort(-1)
    keep = (rank < 2) & (torch.rand(n, k // 4, 4, generator=gen) > 0.2)
    if values_dtype == torch.int8:
        dense = torch.randint(-127, 128, (n, k // 4, 4), generator=gen).float() * keep
        values, meta = sparse24_pack(dense.reshape(n, k))
        return values.to(torch.int8), meta, torch.rand(n, generator=gen) * 0.02 + 0.001
    dense = (torch.randn(n, k // 4, 4, generator=gen) * keep).reshape(n, k).to(values_dtype)
    values, meta = sparse24_pack(dense)
    return values, meta, None


@given(case=sparse24_cases(), n=NS, with_bias=st.booleans())
# NaN/Inf in a pruned column was skipped by the streaming kernels (F.linear: 0 * NaN).
@example(case=(_spec(32, ("nan", 0, 5), ("inf", 1, 18)), F32), n=7, with_bias=False)
@example(case=(_spec(32, ("-inf", 0, 21), lead=(20,)), torch.int8), n=7, with_bias=False)
def test_sparse24_linear_extremes(case, n: int, with_bias: bool) -> None:
    spec, values_dtype = case
    x = make_extreme_x(spec)
    values, meta, scales = _sparse24_weight(n, spec.k, values_dtype, _gen(spec))
    bias = _bias(with_bias, n, spec)
    w = sparse24_unpack(values, meta, scales).float()
    ref = sparse24_linear_ref(x, values, meta, scales, bias)
    assert_matches_expected(ref, expected_linear(x, w, bias), "ref")
    exp = expected_linear(x, w, bias, partial_scale=scales)
    for isa in each_isa():
        got = OPS.sparse24_linear(x, values, meta, scales, bias)
        assert_matches_expected(got, exp, f"sparse24 {values_dtype} {isa}")


@st.composite
def sparse24_int4_cases(draw):
    group_size = draw(st.sampled_from((4, 8, 12, 16, 32)))
    spec = draw(x_specs(group_size * draw(st.integers(1, 4))))
    return spec, group_size, draw(st.booleans())


@given(case=sparse24_int4_cases(), n=NS, with_bias=st.booleans())
# Inf in a pruned column (F.linear: 0 * Inf = NaN); max where code == zero (exact 0).
@example(case=(_spec(32, ("inf", 0, 5), ("nan", 1, 18)), 16, True), n=7, with_bias=False)
@example(case=(_spec(64, ("max", 0, 0), ("-inf", 2, 40)), 32, True), n=5, with_bias=True)
def test_sparse24_int4_linear_extremes(case, n: int, with_bias: bool) -> None:
    spec, group_size, integer_zeros = case
    x = make_extreme_x(spec)
    p = sparse24_int4_weight(n, spec.k, group_size, integer_zeros, gen=_gen(spec))
    args = (p.values, p.meta, p.scales, p.zeros, group_size)
    bias = _bias(with_bias, n, spec)
    w = sparse24_int4_unpack(*args)
    exp = expected_linear(x, w, bias)
    assert_matches_expected(sparse24_int4_linear_ref(x, *args, bias), exp, "ref")
    for isa in each_isa():
        got = OPS.sparse24_int4_linear(x, *args, bias)
        assert_matches_expected(got, exp, f"sparse24_int4 g{group_size} {isa}")


@pytest.mark.parametrize("isa", ISAS)
def test_every_isa_is_exercised(isa: str) -> None:
    """The ISA loop above must switch kernels for real (a no-op switch would hide a path)."""
    with forced_isa(isa):
        assert OPS._cpu_isa() == isa
