"""Every CPU ISA path this machine runs, forced in turn, against the ``*_ref`` references.

Shapes are chosen to hit the kernels' edges: M = 1, 3, 17 (tails of the 2-row and
3-row register tiles, and the BLAS path above 16 rows); K and N not multiples of 64,
and for int8 K not a multiple of the 8- or 16-wide vectors.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import squeezeprompt  # noqa: F401  (loads the extension)
from squeezeprompt.ops import (
    fake_quantize_backward_ref,
    fake_quantize_ref,
    int4_dynamic_linear_ref,
    int4_weight_linear_ref,
    int8_dynamic_linear_ref,
    int8_weight_linear_ref,
    sparse24_int4_linear_ref,
    sparse24_linear_ref,
)

OPS = torch.ops.squeezeprompt
ALL_ISAS = ("scalar", "avx2", "avx512")
AVAILABLE = tuple(OPS._cpu_isas_available())


def _isa_param(name: str):
    reason = f"this CPU lacks {name} (cpuid reports only {', '.join(AVAILABLE)})"
    return pytest.param(name, marks=pytest.mark.skipif(name not in AVAILABLE, reason=reason))


ISAS = [_isa_param(name) for name in ALL_ISAS]
ROWS = (1, 3, 5, 8, 17)  # 5 and 8 reach the 4-row int8 and 5-8-row int4 tiles
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@pytest.fixture
def isa(request):
    previous = OPS._set_cpu_isa(request.param)
    yield request.param
    OPS._set_cpu_isa(previous)


# The paired int4 paths and the int8 weight-only path at M = 1 read code lanes either
# converted or as subnormal floats against scaled activations (csrc/cpu/int4_weight_simd.h,
# int8_weight_simd.h); "auto" picks one per CPU, so both are forced in turn here.
CODE_DECODES = ("convert", "subnormal")


@pytest.fixture(params=CODE_DECODES)
def code_decode(request):
    previous = OPS._set_cpu_code_decode(request.param)
    yield request.param
    OPS._set_cpu_code_decode(previous)


def _bound(x: torch.Tensor, w: torch.Tensor, out_dtype: torch.dtype) -> torch.Tensor:
    """Error bound for a float32 dot product of length K (any summation order):
    K * eps32 * (|x| @ |w|^T), plus one rounding of the result into ``out_dtype``."""
    mag = x.float().abs().reshape(-1, x.shape[-1]) @ w.float().abs().T
    k = x.shape[-1]
    eps_out = torch.finfo(out_dtype).eps
    return (k * torch.finfo(torch.float32).eps * mag + eps_out * mag).reshape(
        *x.shape[:-1], w.shape[0]
    )


def _activations(m: int, k: int, dtype: torch.dtype) -> torch.Tensor:
    """``[m, k]`` for m = 1 (a decode step: the kernels' M = 1 paths), else ``[2, m, k]``
    (a leading batch dim as well, so the op sees 2 m rows)."""
    return torch.randn(*(() if m == 1 else (2,)), m, k).to(dtype)


def _check_close(got, want, bound):
    err = (got.float() - want.float()).abs()
    # The reference itself rounds to out_dtype, so allow the bound plus one ulp of it.
    ulp = want.float().abs() * torch.finfo(want.dtype).eps + torch.finfo(want.dtype).tiny
    excess = err - bound - ulp
    assert excess.max() <= 0, f"max error {err.max():.3g} over the bound by {excess.max():.3g}"


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("m", ROWS)
@pytest.mark.parametrize("dtype", DTYPES)
# K = 600 at M = 1: the byte-plane path's groups of 256 columns (the last one partial)
# and a 24-column tail, with N = 9 leaving a one-row tail after two 4-row tiles.
@pytest.mark.parametrize("k,n", [(100, 37), (8, 5), (203, 70), (600, 9)])
def test_int8_weight_linear(isa, code_decode, m, dtype, k, n):
    x = torch.randn(m, k).to(dtype)
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.rand(n) + 0.01
    bias = torch.randn(n)
    got = OPS.int8_weight_linear(x, q, s, bias)
    want = int8_weight_linear_ref(x, q, s, bias)
    assert got.dtype == dtype
    w = q.float() * s[:, None]
    _check_close(got, want, _bound(x, w, dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
# 2, 6 and 16 rows as well: the paired int4 path's 3 x 4 tiles with 2-row and 4-row tails.
@pytest.mark.parametrize("m", (*ROWS, 2, 6, 16))
@pytest.mark.parametrize("dtype", DTYPES)
# K = 2080 with 6-16 rows: the K-blocked path (x over 40 KiB), chunks that end inside a
# 160-column group, and 19 weight rows (two blocks of 8 and a tail of 3).
@pytest.mark.parametrize(
    "k,n,group",
    [(96, 37, 32), (160, 70, 160), (48, 9, 8), (60, 5, 6), (2080, 19, 160), (2080, 19, 32)],
)
def test_int4_weight_linear(isa, code_decode, m, dtype, k, n, group):
    from squeezeprompt.formats import dequantize_int4

    x = _activations(m, k, dtype)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    got = OPS.int4_weight_linear(x, q, s, z, group, None)
    want = int4_weight_linear_ref(x, q, s, z, group)
    _check_close(got, want, _bound(x, dequantize_int4(q, s, z, group), dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("group", [32, 128])
def test_int4_weight_linear_no_rows(isa, code_decode, group):
    """No activation rows (a [0, K] input) gives a [0, N] output: the paired paths once
    took M = 0 for a small M and read an activation buffer that was never filled."""
    k, n = 256, 5
    x = torch.empty(0, k)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    got = OPS.int4_weight_linear(x, q, s, z, group, None)
    assert got.shape == (0, n)


def _check_edge_row(got, want, x, w):
    """The last activation row (the edge case) to rtol 1e-5; the others within the usual
    bound (they are ordinary rows, there to show a single edge row decides the path)."""
    torch.testing.assert_close(got[-1], want[-1], rtol=1e-5, atol=0)
    if got.shape[0] > 1:
        _check_close(got[:-1], want[:-1], _bound(x[:-1], w, x.dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("total_exponent", [117, 127])
def test_int4_weight_linear_large_activations(isa, code_decode, m, total_exponent):
    """The paired SIMD paths (M = 1, and 3 x 4 tiles up to M = 16) sum x * code per group,
    then subtract zero * sum x and scale, when every row's sum |x| is below 2^118. One
    group of 256 columns, codes 15 and zero -15 (the largest partial sums): at sum |x| =
    2^117 that path must still be exact, and at 2^127 its group sums would pass float max
    (per lane about 2^127.9 for x * code, and as much again for zero * sum x) while the
    result, scaled by 2^-20, is finite: the kernel has to take the per-weight path. The
    edge row is the last of m."""
    from squeezeprompt.formats import dequantize_int4

    k, n, group = 256, 3, 256
    x = torch.randn(m, k)
    x[-1] = 2.0 ** (total_exponent - 8)  # k = 2^8 columns
    q = torch.full((n, k // 2), 0xFF, dtype=torch.uint8)
    s = torch.full((n, 1), 2.0**-20)
    z = torch.full((n, 1), -15.0)
    got = OPS.int4_weight_linear(x, q, s, z, group, None)
    want = int4_weight_linear_ref(x, q, s, z, group)
    assert want.isfinite().all()
    _check_edge_row(got, want, x, dequantize_int4(q, s, z, group))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("normal_columns", [0, 128])
def test_int4_weight_linear_tiny_activations(isa, code_decode, m, normal_columns):
    """The paired paths divide odd columns' activations by 16, which rounds values near
    the bottom of float32's range (x / 16 below 2^-126 keeps fewer bits). With a row of
    activations around 2^-136 (sum |x| under 2^-96) the kernel must take the per-weight
    path: the reference's products x * w are normal floats (w about 2^20), so anything
    else would miss by far more than rtol. With half that row's columns of normal size
    the paired path runs, and the tiny half's loss stays inside the usual bound."""
    from squeezeprompt.formats import dequantize_int4

    k, n, group = 256, 6, 128
    x = torch.randn(m, k)
    x[-1] = torch.randn(k) * 2.0**-136
    x[-1, :normal_columns] = torch.randn(normal_columns)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.full((n, k // group), 2.0**20)
    z = torch.rand(n, k // group) * 15
    got = OPS.int4_weight_linear(x, q, s, z, group, None)
    want = int4_weight_linear_ref(x, q, s, z, group)
    w = dequantize_int4(q, s, z, group)
    if normal_columns == 0:
        _check_edge_row(got, want, x, w)
    else:
        _check_close(got, want, _bound(x, w, x.dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("exponent", [-136, 120])
def test_int8_weight_linear_extreme_activations(isa, code_decode, exponent):
    """The byte-plane path (M = 1) scales the activations by a power of two chosen from
    sum |x|, within the same bounds as the paired int4 paths (2^-96 <= sum |x| < 2^118).
    A row around 2^-136 (products near float32's subnormal range) must take the
    per-weight path and match the reference to rtol 1e-5; so must a row with sum |x|
    about 2^120, where every path's sums x * code still stay below float max."""
    k, n = 256, 6
    x = torch.full((1, k), 2.0 ** (exponent - 8)) * (torch.rand(1, k) + 0.5)
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.full((n,), 2.0**-20 if exponent > 0 else 2.0**20)
    want = int8_weight_linear_ref(x, q, s, None)
    assert want.isfinite().all()
    torch.testing.assert_close(OPS.int8_weight_linear(x, q, s, None), want, rtol=1e-5, atol=0)


def _in_mode(decode, op, *args):
    """op(*args) with the code decode mode forced, then restored."""
    previous = OPS._set_cpu_code_decode(decode)
    try:
        return op(*args)
    finally:
        OPS._set_cpu_code_decode(previous)


def _subnormal_under_flush_denormal(op, *args):
    """op(*args) in subnormal mode with denormals-are-zero set (torch.set_flush_denormal),
    on one thread, so the kernel runs on the thread whose floating-point mode was
    changed; everything is restored after. Skips where the CPU cannot flush denormals."""
    threads = torch.get_num_threads()
    previous = OPS._set_cpu_code_decode("subnormal")
    try:
        torch.set_num_threads(1)
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU cannot flush denormals")
        return op(*args)
    finally:
        torch.set_flush_denormal(False)  # torch's default; it offers no way to read it
        torch.set_num_threads(threads)
        OPS._set_cpu_code_decode(previous)


def _offset_bound(x, q, s):
    """The byte-plane path sums x * (code + 128) and subtracts 128 * sum x per group, so
    its rounding scales with |code| + 128 (csrc/cpu/int8_weight_simd.h)."""
    return _bound(x, (q.float().abs() + 128) * s[:, None], x.dtype)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
def test_int8_weight_linear_real_codes_and_zero_row(isa, code_decode):
    """Codes spread like per-channel quantized weights (normal, standard deviation 30),
    one all-zero row and one row of small codes: the converting kernel stays within the
    usual bound and gives exactly 0 for the zero row; the byte-plane path stays within
    the offset bound, its zero row tiny against it."""
    k, n = 1024, 11
    x = torch.randn(1, k)
    q = (torch.randn(n, k) * 30).round().clamp(-128, 127).to(torch.int8)
    q[3] = 0
    q[7] = torch.randint(-2, 3, (k,), dtype=torch.int8)
    s = torch.rand(n) + 0.01
    got = OPS.int8_weight_linear(x, q, s, None)
    want = int8_weight_linear_ref(x, q, s, None)
    if code_decode == "convert":
        assert got[0, 3] == 0
        _check_close(got, want, _bound(x, q.float() * s[:, None], x.dtype))
    else:
        _check_close(got, want, _offset_bound(x, q, s))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("sum_abs_x", [1.1 * 2.0**-96, 0.9 * 2.0**118])
def test_int8_weight_linear_scaling_extremes(isa, code_decode, sum_abs_x):
    """Rows just inside the byte-plane path's bounds on sum |x| (2^-96 and 2^118), where
    the activations' power-of-two scaling is at its largest (2^220) and smallest (2^7):
    results within the offset bound, and finite."""
    k, n = 512, 9
    x = torch.rand(1, k) + 0.5
    x = x * (sum_abs_x / x.abs().sum())
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.full((n,), 2.0**-20 if sum_abs_x > 1 else 2.0**20)
    got = OPS.int8_weight_linear(x, q, s, None)
    want = int8_weight_linear_ref(x, q, s, None)
    assert got.isfinite().all()
    _check_close(got, want, _offset_bound(x, q, s))


@pytest.mark.parametrize("isa", [p for p in ISAS if p.values[0] != "scalar"], indirect=True)
def test_int8_subnormal_decode_is_taken(isa):
    """Shows the byte-plane path runs at M = 1 in subnormal mode (the other tests would
    pass if it never did): it sums in another order than the converting tiles and
    subtracts 128 * sum x per group, so on random data its result differs from theirs
    in the last bits while staying within its bound. At M = 2 the mode changes
    nothing."""
    k, n = 512, 13
    x = torch.randn(1, k)
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.rand(n) + 0.01
    converted = _in_mode("convert", OPS.int8_weight_linear, x, q, s, None)
    subnormal = _in_mode("subnormal", OPS.int8_weight_linear, x, q, s, None)
    assert not torch.equal(subnormal, converted)
    _check_close(subnormal, int8_weight_linear_ref(x, q, s, None), _offset_bound(x, q, s))
    x2 = torch.randn(2, k)
    assert torch.equal(
        _in_mode("convert", OPS.int8_weight_linear, x2, q, s, None),
        _in_mode("subnormal", OPS.int8_weight_linear, x2, q, s, None),
    )


@pytest.mark.parametrize("isa", [p for p in ISAS if p.values[0] != "scalar"], indirect=True)
def test_int8_subnormal_decode_with_flush_denormal(isa):
    """With denormals-are-zero set every code would read as 0 on the byte-plane path (the
    result would be -128 * sum x * scale), so the kernel must convert instead."""
    k, n = 512, 7
    x = torch.randn(1, k)
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.rand(n) + 0.01
    got = _subnormal_under_flush_denormal(OPS.int8_weight_linear, x, q, s, None)
    bound = _bound(x, q.float() * s[:, None], x.dtype)
    _check_close(got, int8_weight_linear_ref(x, q, s, None), bound)


@pytest.mark.parametrize("isa", [p for p in ISAS if p.values[0] != "scalar"], indirect=True)
# Rows and groups where the paired paths run (int4_paired_rows_win: from 5 rows only with
# groups of at least 128).
@pytest.mark.parametrize("m,group", [(1, 32), (3, 32), (1, 128), (3, 128), (8, 128)])
def test_int4_subnormal_decode_matches_convert(isa, m, group):
    """Reading codes as subnormals only rescales the activations and results by powers of
    two, so on ordinary data (no product near float's subnormal range) both readings give
    the same bits; an inexact rescaling would show here long before any tolerance."""
    k, n = 512, 13
    x = torch.randn(m, k) * 3.0
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    converted = _in_mode("convert", OPS.int4_weight_linear, x, q, s, z, group, None)
    assert torch.equal(
        converted, _in_mode("subnormal", OPS.int4_weight_linear, x, q, s, z, group, None)
    )


@pytest.mark.parametrize("isa", [p for p in ISAS if p.values[0] != "scalar"], indirect=True)
@pytest.mark.parametrize("m", [1, 3])
def test_int4_subnormal_decode_is_taken(isa, m):
    """Shows the subnormal reading runs (the other tests would pass if it never did) and
    stays within its documented error. The last row has 32 columns of 2^20 against codes
    0 and 32 columns of 2^-100 against codes 1-15 (zero 0, scale 1), so sum |x| = 2^25 sets
    the scaling and the tiny columns' products fall below 2^-126 once scaled: converted
    they are exact, read as subnormals each one is off by under 2^(26 - 125)."""
    k, n, group = 64, 5, 32
    x = torch.randn(m, k)
    x[-1, :32] = 2.0**20
    x[-1, 32:] = (torch.rand(32) + 1) * 2.0**-100
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    q[:, 32 // 2 :] |= 0x11  # every code of the tiny columns at least 1
    q[:, : 32 // 2] = 0
    s = torch.ones(n, k // group)
    z = torch.zeros(n, k // group)
    want = int4_weight_linear_ref(x, q, s, z, group)
    converted = _in_mode("convert", OPS.int4_weight_linear, x, q, s, z, group, None)
    subnormal = _in_mode("subnormal", OPS.int4_weight_linear, x, q, s, z, group, None)
    torch.testing.assert_close(converted[-1], want[-1], rtol=1e-5, atol=0)
    assert not torch.equal(subnormal[-1], converted[-1])
    assert (subnormal[-1] - converted[-1]).abs().max() <= 32 * 2.0 ** (26 - 125)


@pytest.mark.parametrize("isa", [p for p in ISAS if p.values[0] != "scalar"], indirect=True)
@pytest.mark.parametrize("m", [1, 3])
def test_int4_subnormal_decode_with_flush_denormal(isa, m):
    """With denormals-are-zero set (torch.set_flush_denormal), a subnormal code would read
    as 0, so the kernel must convert instead. One thread, so the kernel runs on the
    thread whose floating-point mode was changed."""
    from squeezeprompt.formats import dequantize_int4

    k, n, group = 256, 7, 64
    x = torch.randn(m, k)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    want = int4_weight_linear_ref(x, q, s, z, group)
    got = _subnormal_under_flush_denormal(OPS.int4_weight_linear, x, q, s, z, group, None)
    _check_close(got, want, _bound(x, dequantize_int4(q, s, z, group), x.dtype))


def test_code_decode_mode_names():
    """The internal switch takes exactly the three mode names and returns the previous
    one, so tests can restore it."""
    previous = OPS._set_cpu_code_decode("convert")
    try:
        assert OPS._set_cpu_code_decode("subnormal") == "convert"
        with pytest.raises(RuntimeError, match="auto, convert, subnormal, got 'fast'"):
            OPS._set_cpu_code_decode("fast")
        assert OPS._cpu_code_decode() == "subnormal"
        assert OPS._set_cpu_code_decode("auto") == "subnormal"
    finally:
        OPS._set_cpu_code_decode(previous)


def test_codes_as_subnormals_reports_the_effective_choice():
    """The forced modes decide it; under denormals-are-zero it is off even when forced,
    as the kernels fall back to converting there."""
    previous = OPS._set_cpu_code_decode("subnormal")
    try:
        assert OPS._cpu_codes_as_subnormals() is True
        torch.set_flush_denormal(True)
        try:
            assert OPS._cpu_codes_as_subnormals() is False
        finally:
            torch.set_flush_denormal(False)
        OPS._set_cpu_code_decode("convert")
        assert OPS._cpu_codes_as_subnormals() is False
    finally:
        OPS._set_cpu_code_decode(previous)


def _op_in_subprocess(op: str, env_var: str, value: str):
    """Prints torch.ops.squeezeprompt.<op> in a fresh interpreter with only ``env_var``
    set (to ``value``), so a variable read once per process is read again."""
    code = f"import squeezeprompt, torch; print(torch.ops.squeezeprompt.{op})"
    env = {env_var: value, "PATH": ""}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_code_decode_env_var():
    out = _op_in_subprocess("_cpu_code_decode()", "SQUEEZEPROMPT_CODE_DECODE", "convert")
    assert out.stdout.strip() == "convert", out.stderr
    out = _op_in_subprocess("_cpu_code_decode()", "SQUEEZEPROMPT_CODE_DECODE", "fast")
    assert out.returncode != 0
    assert "must be one of auto, convert, subnormal, got 'fast'" in out.stderr
    # Forcing a mode still works under a bad value, which counts as "auto".
    out = _op_in_subprocess("_set_cpu_code_decode('convert')", "SQUEEZEPROMPT_CODE_DECODE", "fast")
    assert out.stdout.strip() == "auto", out.stderr


@pytest.mark.parametrize("isa", ISAS, indirect=True)
# 131 rows: 4-row activation tiles and a 3-row tail. K = 4100 and 4127 span two
# 4096-column blocks (int32 partial sums added across blocks) with a column tail; N = 9
# leaves tails of the 2- and 4-row weight tiles, N = 70 spans two 64-row weight blocks.
@pytest.mark.parametrize("m", (*ROWS, 30, 131))
@pytest.mark.parametrize("k,n", [(100, 37), (203, 70), (16, 4), (4100, 9), (4127, 70)])
def test_int8_dynamic_linear(isa, m, k, n):
    x = torch.randn(m, k)
    # -128 included: the op accepts any int8 weight, and |-128| is the sign trick's edge.
    q = torch.randint(-128, 128, (n, k), dtype=torch.int8)
    s = torch.rand(n) + 0.01
    got = OPS.int8_dynamic_linear(x, q, s, None)
    want = int8_dynamic_linear_ref(x, q, s)
    # Integer accumulation is exact and the rescale is the same two float products.
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("m", (*ROWS, 40))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,n,group", [(576, 37, 64), (96, 70, 32), (192, 5, 96), (60, 9, 6)])
def test_int4_dynamic_linear(isa, m, dtype, k, n, group):
    x = _activations(m, k, dtype)
    q = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    got = OPS.int4_dynamic_linear(x, q, s, z, group, None)
    want = int4_dynamic_linear_ref(x, q, s, z, group)
    # Exact integer sums per group, then G + 8 float roundings at most (tests/ops/w4a8.py):
    # bounded by the magnitude of x @ |w|^T with |w| = (code + |zero|) * scale.
    codes = torch.stack((q & 15, q >> 4), -1).reshape(n, k).float()
    w_mag = (codes + z.repeat_interleave(group, 1)) * s.repeat_interleave(group, 1)
    xq_mag = x.float().abs().amax(-1, keepdim=True) * (1 + 1 / 254)  # |xq| * x_scale <= this
    mag = (xq_mag.expand_as(x.float()) @ w_mag.T).reshape(*x.shape[:-1], n)
    bound = (k // group + 8) * torch.finfo(torch.float32).eps * mag
    bound = bound + torch.finfo(dtype).eps * want.float().abs() * 2
    _check_close(got, want, bound)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
# The kernel takes up to 16 rows (17 goes to BLAS) in tiles of 4: 2, 6 and 16 add the
# 2-row tile, a 4 + 2 split and the largest call.
@pytest.mark.parametrize("m", (*ROWS, 2, 6, 16))
@pytest.mark.parametrize("vdtype", (torch.float32, torch.bfloat16, torch.float16, torch.int8))
# 16-column steps: 6 with a 1-group tail, 4 with a 1-group tail, 12, 7 (a lone last
# step), 7 with a 2-group tail, none (3 groups, all tail), one lone step and one with a
# 1-group tail.
@pytest.mark.parametrize(
    "k,n", [(100, 37), (68, 5), (192, 70), (112, 9), (120, 11), (12, 3), (16, 4), (20, 6)]
)
def test_sparse24_linear(isa, m, vdtype, k, n):
    from squeezeprompt.formats import sparse24_unpack

    keep = torch.rand(n, k // 4, 4).argsort(-1)[..., :2]
    mask = torch.zeros(n, k // 4, 4, dtype=torch.bool).scatter_(-1, keep, True).reshape(n, k)
    if vdtype == torch.int8:
        dense = torch.randint(-127, 128, (n, k)).masked_fill(~mask, 0).to(torch.int8)
        values, meta = OPS.sparse24_pack(dense.float())
        values, scales = values.to(torch.int8), torch.rand(n) + 0.01
    else:
        values, meta = OPS.sparse24_pack(torch.randn(n, k).masked_fill(~mask, 0).to(vdtype))
        scales = None
    x = torch.randn(m, k)
    got = OPS.sparse24_linear(x, values, meta, scales, None)
    want = sparse24_linear_ref(x, values, meta, scales)
    _check_close(got, want, _bound(x, sparse24_unpack(values, meta, scales).float(), x.dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("total_exponent", [117, 127])
def test_sparse24_int4_linear_m1_large_activations(isa, total_exponent):
    """The 2:4 int4 kernel's factored M = 1 path (groups of 64 columns or more) under the
    same sum |x| < 2^118 condition as the dense one: at 2^127, with codes 15 and zero 0
    kept in columns 0 and 1 of every 4, its per-lane group sums would overflow (8
    products of 2^119 * 240 each) while the result, scaled by 2^-20, is finite."""
    k, n, group = 256, 3, 256
    x = torch.full((1, k), 2.0 ** (total_exponent - 8))
    values = torch.full((n, k // 4), 0xFF, dtype=torch.uint8)
    meta = torch.full((n, k // 8), 0x44, dtype=torch.uint8)  # columns 0 and 1 of each 4
    s = torch.full((n, 1), 2.0**-20)
    z = torch.zeros(n, 1)
    got = OPS.sparse24_int4_linear(x, values, meta, s, z, group, None)
    want = sparse24_int4_linear_ref(x, values, meta, s, z, group)
    assert want.isfinite().all()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("m", ROWS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,n,group", [(96, 37, 32), (208, 70, 16), (60, 5, 12), (576, 9, 64)])
def test_sparse24_int4_linear(isa, m, dtype, k, n, group):
    from squeezeprompt.formats import sparse24_int4_unpack

    idx = torch.rand(n, k // 4, 4).argsort(-1)[..., :2].sort(-1).values
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)
    if nibble.shape[1] % 2:
        nibble = torch.nn.functional.pad(nibble, (0, 1))
    meta = nibble[:, 0::2] | (nibble[:, 1::2] << 4)
    values = torch.randint(0, 256, (n, k // 4), dtype=torch.uint8)
    s = torch.rand(n, k // group) + 0.01
    z = torch.rand(n, k // group) * 15
    x = _activations(m, k, dtype)
    got = OPS.sparse24_int4_linear(x, values, meta, s, z, group, None)
    want = sparse24_int4_linear_ref(x, values, meta, s, z, group)
    w = sparse24_int4_unpack(values, meta, s, z, group)
    _check_close(got, want, _bound(x, w, dtype))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,group", [((3, 100), 100), ((17, 96), 32), ((5, 60), 6)])
def test_fake_quantize_forward_backward(isa, dtype, shape, group):
    x = (torch.randn(shape) * 3).to(dtype)
    groups = (*shape[:-1], shape[-1] // group)
    scale = torch.rand(groups) * 0.2 + 0.05
    zero = torch.rand(groups) * 15
    got = OPS.fake_quantize(x, scale, zero, 0, 15, group)
    # Forward: same division, rounding and clamp as the reference, so bit-identical.
    torch.testing.assert_close(got, fake_quantize_ref(x, scale, zero, 0, 15, group), rtol=0, atol=0)
    grad = torch.randn(shape).to(dtype)
    gx, gs, gz = OPS.fake_quantize_backward(grad, x, scale, zero, 0, 15, group)
    rx, rs, rz = fake_quantize_backward_ref(grad, x, scale, zero, 0, 15, group)
    torch.testing.assert_close(gx, rx, rtol=0, atol=0)
    # Per-group sums in another order: bound by group * eps * sum of |terms|.
    mag = grad.float().abs().reshape(*groups, group).sum(-1) * 16
    tol = group * torch.finfo(torch.float32).eps * mag
    assert ((gs - rs).abs() <= tol * (1 + scale.max())).all()
    assert ((gz - rz).abs() <= tol * (1 + scale.max())).all()


def test_env_var_forces_path_and_rejects_unknown():
    out = _op_in_subprocess("_cpu_isa()", "SQUEEZEPROMPT_CPU_ISA", "scalar")
    assert out.stdout.strip() == "scalar", out.stderr
    out = _op_in_subprocess("_cpu_isa()", "SQUEEZEPROMPT_CPU_ISA", "sse9")
    assert out.returncode != 0
    assert "must be one of scalar, avx2, avx512, got 'sse9'" in out.stderr


@pytest.mark.skipif("avx512" in AVAILABLE, reason="this CPU has AVX-512")
def test_unavailable_isa_raises():
    with pytest.raises(RuntimeError, match="does not support it"):
        OPS._set_cpu_isa("avx512")
