"""``train``'s per-parameter learning rates and its after-step hook."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from squeezeprompt.recover import OptimizerKind, TrainConfig, train


def _mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return ((model(batch[0]) - batch[1]) ** 2).mean()


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 4, generator=g), torch.randn(16, 2, generator=g))]


def test_lr_scale_sets_each_parameters_step() -> None:
    model = nn.Linear(4, 2)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    sgd = TrainConfig(steps=1, lr=0.1, optimizer=OptimizerKind.SGD, grad_clip=None, progress=False)
    batch = _data()[0]
    grads = torch.autograd.grad(_mse(model, batch), list(model.parameters()))
    train(model, _mse, [batch], sgd, lr_scale=lambda name, _p: 0.5 if name == "bias" else 1.0)
    torch.testing.assert_close(model.weight, start["weight"] - 0.1 * grads[0])
    torch.testing.assert_close(model.bias, start["bias"] - 0.05 * grads[1])


def test_after_step_runs_once_per_step() -> None:
    model = nn.Linear(4, 2)
    calls: list[float] = []

    def clamp() -> None:
        with torch.no_grad():
            model.bias.clamp_(min=0.0)
        calls.append(model.bias.min().item())

    train(model, _mse, _data(), TrainConfig(steps=5, lr=0.1, progress=False), after_step=clamp)
    assert len(calls) == 5 and min(calls) >= 0.0


def test_lr_scale_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lr_scale must be > 0, got 0.0 for bias"):
        train(
            nn.Linear(4, 2),
            _mse,
            _data(),
            TrainConfig(steps=1, progress=False),
            lr_scale=lambda name, _p: 0.0 if name == "bias" else 1.0,
        )
