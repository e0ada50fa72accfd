"""Soft prompts: ``k`` learned virtual-token embeddings spliced into the input (*embed*).

The virtual tokens go right after the chat-template prefix (system turn and the
opening of the user turn), so the model reads them where an instruction would
start. Only these ``k x hidden`` numbers are trained; the (possibly compressed) model
stays frozen. They are saved beside a model directory as ``<name>.safetensors`` (the
tensor) plus ``<name>.json`` (shape, dtype, where they go, how they were made).

Example:
    >>> import torch
    >>> soft = SoftPrompt(torch.zeros(3, 4))
    >>> soft.insert(torch.ones(2, 5, 4), position=1).shape
    torch.Size([2, 8, 4])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.prompt.prompt_files import read_prompt_files, write_prompt_files

FORMAT_VERSION = 1


def repeat_token_ids(caller: str, token_ids: Sequence[int], num_tokens: int) -> list[int]:
    """``token_ids`` repeated cyclically to ``num_tokens`` ids: the initial text of a
    soft or deep prompt longer than the text it starts from.

    Example:
        >>> repeat_token_ids("demo", [7, 8], 5)
        [7, 8, 7, 8, 7]
    """
    if num_tokens < 1:
        raise ValueError(f"{caller}: num_tokens must be >= 1, got {num_tokens}")
    if not token_ids:
        raise ValueError(f"{caller}: expected at least one token id, got none")
    return [token_ids[i % len(token_ids)] for i in range(num_tokens)]


class SoftPrompt(nn.Module):
    """Holds ``embeddings[k, hidden]`` and splices them into input embeddings.

    Example:
        >>> emb = torch.nn.Embedding(10, 4)
        >>> SoftPrompt.from_token_ids(emb, [3, 4], num_tokens=5).num_tokens
        5
    """

    def __init__(self, init: Tensor, meta: dict[str, Any] | None = None) -> None:
        super().__init__()
        if init.dim() != 2 or init.shape[0] < 1 or not init.is_floating_point():
            raise ValueError(
                f"SoftPrompt: expected a float tensor [num_tokens >= 1, hidden], "
                f"got {init.dtype} {list(init.shape)}"
            )
        self.embeddings = nn.Parameter(init.detach().clone().float())
        self.meta: dict[str, Any] = dict(meta or {})

    @property
    def num_tokens(self) -> int:
        return self.embeddings.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.embeddings.shape[1]

    @classmethod
    def from_token_ids(
        cls, embedding: nn.Embedding, token_ids: Sequence[int], num_tokens: int
    ) -> SoftPrompt:
        """Start from the embeddings of ``token_ids`` (an instruction's or a word list's).

        The ids are repeated or cut to ``num_tokens``: starting from real token
        embeddings keeps the virtual tokens inside the region the model was trained on,
        which trains faster and more stably than random vectors.

        Example:
            >>> emb = torch.nn.Embedding(10, 2)
            >>> s = SoftPrompt.from_token_ids(emb, [7], num_tokens=2)
            >>> torch.equal(s.embeddings[1], emb.weight[7])
            True
        """
        ids = repeat_token_ids("SoftPrompt.from_token_ids", token_ids, num_tokens)
        weight = embedding.weight.detach()
        init = weight[torch.tensor(ids, device=weight.device)]
        return cls(init.cpu(), meta={"init_token_ids": ids})

    def insert(self, inputs_embeds: Tensor, position: int) -> Tensor:
        """``inputs_embeds[:, :position]``, the virtual tokens, then the rest.

        The result has ``inputs_embeds``' dtype and device; the gradient reaches
        ``self.embeddings`` through the cast.

        Example:
            >>> s = SoftPrompt(torch.full((1, 2), 9.0))
            >>> s.insert(torch.zeros(1, 2, 2), 1)[0, :, 0].tolist()
            [0.0, 9.0, 0.0]
        """
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.hidden_size:
            raise ValueError(
                f"SoftPrompt.insert: expected inputs_embeds [batch, seq, {self.hidden_size}], "
                f"got {list(inputs_embeds.shape)}"
            )
        if not 0 <= position <= inputs_embeds.shape[1]:
            raise ValueError(
                f"SoftPrompt.insert: position must be in [0, {inputs_embeds.shape[1]}], "
                f"got {position}"
            )
        soft = self.embeddings.to(inputs_embeds.dtype).to(inputs_embeds.device)
        soft = soft.unsqueeze(0).expand(inputs_embeds.shape[0], -1, -1)
        return torch.cat([inputs_embeds[:, :position], soft, inputs_embeds[:, position:]], dim=1)

    def save(self, directory: str | Path, name: str = "soft_prompt") -> Path:
        """Write ``<name>.safetensors`` and ``<name>.json`` into ``directory``.

        Example:
            >>> import tempfile
            >>> d = tempfile.mkdtemp()
            >>> SoftPrompt.load(SoftPrompt(torch.ones(2, 3)).save(d), "soft_prompt").num_tokens
            2
        """
        header = {
            "num_tokens": self.num_tokens,
            "hidden_size": self.hidden_size,
            "dtype": "float32",
            "placement": "after the chat-template prefix, before the user content",
            "meta": self.meta,
        }
        return write_prompt_files(
            directory, name, {"embeddings": self.embeddings}, header, FORMAT_VERSION
        )

    @classmethod
    def load(cls, directory: str | Path, name: str = "soft_prompt") -> SoftPrompt:
        """Read a soft prompt written by ``save``; the JSON and the tensor must agree."""
        tensors, header = read_prompt_files(directory, name, FORMAT_VERSION, "SoftPrompt.load")
        tensor = tensors["embeddings"]
        expected = [header["num_tokens"], header["hidden_size"]]
        if list(tensor.shape) != expected:
            raise ValueError(
                f"SoftPrompt.load: {name}.safetensors holds {list(tensor.shape)}, "
                f"{name}.json says {expected}"
            )
        return cls(tensor, meta=header.get("meta", {}))
