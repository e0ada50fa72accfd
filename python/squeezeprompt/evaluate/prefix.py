"""Run a prompt's shared prefix once and hand its key/value cache to every batch.

Hundreds of examples (and many candidate prompts) share the chat head, instruction and
demonstrations; encoding that prefix once per prompt instead of once per example is
what makes candidate scoring cheap. The cache is built with batch size 1 and expanded
(a view, no copy) to each batch's row count; a fresh ``DynamicCache`` wraps the views
per batch because the forward pass appends the batch's own keys and values to it.

Gradients flow through the cache, so a soft prompt placed in the prefix can be trained
with the same code that scores it.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from squeezeprompt.evaluate.encode import EncodedPrompt


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def check_soft_prompt(model: Any, soft_prompt: torch.Tensor | None) -> None:
    """Soft prompts are ``[num_virtual_tokens, hidden_size]`` vectors in embedding space."""
    if soft_prompt is None:
        return
    hidden = model.get_input_embeddings().embedding_dim
    if soft_prompt.dim() != 2 or soft_prompt.shape[1] != hidden:
        raise ValueError(
            f"soft_prompt must have shape [num_virtual_tokens, {hidden}], "
            f"got {tuple(soft_prompt.shape)}"
        )


@functools.lru_cache(maxsize=32)
def _cache_keyword(forward_type: type) -> str:
    # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name still works
    # but warns); use whichever the model's forward declares.
    params = inspect.signature(forward_type.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_kwargs(model: Any, cache: DynamicCache | None) -> dict[str, Any]:
    """Keyword arguments that hand ``cache`` to ``model.forward``.

    Example:
        >>> cache_kwargs(object(), None)
        {'use_cache': False}
    """
    if cache is None:
        return {"use_cache": False}  # nothing to extend, and nothing to keep afterwards
    return {_cache_keyword(type(model)): cache, "use_cache": True}


def output_cache(output: Any) -> Any:
    """The key/value cache a forward pass returned, under either field name."""
    cache = output.get("cache")
    return output.get("past_key_values") if cache is None else cache


@dataclass
class PrefixState:
    """The prefix's per-layer (key, value) tensors, batch size 1, and its length."""

    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]
    length: int

    def expanded(self, rows: int, config: Any) -> DynamicCache | None:
        """A fresh cache holding the prefix for ``rows`` rows (``None`` for no prefix)."""
        if self.length == 0:
            return None
        data = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in self.layers]
        return DynamicCache(ddp_cache_data=data, config=config)


def compute_prefix(
    model: Any,
    encoded: EncodedPrompt,
    soft_prompt: torch.Tensor | None = None,
    deep_prompt: PrefixState | None = None,
) -> PrefixState:
    """Encode ``[deep_prompt] + head + soft_prompt + body`` once.

    ``deep_prompt`` holds learned keys/values for virtual positions (prefix tuning,
    ``prompt.PrefixPrompt.state()``): they come first, the prompt's tokens run on top
    of them, so their positions start after the virtual ones and attend to them.
    Differentiable in ``soft_prompt``, ``deep_prompt`` (and the weights) unless run
    under ``no_grad``.

    Example:
        >>> state = compute_prefix(model, encode_prompt(prompt, tok, words))  # doctest: +SKIP
        >>> state.length == len(state.layers[0][0][0, 0])  # doctest: +SKIP
        True
    """
    check_soft_prompt(model, soft_prompt)
    device = model_device(model)
    n_soft = 0 if soft_prompt is None else soft_prompt.shape[0]
    n_deep = 0 if deep_prompt is None else deep_prompt.length
    length = n_deep + encoded.prefix_len + n_soft
    if encoded.prefix_len + n_soft == 0:
        return deep_prompt if deep_prompt is not None else PrefixState(layers=(), length=0)
    # The cache is extended by the forward pass; positions continue from its length.
    cache: dict[str, Any] = {"use_cache": True}
    if deep_prompt is not None:
        cache = cache_kwargs(model, deep_prompt.expanded(1, model.config))
    if soft_prompt is None:
        ids = torch.tensor([encoded.head_ids + encoded.body_ids], device=device)
        out = model(input_ids=ids, **cache)
    else:
        embed = model.get_input_embeddings()
        head = embed(torch.tensor(encoded.head_ids, dtype=torch.long, device=device))
        body = embed(torch.tensor(encoded.body_ids, dtype=torch.long, device=device))
        soft = soft_prompt.to(device=device, dtype=head.dtype)
        out = model(inputs_embeds=torch.cat([head, soft, body])[None], **cache)
    layers = tuple((layer.keys, layer.values) for layer in output_cache(out).layers)
    return PrefixState(layers=layers, length=length)
