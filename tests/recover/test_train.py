import pytest
import torch
from torch import nn

from squeezeprompt.recover import LoRAConfig, OptimizerKind, TrainConfig, apply_lora_, train


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return (model(x) - y).pow(2).mean()


def regression_batches(
    seed: int = 0,
) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 6, generator=g)
    xs = [torch.randn(32, 6, generator=g) for _ in range(4)]
    return w, [(x, x @ w.T) for x in xs]


@pytest.mark.parametrize("kind", list(OptimizerKind))
def test_runs_exactly_the_step_budget_and_learns(kind):
    w, data = regression_batches()
    model = nn.Linear(6, 3, bias=False)
    losses = train(model, mse, data, TrainConfig(steps=80, lr=0.1, optimizer=kind, progress=False))
    assert len(losses) == 80  # 4 batches cycled
    assert losses[-1] < 1e-2 * losses[0]


def test_trains_only_requires_grad_parameters():
    _, data = regression_batches(1)
    model = nn.Sequential(nn.Linear(6, 6), nn.Linear(6, 3))
    frozen = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_lora_(model, LoRAConfig(rank=2), include=lambda n, m: n == "1")
    train(model, mse, data, TrainConfig(steps=5, lr=0.01, progress=False))
    for name, p in model.named_parameters():
        if "lora" in name:
            continue
        original = frozen[name.replace(".base", "")]
        assert torch.equal(p, original), name
    assert model[1].lora_b.abs().max() > 0


def test_restores_mode_and_rejects_bad_inputs():
    model = nn.Linear(2, 1).eval()
    train(
        model, mse, [(torch.randn(4, 2), torch.zeros(4, 1))], TrainConfig(steps=2, progress=False)
    )
    assert not model.training
    with pytest.raises(ValueError, match="batches is empty"):
        train(model, mse, [], TrainConfig(steps=2, progress=False))
    with pytest.raises(ValueError, match="no parameters with requires_grad"):
        train(model.requires_grad_(False), mse, [(torch.randn(4, 2), torch.zeros(4, 1))])
    with pytest.raises(ValueError, match="steps must be positive"):
        TrainConfig(steps=0)
    with pytest.raises(TypeError, match="OptimizerKind"):
        TrainConfig(optimizer="adamw")


def test_non_finite_loss_stops_training():
    model = nn.Linear(2, 1)
    with pytest.raises(FloatingPointError, match="at step 0"):
        train(
            model,
            lambda m, b: m(b).sum() * torch.inf,
            [torch.ones(1, 2)],
            TrainConfig(steps=3, progress=False),
        )
