"""Round-to-nearest int8 / int4: the dequantized error is at most half a step.

In exact arithmetic every weight lies inside its grid's range and rounds to the
nearest code, so ``|dequantized - w| <= scale / 2``. The float32 division ``w / scale``
can move a value sitting on a rounding boundary by a few ulps, so the bound used is
``scale / 2 + 4 * eps * (|w| + scale)``.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from squeezeprompt.formats import unpack_int4
from squeezeprompt.quantize import quantize_int4, quantize_int8

EPS = torch.finfo(torch.float32).eps


@st.composite
def weights(draw, group_size_choices=(8, 16, 32, 64)):
    """A float32 weight [N, K] with a drawn magnitude, zero rows/groups and outliers."""
    group_size = draw(st.sampled_from(group_size_choices))
    n = draw(st.integers(1, 6))
    k = group_size * draw(st.integers(1, 4))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    magnitude = 10.0 ** draw(st.integers(-4, 3))
    w = torch.randn(n, k, generator=gen) * magnitude
    if draw(st.booleans()):  # all-positive or all-negative weights: lo or hi is 0
        w = w.abs() * draw(st.sampled_from([1.0, -1.0]))
    if draw(st.booleans()):  # an all-zero group: scale falls back to 1, codes exact
        w[0, :group_size] = 0.0
    if draw(st.booleans()):  # one outlier stretches its group's grid
        w[-1, -1] = 100.0 * magnitude
    return w, group_size


def _half_step_bound(w, scale_per_elem):
    return scale_per_elem / 2 + 4 * EPS * (w.abs() + scale_per_elem)


@given(case=weights())
def test_quantize_int8_error_is_at_most_half_a_step(case):
    w, _ = case
    q = quantize_int8(w)
    assert q.qweight.dtype == torch.int8 and q.qweight.shape == w.shape
    assert q.scales.shape == (w.shape[0],) and bool((q.scales > 0).all())
    assert int(q.qweight.min()) >= -127  # symmetric: -128 is never used
    err = (q.dequantize() - w).abs()
    bound = _half_step_bound(w, q.scales[:, None].expand_as(w))
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3e}"
    # The grid is as tight as the rule says: the row maximum maps to +-127.
    amax = w.abs().amax(1)
    nonzero = amax > 0
    assert bool((q.qweight.abs().amax(1)[nonzero] == 127).all())
    assert bool((q.dequantize()[~nonzero] == 0).all())


@pytest.mark.parametrize("symmetric", [False, True], ids=["asymmetric", "symmetric"])
@given(case=weights())
def test_quantize_int4_error_is_at_most_half_a_step(symmetric, case):
    w, group_size = case
    q = quantize_int4(w, group_size=group_size, symmetric=symmetric)
    n, k = w.shape
    assert q.qweight.shape == (n, k // 2) and q.qweight.dtype == torch.uint8
    assert q.scales.shape == q.zeros.shape == (n, k // group_size)
    assert q.group_size == group_size and q.shape == (n, k)
    assert bool((q.scales > 0).all())
    codes = unpack_int4(q.qweight)
    assert int(codes.max()) <= 15
    if symmetric:
        assert bool((q.zeros == 8).all())
    else:
        assert bool((q.zeros == q.zeros.round()).all()) and bool(
            ((q.zeros >= 0) & (q.zeros <= 15)).all()
        )
    scale = q.scales.repeat_interleave(group_size, dim=1)
    err = (q.dequantize() - w).abs()
    bound = _half_step_bound(w, scale)
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3e}"


def test_quantize_int4_zero_is_exactly_representable():
    # Zero maps to the code `zero`, so exact zeros (pruned weights) stay exactly zero.
    w = torch.randn(8, 64)
    w[w.abs() < 0.5] = 0.0
    for symmetric in (False, True):
        q = quantize_int4(w, group_size=32, symmetric=symmetric)
        assert bool((q.dequantize()[w == 0] == 0).all())


def test_quantize_int4_known_values():
    # Group [-1, 2]: lo = -1, hi = 2, scale = 3 / 15 = 0.2, zero = round(1 / 0.2) = 5.
    q = quantize_int4(torch.tensor([[-1.0, 2.0, 0.1, 0.0]]), group_size=2)
    torch.testing.assert_close(q.scales, torch.tensor([[0.2, 0.1 / 15]]))
    assert q.zeros.tolist() == [[5.0, 0.0]]
    assert unpack_int4(q.qweight).tolist() == [[0, 15, 15, 0]]


def test_quantize_int8_known_values():
    q = quantize_int8(torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.0, 0.0]]))
    assert q.qweight.tolist() == [[64, -127], [127, 0], [0, 0]]
    torch.testing.assert_close(q.scales, torch.tensor([1.0 / 127, 2.0 / 127, 1.0]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_quantizers_accept_other_float_dtypes(dtype):
    w = torch.randn(4, 32).to(dtype)
    q8, q4 = quantize_int8(w), quantize_int4(w, group_size=16)
    assert q8.scales.dtype == q4.scales.dtype == torch.float32
    torch.testing.assert_close(q8.dequantize(), quantize_int8(w.float()).dequantize())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("fn", ["quantize_int8", "quantize_int4"])
def test_rejects_non_finite_weights(fn, value):
    w = torch.randn(4, 32)
    w[2, 5] = value
    quantize = {"quantize_int8": quantize_int8, "quantize_int4": quantize_int4}[fn]
    with pytest.raises(ValueError) as info:
        quantize(w)
    message = str(info.value)
    assert fn in message and "finite" in message and "[2, 5]" in message


@pytest.mark.parametrize(
    ("weight", "kwargs", "error", "words"),
    [
        (torch.randn(4, 96), {"group_size": 64}, ValueError, "group_size"),
        (torch.randn(4, 96), {"group_size": 0}, ValueError, "group_size"),
        (torch.randn(4, 96), {"group_size": -32}, ValueError, "group_size"),
        (torch.randn(4, 9), {"group_size": 3}, ValueError, "even"),
        (torch.randn(96), {"group_size": 32}, ValueError, "2-D"),
        (torch.ones(4, 96, dtype=torch.int32), {"group_size": 32}, TypeError, "floating"),
    ],
    ids=["not_dividing", "zero", "negative", "odd_k", "1d", "int"],
)
def test_quantize_int4_rejects_bad_arguments(weight, kwargs, error, words):
    with pytest.raises(error) as info:
        quantize_int4(weight, **kwargs)
    assert "quantize_int4" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    ("weight", "error"),
    [(torch.randn(2, 3, 4), ValueError), (torch.ones(4, 8, dtype=torch.int8), TypeError)],
    ids=["3d", "int"],
)
def test_quantize_int8_rejects_bad_arguments(weight, error):
    with pytest.raises(error, match="quantize_int8"):
        quantize_int8(weight)
