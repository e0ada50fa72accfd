import pytest
import torch
from torch import nn

from squeezeprompt.recover import LoRAConfig, LoRALinear, apply_lora_


class PackedLike(nn.Module):
    """A frozen quantized-style layer: buffers only, forward(x) and in/out features."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.out_features, self.in_features = w.shape
        self.register_buffer("qweight", torch.round(w * 8).to(torch.int8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.qweight.float() / 8).T.to(x.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_starts_as_the_base_layer(dtype):
    base = nn.Linear(16, 8).to(dtype)
    layer = LoRALinear(base, LoRAConfig(rank=4, alpha=8.0))
    x = torch.randn(3, 5, 16, dtype=dtype)
    y = layer(x)
    assert y.dtype == dtype
    assert torch.equal(y, base(x))
    assert torch.count_nonzero(layer.lora_b) == 0 and torch.count_nonzero(layer.lora_a) > 0


def test_gradient_reaches_only_the_adapter():
    base = nn.Linear(16, 8)
    layer = LoRALinear(base, LoRAConfig(rank=4))
    layer(torch.randn(4, 16)).pow(2).sum().backward()
    assert base.weight.grad is None and base.bias.grad is None
    assert layer.lora_b.grad is not None and layer.lora_b.grad.abs().max() > 0
    # B = 0 at the start, so A's first gradient is exactly zero (but defined).
    assert layer.lora_a.grad is not None
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_a", "lora_b"}


def test_forward_is_base_plus_scaled_low_rank_product():
    base = PackedLike(torch.randn(8, 16))
    cfg = LoRAConfig(rank=2, alpha=6.0)
    layer = LoRALinear(base, cfg)
    with torch.no_grad():
        layer.lora_b.normal_()
    x = torch.randn(5, 16)
    expected = base(x) + cfg.scaling * x @ layer.lora_a.T @ layer.lora_b.T
    torch.testing.assert_close(layer(x), expected)


def test_can_fit_a_low_rank_correction():
    torch.manual_seed(0)
    base = PackedLike(torch.randn(8, 16))
    target = torch.randn(8, 1) @ torch.randn(1, 16) * 0.5
    layer = LoRALinear(base, LoRAConfig(rank=1, alpha=1.0))
    opt = torch.optim.Adam([layer.lora_a, layer.lora_b], lr=0.1)
    x = torch.randn(256, 16)
    want = base(x) + x @ target.T
    for _ in range(150):
        loss = (layer(x) - want).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3 * want.var().item()


def test_apply_lora_wraps_matching_modules_and_freezes_the_rest():
    model = nn.Sequential(nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 4))
    names = apply_lora_(model, LoRAConfig(rank=2), include=lambda n, m: n == "2")
    assert names == ["2"]
    assert isinstance(model[2], LoRALinear) and isinstance(model[0], nn.Linear)
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["2.lora_a", "2.lora_b"]
    assert apply_lora_(model, include=lambda n, m: isinstance(m, LoRALinear)) == []


def test_errors():
    with pytest.raises(ValueError, match="rank must be a positive int"):
        LoRAConfig(rank=0)
    with pytest.raises(ValueError, match=r"dropout must lie in \[0, 1\)"):
        LoRAConfig(dropout=1.0)
    with pytest.raises(TypeError, match="int in_features"):
        LoRALinear(nn.ReLU())
