"""Calibration hooks pruned ``MaskedLinear`` layers exactly like the Linear they stand for."""

import pytest
import torch
from tiny_llama import random_llama

from squeezeprompt.calibration import calibrate_blockwise, calibrate_layerwise
from squeezeprompt.nn.sparse import MaskedLinear

pytest.importorskip("transformers")


def batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.randint(0, 128, (2, 16), generator=g) for _ in range(2)]


def pruned_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same model twice: once with MaskedLinear MLPs, once with zeroed Linears."""
    masked = random_llama(vocab_size=128, max_position_embeddings=64)
    zeroed = random_llama(vocab_size=128, max_position_embeddings=64)
    g = torch.Generator().manual_seed(5)
    for mb, zb in zip(masked.model.layers, zeroed.model.layers, strict=True):
        for name in ("gate_proj", "up_proj", "down_proj"):
            lin = getattr(mb.mlp, name)
            mask = torch.rand(lin.weight.shape, generator=g) > 0.5
            setattr(mb.mlp, name, MaskedLinear.from_linear(lin, mask))
            getattr(zb.mlp, name).weight.data.mul_(mask)
    return masked, zeroed


def test_masked_layers_are_visited_with_the_stats_of_the_zeroed_linear():
    masked, zeroed = pruned_pair()
    got: dict[str, tuple[type, torch.Tensor]] = {}
    want: dict[str, torch.Tensor] = {}
    calibrate_layerwise(masked, batches(), lambda n, m, s: got.update({n: (type(m), s.hessian())}))
    calibrate_layerwise(zeroed, batches(), lambda n, m, s: want.update({n: s.hessian()}))
    assert sorted(got) == sorted(want) and len(got) == 14
    assert got["model.layers.1.mlp.down_proj"][0] is MaskedLinear
    for name, (_, h) in got.items():
        # The masked op and F.linear may sum in another order: compare to float32 rounding.
        torch.testing.assert_close(h, want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_block_callback_sees_every_linear_of_its_block_at_once():
    masked, _ = pruned_pair()
    seen: list[tuple[str, list[str]]] = []
    calibrate_blockwise(
        masked, batches(), lambda prefix, _b, found: seen.append((prefix, sorted(found)))
    )
    assert [p for p, _ in seen] == ["model.layers.0", "model.layers.1"]
    assert all(len(names) == 7 and all(n.startswith(p) for n in names) for p, names in seen)
