"""A tiny random Llama and a small byte-level BPE tokenizer with a chat template.

Both are built in memory in about a second, so evaluation tests need no download and
no packaged model. The tokenizer is trained on Rotten Tomatoes training snippets; the
chat template follows the ChatML layout SmolLM2 uses, default system turn included.
"""

from __future__ import annotations

import pytest
import torch
from tiny_llama import random_llama
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from squeezeprompt.data import load_task
from squeezeprompt.evaluate import encode_prompt

CHAT_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a test assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    task = load_task("rotten_tomatoes", seed=0)
    corpus = [ex.text for ex in task.train[:2000]]
    corpus += ["Is this movie review positive or negative? Answer with one word.", "Review:"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1000,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|im_start|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def tiny_model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    model = random_llama(
        vocab_size=len(tokenizer), max_position_embeddings=1024, tie_word_embeddings=True
    )
    # Random init gives near-uniform logits; sharpen them so label choices differ.
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(20.0)
    return model


def _full_sequence_log_probs(model, tokenizer, prompt, examples, words, soft_prompt=None):
    """Reference: one uncached forward per (example, label) over the whole sequence."""
    enc = encode_prompt(prompt, tokenizer, words)
    embed = model.get_input_embeddings()
    out = torch.zeros(len(examples), len(words), dtype=torch.float64)
    for i, ex in enumerate(examples):
        ex_ids = enc.example_ids(tokenizer, ex.text)
        for label, word_ids in enumerate(enc.label_ids):
            after = list(enc.body_ids) + ex_ids + list(word_ids)
            pieces = [embed(torch.tensor(enc.head_ids, dtype=torch.long))]
            if soft_prompt is not None:
                pieces.append(soft_prompt)
            pieces.append(embed(torch.tensor(after)))
            logits = model(inputs_embeds=torch.cat(pieces)[None]).logits[0].log_softmax(-1)
            start = logits.shape[0] - len(word_ids)  # first label token's position
            lp = sum(logits[start - 1 + k, t] for k, t in enumerate(word_ids))
            out[i, label] = lp.double() if torch.is_tensor(lp) else lp
    return out


@pytest.fixture(scope="session")
def full_sequence_log_probs():
    """The uncached reference scorer, as a fixture so every test file can use it."""
    return _full_sequence_log_probs
