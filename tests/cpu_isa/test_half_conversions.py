"""The ops' own bf16/fp16 conversions (csrc/cpu/convert.h) round exactly as torch's casts.

Built so that the float32 result is known exactly: with zero activations the output is
the bias, so its 16-bit rounding is the op's; with a one-hot weight of scale 1 each
output is one activation, so it must come back bit for bit. Every ISA path is forced.
"""

from __future__ import annotations

import pytest
import torch

import squeezeprompt  # noqa: F401  (loads the extension)

OPS = torch.ops.squeezeprompt
AVAILABLE = tuple(OPS._cpu_isas_available())
ISAS = [
    pytest.param(n, marks=pytest.mark.skipif(n not in AVAILABLE, reason=f"no {n} on this CPU"))
    for n in ("scalar", "avx2", "avx512")
]
HALVES = (torch.bfloat16, torch.float16)
# Ties at both formats' precision, subnormals of each, overflow, and the non-finite values.
TRICKY = [
    1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, -(1.0 + 2.0**-8),
    2.0**-130, 2.0**-24, 3 * 2.0**-25, 6.0e-8, 65504.0, 65520.0, 1.0e5, 3.0e38,
    float("inf"), float("-inf"), float("nan"), 0.0, -0.0, 0.1, 1.0 / 3.0,
]  # fmt: skip


@pytest.fixture
def isa(request):
    previous = OPS._set_cpu_isa(request.param)
    yield request.param
    OPS._set_cpu_isa(previous)


def _same_bits(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype
    nan = want.isnan()
    assert torch.equal(got.isnan(), nan)
    # Equal as numbers: a zero's sign is the sum's (0 + -0 is +0), not the conversion's.
    assert torch.equal(got.float()[~nan], want.float()[~nan]), (got, want)


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("m", [1, 3])
def test_output_rounding_matches_torch(isa: str, dtype: torch.dtype, m: int) -> None:
    bias = torch.tensor(TRICKY, dtype=torch.float32)
    n, k = bias.numel(), 64
    x = torch.zeros(m, k, dtype=dtype)
    qweight = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    out = OPS.int8_weight_linear(x, qweight, torch.ones(n), bias)
    _same_bits(out, bias.to(dtype).expand(m, n))


@pytest.mark.parametrize("isa", ISAS, indirect=True)
@pytest.mark.parametrize("dtype", HALVES)
def test_activations_come_back_bit_for_bit(isa: str, dtype: torch.dtype) -> None:
    # Every 16-bit pattern that is a finite number, as activations of one row each.
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    values = bits.view(dtype)
    values = values[values.isfinite()].reshape(-1, 1)
    k = 8
    x = torch.cat([values, torch.zeros(values.shape[0], k - 1, dtype=dtype)], dim=1)
    qweight = torch.zeros(1, k, dtype=torch.int8)
    qweight[0, 0] = 1
    out = OPS.int8_weight_linear(x, qweight, torch.ones(1), None)
    _same_bits(out, values)
