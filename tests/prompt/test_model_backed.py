"""Model-backed pieces on a tiny Llama with a character tokenizer: scorer, batches, proposer."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from squeezeprompt.evaluate.scoring import score_examples
from squeezeprompt.prompt import (
    ModelProposer,
    PromptCandidate,
    SoftPrompt,
    TaskScorer,
    label_batches,
    text_batches,
    to_prompt,
)
from squeezeprompt.prompt.soft_train import label_loss

from .prompt_toys import ToyTask
from .soft_toys import VOCAB, tiny_llama


class CharTokenizer:
    """One token per character (mod the tiny vocabulary), with a minimal chat template."""

    chat_template = "toy"
    pad_token_id = 0
    eos_token_id = 1

    def __call__(self, text: str, add_special_tokens: bool = False, return_tensors=None):
        ids = [2 + ord(c) % (VOCAB - 2) for c in text]
        if return_tensors == "pt":
            return {"input_ids": torch.tensor([ids])}
        return {"input_ids": ids}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True) -> str:
        turns = "".join(f"<{m['role']}>{m['content']}</>" for m in messages)
        return turns + ("<assistant>" if add_generation_prompt else "")

    def decode(self, ids, skip_special_tokens=True) -> str:
        return "".join(chr(ord("a") + int(i) % 26) for i in ids)


def test_task_scorer_is_evaluator_accuracy_per_example() -> None:
    model, tok, task = tiny_llama(), CharTokenizer(), ToyTask()
    candidate = PromptCandidate("Good?", (1, 2))
    got = TaskScorer(model, tok, task)(candidate, task.dev)
    want = score_examples(model, tok, to_prompt(candidate, task.train), task.dev, task.label_words)
    assert got == [float(ok) for ok in want.correct(task.dev)]
    assert set(got) <= {0.0, 1.0}


def test_label_loss_is_cross_entropy_of_evaluator_scores() -> None:
    # Training and scoring must read the same numbers, soft prompt included.
    model, tok, task = tiny_llama(), CharTokenizer(), ToyTask()
    prompt = to_prompt(PromptCandidate("Good?", (0,)), task.train)
    soft = SoftPrompt(torch.randn(3, model.config.hidden_size) * 0.1)
    batches = label_batches(tok, prompt, task.dev, task.label_words, batch_size=4)
    assert sum(len(b.example_ids) for b in batches) == len(task.dev)
    with torch.no_grad():
        scored = score_examples(
            model, tok, prompt, task.dev[:4], task.label_words, soft_prompt=soft.embeddings
        )
        loss = label_loss(model, soft, batches[0])
    labels = torch.tensor([e.label for e in task.dev[:4]])
    torch.testing.assert_close(loss, F.cross_entropy(scored.log_probs.float(), labels))


def test_label_batches_shuffle_with_rng_only() -> None:
    tok, task = CharTokenizer(), ToyTask()
    prompt = to_prompt(PromptCandidate("Q"), task.train)

    def order(rng):
        batches = label_batches(tok, prompt, task.dev, task.label_words, 3, rng)
        return [ids for b in batches for ids in b.example_ids]

    assert order(None) == order(None)
    assert order(random.Random(0)) == order(random.Random(0)) != order(None)


def test_text_batches_are_full_windows() -> None:
    batches = text_batches(CharTokenizer(), ["abcdefghij", "klmnop"], 5, 2, max_tokens=15)
    assert [tuple(b.windows.shape) for b in batches] == [(2, 5), (1, 5)]


class _ScriptedGenerator:
    """Stands in for a causal LM's ``generate``: appends a fixed reply."""

    def __init__(self, reply: list[int]) -> None:
        self.reply = reply
        self.calls = 0
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        return iter([self.weight])

    def generate(self, input_ids, **kwargs):
        self.calls += 1
        assert kwargs["do_sample"] is False
        return torch.cat([input_ids, torch.tensor([self.reply])], dim=1)


def test_model_proposer_decodes_only_new_tokens_and_caches() -> None:
    reply = [ord(c) - ord("a") for c in "istherevieworgoodornot"]  # decodes to that text
    model = _ScriptedGenerator(reply)
    proposer = ModelProposer(model, CharTokenizer(), requests=("Rewrite.",))
    first = proposer.propose("Is it good?", 3, random.Random(0))
    again = proposer.propose("Is it good?", 3, random.Random(1))
    assert first == again == ["istherevieworgoodornot"]
    assert model.calls == 1 and proposer.generations == 1
    echo = ModelProposer(_ScriptedGenerator([0]), CharTokenizer(), requests=("R.",))
    assert echo.propose("Is it good?", 1, random.Random(0)) == []  # too short: dropped
