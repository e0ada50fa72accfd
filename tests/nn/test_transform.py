"""quantize_ / sparsify_ / prepare_qat / convert on small models: filters, ties, atomicity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezeprompt.nn import (
    FakeQuant,
    FakeQuantLinear,
    Int4WeightOnly,
    Int4WeightOnlyLinear,
    Int8Dynamic,
    Int8DynamicLinear,
    Int8WeightOnly,
    Int8WeightOnlyLinear,
    LinearFilter,
    MaskedLinear,
    SemiStructured24,
    Sparse24Int4Linear,
    Sparse24Linear,
    SparseValues,
    Unstructured,
    convert,
    prepare_qat,
    quantize_,
    select_linears,
    sparsify_,
)


class TinyLM(nn.Module):
    """Embedding, two blocks of Linears, and an lm_head tied to the embedding."""

    def __init__(self, vocab: int = 32, dim: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"up": nn.Linear(dim, 2 * dim), "down": nn.Linear(2 * dim, dim)})
            for _ in range(2)
        )
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for block in self.layers:
            h = h + block["down"](torch.relu(block["up"](h)))
        return self.lm_head(h)


LINEARS = ["layers.0.up", "layers.0.down", "layers.1.up", "layers.1.down"]


@pytest.mark.parametrize(
    ("config", "apply", "layer_type"),
    [
        (Int8WeightOnly(), quantize_, Int8WeightOnlyLinear),
        (Int4WeightOnly(group_size=32), quantize_, Int4WeightOnlyLinear),
        (Int8Dynamic(), quantize_, Int8DynamicLinear),
        (SemiStructured24(), sparsify_, Sparse24Linear),
        (SemiStructured24(values=SparseValues.INT8), sparsify_, Sparse24Linear),
        (SemiStructured24(values=SparseValues.INT4, group_size=32), sparsify_, Sparse24Int4Linear),
        (Unstructured(sparsity=0.5), sparsify_, MaskedLinear),
        (FakeQuant(bits=4, group_size=32), prepare_qat, FakeQuantLinear),
    ],
)
def test_default_filter_swaps_linears_but_not_head_or_embedding(config, apply, layer_type) -> None:
    model = TinyLM()
    embed = model.embed.weight.detach().clone()
    ids = torch.randint(0, 32, (2, 5))
    before = model(ids)
    assert apply(model, config) is model
    for name in LINEARS:
        layer = model.get_submodule(name)
        assert type(layer) is layer_type and layer.config == config
    assert type(model.lm_head) is nn.Linear and type(model.embed) is nn.Embedding
    assert torch.equal(model.embed.weight, embed)
    after = model(ids)
    assert after.shape == before.shape and bool(torch.isfinite(after).all())


def test_filter_include_exclude_and_predicate() -> None:
    model = TinyLM()
    assert select_linears(model) == LINEARS
    assert select_linears(model, LinearFilter(include=("*.up",))) == LINEARS[0::2]
    assert select_linears(model, LinearFilter(exclude=("layers.0.*", "lm_head"))) == LINEARS[2:]
    assert select_linears(model, LinearFilter(exclude=())) == [*LINEARS, "lm_head"]
    wide = LinearFilter(predicate=lambda name, mod: mod.in_features == 128)
    assert select_linears(model, wide) == LINEARS[1::2]
    # Globs match the whole name: "up" alone matches nothing.
    assert select_linears(model, LinearFilter(include=("up",))) == []


def test_filter_refuses_a_bare_string_and_non_filters() -> None:
    with pytest.raises(TypeError, match="tuple of glob strings"):
        LinearFilter(include="*.up")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        LinearFilter(predicate=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="LinearFilter"):
        quantize_(TinyLM(), Int8WeightOnly(), filter=lambda n, m: True)  # type: ignore[arg-type]


def test_quantizing_a_tied_head_unties_it_and_leaves_the_embedding() -> None:
    model = TinyLM()
    embed = model.embed.weight.detach().clone()
    quantize_(model, Int8WeightOnly(), LinearFilter(include=("lm_head",), exclude=()))
    assert isinstance(model.lm_head, Int8WeightOnlyLinear)
    assert torch.equal(model.embed.weight, embed)
    assert torch.allclose(model.lm_head.dequantize(), embed, atol=embed.abs().max() / 127)


def test_wrong_entry_point_for_a_config_is_refused() -> None:
    with pytest.raises(TypeError, match="use sparsify_"):
        quantize_(TinyLM(), SemiStructured24())
    with pytest.raises(TypeError, match="use quantize_"):
        sparsify_(TinyLM(), Int8WeightOnly())
    with pytest.raises(TypeError, match="use prepare_qat"):
        quantize_(TinyLM(), FakeQuant())
    with pytest.raises(TypeError, match="TransformConfig"):
        quantize_(TinyLM(), "int8")  # type: ignore[arg-type]


def test_a_failing_layer_leaves_the_model_unchanged() -> None:
    model = TinyLM()
    # group 128 divides the down projections (in 128) but not the up projections (in 64).
    with pytest.raises(ValueError, match=r"layers\.0\.up .*nothing was changed"):
        quantize_(model, Int4WeightOnly(group_size=128))
    assert all(type(model.get_submodule(n)) is nn.Linear for n in LINEARS)


def test_sparsify_uses_precomputed_masks() -> None:
    model = TinyLM()
    mask = torch.tensor([True, False, True, False]).repeat(128, 16)
    sparsify_(model, SemiStructured24(), masks={"layers.0.up": mask})
    assert torch.equal(model.layers[0]["up"].dequantize() != 0, mask)
    with pytest.raises(KeyError, match="not selected"):
        sparsify_(TinyLM(), SemiStructured24(), masks={"lm_head": mask})


def test_unstructured_sparsity_is_per_layer_magnitude() -> None:
    model = sparsify_(TinyLM(), Unstructured(sparsity=0.75))
    for name in LINEARS:
        layer = model.get_submodule(name)
        assert layer.sparsity == pytest.approx(0.75)
        kept = layer.weight[layer.mask].abs().min()
        assert kept >= layer.weight[~layer.mask].abs().max()


def test_prepare_qat_then_convert_gives_the_trained_grid() -> None:
    model = prepare_qat(TinyLM(), FakeQuant(bits=4, group_size=32))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 32, (4, 6))
    for _ in range(3):
        opt.zero_grad()
        model(ids).logsumexp(-1).mean().backward()
        opt.step()
    fake = model(ids).detach()
    convert(model)
    for name in LINEARS:
        layer = model.get_submodule(name)
        assert isinstance(layer, Int4WeightOnlyLinear)
        assert layer.config == Int4WeightOnly(group_size=32)
    assert torch.allclose(model(ids), fake, rtol=1e-4, atol=1e-4)


def test_convert_leaves_masked_layers() -> None:
    model = convert(sparsify_(TinyLM(), Unstructured()))
    assert isinstance(model.layers[0]["up"], MaskedLinear)
