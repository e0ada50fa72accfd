"""The learning-rate schedule: each step's lr is ``lr * lr_factor(schedule, step, steps)``.

With plain SGD and a loss whose gradient is 1 everywhere (``p.sum()``), a parameter
moves by exactly ``-lr * factor`` per step, so its final value is the sum of the
factors the loop used: any other schedule (or none at all) lands elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from squeezeprompt.recover import LrSchedule, OptimizerKind, TrainConfig, lr_factor, train


def _moved(schedule: LrSchedule, steps: int, lr: float = 0.1) -> float:
    p = nn.Parameter(torch.zeros(3, dtype=torch.float64))
    holder = nn.Module()
    holder.p = p
    config = TrainConfig(
        steps=steps,
        lr=lr,
        optimizer=OptimizerKind.SGD,
        grad_clip=None,
        schedule=schedule,
        progress=False,
    )
    train(holder, lambda m, _batch: m.p.sum(), [None], config)
    assert torch.equal(p.detach(), p.detach()[:1].expand(3))  # every element alike
    return -p[0].item() / lr


@pytest.mark.parametrize("steps", [1, 4, 9])
def test_cosine_steps_follow_the_half_cosine(steps: int) -> None:
    expected = sum(0.5 * (1 + math.cos(math.pi * t / steps)) for t in range(steps))
    assert _moved(LrSchedule.COSINE, steps) == pytest.approx(expected, rel=1e-12)


def test_constant_keeps_the_rate_and_cosine_moves_less() -> None:
    assert _moved(LrSchedule.CONSTANT, 4) == pytest.approx(4.0, rel=1e-12)
    assert _moved(LrSchedule.COSINE, 4) == pytest.approx(2.5, rel=1e-12)


def test_cosine_starts_at_lr_and_ends_near_zero() -> None:
    assert lr_factor(LrSchedule.COSINE, 0, 100) == 1.0
    assert lr_factor(LrSchedule.COSINE, 99, 100) < 1e-3


def test_schedule_scales_every_param_group_alike() -> None:
    """Per-parameter lr multipliers (param groups) keep their ratio under the schedule."""
    model = nn.Module()
    model.a = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    model.b = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    config = TrainConfig(
        steps=3,
        lr=0.1,
        optimizer=OptimizerKind.SGD,
        grad_clip=None,
        schedule=LrSchedule.COSINE,
        progress=False,
    )
    train(
        model,
        lambda m, _b: m.a.sum() + m.b.sum(),
        [None],
        config,
        lr_scale=lambda name, _p: 10.0 if name == "b" else 1.0,
    )
    assert model.b.item() == pytest.approx(10 * model.a.item(), rel=1e-12)
    assert model.a.item() == pytest.approx(
        -0.1 * sum(lr_factor(LrSchedule.COSINE, t, 3) for t in range(3)), rel=1e-12
    )


def test_schedule_must_be_an_lr_schedule() -> None:
    with pytest.raises(TypeError, match="schedule must be an LrSchedule, got 'cosine'"):
        TrainConfig(schedule="cosine")  # type: ignore[arg-type]
