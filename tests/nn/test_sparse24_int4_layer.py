"""Sparse24Int4Linear: the packed 2:4 + int4 layer against nn.Linear and the dense int4 layer.

It must compute exactly the weight the dense int4 layer computed on the same 2:4-pruned
weight (the packing drops only exact zeros), store fewer bytes, and survive a checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeezeprompt import checkpoint
from squeezeprompt.formats import Int4Weight
from squeezeprompt.nn import (
    Int4WeightOnlyLinear,
    SemiStructured24,
    Sparse24Int4Linear,
    SparseValues,
    is_24_mask,
    magnitude_mask_24,
    sparsify_,
)
from squeezeprompt.quantize.rtn import quantize_int4

K, N = 192, 40  # K a multiple of 64 and of 4, not a power of two


def _linear(bias: bool = True) -> nn.Linear:
    torch.manual_seed(0)
    lin = nn.Linear(K, N, bias=bias)
    with torch.no_grad():
        lin.weight.normal_(0, 0.05)
    return lin


@pytest.mark.parametrize("group", [32, 64, 48])
@pytest.mark.parametrize("symmetric", [False, True], ids=["asym", "sym"])
def test_same_weight_as_the_dense_int4_layer_on_the_pruned_weight(group, symmetric):
    lin = _linear()
    mask = magnitude_mask_24(lin.weight)
    layer = Sparse24Int4Linear.from_linear(lin, group, symmetric, mask=mask)
    pruned = nn.Linear(K, N)
    with torch.no_grad():
        pruned.weight.copy_(lin.weight * mask)
        pruned.bias.copy_(lin.bias)
    dense = Int4WeightOnlyLinear.from_linear(pruned, group, symmetric)
    assert torch.equal(layer.dequantize(), dense.dequantize())
    assert is_24_mask(layer.dequantize() != 0) and not bool(layer.dequantize()[~mask].any())
    assert (layer.group_size, layer.symmetric) == (group, symmetric)
    x = torch.randn(5, K)
    torch.testing.assert_close(layer(x), dense(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("rows", [(1,), (7,), (2, 17)])
def test_matches_linear_on_its_dequantized_weight(dtype, rows):
    layer = Sparse24Int4Linear.from_linear(_linear(), group_size=64)
    x = torch.randn(*rows, K).to(dtype)
    got = layer(x)
    want = F.linear(x.float(), layer.dequantize(), layer.bias).to(dtype)
    assert got.dtype == dtype and got.shape == (*rows, N)
    # fp32: summation order only; 16-bit outputs: one rounding of the result.
    tol = 1e-5 if dtype == torch.float32 else torch.finfo(dtype).eps
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def test_from_int4_takes_the_pattern_from_the_mask_or_the_zeros():
    w = _linear().weight.detach()
    mask = magnitude_mask_24(w)
    q = quantize_int4(w * mask, group_size=32)
    by_zeros = Sparse24Int4Linear.from_int4(q)
    by_mask = Sparse24Int4Linear.from_int4(q, mask=mask)
    assert torch.equal(by_zeros.dequantize(), q.dequantize())
    assert torch.equal(by_mask.dequantize(), q.dequantize())
    assert by_zeros.bias is None
    dense_q = quantize_int4(w, group_size=32)
    with pytest.raises(ValueError, match="not 2:4"):
        Sparse24Int4Linear.from_int4(dense_q)
    # With a mask, a dense int4 weight is pruned by it: unkept entries become exact zeros.
    pruned = Sparse24Int4Linear.from_int4(dense_q, mask=mask)
    assert torch.equal(pruned.dequantize(), dense_q.dequantize() * mask)


def test_buffers_and_bytes_against_dense_int4():
    lin = _linear(bias=False)
    layer = Sparse24Int4Linear.from_linear(lin, group_size=64)
    dense = Int4WeightOnlyLinear.from_linear(lin, group_size=64)
    assert {n for n, _ in layer.named_buffers()} == {"values", "meta", "scales", "zeros"}
    assert layer.values.shape == (N, K // 4) and layer.meta.shape == (N, K // 8)
    grid = 2 * 4 * N * K // 64  # fp32 scale and zero per group
    assert layer.nbytes() == N * K // 4 + N * K // 8 + grid
    assert dense.nbytes() == N * K // 2 + grid
    assert "bytes=" + str(layer.nbytes()) in repr(layer)
    # codes 2 + metadata 1 + scale and zero 64 / 64 bits per weight; dense int4 g64: 5
    assert "sparsity=2:4" in repr(layer) and "bits_per_weight=4.00" in repr(layer)
    assert not hasattr(layer, "qweight")


def test_empty_layer_computes_zero_and_rejects_bad_shapes():
    layer = Sparse24Int4Linear(K, N, bias=False, group_size=64)
    assert not bool(layer.dequantize().any())
    with pytest.raises(ValueError, match="multiple of 4"):
        Sparse24Int4Linear(66, N, group_size=66)
    with pytest.raises(ValueError, match="group_size"):
        Sparse24Int4Linear(K, N, group_size=100)


def test_state_dict_and_checkpoint_round_trip(tmp_path: Path):
    model = nn.Sequential(nn.Linear(K, 64), nn.ReLU(), nn.Linear(64, 16, bias=False))
    sparsify_(model, SemiStructured24(values=SparseValues.INT4, group_size=32, symmetric=True))
    assert isinstance(model[0], Sparse24Int4Linear) and isinstance(model[2], Sparse24Int4Linear)
    rebuilt = Sparse24Int4Linear(**model[0].init_kwargs())
    rebuilt.load_state_dict(model[0].state_dict())
    assert torch.equal(rebuilt.dequantize(), model[0].dequantize())
    d = checkpoint.save(model, tmp_path / "ckpt")
    back = checkpoint.load(
        d, model=lambda: nn.Sequential(nn.Linear(K, 64), nn.ReLU(), nn.Linear(64, 16, bias=False))
    )
    assert type(back[0]) is Sparse24Int4Linear and back[0].symmetric
    for name in ("values", "meta", "scales", "zeros"):
        assert torch.equal(getattr(back[0], name), getattr(model[0], name)), name
    x = torch.randn(3, K)
    assert torch.equal(back(x), model(x))


def test_int4_weight_round_trip_through_the_layer():
    # An Int4Weight rebuilt from the layer's grid and dequantized weight gives the same layer.
    layer = Sparse24Int4Linear.from_linear(_linear(), group_size=32)
    w = layer.dequantize()
    q = quantize_int4(w, group_size=32)
    again = Sparse24Int4Linear.from_int4(
        Int4Weight(q.qweight, q.scales, q.zeros, 32), layer.bias, mask=w != 0
    )
    torch.testing.assert_close(again.dequantize(), w, rtol=0, atol=1e-6)
