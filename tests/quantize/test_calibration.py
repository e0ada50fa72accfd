"""Layer-by-layer calibration on a tiny random Llama (no download)."""

import pytest
import torch
from tiny_llama import random_llama
from torch import nn

from squeezeprompt.calibration import CalibrationConfig, calibrate_layerwise, find_blocks
from squeezeprompt.quantize.gptq import GPTQConfig, gptq_quantize
from squeezeprompt.quantize.grid import WeightGrid
from squeezeprompt.quantize.stats import InputStats

pytest.importorskip("transformers")

LINEARS = tuple(f"self_attn.{p}_proj" for p in "qkvo") + tuple(
    f"mlp.{p}_proj" for p in ("gate", "up", "down")
)


def tiny_llama() -> nn.Module:
    return random_llama(vocab_size=128, max_position_embeddings=64)


def batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(7)
    ids = [torch.randint(0, 128, (2, 16), generator=g) for _ in range(3)]
    out = [{"input_ids": i} for i in ids]
    # One batch with left padding: the captured attention mask must travel with it.
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[0, :5] = 0
    out[2]["attention_mask"] = mask
    return out


def hessians_from_full_forward(model: nn.Module) -> dict[str, torch.Tensor]:
    """Input second moments of every Linear, hooked during ordinary full forwards."""
    stats: dict[str, InputStats] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and ".layers." in name:
            stats[name] = InputStats(m.in_features)
            handles.append(m.register_forward_hook(lambda _m, i, _o, s=stats[name]: s.update(i[0])))
    with torch.no_grad():
        for b in batches():
            model(**b, use_cache=False)
    for h in handles:
        h.remove()
    return {name: s.hessian() for name, s in stats.items()}


def test_visits_every_linear_in_order_and_leaves_the_model_unchanged():
    model = tiny_llama()
    before = model(input_ids=batches()[0]["input_ids"]).logits
    seen: list[tuple[str, int]] = []
    calibrate_layerwise(model, batches(), lambda name, m, s: seen.append((name, s.tokens)))
    expected = [f"model.layers.{i}.{kind}" for i in range(2) for kind in LINEARS]
    assert sorted(n for n, _ in seen) == sorted(expected)
    assert [n for n, _ in seen][:7] == [n for n, _ in seen if ".layers.0." in n]
    assert all(tokens == 3 * 2 * 16 for _, tokens in seen)
    assert find_blocks(model)[0] == "model.layers"
    torch.testing.assert_close(model(input_ids=batches()[0]["input_ids"]).logits, before)


def test_block_stats_match_a_full_forward_of_the_compressed_model():
    # Compress every Linear as it is visited; the statistics block 1 was given must be
    # those of block 1's inputs in the final (block 0 compressed) model.
    model = tiny_llama()
    given: dict[str, torch.Tensor] = {}

    def compress(name: str, module: nn.Linear, stats: InputStats) -> None:
        h = stats.hessian()
        given[name] = h
        qw = gptq_quantize(module.weight, h, GPTQConfig(grid=WeightGrid(group_size=32)))
        module.weight.data.copy_(qw.dequantize())

    calibrate_layerwise(model, batches(), compress, CalibrationConfig(progress=False))
    full = hessians_from_full_forward(model)
    # A block is compressed after all its statistics are taken, so the first Linears
    # of each block (q/k/v) see exactly what the final model feeds them; for layer 1
    # that is the output of the compressed layer 0.
    for name in given:
        if name.endswith(("q_proj", "k_proj", "v_proj")):
            torch.testing.assert_close(given[name], full[name], rtol=1e-4, atol=1e-5)
    dense = hessians_from_full_forward(tiny_llama())
    q1 = "model.layers.1.self_attn.q_proj"
    assert (given[q1] - dense[q1]).abs().max() > 1e-3  # layer 0's compression did reach it


def test_custom_blocks_and_errors():
    model = tiny_llama()
    with pytest.raises(ValueError, match="not a submodule"):
        calibrate_layerwise(
            model, batches(), lambda *a: None, blocks=nn.ModuleList([nn.Linear(2, 2)])
        )
    with pytest.raises(ValueError, match="no calibration batches"):
        calibrate_layerwise(model, [], lambda *a: None)
    names: list[str] = []
    calibrate_layerwise(
        model,
        [torch.randint(0, 128, (1, 8))],
        lambda n, m, s: names.append(n),
        CalibrationConfig(hessian=False),
        blocks=model.model.layers,
    )
    assert len(names) == 14
