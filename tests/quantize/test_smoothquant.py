import pytest
import torch

from squeezeprompt.ops.dynamic import int8_dynamic_linear_ref
from squeezeprompt.quantize.fold import scale_weight_inputs
from squeezeprompt.quantize.rtn import quantize_int8
from squeezeprompt.quantize.smoothquant import SmoothQuantConfig, smoothquant_scales


def w8a8_error(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> float:
    qw = quantize_int8(scale_weight_inputs(w, s))
    y = int8_dynamic_linear_ref(x / s, qw.qweight, qw.scales)
    return float(((y.double() - (x @ w.T).double()) ** 2).sum())


@pytest.mark.parametrize("seed", range(3))
def test_smoothing_cuts_w8a8_error_with_outlier_channels(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 128, generator=g)
    x[:, torch.randperm(128, generator=g)[:4]] *= 60.0  # LLM-style outlier channels
    w = torch.randn(64, 128, generator=g) * 0.05
    plain = w8a8_error(x, w, torch.ones(128))
    smoothed = w8a8_error(x, w, smoothquant_scales(x.abs().amax(0), w))
    # Measured: smoothing at alpha 0.5 leaves 7-8% of the error here.
    assert smoothed < 0.5 * plain


def test_smoothing_is_exact_before_quantization():
    # float64 so that the comparison sees the algebra, not float32 summation order.
    x = torch.randn(8, 32, dtype=torch.float64) * torch.linspace(0.1, 30, 32).double()
    w = torch.randn(16, 32, dtype=torch.float64)
    s = smoothquant_scales(x.abs().amax(0), w, SmoothQuantConfig(alpha=0.7)).double()
    torch.testing.assert_close((x / s) @ scale_weight_inputs(w, s).T, x @ w.T)


def test_alpha_limits_and_degenerate_channels():
    act = torch.tensor([16.0, 1.0, 0.0])
    w = torch.tensor([[4.0, 1.0, 2.0]])
    assert smoothquant_scales(act, w, SmoothQuantConfig(0.0)).tolist() == [0.25, 1.0, 1.0]
    assert smoothquant_scales(act, w, SmoothQuantConfig(1.0)).tolist() == [16.0, 1.0, 1.0]
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        SmoothQuantConfig(alpha=1.5)
    with pytest.raises(ValueError, match="act_absmax"):
        smoothquant_scales(torch.ones(2), w)
