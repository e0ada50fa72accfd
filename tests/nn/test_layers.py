"""Each drop-in layer vs nn.Linear on its own dequantized weight; state_dict round trips."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeezeprompt.nn import (
    LAYERS,
    FakeQuantLinear,
    Int4WeightOnlyLinear,
    Int8DynamicLinear,
    Int8WeightOnlyLinear,
    MaskedLinear,
    Sparse24Int4Linear,
    Sparse24Linear,
    is_24_mask,
    magnitude_mask_24,
)
from squeezeprompt.ops import int8_dynamic_linear_ref

K, N = 256, 48


def sqnr_db(reference: torch.Tensor, approx: torch.Tensor) -> float:
    ref = reference.detach().double()
    noise = (ref - approx.detach().double()).pow(2).sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(ref.pow(2).sum() / noise))


BUILDERS = {
    "int8": lambda lin: Int8WeightOnlyLinear.from_linear(lin),
    "int4_g64": lambda lin: Int4WeightOnlyLinear.from_linear(lin, group_size=64),
    "int4_g128_sym": lambda lin: Int4WeightOnlyLinear.from_linear(lin, 128, symmetric=True),
    "w8a8": lambda lin: Int8DynamicLinear.from_linear(lin),
    "masked": lambda lin: MaskedLinear.from_linear(lin, torch.rand(N, K) > 0.3),
    "sparse24": lambda lin: Sparse24Linear.from_linear(lin),
    "sparse24_int8": lambda lin: Sparse24Linear.from_linear(lin, int8_values=True),
    "sparse24_int4": lambda lin: Sparse24Int4Linear.from_linear(lin, group_size=64),
    "fake_quant4": lambda lin: FakeQuantLinear.from_linear(lin, bits=4, group_size=64),
    "fake_quant8": lambda lin: FakeQuantLinear.from_linear(lin, 8, None, symmetric=True),
}
# Output rounding bound per activation dtype: the layer's result is compared with an
# fp32 linear on the same (exactly representable) weight; fp32 differs only by
# summation order, fp16/bf16 by rounding weights/outputs to 11/8 mantissa bits.
MIN_SQNR_DB = {torch.float32: 80.0, torch.float16: 50.0, torch.bfloat16: 38.0}


def _linear(bias: bool = True) -> nn.Linear:
    lin = nn.Linear(K, N, bias=bias)
    with torch.no_grad():
        lin.weight.normal_(0, 0.05)
    return lin


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_matches_linear_on_dequantized_weight(kind: str, dtype: torch.dtype) -> None:
    lin = _linear()
    layer = BUILDERS[kind](lin)
    x = torch.randn(2, 5, K).to(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == (2, 5, N)
    if kind == "w8a8":
        # Activations are quantized too: the op's reference defines the exact result.
        ref = int8_dynamic_linear_ref(x.float(), layer.qweight, layer.w_scales, layer.bias)
    else:
        ref = F.linear(x.float(), layer.dequantize(), layer.bias.float())
    assert sqnr_db(ref, y.float()) > MIN_SQNR_DB[dtype]


@pytest.mark.parametrize(
    ("kind", "min_db"),
    [("int8", 38.0), ("int4_g64", 16.0), ("w8a8", 30.0), ("fake_quant8", 38.0)],
)
def test_quantization_error_against_float_linear(kind: str, min_db: float) -> None:
    # Gaussian weights: RTN int8 per channel gives ~40 dB, int4 g64 ~19 dB (6 dB per bit).
    lin = _linear()
    x = torch.randn(16, K)
    assert sqnr_db(lin(x), BUILDERS[kind](lin)(x)) > min_db


@pytest.mark.parametrize("kind", sorted(BUILDERS))
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_round_trip(kind: str, bias: bool) -> None:
    layer = BUILDERS[kind](_linear(bias))
    assert (layer.in_features, layer.out_features) == (K, N)
    assert (layer.bias is None) == (not bias)
    empty = LAYERS[type(layer).__name__](**layer.init_kwargs())
    empty.load_state_dict(layer.state_dict())
    x = torch.randn(3, K)
    assert torch.equal(empty(x), layer(x))


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_bias_stays_float_and_extra_repr_says_what(kind: str) -> None:
    lin = _linear()
    layer = BUILDERS[kind](lin)
    assert layer.bias.dtype == torch.float32 and torch.equal(layer.bias, lin.bias)
    text = repr(layer)
    assert f"in_features={K}" in text and f"out_features={N}" in text
    assert "bytes=" in text or "learnable_zero" in text


def test_gradient_reaches_input_and_bias() -> None:
    layer = Int4WeightOnlyLinear.from_linear(_linear(), group_size=64)
    x = torch.randn(3, K, requires_grad=True)
    layer(x).sum().backward()
    w = layer.dequantize()
    assert torch.allclose(x.grad, w.sum(0).expand(3, K), rtol=1e-4, atol=1e-5)
    assert torch.equal(layer.bias.grad, torch.full((N,), 3.0))


def test_bytes_per_layer() -> None:
    lin = _linear(bias=False)
    assert Int8WeightOnlyLinear.from_linear(lin).nbytes() == N * K + 4 * N
    # int4 g64: half a byte per weight + fp32 scale and zero per group
    assert Int4WeightOnlyLinear.from_linear(lin, 64).nbytes() == N * K // 2 + 2 * 4 * N * K // 64
    # 2:4 fp32: half the values + 1 metadata byte per 8 columns
    assert Sparse24Linear.from_linear(lin).nbytes() == 4 * N * K // 2 + N * K // 8


def test_sparse24_prunes_by_magnitude_unless_already_24() -> None:
    lin = _linear()
    layer = Sparse24Linear.from_linear(lin)
    w = lin.weight.detach()
    assert torch.equal(layer.dequantize(), w * magnitude_mask_24(w))
    # A weight that is already 2:4 keeps its own pattern, even where magnitude would differ.
    mask = torch.tensor([True, False, False, True]).repeat(N, K // 4)
    with torch.no_grad():
        lin.weight.mul_(mask)
    assert torch.equal(Sparse24Linear.from_linear(lin).dequantize() != 0, mask & (w != 0))


def test_sparse24_takes_a_precomputed_mask_and_refuses_a_bad_one() -> None:
    lin = _linear()
    mask = torch.tensor([False, True, True, False]).repeat(N, K // 4)
    assert torch.equal(Sparse24Linear.from_linear(lin, mask).dequantize() != 0, mask)
    with pytest.raises(ValueError, match="more than 2"):
        Sparse24Linear.from_linear(lin, torch.ones(N, K, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        Sparse24Linear.from_linear(lin, mask.float())


def test_sparse24_int4_keeps_the_pattern_exactly() -> None:
    layer = Sparse24Int4Linear.from_linear(_linear(), group_size=64)
    w = layer.dequantize()
    assert is_24_mask(w != 0)
    assert "sparsity=2:4" in repr(layer)


def test_masked_linear_gives_masked_weights_no_gradient() -> None:
    mask = torch.rand(N, K) > 0.5
    layer = MaskedLinear.from_linear(_linear(), mask)
    layer(torch.randn(4, K)).sum().backward()
    assert bool((layer.weight.grad[~mask] == 0).all())
    assert bool((layer.weight.grad[mask] != 0).any())


@pytest.mark.parametrize(("bits", "group", "sym"), [(4, 64, False), (4, 64, True), (8, None, True)])
def test_fake_quant_converts_to_the_same_function(bits: int, group: int | None, sym: bool) -> None:
    fq = FakeQuantLinear.from_linear(_linear(), bits=bits, group_size=group, symmetric=sym)
    x = torch.randn(4, K)
    fq(x).pow(2).sum().backward()
    assert fq.weight.grad is not None and fq.scale.grad is not None
    assert fq.scale.grad.abs().sum() > 0
    real = fq.to_quantized()
    assert torch.equal(real.dequantize(), fq.dequantize())
    assert sqnr_db(fq(x).detach(), real(x)) > MIN_SQNR_DB[torch.float32]


def test_fake_quant_starts_at_round_to_nearest() -> None:
    lin = _linear()
    fq = FakeQuantLinear.from_linear(lin, bits=4, group_size=64)
    rtn = Int4WeightOnlyLinear.from_linear(lin, group_size=64)
    assert torch.equal(fq.to_quantized().dequantize(), rtn.dequantize())


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Int4WeightOnlyLinear(100, 8, group_size=64), "group_size must divide"),
        (lambda: Sparse24Linear(6, 8), "multiple of 4"),
        (lambda: Int8WeightOnlyLinear(0, 8), "positive int"),
        (lambda: FakeQuantLinear(64, 8, bits=8, group_size=32, symmetric=True), "per channel"),
        (lambda: FakeQuantLinear(64, 8, bits=3), "bits must be"),
        (lambda: MaskedLinear.from_linear(nn.Linear(4, 2), torch.ones(2, 4)), "bool"),
    ],
)
def test_bad_layer_arguments_raise(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_compiled_layers_match_eager() -> None:
    torch._dynamo.reset()
    model = nn.Sequential(
        Int4WeightOnlyLinear.from_linear(_linear(), group_size=64),
        nn.ReLU(),
        Sparse24Linear.from_linear(nn.Linear(N, K), int8_values=True),
    )
    x = torch.randn(3, K)
    compiled = torch.compile(model, fullgraph=True)
    assert torch.allclose(compiled(x), model(x), rtol=1e-5, atol=1e-5)
