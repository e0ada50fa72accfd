"""Proposers write new instructions by paraphrasing good ones (the *adjust* step).

``Proposer`` is the interface the search sees. ``ScriptedProposer`` returns fixed
rewrites (tests, reproducible demos); ``ModelProposer`` asks a chat model to rewrite
the instruction with greedy decoding. Greedy decoding gives one answer per request,
so variety comes from asking in different ways (``REWRITE_REQUESTS``), picked by the
search's ``rng``.

Example:
    >>> import random
    >>> p = ScriptedProposer({"Good?": ("Is it good?", "Good or bad?")})
    >>> p.propose("Good?", 1, random.Random(0))
    ['Good or bad?']
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch


class Proposer(Protocol):
    """Returns up to ``n`` rewrites of ``instruction`` (fewer, even none, is allowed)."""

    def propose(self, instruction: str, n: int, rng: random.Random) -> list[str]: ...


class ScriptedProposer:
    """Rewrites from a fixed table; ``rng`` picks which ones when there are more than ``n``.

    Example:
        >>> ScriptedProposer({}).propose("anything", 3, random.Random(0))
        []
    """

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self._table = {k: tuple(v) for k, v in table.items()}
        self.calls = 0

    def propose(self, instruction: str, n: int, rng: random.Random) -> list[str]:
        self.calls += 1
        options = list(self._table.get(instruction, ()))
        return options if len(options) <= n else rng.sample(options, n)


REWRITE_REQUESTS: tuple[str, ...] = (
    "Rewrite this instruction in different words, keeping its meaning.",
    "Rewrite this instruction so it is clearer and more precise.",
    "Rewrite this instruction to be shorter.",
    "Rewrite this instruction as a direct question.",
    "Rewrite this instruction for a careful movie critic.",
)


def clean_rewrite(text: str) -> str:
    """First non-empty line of a model's reply, without quotes or an "Instruction:" tag.

    Example:
        >>> clean_rewrite('Instruction: "Is the review positive?"\\nThanks!')
        'Is the review positive?'
    """
    for line in text.strip().splitlines():
        line = re.sub(r"^\s*(rewritten\s+)?instruction\s*:\s*", "", line, flags=re.I).strip()
        line = line.strip("\"'` ").strip()
        if line:
            return line
    return ""


class ModelProposer:
    """Paraphrases with a causal chat model (``transformers``), greedy, cached per request.

    Example (needs a model, so not run as a doctest):
        >>> p = ModelProposer(model, tokenizer)                      # doctest: +SKIP
        >>> p.propose("Is this review positive or negative?", 2, random.Random(0))  # doctest: +SKIP
        ['Does this review express a positive or negative opinion?', ...]
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int = 48,
        requests: Sequence[str] = REWRITE_REQUESTS,
        min_chars: int = 12,
    ) -> None:
        if not requests:
            raise ValueError("ModelProposer: expected at least one rewrite request")
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.requests = tuple(requests)
        self.min_chars = min_chars
        self.generations = 0
        self._cache: dict[tuple[str, str], str] = {}

    def _rewrite(self, request: str, instruction: str) -> str:
        key = (request, instruction)
        if key not in self._cache:
            messages = [
                {
                    "role": "user",
                    # Small models tend to *answer* the instruction instead of
                    # rewriting it; quoting it and saying so is meant to stop that.
                    "content": f"{request} Do not answer or follow it; reply with the "
                    f'new instruction only.\n\nInstruction: "{instruction}"',
                }
            ]
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            batch = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
            device = next(self.model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                out = self.model.generate(
                    **batch,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                )
            new_tokens = out[0, batch["input_ids"].shape[1] :]
            self._cache[key] = clean_rewrite(
                self.tokenizer.decode(new_tokens, skip_special_tokens=True)
            )
            self.generations += 1
        return self._cache[key]

    def propose(self, instruction: str, n: int, rng: random.Random) -> list[str]:
        requests = rng.sample(self.requests, min(n, len(self.requests)))
        out: list[str] = []
        for request in requests:
            rewrite = self._rewrite(request, instruction)
            # A reply that is tiny or merely echoes the instruction is not a new candidate.
            if len(rewrite) >= self.min_chars and rewrite != instruction and rewrite not in out:
                out.append(rewrite)
        return out
