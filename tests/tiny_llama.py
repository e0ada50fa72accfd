"""A tiny random ``transformers`` Llama shared by tests (no download).

Tests import it as ``from tiny_llama import random_llama``: ``tests/`` is on ``sys.path``
via its conftest. The pipeline tests keep their own (``tests/pipeline/tiny.py``), which
also runs as a subprocess script.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch


def random_llama(vocab_size: int, seed: int = 0, **config: Any) -> torch.nn.Module:
    """A seeded ``LlamaForCausalLM`` in eval mode: hidden 64, 2 layers, 4 heads (2 KV).

    ``config`` adds or overrides ``LlamaConfig`` fields. Skips the test without transformers.
    """
    transformers = pytest.importorskip("transformers")
    shape = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=vocab_size, **{**shape, **config})
    return transformers.LlamaForCausalLM(cfg).eval()
