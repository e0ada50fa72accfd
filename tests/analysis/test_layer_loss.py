"""Per-layer loss on small models whose answer is known."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_llama import random_llama
from torch import nn

from squeezeprompt.analysis import effective_weight, layer_losses
from squeezeprompt.nn import (
    FakeQuantLinear,
    Int4WeightOnlyLinear,
    Int8DynamicLinear,
    Int8WeightOnlyLinear,
    MaskedLinear,
    Sparse24Int4Linear,
    Sparse24Linear,
)
from squeezeprompt.pipeline.targets import set_module
from squeezeprompt.recover.lora import LoRAConfig, LoRALinear

VOCAB = 97


def _ids(batches: int = 2, seq: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.randint(0, VOCAB, (1, seq), generator=g) for _ in range(batches)]


def _swap_all(model: nn.Module, make) -> nn.Module:  # noqa: ANN001
    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        if isinstance(m, nn.Linear) and name != "lm_head":
            set_module(out, name, make(m))
    return out


def _all_hooks(*models: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks)
        for model in models
        for m in model.modules()
    )


def test_identical_model_has_no_loss() -> None:
    dense = random_llama(VOCAB)
    rows = layer_losses(copy.deepcopy(dense), dense, _ids())
    assert len(rows) == 2 * 7 + 1  # 7 Linears per block and the head
    for r in rows:
        assert math.isinf(r.weight_sqnr_db) and math.isinf(r.output_sqnr_db)
        assert r.relative_error == 0.0 and r.share == 0.0


def test_only_the_quantized_layer_loses() -> None:
    dense = random_llama(VOCAB)
    compressed = copy.deepcopy(dense)
    target = "model.layers.1.mlp.down_proj"
    set_module(
        compressed, target, Int4WeightOnlyLinear.from_linear(dense.get_submodule(target), 32)
    )
    rows = {r.name: r for r in layer_losses(compressed, dense, _ids())}
    finite = [n for n, r in rows.items() if math.isfinite(r.weight_sqnr_db)]
    assert finite == [target]
    assert math.isfinite(rows[target].output_sqnr_db)
    assert rows[target].share == 1.0 and rows[target].block == 1
    assert rows[target].kind == "down_proj"
    assert rows[target].layer_type == "Int4WeightOnlyLinear"
    assert sum(r.share for r in rows.values()) == 1.0


def test_int8_beats_int4_on_every_layer() -> None:
    dense = random_llama(VOCAB)
    int8 = layer_losses(_swap_all(dense, Int8WeightOnlyLinear.from_linear), dense, _ids())
    int4 = layer_losses(
        _swap_all(dense, lambda m: Int4WeightOnlyLinear.from_linear(m, 32)), dense, _ids()
    )
    for a, b in zip(int8, int4, strict=True):
        if a.name == "lm_head":
            continue
        assert a.weight_sqnr_db > b.weight_sqnr_db + 10, a.name  # ~6 dB per bit
        assert a.output_sqnr_db > b.output_sqnr_db + 10, a.name


def test_sqnr_matches_a_hand_computation() -> None:
    torch.manual_seed(3)
    dense = nn.Sequential(nn.Linear(64, 32))
    compressed = nn.Sequential(Int8WeightOnlyLinear.from_linear(dense[0]))
    xs = [torch.randn(5, 64), torch.randn(3, 64)]
    (row,) = layer_losses(compressed, dense, xs)
    w = dense[0].weight.detach().double()
    # the layer's weight grid point, rounded to float32 as the layer holds it
    wq = (compressed[0].qweight.float() * compressed[0].scales[:, None]).double()
    expected_w = 10 * math.log10(float((w**2).sum() / ((w - wq) ** 2).sum()))
    x = torch.cat(xs).double()
    bias = dense[0].bias.detach().double()
    y, yq = x @ w.T + bias, x @ wq.T + bias
    rel = float(((yq - y) ** 2).sum() / (y**2).sum())
    assert row.weight_sqnr_db == pytest.approx(expected_w, abs=1e-9)
    assert row.relative_error == pytest.approx(rel, rel=1e-3)
    assert row.output_sqnr_db == pytest.approx(-10 * math.log10(rel), abs=5e-3)


def test_shares_follow_relative_output_error() -> None:
    # Scaling a bias-free weight by (1 + a) makes Y_c - Y_d = a Y_d: relative error a².
    dense = nn.Sequential(nn.Linear(16, 16, bias=False), nn.Linear(16, 8, bias=False))
    compressed = copy.deepcopy(dense)
    with torch.no_grad():
        compressed[0].weight.mul_(1.1)
        compressed[1].weight.mul_(1.2)
    rows = layer_losses(compressed, dense, [torch.randn(10, 16)])
    assert [r.relative_error for r in rows] == pytest.approx([0.01, 0.04], rel=1e-5)
    assert [r.share for r in rows] == pytest.approx([0.2, 0.8], rel=1e-5)
    assert rows[0].weight_sqnr_db == pytest.approx(20.0, abs=1e-4)  # 1 / 0.1²


def test_activation_quantization_shows_in_output_only() -> None:
    torch.manual_seed(4)
    dense = nn.Sequential(nn.Linear(64, 32))
    w8 = layer_losses(
        nn.Sequential(Int8WeightOnlyLinear.from_linear(dense[0])), dense, [torch.randn(8, 64)]
    )[0]
    w8a8 = layer_losses(
        nn.Sequential(Int8DynamicLinear.from_linear(dense[0])), dense, [torch.randn(8, 64)]
    )[0]
    assert w8a8.weight_sqnr_db == w8.weight_sqnr_db  # the same int8 weight grid
    assert w8a8.output_sqnr_db < w8.output_sqnr_db


def _drop_ins(lin: nn.Linear) -> list[nn.Module]:
    lora = LoRALinear(Int4WeightOnlyLinear.from_linear(lin, 32), LoRAConfig(rank=2))
    with torch.no_grad():
        lora.lora_b.normal_()
    return [
        Int8WeightOnlyLinear.from_linear(lin),
        Int4WeightOnlyLinear.from_linear(lin, 32),
        MaskedLinear.from_linear(lin, torch.rand(lin.weight.shape) > 0.5),
        Sparse24Linear.from_linear(lin),
        Sparse24Int4Linear.from_linear(lin, group_size=32),
        FakeQuantLinear.from_linear(lin, bits=4, group_size=32),
        lora,
    ]


@pytest.mark.parametrize("index", range(7))
def test_effective_weight_is_what_the_layer_computes(index: int) -> None:
    lin = nn.Linear(64, 16)
    layer = _drop_ins(lin)[index]
    x = torch.randn(4, 64)
    with torch.no_grad():
        expected = layer(x).double()
        got = F.linear(x.double(), effective_weight(layer).double(), lin.bias.double())
    noise = float(((got - expected) ** 2).sum())
    assert noise <= 1e-10 * float((expected**2).sum()), type(layer).__name__


def test_keyword_batches_and_modes_restored() -> None:
    dense = random_llama(VOCAB).train()
    compressed = _swap_all(dense, Int8WeightOnlyLinear.from_linear).train()
    ids = _ids(1)[0]
    rows = layer_losses(
        compressed, dense, [{"input_ids": ids, "attention_mask": torch.ones_like(ids)}]
    )
    assert all(math.isfinite(r.output_sqnr_db) for r in rows if r.name != "lm_head")
    assert dense.training and compressed.training
    assert _all_hooks(dense, compressed) == 0


def test_hooks_removed_even_when_a_batch_fails() -> None:
    dense = random_llama(VOCAB)
    compressed = _swap_all(dense, Int8WeightOnlyLinear.from_linear)
    with pytest.raises(IndexError):
        layer_losses(compressed, dense, [_ids(1)[0], torch.full((1, 4), VOCAB + 5)])
    assert _all_hooks(dense, compressed) == 0


def test_a_different_architecture_is_refused() -> None:
    dense = nn.Sequential(nn.Linear(8, 4))
    with pytest.raises(ValueError, match=r"\[3, 8\] in the compressed"):
        layer_losses(nn.Sequential(nn.Linear(8, 3)), dense, [torch.randn(2, 8)])
    with pytest.raises(ValueError, match="has no module '1'"):
        layer_losses(nn.Sequential(nn.Linear(8, 4)), nn.Sequential(nn.ReLU(), nn.Linear(8, 4)), [])
