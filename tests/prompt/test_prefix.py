"""Deep prompts (prefix tuning) on a tiny random Llama: cache layout, positions,
gradients through int4, save/load, training."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from squeezeprompt.evaluate.prefix import compute_prefix
from squeezeprompt.evaluate.scoring import label_log_probs, score_examples
from squeezeprompt.prompt.prefix import PrefixPrompt
from squeezeprompt.prompt.soft_batches import LabelBatch, TextBatch, text_logits
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
    random_rows,
    text_batches,
    tiny_llama,
)

REAL = (20, 21, 22)  # tokens whose keys/values a deep prompt starts from


def hidden_deep_prompt(model: torch.nn.Module, seed: int = 1) -> PrefixPrompt:
    """Random keys/values at the scale of real ones: a target the model never computes."""
    start = PrefixPrompt.from_token_ids(model, list(REAL), 3)
    g = torch.Generator().manual_seed(seed)
    k, v = start.keys.detach(), start.values.detach()
    return PrefixPrompt(
        torch.randn(k.shape, generator=g) * k.std(), torch.randn(v.shape, generator=g) * v.std()
    )


def test_cache_layout_follows_the_model_config() -> None:
    model = tiny_llama()
    deep = PrefixPrompt.from_token_ids(model, [5, 6], num_tokens=5)
    # 2 layers, 2 kv heads, 5 virtual positions, head_dim 32 / 4 heads = 8.
    assert deep.keys.shape == deep.values.shape == (2, 2, 5, 8)
    assert deep.numel() == 2 * 2 * 2 * 5 * 8
    assert deep.meta["init_token_ids"] == [5, 6, 5, 6, 5]
    deep.check_model(model.config)
    cache = deep.state(model).expanded(3, model.config)
    assert len(cache.layers) == 2
    assert cache.layers[0].keys.shape == (3, 2, 5, 8)
    assert cache.get_seq_length() == 5
    with pytest.raises(
        ValueError, match=r"keys are \[3, 2, 4, 8\], the model needs \[2, 2, 4, 8\]"
    ):
        PrefixPrompt(torch.zeros(3, 2, 4, 8), torch.zeros(3, 2, 4, 8)).check_model(model.config)


def test_prefix_of_real_tokens_reproduces_reading_those_tokens() -> None:
    # A deep prompt holding what the model computes for REAL must act exactly like
    # REAL placed before the chat head: this checks that the prompt's tokens take
    # positions P, P+1, ... (rotary keys would differ otherwise) and attend to it.
    model = tiny_llama()
    deep = PrefixPrompt.from_token_ids(model, list(REAL), len(REAL))
    enc, rows = encoded(), random_rows(4, seed=0)
    real_first = encoded(head=REAL + enc.head_ids)
    with torch.no_grad():
        prefix = compute_prefix(model, enc, deep_prompt=deep.state(model))
        assert prefix.length == len(REAL) + enc.prefix_len
        got = label_log_probs(model, enc, prefix, rows)
        want = label_log_probs(model, real_first, compute_prefix(model, real_first), rows)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # The text side: the windows read the deep prompt as three earlier tokens.
        windows = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(0))
        logits = text_logits(model, deep, TextBatch(windows))
        full = model(input_ids=torch.cat([torch.tensor([REAL] * 2), windows], 1)).logits
        torch.testing.assert_close(logits, full[:, len(REAL) :], rtol=1e-5, atol=1e-5)
        # ... and it does change the answer: without it the scores differ.
        alone = label_log_probs(model, enc, compute_prefix(model, enc), rows)
        assert (alone - got).abs().max() > 1e-3


def test_scoring_accepts_a_deep_prompt_without_a_prompt_prefix() -> None:
    # An empty shared prefix: the deep prompt is the whole cache the examples read.
    model = tiny_llama()
    deep = PrefixPrompt.from_token_ids(model, list(REAL), len(REAL))
    empty = encoded(head=(), body=())
    with torch.no_grad():
        prefix = compute_prefix(model, empty, deep_prompt=deep.state(model))
        assert prefix.length == len(REAL)
        row = (30, 31, 32)
        got = label_log_probs(model, empty, prefix, [row])
        logp = model(input_ids=torch.tensor([REAL + row + (10, 12)])).logits[0].log_softmax(-1)
        n = len(REAL) + len(row)
        want = logp[n - 1, 10] + logp[n, 12]
        torch.testing.assert_close(got[0, 0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("objective", list(Objective), ids=lambda o: o.value)
def test_gradient_reaches_the_prefix_through_int4_layers(objective: Objective) -> None:
    quantized, reference = int4_and_dense_twins()
    grads = []
    for model in (quantized, reference):
        deep = hidden_deep_prompt(reference)
        if objective is Objective.LABELS:
            batch = LabelBatch(encoded(), random_rows(4, 0), torch.tensor([0, 1, 1, 0]))
            loss = label_loss(model, deep, batch)
        else:
            teacher = ReadsHiddenPrompt(tiny_llama(seed=3), hidden_prompt(seed=4))
            loss = teacher_kl_loss(model, deep, text_batches(1, seed=0)[0], teacher)
        loss.backward()
        grads.append(torch.cat([deep.keys.grad.flatten(), deep.values.grad.flatten()]))
    assert (grads[0] != 0).float().mean() > 0.5  # every layer's entries are reached
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_save_load_round_trip_and_corrupt_files(tmp_path) -> None:
    deep = PrefixPrompt(torch.randn(2, 2, 3, 8), torch.randn(2, 2, 3, 8), meta={"task": "toy"})
    deep.save(tmp_path, name="dp")
    back = PrefixPrompt.load(tmp_path, name="dp")
    assert torch.equal(back.keys, deep.keys) and torch.equal(back.values, deep.values)
    assert back.meta == {"task": "toy"}
    header = json.loads((tmp_path / "dp.json").read_text())

    def write(**changes) -> None:
        (tmp_path / "dp.json").write_text(json.dumps({**header, **changes}))

    write(shape=[2, 2, 4, 8])
    with pytest.raises(ValueError, match=r"keys are \[2, 2, 3, 8\], dp.json says \[2, 2, 4, 8\]"):
        PrefixPrompt.load(tmp_path, name="dp")
    write(format_version=99)
    with pytest.raises(ValueError, match="format_version 99, expected 1"):
        PrefixPrompt.load(tmp_path, name="dp")
    write()
    save_file({"keys": torch.zeros(2, 2, 3, 8)}, str(tmp_path / "dp.safetensors"))
    with pytest.raises(ValueError, match=r"lacks \['values'\]"):
        PrefixPrompt.load(tmp_path, name="dp")
    save_file(
        {"keys": torch.zeros(2, 2, 3, 8), "values": torch.zeros(2, 2, 3, 7)},
        str(tmp_path / "dp.safetensors"),
    )
    with pytest.raises(ValueError, match=r"values are \[2, 2, 3, 7\]"):
        PrefixPrompt.load(tmp_path, name="dp")


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match=r"\[layers, kv_heads, P >= 1, head_dim\]"):
        PrefixPrompt(torch.zeros(2, 2, 0, 8), torch.zeros(2, 2, 0, 8))
    with pytest.raises(ValueError, match="values must match keys"):
        PrefixPrompt(torch.zeros(2, 2, 3, 8), torch.zeros(2, 2, 3, 4))
    with pytest.raises(ValueError, match="num_tokens must be >= 1"):
        PrefixPrompt.from_token_ids(tiny_llama(), [1], 0)


def test_label_training_lowers_the_loss_towards_a_hidden_deep_prompt() -> None:
    model = tiny_llama()
    target = hidden_deep_prompt(model)
    batches = []
    with torch.no_grad():
        for b in range(4):
            rows = random_rows(8, seed=b)
            probe = LabelBatch(encoded(), rows, torch.zeros(8, dtype=torch.long))
            prefix = compute_prefix(model, probe.encoded, deep_prompt=target.state(model))
            labels = label_log_probs(model, probe.encoded, prefix, rows).argmax(dim=1)
            batches.append(LabelBatch(encoded(), rows, labels))
    deep = PrefixPrompt.from_token_ids(model, list(REAL), 3)
    before = evaluate_loss(model, deep, batches, Objective.LABELS)
    seen: list[int] = []
    config = SoftTrainConfig(steps=40, lr=3e-2)
    result = train_soft_prompt(
        model, deep, batches, config, on_step=lambda step, loss: seen.append(step)
    )
    after = evaluate_loss(model, deep, batches, Objective.LABELS)
    assert after < 0.5 * before, (before, after)
    assert seen == list(range(1, 41)) and len(result.losses) == 40
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_score_examples_reads_the_deep_prompt_first() -> None:
    # score_examples (the test-accuracy path) with a deep prompt equals scoring a
    # prompt whose text starts with the deep prompt's tokens.
    from squeezeprompt.data.tasks import Example
    from squeezeprompt.evaluate.prompt import Prompt, PromptFormat

    class Ids:  # a tokenizer over characters 'a'.. = token ids 13..
        def __call__(self, s: str, add_special_tokens: bool) -> dict[str, list[int]]:
            return {"input_ids": [13 + (ord(c) % 40) for c in s]}

    model, tok = tiny_llama(), Ids()
    real = tok("xyz", add_special_tokens=False)["input_ids"]
    deep = PrefixPrompt.from_token_ids(model, real, len(real))
    examples = [Example("good fun", 1), Example("dull", 0), Example("so so", 0)]
    words = ("no", "yes")
    got = score_examples(
        model,
        tok,
        Prompt("Q?", format=PromptFormat.RAW),
        examples,
        words,
        deep_prompt=deep.state(model),
    )
    want = score_examples(model, tok, Prompt("xyzQ?", format=PromptFormat.RAW), examples, words)
    torch.testing.assert_close(got.log_probs, want.log_probs, rtol=1e-5, atol=1e-5)
