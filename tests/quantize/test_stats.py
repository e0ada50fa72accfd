import pytest
import torch

from squeezeprompt.quantize.stats import InputStats


def test_matches_direct_computation_over_batches():
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(2, 7, 12, generator=g) for _ in range(3)]
    stats = InputStats(12)
    for b in batches:
        stats.update(b)
    x = torch.cat([b.reshape(-1, 12) for b in batches]).double()
    assert stats.tokens == 42
    torch.testing.assert_close(stats.hessian().double(), x.T @ x / 42, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stats.channel_norm().double(), x.norm(dim=0), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats.mean_abs().double(), x.abs().mean(0), rtol=1e-6, atol=0)
    torch.testing.assert_close(stats.max_abs().double(), x.abs().amax(0), rtol=1e-6, atol=0)


def test_errors():
    stats = InputStats(4, hessian=False)
    with pytest.raises(ValueError, match="no inputs seen"):
        stats.channel_norm()
    with pytest.raises(ValueError, match="last dim 4"):
        stats.update(torch.randn(3, 5))
    stats.update(torch.randn(3, 4))
    with pytest.raises(ValueError, match="hessian=False"):
        stats.hessian()
