"""Hypothesis strategies for extreme activations, and what ``F.linear`` makes of them.

An activation case is drawn as a shape (M = 0, 1, primes, M > 16 for the BLAS path,
1-D, 2-D and 3-D ``x``), a layout (contiguous, transposed, every other column; the
gaps of a strided view hold NaN, so a kernel that reads outside the view is caught),
a dtype, a magnitude regime (unit, near the smallest normal, near the dtype's max)
and a few special values planted at drawn positions: ±max, subnormals, zeros, NaN,
±Inf, and whole rows that are zero, all equal, subnormal or ±max.

The expected result of ``x @ w.T + b`` is classified per output element from the
exact products (float64 holds every float32 product exactly):

* NaN if a product is NaN (NaN * w, or ±Inf * 0) or products of both infinite signs
  occur; ±Inf if only one infinite sign occurs. Any summation order gives this.
* finite and *safe* if neither the positive nor the negative products sum (times the
  rounding slack ``1 + (K + 2) eps``) to float32 max: no partial sum of any order can
  overflow, and two orders differ by at most ``(K + 2) * eps * sum |x w|``.
* ±Inf if the opposite-sign sum is safe and the exact result is beyond float32 max by
  more than that bound: every order overflows, and none can produce the other sign.
* undefined otherwise (orders may give Inf, NaN or finite values): not compared.

A final cast to bf16/fp16 maps Inf to the dtype's first unrepresentable power of two
before comparing, so a value rounding to Inf in one order and to max in the other is
one unit in the last place apart, which the bound allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
F32_EPS = torch.finfo(torch.float32).eps
F32_MAX = torch.finfo(torch.float32).max
F32_TINY_STEP = 2.0**-149  # the smallest float32 subnormal

# M = 0, 1, primes, and 17/31 (> 16 rows: the kernels' dequantize + BLAS path).
LEADS = ((), (0,), (1,), (2,), (3,), (5,), (7,), (13,), (17,), (31,), (1, 7), (3, 11), (2, 3))
LAYOUTS = ("contiguous", "transposed", "strided")
REGIMES = ("unit", "tiny", "huge")
ELEMENT_SPECIALS = ("max", "-max", "subnormal", "-subnormal", "zero", "nan", "inf", "-inf")
ROW_SPECIALS = ("zero_row", "equal_row", "subnormal_row", "max_row")
SPECIALS = ELEMENT_SPECIALS + ROW_SPECIALS
NON_FINITE = ("nan", "inf", "-inf")


@dataclass(frozen=True)
class XSpec:
    """How to build one activation: shape, layout, dtype, magnitude and planted specials."""

    lead: tuple[int, ...]
    k: int
    dtype: torch.dtype
    layout: str
    regime: str
    specials: tuple[tuple[str, int, int], ...]  # (kind, row seed, column seed)
    seed: int

    @property
    def rows(self) -> int:
        m = 1
        for d in self.lead:
            m *= d
        return m


@st.composite
def x_specs(draw, k: int, allow_non_finite: bool = True) -> XSpec:
    """A strategy for :class:`XSpec` with ``in_features = k``.

    Example:
        >>> x_specs(8).example().k
        8
    """
    kinds = SPECIALS if allow_non_finite else tuple(s for s in SPECIALS if s not in NON_FINITE)
    special = st.tuples(st.sampled_from(kinds), st.integers(0, 1 << 16), st.integers(0, 1 << 16))
    return XSpec(
        lead=draw(st.sampled_from(LEADS)),
        k=k,
        dtype=draw(st.sampled_from(DTYPES)),
        layout=draw(st.sampled_from(LAYOUTS)),
        regime=draw(st.sampled_from(REGIMES)),
        specials=tuple(draw(st.lists(special, max_size=4))),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _regime_scale(regime: str, dtype: torch.dtype) -> float:
    info = torch.finfo(dtype)
    return {"unit": 1.0, "tiny": info.smallest_normal * 4, "huge": info.max / 64}[regime]


def _special_value(kind: str, info: torch.finfo, gen: torch.Generator) -> float:
    tiny = info.smallest_normal * float(torch.rand((), generator=gen)) * 0.5  # subnormal
    return {
        "max": info.max,
        "-max": -info.max,
        "subnormal": tiny,
        "-subnormal": -tiny,
        "zero": 0.0,
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
    }[kind]


def _plant(x: Tensor, spec: XSpec, gen: torch.Generator) -> None:
    """Writes the planted specials into the logical ``[M, K]`` tensor ``x`` in place."""
    info = torch.finfo(spec.dtype)
    m, k = x.shape
    if m == 0:
        return
    for kind, row_seed, col_seed in spec.specials:
        r, c = row_seed % m, col_seed % k
        if kind == "zero_row":
            x[r] = 0
        elif kind == "equal_row":
            x[r] = x[r, c]
        elif kind == "subnormal_row":
            x[r] = (torch.rand(k, generator=gen) - 0.5) * info.smallest_normal
        elif kind == "max_row":
            signs = torch.randint(0, 2, (k,), generator=gen).float() * 2 - 1
            x[r] = signs * info.max
        else:
            x[r, c] = _special_value(kind, info, gen)


def make_extreme_x(spec: XSpec) -> Tensor:
    """The activation ``[*lead, K]`` of ``spec``, laid out as it says (values and layout only
    depend on ``spec``).

    Example:
        >>> spec = XSpec((3,), 4, torch.float32, "strided", "unit", (("nan", 1, 2),), 0)
        >>> x = make_extreme_x(spec)
        >>> x.is_contiguous(), bool(x[1, 2].isnan())
        (False, True)
    """
    gen = torch.Generator().manual_seed(spec.seed)
    m, k = spec.rows, spec.k
    flat = torch.randn(m, k, generator=gen, dtype=torch.float64) * _regime_scale(
        spec.regime, spec.dtype
    )
    flat = flat.to(spec.dtype)
    _plant(flat, spec, gen)
    logical = flat.reshape(*spec.lead, k)
    if spec.layout == "transposed" and len(spec.lead) == 1:
        x = torch.empty(k, m, dtype=spec.dtype).t()
    elif spec.layout in ("transposed", "strided"):
        # NaN in the gaps: a kernel that reads a column it should skip turns NaN.
        x = torch.full((*spec.lead, 2 * k), float("nan"), dtype=spec.dtype)[..., ::2]
    else:
        x = torch.empty(*spec.lead, k, dtype=spec.dtype)
    x.copy_(logical)
    return x


@dataclass(frozen=True)
class Expected:
    """Per output element: the exact value and its bound, and which class it falls in."""

    value: Tensor  # float64, exact where ``safe``
    bound: Tensor  # float64, allowed |difference| where ``safe``
    nan: Tensor
    pos_inf: Tensor
    neg_inf: Tensor
    safe: Tensor

    @property
    def checked(self) -> Tensor:
        """Elements with a defined expectation (all classes but *undefined*)."""
        return self.nan | self.pos_inf | self.neg_inf | self.safe


def expected_linear(
    x: Tensor,
    w: Tensor,
    bias: Tensor | None,
    *,
    eps: float = F32_EPS,
    acc_max: float = F32_MAX,
    partial_scale: Tensor | None = None,
    weight_error: Tensor | None = None,
    tiny_step: float = F32_TINY_STEP,
) -> Expected:
    """Classifies ``x @ w.T + bias`` (x: ``[..., K]``, w: ``[N, K]``) as the module docstring says.

    ``eps`` is the unit roundoff times two of the accumulation, ``acc_max`` its largest
    finite value. ``partial_scale[n]`` (< 1) says a kernel sums ``x * w / partial_scale``
    and scales afterwards (int8 codes times one channel scale), so its partial sums are
    that much larger. ``weight_error[n, k]`` bounds how far a kernel's weight may be from
    ``w`` (a dequantization that is not exact). ``tiny_step`` is the accumulation's
    smallest subnormal.

    Example:
        >>> e = expected_linear(torch.tensor([[1.0, float("nan")]]), torch.ones(3, 2), None)
        >>> e.nan.tolist()
        [[True, True, True]]
    """
    k = x.shape[-1]
    x2 = x.reshape(-1, k).double()
    terms = x2[:, None, :] * w.double()[None, :, :]  # [M, N, K], exact
    if bias is not None:
        terms = torch.cat([terms, bias.double().view(1, -1, 1).expand(x2.shape[0], -1, 1)], -1)
    finite_terms = torch.where(terms.isfinite(), terms, torch.zeros_like(terms))
    has_pos_inf = (terms == float("inf")).any(-1)
    has_neg_inf = (terms == float("-inf")).any(-1)
    nan = terms.isnan().any(-1) | (has_pos_inf & has_neg_inf)
    pos_sum = finite_terms.clamp(min=0).sum(-1)
    neg_sum = (-finite_terms).clamp(min=0).sum(-1)
    value = finite_terms.sum(-1)
    extra = 0.0
    if weight_error is not None:
        extra = x2.abs().nan_to_num(posinf=0.0) @ weight_error.double().T
    # Gradual underflow adds an absolute error of half a subnormal step to each product
    # and sum, which no relative bound covers when the terms are subnormal.
    underflow = (2 * k + 4) * tiny_step
    bound = (k + 2) * eps * (pos_sum + neg_sum) + (1 + (k + 2) * eps) * extra + underflow
    slack = 1 + (k + 2) * eps
    over = acc_max * (1 + eps)  # beyond it, rounding to the accumulation's type gives Inf
    partial = 1.0 if partial_scale is None else 1 / partial_scale.double().clamp(max=1.0)
    pos_ok = (pos_sum + extra) * partial * slack < acc_max
    neg_ok = (neg_sum + extra) * partial * slack < acc_max
    infinite = nan | has_pos_inf | has_neg_inf
    safe = ~infinite & pos_ok & neg_ok
    # An infinite product decides the sign only if the other sign cannot overflow too
    # (a large finite product times a weight above 1 may, in float32).
    pos_inf = (has_pos_inf & ~nan & neg_ok) | (~infinite & neg_ok & (value - bound > over))
    neg_inf = (has_neg_inf & ~nan & pos_ok) | (~infinite & pos_ok & (value + bound < -over))
    shape = (*x.shape[:-1], w.shape[0])
    return Expected(
        value=value.reshape(shape),
        bound=bound.reshape(shape),
        nan=nan.reshape(shape),
        pos_inf=pos_inf.reshape(shape),
        neg_inf=neg_inf.reshape(shape),
        safe=safe.reshape(shape),
    )


def _inf_stand_in(dtype: torch.dtype) -> float:
    """The first power of two a dtype cannot hold: what its Inf stands for after rounding."""
    return {torch.float16: 2.0**16, torch.bfloat16: 2.0**128}.get(dtype, float("inf"))


def assert_matches_expected(actual: Tensor, exp: Expected, what: str) -> None:
    """Asserts ``actual`` is in every element's class, and within the bound where safe.

    Example:
        >>> e = expected_linear(torch.tensor([[1.0, 2.0]]), torch.ones(1, 2), None)
        >>> assert_matches_expected(torch.tensor([[3.0]]), e, "sum")
    """
    assert actual.shape == exp.value.shape, f"{what}: shape {actual.shape} != {exp.value.shape}"
    a = actual.double()
    for name, mask, ok in (
        ("NaN", exp.nan, a.isnan()),
        ("+Inf", exp.pos_inf, a == float("inf")),
        ("-Inf", exp.neg_inf, a == float("-inf")),
    ):
        bad = mask & ~ok
        assert not bool(bad.any()), (
            f"{what}: {int(bad.sum())} elements should be {name} (F.linear gives {name} there),"
            f" got {a[bad][:4].tolist()} at {bad.nonzero()[:4].tolist()}"
        )
    safe = exp.safe
    if not bool(safe.any()):
        return
    bound, want = exp.bound, exp.value
    if actual.dtype != torch.float32:
        info = torch.finfo(actual.dtype)
        stand_in = _inf_stand_in(actual.dtype)
        a, want = a.clamp(-stand_in, stand_in), want.clamp(-stand_in, stand_in)
        bound = bound + info.eps * (want.abs() + bound) + info.smallest_normal
    err = (a - want).abs()
    bad = safe & ~(err <= bound)  # NaN in a fails here too
    assert not bool(bad.any()), (
        f"{what}: {int(bad.sum())} of {int(safe.sum())} finite elements out of bound, e.g. "
        f"got {a[bad][:3].tolist()} want {want[bad][:3].tolist()} "
        f"(bound {bound[bad][:3].tolist()})"
    )
