"""Turning a task and a prompt (or plain text) into soft-prompt training batches.

The token layout is the evaluator's (``evaluate.encode_prompt``, ``token_windows``),
so a soft prompt trained here sits exactly where the evaluator's ``soft_prompt``
argument puts it: after the chat-template head, before the instruction (task side),
or before the text (language-modelling side).

Example (needs a tokenizer):
    >>> batches = label_batches(tok, Prompt(task.default_instruction), task.train[:64],
    ...                         task.label_words, batch_size=8, rng=random.Random(0))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from squeezeprompt.data.tasks import Example
from squeezeprompt.evaluate.encode import encode_prompt, encode_text
from squeezeprompt.evaluate.perplexity import token_windows
from squeezeprompt.evaluate.prompt import Prompt
from squeezeprompt.prompt.soft_batches import LabelBatch, TextBatch, labels_tensor


def label_batches(
    tokenizer: Any,
    prompt: Prompt,
    examples: Sequence[Example],
    label_words: Sequence[str],
    batch_size: int,
    rng: random.Random | None = None,
) -> list[LabelBatch]:
    """Encode ``examples`` under ``prompt`` in batches; shuffle with ``rng`` (None: keep order)."""
    if batch_size < 1:
        raise ValueError(f"label_batches: batch_size must be >= 1, got {batch_size}")
    encoded = encode_prompt(prompt, tokenizer, label_words)
    order = list(range(len(examples)))
    if rng is not None:
        rng.shuffle(order)
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        ids = tuple(tuple(encoded.example_ids(tokenizer, ex.text)) for ex in chunk)
        batches.append(LabelBatch(encoded, ids, labels_tensor([ex.label for ex in chunk])))
    return batches


def text_batches(
    tokenizer: Any, texts: Sequence[str], seq_len: int, batch_size: int, max_tokens: int
) -> list[TextBatch]:
    """``[batch_size, seq_len]`` windows of the concatenated texts, ``max_tokens`` at most."""
    if batch_size < 1:
        raise ValueError(f"text_batches: batch_size must be >= 1, got {batch_size}")
    windows = token_windows(tokenizer, texts, seq_len, max_tokens)
    return [TextBatch(w) for w in windows.split(batch_size)]


def init_token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids to initialise a soft prompt from (an instruction, or words joined by spaces).

    Example (needs a tokenizer):
        >>> init_token_ids(tok, "positive negative review")  # doctest: +SKIP
        [28338, 4333, 2375]
    """
    ids = encode_text(tokenizer, text)
    if not ids:
        raise ValueError(f"init_token_ids: {text!r} encodes to no tokens")
    return ids
