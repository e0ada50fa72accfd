"""CUDA kernels (csrc/cuda) against the *_ref references, on a GPU only.

Bounds: float32 activations stream in float32, so kernel and reference differ only in
summation order, at most ``K * eps * sum|x||w|`` (plus one output ulp). 16-bit
activations at M >= 16 use the tensor-core path, which rounds the dequantized weight
to the activation dtype: compared by SQNR (fp16 >= 55 dB, bf16 >= 40 dB; the
roundings alone give about 70 and 48 dB). W8A8 and fake_quantize repeat the
reference's float32 operations one for one, so they must match exactly.
"""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.formats import sparse24_unpack
from squeezeprompt.ops import (
    fake_quantize_backward_ref,
    fake_quantize_ref,
    int4_weight_linear_ref,
    int8_dynamic_linear_ref,
    int8_weight_linear_ref,
    masked_linear_ref,
    sparse24_linear_ref,
)
from squeezeprompt.quantize import quantize_int4, quantize_int8

pytestmark = pytest.mark.cuda

OPS = torch.ops.squeezeprompt
DEV = "cuda"
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MIN_SQNR_DB = {torch.float16: 55.0, torch.bfloat16: 40.0}
# M = 1 (GEMV), 5 and 16 (the tensor-core threshold), 33 and 130 (partial 64-row
# tiles), as 2-D and 3-D x.
LEADS = [(1,), (5,), (16,), (3, 11), (130,)]


def sqnr_db(actual, reference):
    ref = reference.double()
    noise = (actual.double() - ref).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


def check_linear(y, ref, x, w):
    assert y.dtype == ref.dtype and y.shape == ref.shape and y.device == ref.device
    if y.dtype == torch.float32:
        k = x.shape[-1]
        bound = k * torch.finfo(torch.float32).eps * (x.float().abs() @ w.float().abs().T)
        assert bool(((y - ref).abs() <= bound + 1e-30).all())
    else:
        assert sqnr_db(y, ref) >= MIN_SQNR_DB[y.dtype]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead", LEADS, ids=str)
@pytest.mark.parametrize("k,n,group", [(72, 40, 24), (256, 96, 128), (4096, 64, 128), (70, 33, 7)])
def test_int4_weight_linear(dtype, lead, k, n, group):
    qw = quantize_int4(torch.randn(n, k, device=DEV), group_size=group)
    x = torch.randn(*lead, k, device=DEV).to(dtype)
    bias = torch.randn(n, device=DEV)
    y = OPS.int4_weight_linear(x, qw.qweight, qw.scales, qw.zeros, group, bias)
    ref = int4_weight_linear_ref(x, qw.qweight, qw.scales, qw.zeros, group, bias)
    check_linear(y, ref, x, qw.dequantize())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead", LEADS, ids=str)
@pytest.mark.parametrize("k,n", [(100, 40), (64, 33), (37, 17)])
def test_int8_weight_linear(dtype, lead, k, n):
    qw = quantize_int8(torch.randn(n, k, device=DEV))
    x = torch.randn(*lead, k, device=DEV).to(dtype)
    y = OPS.int8_weight_linear(x, qw.qweight, qw.scales, None)
    check_linear(y, int8_weight_linear_ref(x, qw.qweight, qw.scales), x, qw.dequantize())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead", LEADS, ids=str)
@pytest.mark.parametrize("k,n", [(100, 40), (37, 17)])
def test_int8_dynamic_linear_is_exact(dtype, lead, k, n):
    qw = quantize_int8(torch.randn(n, k, device=DEV))
    x = torch.randn(*lead, k, device=DEV).to(dtype)
    x[..., 0, :] = 0  # an all-zero token takes scale 1
    bias = torch.randn(n, device=DEV)
    y = OPS.int8_dynamic_linear(x, qw.qweight, qw.scales, bias)
    assert torch.equal(y, int8_dynamic_linear_ref(x, qw.qweight, qw.scales, bias))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "shape,group,scale_shape", [((7, 24), 8, (7, 3)), ((3, 5, 12), 12, (5, 1)), ((2, 600), 300, ())]
)
def test_fake_quantize(dtype, shape, group, scale_shape):
    qmin, qmax = -8, 7
    x = (torch.randn(shape, device=DEV) * 2).to(dtype)
    scale = torch.rand(scale_shape, device=DEV) * 0.3 + 0.02
    zero = torch.rand(scale_shape, device=DEV) * 15 - 9.5
    y = OPS.fake_quantize(x, scale, zero, qmin, qmax, group)
    assert torch.equal(y, fake_quantize_ref(x, scale, zero, qmin, qmax, group))
    grad = torch.randn(shape, device=DEV).to(dtype)
    got = OPS.fake_quantize_backward(grad, x, scale, zero, qmin, qmax, group)
    want = fake_quantize_backward_ref(grad, x, scale, zero, qmin, qmax, group)
    assert torch.equal(got[0], want[0])
    eps = torch.finfo(torch.float32).eps
    abs_grad = grad.float().abs().reshape(*shape[:-1], shape[-1] // group, group).sum(-1)
    bounds = (abs_grad * (qmax - qmin), abs_grad * scale.expand(want[1].shape))
    for g, w, bound in zip(got[1:], want[1:], bounds, strict=True):
        assert bool(((g - w).abs() <= group * eps * bound).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead", LEADS, ids=str)
def test_masked_linear(dtype, lead):
    w = torch.randn(40, 100, device=DEV).to(dtype)
    mask = torch.rand(40, 100, device=DEV) > 0.5
    x = torch.randn(*lead, 100, device=DEV).to(dtype)
    bias = torch.randn(40, device=DEV).to(dtype)
    y = OPS.masked_linear(x, w, mask, bias)
    check_linear(y, masked_linear_ref(x, w, mask, bias), x, torch.where(mask, w, 0))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lead", LEADS, ids=str)
@pytest.mark.parametrize("values_dtype", [torch.float32, torch.bfloat16, torch.int8], ids=str)
@pytest.mark.parametrize("k", [72, 100])
def test_sparse24_linear(dtype, lead, values_dtype, k):
    # sparse24_pack has no CUDA kernel: pack on the CPU, run on the GPU.
    keep = torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(k // 4)
    dense = torch.randn(40, k) * keep
    scales = None
    if values_dtype == torch.int8:
        qw = quantize_int8(dense)
        values, meta = OPS.sparse24_pack(qw.qweight.float())
        values, scales = values.to(torch.int8), qw.scales.to(DEV)
    else:
        values, meta = OPS.sparse24_pack(dense.to(values_dtype))
    values, meta = values.to(DEV), meta.to(DEV)
    x = torch.randn(*lead, k, device=DEV).to(dtype)
    y = OPS.sparse24_linear(x, values, meta, scales, None)
    ref = sparse24_linear_ref(x, values, meta, scales)
    check_linear(y, ref, x, sparse24_unpack(values, meta, scales))


def test_input_on_another_device_is_named():
    qw = quantize_int8(torch.randn(8, 16))
    with pytest.raises(RuntimeError, match="qweight must be on the same device as x"):
        OPS.int8_weight_linear(torch.randn(2, 16, device=DEV), qw.qweight, qw.scales, None)


def test_opcheck_and_compile():
    qw = quantize_int4(torch.randn(32, 64, device=DEV), group_size=32)
    args = (torch.randn(20, 64, device=DEV, dtype=torch.bfloat16), qw.qweight, qw.scales,
            qw.zeros, 32, None)  # fmt: skip
    torch.library.opcheck(OPS.int4_weight_linear, args)
    q8 = quantize_int8(torch.randn(32, 64, device=DEV))
    torch.library.opcheck(OPS.int8_dynamic_linear, (args[0], q8.qweight, q8.scales, None))
    fq = (torch.randn(4, 64, device=DEV), torch.full((4, 2), 0.1, device=DEV),
          torch.zeros(4, 2, device=DEV), -8, 7, 32)  # fmt: skip
    torch.library.opcheck(OPS.fake_quantize, fq)
    compiled = torch.compile(lambda x: OPS.int4_weight_linear(x, *args[1:]), fullgraph=True)
    torch.testing.assert_close(compiled(args[0]), OPS.int4_weight_linear(*args))
