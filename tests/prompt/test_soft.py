"""Soft prompts on a tiny random Llama: splicing, save/load, training, quantized ops."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import squeezeprompt  # noqa: F401  (registers torch.ops.squeezeprompt)
from squeezeprompt.evaluate.prefix import compute_prefix
from squeezeprompt.evaluate.scoring import label_log_probs
from squeezeprompt.prompt.soft import SoftPrompt
from squeezeprompt.prompt.soft_batches import (
    LabelBatch,
    TextBatch,
    label_log_likelihoods,
    text_logits,
)
from squeezeprompt.prompt.soft_train import (
    Objective,
    SoftTrainConfig,
    evaluate_loss,
    label_loss,
    teacher_kl_loss,
    train_soft_prompt,
)

from .soft_toys import (
    ReadsHiddenPrompt,
    encoded,
    hidden_prompt,
    int4_and_dense_twins,
    label_batches_from,
    random_rows,
    text_batches,
    tiny_llama,
)


def test_insert_places_virtual_tokens_at_position() -> None:
    soft = SoftPrompt(torch.arange(6.0).view(2, 3))
    x = torch.full((2, 4, 3), -1.0)
    out = soft.insert(x, position=1)
    assert out.shape == (2, 6, 3)
    assert torch.equal(out[:, 1:3], soft.embeddings.detach().expand(2, -1, -1))
    assert (out[:, 0] == -1).all() and (out[:, 3:] == -1).all()
    with pytest.raises(ValueError, match="position must be in"):
        soft.insert(x, position=5)
    with pytest.raises(ValueError, match=r"\[batch, seq, 3\]"):
        soft.insert(torch.zeros(2, 4, 5), 0)


def test_init_from_token_embeddings_cycles_ids() -> None:
    emb = nn.Embedding(10, 4)
    soft = SoftPrompt.from_token_ids(emb, [3, 7], num_tokens=3)
    assert torch.equal(soft.embeddings.detach(), emb.weight.detach()[[3, 7, 3]])
    assert soft.meta["init_token_ids"] == [3, 7, 3]
    with pytest.raises(ValueError, match="num_tokens must be >= 1"):
        SoftPrompt.from_token_ids(emb, [1], 0)


def test_save_load_round_trip_and_mismatch(tmp_path) -> None:
    soft = SoftPrompt(torch.randn(5, 8), meta={"task": "toy"})
    soft.save(tmp_path, name="sp")
    back = SoftPrompt.load(tmp_path, name="sp")
    assert torch.equal(back.embeddings, soft.embeddings)
    assert back.meta == {"task": "toy"}
    header = (tmp_path / "sp.json").read_text().replace('"num_tokens": 5', '"num_tokens": 4')
    (tmp_path / "sp.json").write_text(header)
    with pytest.raises(ValueError, match=r"holds \[5, 8\].*says \[4, 8\]"):
        SoftPrompt.load(tmp_path, name="sp")


def test_label_scoring_matches_an_explicit_forward() -> None:
    # head + soft + body + example + label, spelt out by hand, must give the same
    # label log-likelihood as the cached-prefix path used for training.
    model, soft = tiny_llama(), hidden_prompt()
    rows = random_rows(3, seed=0)
    batch = LabelBatch(encoded(), rows, torch.zeros(3, dtype=torch.long))
    with torch.no_grad():
        got = label_log_probs(
            model, batch.encoded, compute_prefix(model, batch.encoded, soft.embeddings), rows
        )
        emb = model.get_input_embeddings()
        for i, row in enumerate(rows):
            for label, word in enumerate(batch.encoded.label_ids):
                ids = torch.tensor([(*batch.encoded.head_ids,)])
                rest = torch.tensor([(*batch.encoded.body_ids, *row, *word)])
                x = torch.cat([emb(ids), soft.embeddings[None], emb(rest)], dim=1)
                logp = model(inputs_embeds=x).logits[0].log_softmax(-1)
                start = x.shape[1] - len(word) - 1
                want = sum(logp[start + k, t] for k, t in enumerate(word))
                torch.testing.assert_close(got[i, label], want, rtol=1e-4, atol=1e-4)


def test_label_training_reduces_loss() -> None:
    model, target = tiny_llama(), hidden_prompt()
    batches = label_batches_from(model, target, n_batches=4, seed=0)
    soft = SoftPrompt.from_token_ids(model.get_input_embeddings(), [20, 21, 22], num_tokens=4)
    before = evaluate_loss(model, soft, batches, Objective.LABELS)
    result = train_soft_prompt(model, soft, batches, SoftTrainConfig(steps=60, lr=3e-2))
    after = evaluate_loss(model, soft, batches, Objective.LABELS)
    assert after < 0.5 * before, (before, after)
    assert len(result.losses) == 60
    # The model stayed frozen and its flags were restored.
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_teacher_kl_training_approaches_the_hidden_prompt() -> None:
    model, target = tiny_llama(), hidden_prompt()
    teacher = ReadsHiddenPrompt(model, target)
    train, held_out = text_batches(4, seed=0), text_batches(2, seed=1)
    # The optimum is reachable: reading the hidden prompt itself gives KL 0.
    assert evaluate_loss(model, target, held_out, Objective.TEACHER_KL, teacher) < 1e-6
    soft = SoftPrompt.from_token_ids(model.get_input_embeddings(), [20, 21, 22], num_tokens=4)
    before = evaluate_loss(model, soft, held_out, Objective.TEACHER_KL, teacher)
    config = SoftTrainConfig(objective=Objective.TEACHER_KL, steps=60, lr=3e-2)
    train_soft_prompt(model, soft, train, config, teacher=teacher)
    after = evaluate_loss(model, soft, held_out, Objective.TEACHER_KL, teacher)
    assert after < 0.35 * before, (before, after)


@pytest.mark.parametrize("objective", list(Objective), ids=lambda o: o.value)
def test_gradient_flows_through_quantized_ops(objective: Objective) -> None:
    quantized, reference = int4_and_dense_twins()
    grads = []
    for model in (quantized, reference):
        soft = hidden_prompt()
        if objective is Objective.LABELS:
            batch = LabelBatch(encoded(), random_rows(4, 0), torch.tensor([0, 1, 1, 0]))
            loss = label_loss(model, soft, batch)
        else:
            teacher = ReadsHiddenPrompt(tiny_llama(seed=3), hidden_prompt(seed=4))
            loss = teacher_kl_loss(model, soft, text_batches(1, seed=0)[0], teacher)
        loss.backward()
        grads.append(soft.embeddings.grad)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_text_logits_drop_the_soft_positions() -> None:
    model, soft = tiny_llama(), hidden_prompt()
    batch = TextBatch(torch.randint(0, 64, (2, 9)))
    with torch.no_grad():
        assert text_logits(model, soft, batch).shape == (2, 9, 64)


def test_config_and_argument_errors() -> None:
    with pytest.raises(TypeError, match="must be an Objective"):
        SoftTrainConfig(objective="labels")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        SoftTrainConfig(steps=0)
    with pytest.raises(ValueError, match="needs a teacher"):
        teacher_kl_loss(tiny_llama(), hidden_prompt(), text_batches(1, 0)[0], None)
    with pytest.raises(ValueError, match="at least one batch"):
        train_soft_prompt(tiny_llama(), hidden_prompt(), [], SoftTrainConfig())
    with pytest.raises(ValueError, match="expected labels of shape"):
        LabelBatch(encoded(), random_rows(2, 0), torch.zeros(3, dtype=torch.long))


def test_label_nll_weight_adds_the_gold_words_vocabulary_nll() -> None:
    model, target = tiny_llama(), hidden_prompt()
    batch = label_batches_from(model, target, n_batches=1, seed=0)[0]
    soft = SoftPrompt.from_token_ids(model.get_input_embeddings(), [20, 21], num_tokens=2)
    with torch.no_grad():
        ll = label_log_likelihoods(model, soft, batch)
        plain = label_loss(model, soft, batch)
        weighted = label_loss(model, soft, batch, nll_weight=0.5)
    gold = ll.gather(1, batch.labels[:, None]).mean()
    torch.testing.assert_close(weighted, plain - 0.5 * gold)
    assert weighted > plain  # the gold word's NLL is > 0
    config = SoftTrainConfig(steps=3, lr=1e-2, label_nll_weight=0.5)
    result = train_soft_prompt(model, soft, [batch], config)
    assert result.losses[0] == pytest.approx(weighted.item(), rel=1e-5)
    with pytest.raises(ValueError, match="label_nll_weight must be >= 0"):
        SoftTrainConfig(label_nll_weight=-1.0)


def test_cosine_schedule_halves_the_second_step_of_two() -> None:
    # The first update is the same (factor 1), so the second sees the same gradient and
    # Adam state: under COSINE over 2 steps it is exactly half the CONSTANT one.
    from squeezeprompt.recover.train import LrSchedule

    model, target = tiny_llama(), hidden_prompt()
    batches = label_batches_from(model, target, n_batches=2, seed=0)
    moves = {}
    for schedule in (LrSchedule.CONSTANT, LrSchedule.COSINE):
        soft = SoftPrompt.from_token_ids(model.get_input_embeddings(), [20, 21], num_tokens=2)
        seen = [soft.embeddings.detach().clone()]
        config = SoftTrainConfig(steps=2, lr=1e-2, schedule=schedule)
        train_soft_prompt(
            model,
            soft,
            batches,
            config,
            on_step=lambda *_, s=soft, seen=seen: seen.append(s.embeddings.detach().clone()),
        )
        moves[schedule] = (seen[1] - seen[0], seen[2] - seen[1])
    torch.testing.assert_close(moves[LrSchedule.COSINE][0], moves[LrSchedule.CONSTANT][0])
    torch.testing.assert_close(
        moves[LrSchedule.COSINE][1], 0.5 * moves[LrSchedule.CONSTANT][1], rtol=1e-4, atol=1e-7
    )
    assert moves[LrSchedule.CONSTANT][1].abs().max() > 1e-4
