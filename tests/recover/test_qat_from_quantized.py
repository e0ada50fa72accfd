"""QAT that starts from an already quantized layer: same codes, pruned zeros kept, round trip."""

from __future__ import annotations

import pytest
import torch
from tiny_llama import random_llama
from torch import nn

from squeezeprompt.formats import pack_int4
from squeezeprompt.nn import (
    FakeQuantLinear,
    Int4WeightOnly,
    Int4WeightOnlyLinear,
    Int8WeightOnlyLinear,
    Sparse24Int4Linear,
    convert,
    is_24_mask,
    magnitude_mask_24,
    quantize_,
)
from squeezeprompt.recover import TrainConfig, distill_loss_fn, prepare_qat_from_quantized_, train


def _gptq_like_int4(n: int, k: int, group: int, symmetric: bool) -> Int4WeightOnlyLinear:
    """An int4 layer with arbitrary codes and scales (not what RTN would pick)."""
    layer = Int4WeightOnlyLinear(k, n, bias=True, group_size=group, symmetric=symmetric)
    codes = torch.randint(0, 16, (n, k), dtype=torch.uint8)
    layer.qweight.copy_(pack_int4(codes))
    layer.scales.copy_(torch.rand(n, k // group) * 0.02 + 0.001)
    if not symmetric:
        layer.zeros.copy_(torch.randint(0, 16, (n, k // group)).float())
    layer.bias.data = torch.randn(n)
    return layer


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("with_dense", [False, True])
def test_starts_exactly_at_the_quantized_layer(symmetric: bool, with_dense: bool) -> None:
    layer = _gptq_like_int4(16, 128, 32, symmetric)
    # A "dense" weight far from the codes: the latent may move only inside each bin.
    dense = layer.dequantize() + torch.randn(16, 128) * 0.05 if with_dense else None
    fq = FakeQuantLinear.from_quantized(layer, dense=dense)
    assert torch.equal(fq.dequantize(), layer.dequantize())
    back = fq.to_quantized()
    assert type(back) is Int4WeightOnlyLinear
    assert torch.equal(back.qweight, layer.qweight) and torch.equal(back.zeros, layer.zeros)
    x = torch.randn(3, 128)
    torch.testing.assert_close(fq(x), layer(x), rtol=1e-5, atol=1e-5)


def test_dense_residual_keeps_the_position_inside_the_bin() -> None:
    lin = nn.Linear(64, 8)
    q = Int4WeightOnlyLinear.from_linear(lin, group_size=32)
    fq = FakeQuantLinear.from_quantized(q, dense=lin.weight)
    # RTN of the dense weight gives these codes, so the latent is the dense weight itself,
    # except within 1% of a bin's half-width of its edge, where it is pulled inside.
    w = lin.weight.detach()
    step = q.scales.repeat_interleave(32, dim=1)
    near_edge = (w - q.dequantize()).abs() > 0.49 * step
    assert near_edge.float().mean() < 0.05
    torch.testing.assert_close(fq.weight[~near_edge], w[~near_edge], rtol=0, atol=1e-6)
    assert ((fq.weight - w).abs()[near_edge] <= 0.01 * step[near_edge] + 1e-6).all()
    without = FakeQuantLinear.from_quantized(q)
    assert torch.equal(without.weight, q.dequantize())


def test_int8_layer() -> None:
    q = Int8WeightOnlyLinear.from_linear(nn.Linear(64, 8))
    fq = FakeQuantLinear.from_quantized(q)
    assert (fq.bits, fq.group_size, fq.symmetric) == (8, 64, True)
    back = fq.to_quantized()
    assert type(back) is Int8WeightOnlyLinear and torch.equal(back.qweight, q.qweight)


def test_rejects_other_layers_and_bad_shapes() -> None:
    with pytest.raises(TypeError, match="expected an Int4WeightOnlyLinear"):
        FakeQuantLinear.from_quantized(nn.Linear(64, 8))  # type: ignore[arg-type]
    q = Int4WeightOnlyLinear.from_linear(nn.Linear(64, 8), group_size=32)
    with pytest.raises(ValueError, match="dense weight must have shape"):
        FakeQuantLinear.from_quantized(q, dense=torch.zeros(8, 32))
    with pytest.raises(ValueError, match="mask must be bool"):
        FakeQuantLinear.from_quantized(q, mask=torch.ones(8, 64))


def _train_steps(layer: nn.Module, steps: int = 30) -> None:
    target = torch.randn(8, layer.out_features)
    x = torch.randn(8, layer.in_features)
    loss = lambda m, _b: ((m(x) - target) ** 2).mean()  # noqa: E731
    # Latent weights only: scales stepped at this lr could cross zero.
    layer.scale.requires_grad_(False)
    layer.zero_point.requires_grad_(False)
    losses = train(layer, loss, [None], TrainConfig(steps=steps, lr=1e-2, progress=False))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("semi", [False, True])
def test_pruned_weights_stay_exactly_zero(semi: bool) -> None:
    lin = nn.Linear(64, 16)
    if semi:
        mask = magnitude_mask_24(lin.weight)
        q: Int4WeightOnlyLinear = Sparse24Int4Linear.from_linear(lin, 32, mask=mask)
    else:
        mask = torch.rand(16, 64) > 0.5
        with torch.no_grad():
            lin.weight.mul_(mask)
        q = Int4WeightOnlyLinear.from_linear(lin, group_size=32)
    zero = q.dequantize() == 0
    assert zero[~mask].all()
    fq = FakeQuantLinear.from_quantized(q, mask=~zero)
    _train_steps(fq)
    assert fq.dequantize()[zero].abs().max() == 0
    back = fq.to_quantized()
    assert type(back) is (Sparse24Int4Linear if semi else Int4WeightOnlyLinear)
    assert back.dequantize()[zero].abs().max() == 0
    if semi:
        assert is_24_mask(back.dequantize() != 0)
    # Training moved something: the conversion is not a no-op.
    assert not torch.equal(back.dequantize(), q.dequantize())


def test_masked_layer_checkpoint_arguments() -> None:
    q = Int4WeightOnlyLinear.from_linear(nn.Linear(64, 8), group_size=32)
    fq = FakeQuantLinear.from_quantized(q, mask=q.dequantize() != 0)
    rebuilt = FakeQuantLinear(**fq.init_kwargs())
    rebuilt.load_state_dict(fq.state_dict())
    assert torch.equal(rebuilt.dequantize(), fq.dequantize())


def test_prepare_train_convert_on_a_llama() -> None:
    # initializer_range 0.1: peaked teacher logits, so the int4 error is visible in the loss.
    student = random_llama(vocab_size=96, seed=0, initializer_range=0.1)
    teacher = random_llama(vocab_size=96, seed=0, initializer_range=0.1)
    quantize_(student, Int4WeightOnly(group_size=32))
    before = {n: m.dequantize() for n, m in student.named_modules() if hasattr(m, "qweight")}
    dense = {n: m.weight for n, m in teacher.named_modules() if isinstance(m, nn.Linear)}
    names = prepare_qat_from_quantized_(student, dense=dense)
    assert sorted(names) == sorted(before) and len(names) >= 14
    trainable = {n.rsplit(".", 1)[-1] for n, p in student.named_parameters() if p.requires_grad}
    assert trainable == {"weight", "scale", "zero_point"}
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(0, 96, (2, 24), generator=g)} for _ in range(8)]
    heldout = {"input_ids": torch.randint(0, 96, (4, 24), generator=g)}
    loss_fn = distill_loss_fn(teacher, temperature=1.0)
    with torch.no_grad():
        start = loss_fn(student, heldout).item()
    train(
        student,
        loss_fn,
        batches,
        TrainConfig(steps=16, lr=1e-4, progress=False),
        # Scales move all weights of a group at once: smaller steps (as the stage does).
        lr_scale=lambda name, _p: 0.01 if name.endswith(".scale") else 1.0,
    )
    convert(student)
    layers = {n: m for n, m in student.named_modules() if n in before}
    assert all(type(m) is Int4WeightOnlyLinear for m in layers.values())
    assert all(m.config == Int4WeightOnly(32, False) for m in layers.values())
    with torch.no_grad():
        assert loss_fn(student, heldout).item() < start
