"""A tiny random Llama and a byte-level tokenizer, registered as pipeline model sources.

Built in memory with fixed seeds (no download, no training), identical in every process,
so a run killed in a subprocess can be resumed in another. Importable by path from a
subprocess (``tiny.run_killed``).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from squeezeprompt.pipeline.sources import register_source

TINY = "tiny-llama-test"
TINY_ODD = "tiny-llama-odd-test"  # intermediate 130: down_proj in_features not divisible by 4
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

TEST_RECIPE = """
model: tiny-llama-test
seed: 3
stages:
  - calibrate: {samples: 4, seq_len: 64}
  - prune:     {method: wanda, sparsity: "2:4"}
  - quantize:  {method: gptq, bits: 4, group_size: 32}
  - recover:   {method: distill, steps: 3, batch_size: 2, seq_len: 32, lr: 0.001}
  - prompt:    {search: beam, candidates: 2, demos: 1, budget: 16, dev_size: 4}
evaluate: {perplexity: enwiki, perplexity_tokens: 128, seq_len: 64, task: rotten_tomatoes,
           test_examples: 8, decode_tokens: 2}
"""


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with no merges: one token per byte, plus three specials."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(intermediate: int = 128) -> LlamaForCausalLM:
    """Hidden 64, 2 layers, seeded: the same weights in every process."""
    config = LlamaConfig(
        vocab_size=len(SPECIALS) + 256,
        hidden_size=64,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=0,
        eos_token_id=2,
    )
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(1234)
        model = LlamaForCausalLM(config)
    return model.eval()


def register() -> None:
    register_source(TINY, lambda: (tiny_llama(), byte_tokenizer()))
    register_source(TINY_ODD, lambda: (tiny_llama(intermediate=130), byte_tokenizer()))


def run_killed(recipe_path: str, out: str, kill_stage: str) -> None:
    """Runs the recipe and SIGKILLs this process right after ``kill_stage``'s model is
    saved, before its metrics land: the stage directory is left half-built."""
    from squeezeprompt.pipeline import runner
    from squeezeprompt.pipeline.recipe import Recipe

    register()
    real_save = runner.checkpoint.save

    def save_then_die(model: Any, path: Path) -> Path:
        result = real_save(model, path)
        if f"-{kill_stage}.tmp-" in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    runner.checkpoint.save = save_then_die  # type: ignore[assignment]
    runner.run(Recipe.from_file(recipe_path), out, progress=False)


if __name__ == "__main__":
    run_killed(*sys.argv[1:4])
