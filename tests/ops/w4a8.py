"""The exact value of ``int4_dynamic_linear`` and the bound a float32 kernel must meet.

After the per-token int8 rounding (the same in every implementation), the op is exact
integer sums per group, then float work: per group one product with the scale and the
zero term ``zeros * sum(xq)``, a sum over the G groups, one product with the row scale
and the bias add. Computed in float32 in any order, that is within

    (G + 8) * eps32 * x_scale * sum_g scales[n, g]
                      * sum_{k in g} |xq[m, k]| (q[n, k] + |zeros[n, g]|)

of the exact value (each of at most G + 6 roundings, with unit roundoff eps32 / 2,
applied to a partial sum no larger than that magnitude), plus one rounding of the result
and of the bias add, plus the result's cast to x's dtype (one unit in its last place)
and, for results in float32's subnormal range, a few subnormal steps. The integer part
being exact is what makes the bound G rather than K: a kernel that summed in float32
per column, or dropped part of a group, misses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from squeezeprompt.formats import unpack_int4
from squeezeprompt.ops.dynamic import quantize_activations_ref

F32_EPS = torch.finfo(torch.float32).eps
F32_TINY_STEP = 2.0**-149


@dataclass(frozen=True)
class W4A8Expected:
    value: Tensor  # float64 [..., N], exact (NaN for rows holding NaN or Inf)
    bound: Tensor  # float64 [..., N]


def w4a8_expected(
    x: Tensor, qweight: Tensor, scales: Tensor, zeros: Tensor, group_size: int, bias: Tensor | None
) -> W4A8Expected:
    """Exact result and allowed error of ``int4_dynamic_linear`` for these inputs.

    Example:
        >>> from squeezeprompt.formats import pack_int4
        >>> q = pack_int4(torch.full((1, 4), 9, dtype=torch.uint8))
        >>> s, z = torch.ones(1, 1), torch.full((1, 1), 8.0)
        >>> e = w4a8_expected(torch.full((1, 4), 127.0), q, s, z, 4, None)
        >>> e.value.tolist()
        [[508.0]]
    """
    xq, xs = quantize_activations_ref(x)
    m, k = xq.shape
    n, groups = qweight.shape[0], k // group_size
    codes = unpack_int4(qweight).double().reshape(n, groups, group_size)
    xg = xq.double().reshape(m, groups, group_size)
    s, z = scales.double(), zeros.double()
    dots = torch.einsum("mgk,ngk->mng", xg, codes)
    xsum = xg.sum(-1)[:, None, :]
    value = xs.double()[:, None] * ((dots - z[None] * xsum) * s[None]).sum(-1)
    mag_dots = torch.einsum("mgk,ngk->mng", xg.abs(), codes)
    mag_zero = z.abs()[None] * xg.abs().sum(-1)[:, None, :]
    mag = xs.double().abs()[:, None] * ((mag_dots + mag_zero) * s[None]).sum(-1)
    mag = torch.where(mag.isnan(), torch.zeros_like(mag), mag)
    bound = (groups + 8) * F32_EPS * mag + 8 * F32_TINY_STEP
    if bias is not None:
        value = value + bias.double()
        bound = bound + F32_EPS * bias.double().abs()
    bound = bound + F32_EPS * value.abs().nan_to_num(0.0)
    if x.dtype != torch.float32:
        info = torch.finfo(x.dtype)
        bound = bound + info.eps * value.abs().nan_to_num(0.0) + info.smallest_normal
    shape = (*x.shape[:-1], n)
    return W4A8Expected(value.reshape(shape), bound.reshape(shape))


def assert_w4a8_close(actual: Tensor, exp: W4A8Expected, what: str) -> None:
    """NaN exactly where the exact value is NaN; elsewhere within the bound where the
    result is surely finite in ``actual.dtype``, and the same infinity where it surely
    overflows (results within the bound of the overflow threshold are not compared).

    Example:
        >>> e = W4A8Expected(torch.tensor([1.0, float("nan")], dtype=torch.float64),
        ...                  torch.tensor([1e-6, 0.0], dtype=torch.float64))
        >>> assert_w4a8_close(torch.tensor([1.0, float("nan")]), e, "demo")
    """
    assert actual.shape == exp.value.shape, f"{what}: shape {actual.shape} != {exp.value.shape}"
    a, v, b = actual.double(), exp.value, exp.bound
    nan = v.isnan()
    got_nan = a.isnan()
    assert torch.equal(got_nan, nan), (
        f"{what}: NaN at {got_nan.nonzero()[:4].tolist()}, expected at {nan.nonzero()[:4].tolist()}"
    )
    top = torch.finfo(actual.dtype).max
    finite = ~nan & (v.abs() + b < top)
    overflow = ~nan & (v.abs() - b > top * (1 + torch.finfo(actual.dtype).eps))
    err = (a - v).abs()
    bad = finite & ~(err <= b)
    assert not bool(bad.any()), (
        f"{what}: {int(bad.sum())} of {int(finite.sum())} outside the bound, e.g. got "
        f"{a[bad][:3].tolist()} want {v[bad][:3].tolist()} (bound {b[bad][:3].tolist()})"
    )
    wrong_inf = overflow & (a != torch.sign(v) * float("inf"))
    assert not bool(wrong_inf.any()), f"{what}: {int(wrong_inf.sum())} should overflow to Inf"
