"""Triton kernels compiled for a real GPU (not the interpreter), against the references,
with the full opcheck and torch.compile that the interpreter cannot run.

Needs ``TRITON_INTERPRET=0`` (scripts/gpu_check.sh sets it for this directory).
Bounds as in tests/cuda/test_cuda_ops.py.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from squeezeprompt.ops import fake_quantize_ref, int4_weight_linear_ref, int8_weight_linear_ref
from squeezeprompt.quantize import quantize_int4, quantize_int8

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
        reason="compiled Triton on a GPU needs TRITON_INTERPRET=0",
    ),
]
triton = pytest.importorskip("triton")

OPS = torch.ops.squeezeprompt
DEV = "cuda"
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MIN_SQNR_DB = {torch.float16: 55.0, torch.bfloat16: 40.0}


def sqnr_db(actual, reference):
    ref = reference.double()
    noise = (actual.double() - ref).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


def check_linear(y, ref, x, w):
    assert y.dtype == ref.dtype and y.shape == ref.shape
    if y.dtype == torch.float32:
        bound = x.shape[-1] * torch.finfo(torch.float32).eps * (x.abs() @ w.abs().T)
        assert bool(((y - ref).abs() <= bound + 1e-30).all())
    else:
        assert sqnr_db(y, ref) >= MIN_SQNR_DB[y.dtype]


# Importing registers the *_triton ops (also when squeezeprompt.ops does not).
import squeezeprompt.ops.triton  # noqa: E402, F401


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("m", [1, 7, 33, 130])
def test_int4_and_int8(dtype, m):
    qw = quantize_int4(torch.randn(96, 256, device=DEV), group_size=128)
    x = torch.randn(m, 256, device=DEV).to(dtype)
    y = OPS.int4_weight_linear_triton(x, qw.qweight, qw.scales, qw.zeros, 128, None)
    ref = int4_weight_linear_ref(x, qw.qweight, qw.scales, qw.zeros, 128)
    check_linear(y, ref, x.float(), qw.dequantize())
    q8 = quantize_int8(torch.randn(96, 256, device=DEV))
    y = OPS.int8_weight_linear_triton(x, q8.qweight, q8.scales, None)
    check_linear(y, int8_weight_linear_ref(x, q8.qweight, q8.scales), x.float(), q8.dequantize())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fake_quantize_exact(dtype):
    x = torch.randn(33, 96, device=DEV).to(dtype)
    scale = torch.rand(33, 3, device=DEV) * 0.2 + 0.01
    zero = torch.full((33, 3), 7.5, device=DEV)
    y = OPS.fake_quantize_triton(x, scale, zero, 0, 15, 32)
    assert torch.equal(y, fake_quantize_ref(x, scale, zero, 0, 15, 32))


def test_opcheck_and_compile():
    qw = quantize_int4(torch.randn(32, 64, device=DEV), group_size=32)
    args = (torch.randn(20, 64, device=DEV, dtype=torch.bfloat16), qw.qweight, qw.scales,
            qw.zeros, 32, None)  # fmt: skip
    torch.library.opcheck(OPS.int4_weight_linear_triton, args)
    fq = (torch.randn(4, 64, device=DEV), torch.full((4, 2), 0.1, device=DEV),
          torch.zeros(4, 2, device=DEV), -8, 7, 32)  # fmt: skip
    torch.library.opcheck(OPS.fake_quantize_triton, fq)
    compiled = torch.compile(lambda x: OPS.int4_weight_linear_triton(x, *args[1:]), fullgraph=True)
    torch.testing.assert_close(compiled(args[0]), OPS.int4_weight_linear_triton(*args))


def test_backend_env_routes_main_ops_to_triton():
    # The choice is read once at load time, so it needs a fresh process.
    code = (
        "import torch, squeezeprompt, squeezeprompt.ops.triton as t\n"
        "from squeezeprompt.quantize import quantize_int4\n"
        "assert t.BACKEND is t.GpuBackend.TRITON\n"
        "q = quantize_int4(torch.randn(64, 128, device='cuda'), group_size=64)\n"
        "x = torch.randn(5, 128, device='cuda', dtype=torch.float16)\n"
        "args = (x, q.qweight, q.scales, q.zeros, 64, None)\n"
        "ops = torch.ops.squeezeprompt\n"
        "assert torch.equal(ops.int4_weight_linear(*args), ops.int4_weight_linear_triton(*args))\n"
    )
    env = {**os.environ, "SQUEEZEPROMPT_GPU_BACKEND": "triton", "TRITON_INTERPRET": "0"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=600)
