"""Single-layer KL: zero where nothing changed, larger for coarser quantization."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from tiny_llama import random_llama
from torch import nn

from squeezeprompt.analysis import LayerLoss, single_layer_kl, to_markdown, worst
from squeezeprompt.nn import Int4WeightOnlyLinear, Int8WeightOnlyLinear
from squeezeprompt.pipeline.targets import set_module

VOCAB = 97
TARGET = "model.layers.0.mlp.up_proj"


def _ids() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return [torch.randint(0, VOCAB, (1, 12), generator=g) for _ in range(2)]


def _with(dense: nn.Module, layer: nn.Module) -> nn.Module:
    out = copy.deepcopy(dense)
    set_module(out, TARGET, layer)
    return out


def test_identical_model_has_zero_kl() -> None:
    dense = random_llama(VOCAB)
    kl = single_layer_kl(copy.deepcopy(dense), dense, _ids())
    assert len(kl) == 15 and set(kl.values()) == {0.0}


def test_only_the_compressed_layer_moves_the_logits() -> None:
    dense = random_llama(VOCAB)
    lin = dense.get_submodule(TARGET)
    int8 = single_layer_kl(_with(dense, Int8WeightOnlyLinear.from_linear(lin)), dense, _ids())
    int4 = single_layer_kl(_with(dense, Int4WeightOnlyLinear.from_linear(lin, 32)), dense, _ids())
    assert [n for n, v in int4.items() if v != 0.0] == [TARGET]
    assert 0.0 < int8[TARGET] < int4[TARGET]
    assert sum(len(m._forward_hooks) for m in dense.modules()) == 0


def test_kl_matches_a_direct_computation() -> None:
    torch.manual_seed(5)
    dense = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 6))
    compressed = copy.deepcopy(dense)
    compressed[2] = Int4WeightOnlyLinear.from_linear(dense[2], group_size=32)
    x = torch.randn(10, 32)
    got = single_layer_kl(compressed, dense, [x[:4], x[4:]])
    with torch.no_grad():
        p = torch.log_softmax(dense(x).double(), -1)
        q = torch.log_softmax(compressed(x).double(), -1)
    expected = float((p.exp() * (p - q)).sum(-1).mean())
    assert got["2"] == pytest.approx(expected, rel=1e-6)
    assert got["0"] == 0.0


def test_kl_ranks_the_table_when_present() -> None:
    a = LayerLoss("a", 0, "a", "L", 10.0, 10.0, 0.1, 0.9)
    b = LayerLoss("b", 0, "b", "L", 30.0, 30.0, 0.001, 0.1)
    assert [r.name for r in worst([a, b], 2)] == ["a", "b"]
    ranked = [dataclasses.replace(a, kl=0.01), dataclasses.replace(b, kl=0.02)]
    assert [r.name for r in worst(ranked, 2)] == ["b", "a"]
    table = to_markdown(ranked).splitlines()
    assert table[0].endswith("| KL, only this layer (nats/token) |")
    assert table[2].endswith("| 90.0% | 0.01 |")
    assert "KL" not in to_markdown([a])
