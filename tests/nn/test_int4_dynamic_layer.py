"""Int4DynamicLinear (W4A8): the int4 weight of Int4WeightOnlyLinear, int8 activations per token.

Against ``F.linear`` on its dequantized weight the only extra error is the activation
rounding: each x moves by at most half its row's step ``max|x_row| / 127``, so an output
moves by at most ``step / 2 * sum_k |w[n, k]|``, plus float rounding.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeezeprompt import checkpoint
from squeezeprompt.nn import (
    Int4Dynamic,
    Int4DynamicLinear,
    Int4WeightOnlyLinear,
    LinearFilter,
    config_from_dict,
    config_to_dict,
    quantize_,
)

F32_EPS = torch.finfo(torch.float32).eps


def _linear(k: int, n: int, bias: bool = True) -> nn.Linear:
    lin = nn.Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.normal_(0, 0.05)
    return lin


def _assert_within_rounding(y: torch.Tensor, x: torch.Tensor, layer: Int4DynamicLinear) -> None:
    w = layer.dequantize().double()
    b = None if layer.bias is None else layer.bias.double()
    x2 = x.double().reshape(-1, x.shape[-1])
    exact = F.linear(x2, w, b)
    step = x2.abs().amax(1, keepdim=True) / 127
    mag = x2.abs() @ w.abs().T
    bound = 0.5 * step * w.abs().sum(1) + (x.shape[-1] + 2) * F32_EPS * mag
    if x.dtype != torch.float32:
        info = torch.finfo(x.dtype)
        bound = bound + info.eps * exact.abs() + info.smallest_normal
    err = (y.double().reshape(exact.shape) - exact).abs()
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3e}"


@pytest.mark.parametrize("group", [64, 32, 96])
@pytest.mark.parametrize("symmetric", [False, True], ids=["asym", "sym"])
def test_same_weight_as_the_weight_only_layer(group, symmetric):
    lin = _linear(576, 48)
    layer = Int4DynamicLinear.from_linear(lin, group_size=group, symmetric=symmetric)
    ref = Int4WeightOnlyLinear.from_linear(lin, group_size=group, symmetric=symmetric)
    assert type(layer) is Int4DynamicLinear
    for name in ("qweight", "scales", "zeros", "bias"):
        assert torch.equal(getattr(layer, name), getattr(ref, name)), name
    assert (layer.group_size, layer.symmetric) == (group, symmetric)
    assert layer.nbytes() == ref.nbytes()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rows", [(1,), (7,), (2, 17)])
def test_matches_linear_on_its_dequantized_weight_within_the_activation_step(dtype, rows):
    layer = Int4DynamicLinear.from_linear(_linear(576, 40), group_size=64)
    x = torch.randn(*rows, 576).to(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == (*rows, 40)
    _assert_within_rounding(y, x, layer)


def test_lm_head_shape():
    # SmolLM2's lm_head: 49152 x 576, no bias, at decode.
    layer = Int4DynamicLinear.from_linear(_linear(576, 49152, bias=False), group_size=64)
    x = torch.randn(1, 576)
    _assert_within_rounding(layer(x), x, layer)


def test_extra_repr_and_bytes():
    layer = Int4DynamicLinear.from_linear(_linear(576, 64), group_size=64)
    text = layer.extra_repr()
    for part in ("bits=4", "group_size=64", "activations=int8 per token", "bytes="):
        assert part in text, text
    # 4-bit codes plus a float scale and zero per 64 weights: 5 bits per weight.
    assert "bits_per_weight=5.00" in text


def test_quantize_with_the_config_and_filter():
    model = nn.Sequential(_linear(576, 1536), nn.ReLU(), _linear(1536, 576), _linear(576, 100))
    quantize_(model, Int4Dynamic(group_size=64), filter=LinearFilter(exclude=("3",)))
    assert [type(m).__name__ for m in model] == [
        "Int4DynamicLinear",
        "ReLU",
        "Int4DynamicLinear",
        "Linear",
    ]
    assert model[0].config == Int4Dynamic(group_size=64)
    assert model(torch.randn(2, 576)).shape == (2, 100)


def test_config_validation_and_serialisation():
    cfg = Int4Dynamic(group_size=64, symmetric=True)
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_to_dict(cfg) == {"type": "Int4Dynamic", "group_size": 64, "symmetric": True}
    for bad in (0, -32, 33, 1.5, True):
        with pytest.raises(ValueError, match="group_size"):
            Int4Dynamic(group_size=bad)
    with pytest.raises(TypeError, match="symmetric"):
        Int4Dynamic(symmetric=1)


def test_group_that_does_not_divide_leaves_the_model_untouched():
    model = nn.Sequential(_linear(576, 32), _linear(32, 576))
    with pytest.raises(ValueError, match="Int4Dynamic"):
        quantize_(model, Int4Dynamic(group_size=64))  # 64 does not divide 32
    assert all(type(m) is nn.Linear for m in model)


def test_state_dict_and_checkpoint_round_trip(tmp_path: Path):
    def fresh() -> nn.Sequential:
        return nn.Sequential(nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 16, bias=False))

    model = fresh()
    quantize_(model, Int4Dynamic(group_size=32, symmetric=True))
    rebuilt = Int4DynamicLinear(**model[0].init_kwargs())
    rebuilt.load_state_dict(model[0].state_dict())
    assert torch.equal(rebuilt.dequantize(), model[0].dequantize())
    back = checkpoint.load(checkpoint.save(model, tmp_path / "ckpt"), model=fresh)
    assert type(back[0]) is Int4DynamicLinear and back[0].symmetric
    assert back[0].config == Int4Dynamic(group_size=32, symmetric=True)
    for name in ("qweight", "scales", "zeros"):
        assert torch.equal(getattr(back[0], name), getattr(model[0], name)), name
    x = torch.randn(3, 576)
    assert torch.equal(back(x), model(x))
