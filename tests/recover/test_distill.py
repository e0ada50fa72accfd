import pytest
import torch
import torch.nn.functional as F

from squeezeprompt.recover import distill_loss_fn, distillation_loss


def test_zero_for_identical_logits_and_positive_otherwise():
    z = torch.randn(2, 7, 50)
    assert distillation_loss(z, z, temperature=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(z + 5.0, z).item() == pytest.approx(0.0, abs=1e-6)  # shift-invariant
    assert distillation_loss(torch.randn(2, 7, 50), z).item() > 0.0


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_matches_torch_kl_div(temperature):
    s, t = torch.randn(3, 5, 20), torch.randn(3, 5, 20)
    ref = (
        F.kl_div(
            F.log_softmax(s / temperature, -1).reshape(-1, 20),
            F.log_softmax(t / temperature, -1).reshape(-1, 20),
            log_target=True,
            reduction="batchmean",
        )
        * temperature**2
    )
    torch.testing.assert_close(distillation_loss(s, t, temperature), ref)


def test_mask_selects_tokens_and_teacher_gets_no_gradient():
    s = torch.randn(2, 4, 10, requires_grad=True)
    t = torch.randn(2, 4, 10, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]])
    loss = distillation_loss(s, t, mask=mask)
    keep = mask.bool()
    torch.testing.assert_close(loss, distillation_loss(s[keep], t[keep]))
    loss.backward()
    assert t.grad is None
    assert s.grad[~keep].abs().max() == 0 and s.grad[keep].abs().max() > 0


def test_student_moves_toward_teacher():
    t = torch.randn(4, 10)
    s = torch.zeros(4, 10, requires_grad=True)
    opt = torch.optim.SGD([s], lr=1.0)
    first = None
    for _ in range(50):
        loss = distillation_loss(s, t)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_loss_fn_for_a_causal_lm():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    teacher = transformers.LlamaForCausalLM(cfg)
    student = transformers.LlamaForCausalLM(cfg)
    batch = {"input_ids": torch.randint(0, 64, (2, 6)), "attention_mask": torch.ones(2, 6)}
    assert distill_loss_fn(teacher)(teacher, batch).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss_fn(teacher)(student, batch).item() > 0.0


def test_errors():
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 3), temperature=0.0)
    with pytest.raises(ValueError, match="mask must have shape"):
        distillation_loss(torch.randn(2, 3), torch.randn(2, 3), mask=torch.ones(3))
