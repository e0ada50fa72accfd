import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from squeezeprompt.ops import masked_linear, sparse24_linear, sparse24_pack
from squeezeprompt.prune import (
    Pattern,
    Sparsity,
    is_semi_24,
    keep_mask,
    magnitude_mask,
    wanda_mask,
)


@given(
    n=st.integers(1, 6),
    groups=st.integers(1, 12),
    ratio=st.sampled_from([0.0, 0.25, 0.5, 0.7, 0.9]),
    seed=st.integers(0, 2**16),
)
def test_unstructured_sparsity_is_exact_per_row(n, groups, ratio, seed):
    k = 4 * groups
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    mask = magnitude_mask(w, Sparsity(ratio))
    assert (~mask).sum(dim=1).tolist() == [round(ratio * k)] * n
    # The kept weights are the largest of their row.
    kept_min = torch.where(mask, w.abs(), torch.inf).amin(dim=1)
    dropped_max = torch.where(mask, -torch.inf, w.abs()).amax(dim=1)
    assert bool((kept_min >= dropped_max).all())


@given(n=st.integers(1, 6), groups=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_semi_24_is_exact_and_keeps_the_top_two(n, groups, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, 4 * groups, generator=g)
    mask = magnitude_mask(w, Sparsity.semi_24())
    per_group = mask.reshape(n, groups, 4)
    assert bool((per_group.sum(-1) == 2).all())
    assert is_semi_24(mask)
    top2 = w.abs().reshape(n, groups, 4).topk(2, dim=-1).values.sum(-1)
    kept = (w.abs() * mask).reshape(n, groups, 4).sum(-1)
    torch.testing.assert_close(kept, top2)


def test_ties_and_zero_rows_still_give_exact_counts():
    w = torch.zeros(3, 8)
    assert (~magnitude_mask(w, Sparsity(0.5))).sum().item() == 12
    assert is_semi_24(magnitude_mask(w, Sparsity.semi_24()))


def test_wanda_with_equal_norms_is_magnitude_and_prefers_loud_channels():
    w = torch.randn(6, 16)
    for sp in (Sparsity(0.5), Sparsity.semi_24()):
        assert torch.equal(wanda_mask(w, torch.full((16,), 3.0), sp), magnitude_mask(w, sp))
    norms = torch.ones(16)
    norms[0] = 1e6
    assert bool(wanda_mask(w, norms, Sparsity(0.9))[:, 0].all())


def test_masks_feed_masked_linear_and_sparse24_pack():
    x = torch.randn(5, 32)
    w = torch.randn(8, 32)
    mask = magnitude_mask(w, Sparsity.semi_24())
    pruned = torch.where(mask, w, torch.zeros_like(w))
    torch.testing.assert_close(masked_linear(x, w, mask), x @ pruned.T)
    values, meta = sparse24_pack(pruned)
    torch.testing.assert_close(sparse24_linear(x, values, meta), x @ pruned.T)


def test_config_errors():
    with pytest.raises(ValueError, match=r"ratio must lie in \[0, 1\)"):
        Sparsity(1.0)
    with pytest.raises(ValueError, match="2:4 pattern means ratio 0.5"):
        Sparsity(0.6, Pattern.SEMI_24)
    with pytest.raises(ValueError, match="divisible by 4"):
        keep_mask(torch.randn(2, 6), Sparsity.semi_24())
    with pytest.raises(ValueError, match="channel_norm"):
        wanda_mask(torch.randn(2, 8), torch.ones(4), Sparsity())
