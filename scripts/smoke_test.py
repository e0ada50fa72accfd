"""Runs every op once against its reference: a check that an installed wheel works.

Run it from outside the source tree so that the installed package is imported:
``python scripts/smoke_test.py``.
"""

from __future__ import annotations

import sys

import torch

import squeezeprompt
from squeezeprompt import ops
from squeezeprompt.formats import sparse24_int4_pack
from squeezeprompt.quantize import quantize_int4, quantize_int8


def _cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    x = torch.randn(3, 64)
    w = torch.randn(24, 64)
    b = torch.randn(24)
    q8, q4 = quantize_int8(w), quantize_int4(w, group_size=32)
    mask = torch.rand(24, 64) > 0.5
    w24 = w * torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(16)
    values, meta = ops.sparse24_pack(w24)
    q24 = quantize_int4(w24, group_size=32)
    p24 = sparse24_int4_pack(q24.qweight, q24.scales, q24.zeros, 32)
    p24_args = (p24.values, p24.meta, p24.scales, p24.zeros, 32, b)
    scale, zero = torch.rand(3, 2) + 0.05, torch.full((3, 2), 8.0)
    grad = torch.randn_like(x)
    fqb = torch.ops.squeezeprompt.fake_quantize_backward(grad, x, scale, zero, 0, 15, 32)
    fqb_ref = ops.fake_quantize_backward_ref(grad, x, scale, zero, 0, 15, 32)
    return {
        "int8_weight_linear": (
            ops.int8_weight_linear(x, q8.qweight, q8.scales, b),
            ops.int8_weight_linear_ref(x, q8.qweight, q8.scales, b),
        ),
        "int4_weight_linear": (
            ops.int4_weight_linear(x, q4.qweight, q4.scales, q4.zeros, 32, b),
            ops.int4_weight_linear_ref(x, q4.qweight, q4.scales, q4.zeros, 32, b),
        ),
        "int4_dynamic_linear": (
            ops.int4_dynamic_linear(x, q4.qweight, q4.scales, q4.zeros, 32, b),
            ops.int4_dynamic_linear_ref(x, q4.qweight, q4.scales, q4.zeros, 32, b),
        ),
        "int8_dynamic_linear": (
            ops.int8_dynamic_linear(x, q8.qweight, q8.scales, b),
            ops.int8_dynamic_linear_ref(x, q8.qweight, q8.scales, b),
        ),
        "fake_quantize": (
            ops.fake_quantize(x, scale, zero, 0, 15, 32),
            ops.fake_quantize_ref(x, scale, zero, 0, 15, 32),
        ),
        "fake_quantize_backward": (
            torch.cat([t.flatten() for t in fqb]),
            torch.cat([t.flatten() for t in fqb_ref]),
        ),
        "masked_linear": (
            ops.masked_linear(x, w, mask, b),
            ops.masked_linear_ref(x, w, mask, b),
        ),
        "sparse24_pack": (
            torch.cat([values.flatten(), meta.float().flatten()]),
            torch.cat([t.float().flatten() for t in ops.sparse24_pack_ref(w24)]),
        ),
        "sparse24_linear": (
            ops.sparse24_linear(x, values, meta, None, b),
            ops.sparse24_linear_ref(x, values, meta, None, b),
        ),
        "sparse24_int4_linear": (
            ops.sparse24_int4_linear(x, *p24_args),
            ops.sparse24_int4_linear_ref(x, *p24_args),
        ),
    }


def main() -> int:
    print(f"squeezeprompt {squeezeprompt.__version__} from {squeezeprompt.__file__}")
    passed = failed = 0
    for name, (got, want) in _cases().items():
        # fp32 results that differ only in accumulation order: 1e-4 relative is ~100x
        # the worst such difference at K=64.
        ok = torch.allclose(got, want, rtol=1e-4, atol=1e-4)
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        passed += ok
        failed += not ok
    missing = [n for n in ops.OP_NAMES if not hasattr(torch.ops.squeezeprompt, n)]
    if missing:
        print(f"FAIL missing ops: {missing}")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
