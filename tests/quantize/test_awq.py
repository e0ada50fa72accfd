import pytest
import torch
from layer_inputs import correlated_layer
from layer_inputs import output_error as sample_error

from squeezeprompt.quantize.awq import AWQConfig, awq_quantize, awq_scales, output_error
from squeezeprompt.quantize.fold import fold_into_linear_outputs, fold_into_norm
from squeezeprompt.quantize.grid import Bits, WeightGrid

GRIDS = [WeightGrid(Bits.INT4, 32), WeightGrid(Bits.INT4, None)]


@pytest.mark.parametrize("grid", GRIDS, ids=["int4-g32", "int4-channel"])
@pytest.mark.parametrize("seed", range(3))
def test_awq_beats_rtn_on_calibration_and_held_out_tokens(grid, seed):
    x, w = correlated_layer(seed, tokens=1024)
    calib, held_out = x[:512], x[512:]
    h = calib.T @ calib / calib.shape[0]
    r = awq_quantize(w, h, calib.abs().mean(0), AWQConfig(grid=grid))
    assert r.error <= r.rtn_error
    # The layer as deployed: inputs divided by the scales, weight = the packed W diag(s).
    deployed = r.weight.dequantize() / r.scales[None, :]
    assert sample_error(held_out, w, deployed) < sample_error(held_out, w, grid.round_weight(w))
    # The reported error is the mean squared output error per calibration token.
    measured = sample_error(calib, w, deployed) / calib.shape[0]
    assert r.error == pytest.approx(measured, rel=1e-4)


def test_alpha_zero_is_rtn():
    mean_abs = torch.rand(16) * 10
    assert torch.equal(awq_scales(mean_abs, 0.0), torch.ones(16))
    w = torch.randn(4, 16)
    x = torch.randn(64, 16)
    r = awq_quantize(w, x.T @ x / 64, mean_abs, AWQConfig(WeightGrid(Bits.INT4, 8), n_alpha=2))
    if r.alpha == 0.0:
        assert torch.equal(r.weight.dequantize(), WeightGrid(Bits.INT4, 8).round_weight(w))
    assert r.error <= r.rtn_error
    assert output_error(w, w, torch.eye(16)) == 0.0


def test_folding_into_a_norm_or_linear_keeps_the_function():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 16, generator=g)
    s = torch.rand(16, generator=g) + 0.5
    w = torch.randn(8, 16, generator=g)
    norm_w = torch.randn(16, generator=g)
    ref = (x * norm_w) @ w.T
    torch.testing.assert_close((x * fold_into_norm(norm_w, s)) @ (w * s).T, ref)
    prev_w, prev_b = torch.randn(16, 4, generator=g), torch.randn(16, generator=g)
    z = torch.randn(5, 4, generator=g)
    fw, fb = fold_into_linear_outputs(prev_w, prev_b, s)
    torch.testing.assert_close((z @ fw.T + fb) @ (w * s).T, (z @ prev_w.T + prev_b) @ w.T)


def test_errors():
    with pytest.raises(ValueError, match="one entry per input column"):
        awq_quantize(torch.randn(4, 8), torch.eye(8), torch.ones(4))
    with pytest.raises(ValueError, match="n_alpha must be >= 2"):
        AWQConfig(n_alpha=1)
    with pytest.raises(ValueError, match="must be positive"):
        fold_into_norm(torch.ones(2), torch.tensor([1.0, 0.0]))
