"""call_op: below the autograd key exactly when grad mode is off, same results either way."""

from __future__ import annotations

import pytest
import torch

from squeezeprompt.ops import (
    int4_dynamic_linear,
    int4_weight_linear,
    int8_dynamic_linear,
    int8_weight_linear,
    masked_linear,
    sparse24_linear,
    sparse24_pack,
)
from squeezeprompt.ops._dispatch import call_op
from squeezeprompt.quantize import quantize_int4

AUTOGRAD = torch._C.DispatchKey.AutogradOther


def _autograd_excluded() -> bool:
    return torch._C._dispatch_tls_is_dispatch_key_excluded(AUTOGRAD)


def test_below_autograd_only_without_grad_mode() -> None:
    assert call_op(_autograd_excluded) is False
    with torch.no_grad():
        assert call_op(_autograd_excluded) is True
    with torch.inference_mode():  # already below autograd; stays so
        assert call_op(_autograd_excluded) is True
    assert _autograd_excluded() is False  # the guard is undone on return


def _calls() -> dict[str, object]:
    torch.manual_seed(0)
    x = torch.randn(3, 64)
    w = torch.randn(16, 64)
    q8 = torch.randint(-127, 128, (16, 64), dtype=torch.int8)
    s8 = torch.rand(16) + 0.01
    q4 = quantize_int4(w, group_size=32)
    mask = torch.rand(16, 64) > 0.5
    w24 = w.clone()
    w24.view(16, 16, 4)[..., 2:] = 0  # 2:4: the last two columns of each group pruned
    values, meta = sparse24_pack(w24)
    b = torch.randn(16)
    return {
        "int8_weight": lambda: int8_weight_linear(x, q8, s8, b),
        "int4_weight": lambda: int4_weight_linear(x, q4.qweight, q4.scales, q4.zeros, 32, b),
        "int8_dynamic": lambda: int8_dynamic_linear(x, q8, s8, b),
        "int4_dynamic": lambda: int4_dynamic_linear(x, q4.qweight, q4.scales, q4.zeros, 32, b),
        "masked": lambda: masked_linear(x, w, mask, b),
        "sparse24": lambda: sparse24_linear(x, values, meta, None, b),
    }


@pytest.mark.parametrize("name", sorted(_calls()))
def test_no_grad_result_is_bitwise_the_grad_mode_result(name: str) -> None:
    call = _calls()[name]
    with_grad = call()
    with torch.no_grad():
        without = call()
    assert not without.requires_grad
    assert torch.equal(with_grad, without)
