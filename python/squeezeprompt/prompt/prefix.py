"""Deep prompts (prefix tuning): learned keys and values for ``P`` virtual positions in
every attention layer.

A soft prompt (``prompt.soft``) only reaches the model through its input embeddings:
``P x hidden`` numbers that the first layer must turn into something useful. A deep
prompt gives every layer its own ``P`` key/value pairs (``layers x 2 x kv_heads x P x
head_dim`` numbers; SmolLM2-135M at ``P = 8``: 92k, about 0.07% of the model), which is
what prefix tuning and P-tuning v2 train. The model stays frozen.

The virtual positions come first, before the chat head: the evaluator runs the shared
prompt prefix on top of them (``evaluate.compute_prefix(..., deep_prompt=...)``), so the
real tokens take positions ``P, P+1, ...`` and attend to all ``P`` learned entries.
Keys are stored as the attention layer caches them (after the rotary embedding).

Saved as ``<name>.safetensors`` (``keys``, ``values``) plus ``<name>.json`` (shape,
how it was made).

Example:
    >>> import torch
    >>> deep = PrefixPrompt(torch.zeros(2, 1, 3, 4), torch.zeros(2, 1, 3, 4))
    >>> deep.num_tokens, deep.numel()
    (3, 48)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.evaluate.prefix import PrefixState, model_device, output_cache
from squeezeprompt.prompt.prompt_files import read_prompt_files, write_prompt_files
from squeezeprompt.prompt.soft import repeat_token_ids

FORMAT_VERSION = 1


class PrefixPrompt(nn.Module):
    """Holds ``keys`` and ``values`` ``[layers, kv_heads, P, head_dim]`` (float32).

    Example:
        >>> z = torch.zeros(30, 3, 8, 64)
        >>> PrefixPrompt(z, z).numel()
        92160
    """

    def __init__(self, keys: Tensor, values: Tensor, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if keys.dim() != 4 or keys.shape[2] < 1 or not keys.is_floating_point():
            raise ValueError(
                f"PrefixPrompt: expected float keys [layers, kv_heads, P >= 1, head_dim], "
                f"got {keys.dtype} {list(keys.shape)}"
            )
        if values.shape != keys.shape or not values.is_floating_point():
            raise ValueError(
                f"PrefixPrompt: values must match keys {list(keys.shape)}, "
                f"got {values.dtype} {list(values.shape)}"
            )
        self.keys = nn.Parameter(keys.detach().clone().float())
        self.values = nn.Parameter(values.detach().clone().float())
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def num_tokens(self) -> int:
        return self.keys.shape[2]

    def numel(self) -> int:
        """Learned numbers in all (keys and values)."""
        return self.keys.numel() + self.values.numel()

    @classmethod
    @torch.no_grad()
    def from_token_ids(cls, model: Any, token_ids: Sequence[int], num_tokens: int) -> PrefixPrompt:
        """Start from the keys/values ``model`` computes for ``token_ids`` read from position 0.

        The ids are repeated or cut to ``num_tokens``. At this start the deep prompt is
        exactly those tokens placed before the prompt (see the tests), a point inside
        what the model was trained on, which trains more stably than random vectors.

        Example (needs a model):
            >>> PrefixPrompt.from_token_ids(model, [5, 6], 8).num_tokens  # doctest: +SKIP
            8
        """
        ids = repeat_token_ids("PrefixPrompt.from_token_ids", token_ids, num_tokens)
        out = model(input_ids=torch.tensor([ids], device=model_device(model)), use_cache=True)
        layers = output_cache(out).layers
        keys = torch.stack([layer.keys[0] for layer in layers]).cpu()
        values = torch.stack([layer.values[0] for layer in layers]).cpu()
        return cls(keys, values, meta={"init_token_ids": ids})

    def state(self, model: Any) -> PrefixState:
        """The deep prompt as the evaluator's batch-1 ``PrefixState``, in ``model``'s
        activation dtype and on its device (differentiable in ``keys`` and ``values``).

        Example (needs a model):
            >>> deep.state(model).layers[0][0].shape  # doctest: +SKIP
            torch.Size([1, 3, 8, 64])
        """
        weight = model.get_input_embeddings().weight
        keys = self.keys.to(device=weight.device, dtype=weight.dtype)
        values = self.values.to(device=weight.device, dtype=weight.dtype)
        layers = tuple((keys[i][None], values[i][None]) for i in range(keys.shape[0]))
        return PrefixState(layers=layers, length=self.num_tokens)

    def check_model(self, config: Any) -> None:
        """Raise unless the shape fits a model with this ``config`` (a transformers config)."""
        heads = config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        expected = [config.num_hidden_layers, kv_heads, self.num_tokens, head_dim]
        if list(self.keys.shape) != expected:
            raise ValueError(
                f"PrefixPrompt: keys are {list(self.keys.shape)}, the model needs {expected} "
                "[layers, kv_heads, P, head_dim]"
            )

    def save(self, directory: str | Path, name: str = "deep_prompt") -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` into ``directory``.

        Example:
            >>> import tempfile
            >>> d = tempfile.mkdtemp(); z = torch.zeros(2, 1, 3, 4)
            >>> PrefixPrompt.load(PrefixPrompt(z, z).save(d)).num_tokens
            3
        """
        header = {
            "shape": list(self.keys.shape),
            "layout": "[layers, kv_heads, P, head_dim], keys after the rotary embedding",
            "dtype": "float32",
            "placement": "positions 0..P-1, before the chat-template head",
            "meta": self.meta,
        }
        tensors = {"keys": self.keys, "values": self.values}
        return write_prompt_files(directory, name, tensors, header, FORMAT_VERSION)

    @classmethod
    def load(cls, directory: str | Path, name: str = "deep_prompt") -> PrefixPrompt:
        """Read a deep prompt written by ``save``; the JSON and the tensors must agree."""
        tensors, header = read_prompt_files(directory, name, FORMAT_VERSION, "PrefixPrompt.load")
        missing = {"keys", "values"} - set(tensors)
        if missing:
            raise ValueError(f"PrefixPrompt.load: {name}.safetensors lacks {sorted(missing)}")
        for field in ("keys", "values"):
            if list(tensors[field].shape) != header["shape"]:
                raise ValueError(
                    f"PrefixPrompt.load: {name}.safetensors {field} are "
                    f"{list(tensors[field].shape)}, {name}.json says {header['shape']}"
                )
        return cls(tensors["keys"], tensors["values"], meta=header.get("meta", {}))
