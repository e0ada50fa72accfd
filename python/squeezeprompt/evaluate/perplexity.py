"""Perplexity over non-overlapping windows of a concatenated token stream.

Texts are tokenized one by one and joined with a ``"\\n\\n"`` separator into one stream,
cut into windows of ``seq_len`` tokens; a shorter last window is dropped so every
window sees the same context budget. Each window predicts its tokens 2..seq_len from
the tokens before it in the window (no context crosses windows), so the result is
deterministic and independent of ``batch_size``.

``max_tokens`` bounds the work: the default (``DEFAULT_MAX_TOKENS``, 32 windows of 512)
takes about a minute for SmolLM2-135M on a 2-core CPU; ``max_tokens=None`` uses every
full window of the stream (the whole held-out set: ~200k tokens).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from squeezeprompt.evaluate.encode import encode_text
from squeezeprompt.evaluate.prefix import check_soft_prompt, model_device
from squeezeprompt.evaluate.runtime import eval_mode

DEFAULT_MAX_TOKENS = 16_384
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class PerplexityResult:
    """``perplexity = exp(nll)``; ``nll`` is the mean over ``n_predicted`` tokens."""

    perplexity: float
    nll: float
    n_predicted: int
    n_windows: int
    seq_len: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"perplexity {self.perplexity:.3f} ({self.n_windows} x {self.seq_len} tokens, "
            f"{self.seconds:.1f} s)"
        )


def token_windows(
    tokenizer: Any, texts: Sequence[str], seq_len: int, max_tokens: int | None
) -> torch.Tensor:
    """The stream's full windows as a ``[num_windows, seq_len]`` tensor of ids.

    Example:
        >>> class Chars:
        ...     def __call__(self, s, add_special_tokens):
        ...         return {"input_ids": [ord(c) for c in s]}
        >>> token_windows(Chars(), ["abc", "de"], seq_len=3, max_tokens=None).tolist()
        [[97, 98, 99], [10, 10, 100]]
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2 (one token of context), got {seq_len}")
    if max_tokens is not None and max_tokens < seq_len:
        raise ValueError(
            f"max_tokens must be None or >= seq_len, got max_tokens={max_tokens}, seq_len={seq_len}"
        )
    separator = encode_text(tokenizer, SEPARATOR)
    budget = math.inf if max_tokens is None else max_tokens
    stream: list[int] = []
    for i, text in enumerate(texts):
        if len(stream) >= budget:
            break  # tokenizing the rest of a large corpus would be wasted work
        stream.extend((separator if i else []) + encode_text(tokenizer, text))
    n_windows = len(stream) // seq_len
    if max_tokens is not None:
        n_windows = min(n_windows, max_tokens // seq_len)
    if n_windows == 0:
        raise ValueError(f"the texts hold {len(stream)} tokens, fewer than one window ({seq_len})")
    return torch.tensor(stream[: n_windows * seq_len]).view(n_windows, seq_len)


def window_nll(
    model: Any, windows: torch.Tensor, soft_prompt: torch.Tensor | None = None
) -> torch.Tensor:
    """Summed next-token negative log-likelihood of each window: ``[num_windows]``.

    ``soft_prompt`` (``[num_virtual_tokens, hidden]``) is prepended to every window as
    input embeddings; only the window's own tokens are scored. Differentiable.

    Example:
        >>> nll = window_nll(model, torch.tensor([[1, 2, 3]]))  # doctest: +SKIP
        >>> nll.shape  # doctest: +SKIP
        torch.Size([1])
    """
    check_soft_prompt(model, soft_prompt)
    ids = windows.to(model_device(model))
    if soft_prompt is None:
        logits = model(input_ids=ids, use_cache=False).logits
    else:
        embeds = model.get_input_embeddings()(ids)
        soft = soft_prompt.to(embeds.dtype).expand(ids.shape[0], -1, -1)
        logits = model(inputs_embeds=torch.cat([soft, embeds], dim=1), use_cache=False).logits
        logits = logits[:, soft_prompt.shape[0] :]
    predicted = logits[:, :-1].float()
    nll = F.cross_entropy(predicted.transpose(1, 2), ids[:, 1:], reduction="none")
    return nll.sum(dim=1)


def perplexity(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    seq_len: int = 512,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    batch_size: int = 4,
    soft_prompt: torch.Tensor | None = None,
    progress: bool = True,
) -> PerplexityResult:
    """Perplexity of ``model`` on ``texts`` (see the module docstring for the windows).

    Example:
        >>> wiki = load_wikipedia()  # doctest: +SKIP
        >>> print(perplexity(model, tok, wiki.heldout))  # doctest: +SKIP
        perplexity 21.4 (64 x 512 tokens, 60.0 s)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    start = time.perf_counter()
    windows = token_windows(tokenizer, texts, seq_len, max_tokens)
    total = torch.zeros((), dtype=torch.float64)
    with torch.no_grad(), eval_mode(model):
        batches = windows.split(batch_size)
        for batch in tqdm(batches, desc="perplexity", disable=not progress):
            total += window_nll(model, batch, soft_prompt).double().sum().cpu()
    n_predicted = windows.shape[0] * (seq_len - 1)
    nll = total.item() / n_predicted
    return PerplexityResult(
        perplexity=math.exp(nll),
        nll=nll,
        n_predicted=n_predicted,
        n_windows=windows.shape[0],
        seq_len=seq_len,
        seconds=time.perf_counter() - start,
    )
