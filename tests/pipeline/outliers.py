"""A tiny Llama whose activations look like an LLM's, and a way to run one stage on it.

Random init gives every channel the same scale, which hides what AWQ and SmoothQuant
are for. Here the norms and the value/up projections get log-normal channel gains and
a few outlier channels, so the inputs of every Linear are uneven and correlated.
"""

from __future__ import annotations

import logging
from typing import Any

import tiny
import torch
from torch import nn

from squeezeprompt.data import load_wikipedia
from squeezeprompt.evaluate import token_windows
from squeezeprompt.pipeline.context import RunContext
from squeezeprompt.pipeline.recipe import Recipe
from squeezeprompt.pipeline.stage_configs import QuantizeConfig
from squeezeprompt.pipeline.stages.registry import adapter_for

OUTLIERS = 3  # channels per tensor, like the few huge channels of real LLM activations


def _gains(n: int, g: torch.Generator, outlier: float) -> torch.Tensor:
    gains = torch.exp(0.8 * torch.randn(n, generator=g))
    gains[torch.randperm(n, generator=g)[:OUTLIERS]] *= outlier
    return gains


@torch.no_grad()
def outlier_llama(outlier: float = 20.0, seed: int = 0) -> nn.Module:
    """``tiny.tiny_llama()`` with uneven channels at every Linear's input."""
    model = tiny.tiny_llama()
    g = torch.Generator().manual_seed(seed)
    for block in model.model.layers:
        for norm in (block.input_layernorm, block.post_attention_layernorm):
            norm.weight.mul_(_gains(norm.weight.numel(), g, outlier))
        for lin in (block.self_attn.v_proj, block.mlp.up_proj):
            lin.weight.mul_(_gains(lin.out_features, g, outlier)[:, None])
    return model


def context(model: nn.Module, samples: int = 8, seq_len: int = 64) -> RunContext:
    """A run context for calling one stage adapter directly on ``model``."""
    recipe = Recipe.from_yaml(
        f"model: {tiny.TINY}\nstages: [{{calibrate: {{samples: {samples}, seq_len: {seq_len}}}}}]"
    )
    tok = tiny.byte_tokenizer()
    return RunContext(
        recipe, model, tok, lambda: (tiny.tiny_llama(), tok), logging.getLogger(__name__), False
    )


def quantize(model: nn.Module, **config: Any) -> dict[str, Any]:
    """Runs the quantize stage adapter on ``model`` in place; returns its summary."""
    cfg = QuantizeConfig(**config)
    adapter = adapter_for(cfg)
    adapter.check(cfg, model, [])
    return adapter.run(context(model), cfg)


def heldout_ids(windows: int = 4, seq_len: int = 64) -> torch.Tensor:
    """Token windows from the perplexity hold-out, which calibration never reads."""
    text = load_wikipedia().heldout
    return token_windows(tiny.byte_tokenizer(), text, seq_len, windows * seq_len)


@torch.no_grad()
def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits.double()


def logit_error(model: nn.Module, reference: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean squared logit error against ``reference`` on ``ids``."""
    return float(((logits(model, ids) - reference) ** 2).mean())
