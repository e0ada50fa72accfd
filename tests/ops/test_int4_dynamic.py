"""int4_dynamic_linear (W4A8) against its exact value, on every CPU ISA this machine runs.

The kernels quantize each token exactly as the reference does, sum integer products per
group exactly, and differ from the float64 reference only by float rounding after that:
see ``w4a8.py`` for the bound, which grows with the number of groups, not with K. The
backward is straight-through: ``int4_weight_linear``'s gradient.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from squeezeprompt.formats import dequantize_int4, pack_int4
from squeezeprompt.ops import int4_dynamic_linear, int4_dynamic_linear_ref, int4_weight_linear_ref

from .samples import (
    DTYPE_IDS,
    DTYPES,
    F32_EPS,
    INT4_K,
    INT4_N,
    INT4_SHAPE_ERRORS,
    X_CASE_IDS,
    X_CASES,
    assert_fake_matches_real,
    assert_rejects,
    assert_within,
    int4_args,
    int4_weight,
    leaf,
    linear_bound,
    make_x,
    maybe_bias,
)
from .w4a8 import assert_w4a8_close, w4a8_expected

OPS = torch.ops.squeezeprompt
OP = "int4_dynamic_linear"
ISAS = tuple(OPS._cpu_isas_available())

# (K, group): whole 64-column chunks (64, 128, 256), odd multiples of 32 (a chunk split
# between two groups; K ending in half a chunk), and sizes the SIMD layout cannot take.
GRIDS = ((576, 64), (256, 128), (512, 256), (96, 32), (160, 32), (192, 96), (72, 24), (40, 8))
GRID_IDS = tuple(f"k{k}_g{g}" for k, g in GRIDS)


@pytest.fixture(params=ISAS)
def isa(request):
    previous = OPS._set_cpu_isa(request.param)
    yield request.param
    OPS._set_cpu_isa(previous)


@pytest.mark.parametrize("grid", GRIDS, ids=GRID_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_matches_exact_value_on_every_isa(isa, case, grid):
    k, g = grid
    w = int4_weight(n=37, k=k, group_size=g)
    dtype = DTYPES[X_CASES.index(case) % 3]
    x = make_x(case, k, dtype)
    bias = maybe_bias(X_CASES.index(case) % 2 == 0, 37, dtype)
    got = int4_dynamic_linear(x, w.qweight, w.scales, w.zeros, g, bias)
    assert got.dtype == dtype and got.shape == (*case.lead, 37)
    exp = w4a8_expected(x, w.qweight, w.scales, w.zeros, g, bias)
    assert_w4a8_close(got, exp, f"{isa} {case.name} k{k} g{g}")


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_reference_meets_its_own_bound(dtype, with_bias):
    # The reference rounds once (float64 -> float32 -> dtype): far inside the bound.
    w = int4_weight(group_size=24)
    x = torch.randn(9, INT4_K).to(dtype)
    bias = maybe_bias(with_bias, INT4_N, dtype)
    ref = int4_dynamic_linear_ref(x, w.qweight, w.scales, w.zeros, 24, bias)
    assert_w4a8_close(ref, w4a8_expected(x, w.qweight, w.scales, w.zeros, 24, bias), "ref")


def test_reads_the_documented_nibble_order_and_zero_points():
    # Column 2j is byte j's low nibble: codes 1..8 in columns 0..7, zero 0.5, scale 0.25.
    codes = torch.arange(1, 65, dtype=torch.uint8).remainder(16).reshape(1, 64)
    q = pack_int4(codes)
    x = torch.zeros(1, 64)
    x[0, 2] = 127.0  # x_scale 1, code 127 on column 2 only
    y = int4_dynamic_linear(x, q, torch.full((1, 1), 0.25), torch.full((1, 1), 0.5), 64)
    assert y.item() == 127 * (3 - 0.5) * 0.25


def test_per_token_rounding_is_what_the_weight_only_op_does_not_do():
    # Half an activation step per column, times sum |w|, bounds the difference to the
    # float weight-only product; a kernel that skipped the rounding would be exact.
    w = int4_weight(n=16, k=256, group_size=64)
    x = torch.randn(5, 256)
    got = int4_dynamic_linear(x, w.qweight, w.scales, w.zeros, 64).double()
    dense = dequantize_int4(w.qweight, w.scales, w.zeros, 64).double()
    exact = x.double() @ dense.T
    step = x.abs().amax(1, keepdim=True).double() / 127
    bound = 0.5 * step * dense.abs().sum(1) + 64 * F32_EPS * (x.double().abs() @ dense.abs().T)
    err = (got - exact).abs()
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3e}"
    assert bool((err > 0).any()), "no rounding at all: the activations were not quantized"


def test_non_finite_rows_give_nan_rows_and_leave_the_others_alone(isa):
    w = int4_weight(n=21, k=192, group_size=64)
    x = torch.randn(9, 192)
    x[1, 5] = float("nan")
    x[4, 100] = float("inf")
    x[7, 191] = float("-inf")
    x[2] = 0.0  # all-zero row: scale 1, output exactly the bias
    bias = torch.randn(21)
    y = int4_dynamic_linear(x, w.qweight, w.scales, w.zeros, 64, bias)
    bad = torch.tensor([1, 4, 7])
    assert bool(y[bad].isnan().all())
    good = torch.tensor([0, 2, 3, 5, 6, 8])
    alone = int4_dynamic_linear(x[good], w.qweight, w.scales, w.zeros, 64, bias)
    assert torch.equal(y[good], alone), "finite rows depend on the other rows"
    assert torch.equal(y[2], bias)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_grads_are_straight_through(case, dtype):
    w = int4_weight(group_size=24)
    args = (w.qweight, w.scales, w.zeros, 24)
    x = make_x(case, INT4_K, dtype)
    bias = maybe_bias(True, INT4_N, dtype)
    xa, ba, xb, bb = leaf(x), leaf(bias), leaf(x), leaf(bias)
    out = int4_dynamic_linear(xa, *args, ba)
    g = torch.randn(out.shape).to(dtype)
    gx, gb = torch.autograd.grad(out, [xa, ba], g)
    wx, wb = torch.autograd.grad(int4_weight_linear_ref(xb, *args, bb), [xb, bb], g)
    dense = dequantize_int4(*args)
    assert_within(gx, wx, linear_bound(g, dense.T, None, wx, F32_EPS), "grad_x")
    rows = g.reshape(-1, INT4_N).double()
    bound_b = (rows.shape[0] + 1) * F32_EPS * rows.abs().sum(0)
    if dtype != torch.float32:
        bound_b = bound_b + torch.finfo(dtype).eps * wb.double().abs()
    assert_within(gb, wb, bound_b, "grad_bias")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_opcheck(dtype):
    w = int4_weight(n=24, k=128, group_size=64)
    for lead, with_bias in (((3,), True), ((2, 9), False), ((20,), True)):
        x = torch.randn(*lead, 128).to(dtype).requires_grad_(True)
        bias = maybe_bias(with_bias, 24, dtype)
        bias = None if bias is None else bias.requires_grad_(True)
        torch.library.opcheck(OPS.int4_dynamic_linear, (x, w.qweight, w.scales, w.zeros, 64, bias))


def test_compile_fullgraph_forward_and_backward():
    w = int4_weight(n=24, k=128, group_size=32)
    args = (w.qweight, w.scales, w.zeros, 32)

    @torch.compile(fullgraph=True)
    def f(x, bias):
        return int4_dynamic_linear(x, *args, bias)

    x = torch.randn(4, 6, 128, requires_grad=True)
    bias = torch.randn(24, requires_grad=True)
    y = f(x, bias)
    assert torch.equal(y, int4_dynamic_linear(x, *args, bias)), "compiled != eager"
    y.sum().backward()
    dense = dequantize_int4(*args)
    want = dense.sum(0).expand(4, 6, -1)
    ones = torch.ones(4, 6, 24)
    assert_within(x.grad, want, linear_bound(ones, dense.T, None, want, F32_EPS), "grad_x")
    assert torch.equal(bias.grad, torch.full((24,), 24.0))


@pytest.mark.parametrize("case", X_CASES, ids=X_CASE_IDS)
def test_fake_kernel_matches_real_metadata(case):
    dtype = DTYPES[X_CASES.index(case) % 3]
    w = int4_weight(group_size=24)
    x = make_x(case, INT4_K, dtype)
    args = (x, w.qweight, w.scales, w.zeros, 24, maybe_bias(True, INT4_N, dtype))
    assert_fake_matches_real(OPS.int4_dynamic_linear, args)


def test_env_var_forces_each_path():
    # The environment variable (read once, at first use) rather than the test-only op.
    code = (
        "import torch, squeezeprompt\n"
        "from squeezeprompt.formats import pack_int4\n"
        "torch.manual_seed(0)\n"
        "q = pack_int4(torch.randint(0, 16, (8, 96), dtype=torch.uint8))\n"
        "y = torch.ops.squeezeprompt.int4_dynamic_linear(torch.randn(3, 96), q,"
        " torch.rand(8, 3) + 0.1, torch.rand(8, 3) * 15, 32, None)\n"
        "print(torch.ops.squeezeprompt._cpu_isa(), y.double().sum().item())\n"
    )
    sums = {}
    for name in ISAS:
        env = {"SQUEEZEPROMPT_CPU_ISA": name, "PATH": "", "OMP_NUM_THREADS": "1"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        got_isa, total = out.stdout.split()
        assert got_isa == name
        sums[name] = float(total)
    totals = list(sums.values())
    assert max(totals) - min(totals) <= 1e-3 * max(abs(t) for t in totals), sums


# ---- bad inputs --------------------------------------------------------------------------


@pytest.mark.parametrize("fake", [False, True], ids=["eager", "fake"])
@pytest.mark.parametrize("name", sorted(INT4_SHAPE_ERRORS))
def test_rejects_bad_shapes_and_dtypes(name, fake):
    override, arg = INT4_SHAPE_ERRORS[name]
    assert_rejects(OPS.int4_dynamic_linear, int4_args(**override), OP, arg, fake)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -0.5])
def test_rejects_bad_scale_values(value):
    scales = torch.ones(INT4_N, 3)
    scales[5, 2] = value
    assert_rejects(OPS.int4_dynamic_linear, int4_args(scales=scales), OP, "scales")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_rejects_non_finite_zeros(value):
    zeros = torch.full((INT4_N, 3), 8.0)
    zeros[1, 2] = value
    assert_rejects(OPS.int4_dynamic_linear, int4_args(zeros=zeros), OP, "zeros")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_the_reference():
    w = int4_weight(group_size=24)
    x = torch.randn(5, INT4_K)
    args = [t.cuda() for t in (x, w.qweight, w.scales, w.zeros)]
    got = int4_dynamic_linear(*args, 24)
    want = int4_dynamic_linear_ref(x, w.qweight, w.scales, w.zeros, 24)
    assert_w4a8_close(got.cpu(), w4a8_expected(x, w.qweight, w.scales, w.zeros, 24, None), "cuda")
    torch.testing.assert_close(got.cpu(), want, rtol=1e-6, atol=1e-6)
