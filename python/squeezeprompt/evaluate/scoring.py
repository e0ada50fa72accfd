"""Label log-likelihood scoring: which label word does the model find most likely?

For each example the model reads ``prefix + example`` and we sum the log-probabilities
of each label word's tokens at the point where the answer starts. The predicted label
is the argmax. Batches hold one row per distinct (example, label-context): when every
label word is a single token, that is one row per example, scored in one pass.

Rows are right-padded. No attention mask is needed: attention is causal, so a real
token never sees the padding that follows it, and positions continue from the prefix.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from squeezeprompt.data.tasks import Example
from squeezeprompt.evaluate.encode import EncodedPrompt, encode_prompt
from squeezeprompt.evaluate.prefix import (
    PrefixState,
    cache_kwargs,
    compute_prefix,
    model_device,
)
from squeezeprompt.evaluate.prompt import Prompt
from squeezeprompt.evaluate.runtime import eval_mode


@dataclass(frozen=True)
class ScoreResult:
    """Per-example predictions and label log-likelihoods (``log_probs[i, label]``)."""

    predictions: tuple[int, ...]
    log_probs: torch.Tensor  # [num_examples, num_labels], float64, on CPU

    def correct(self, examples: Sequence[Example]) -> tuple[bool, ...]:
        """Whether each prediction matches its example's label."""
        return tuple(p == ex.label for p, ex in zip(self.predictions, examples, strict=True))


def _logits_at(
    model: Any, batch: torch.Tensor, cache: Any, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the listed positions only, and each position's column in them.

    The vocabulary projection costs about a fifth of a small model's forward pass, and
    only the answer positions are read. Rows of a batch have similar lengths, so the
    union of their answer positions is a few columns. Models whose forward lacks
    ``logits_to_keep`` get full logits.
    """
    kwargs = cache_kwargs(model, cache)
    if not _accepts_logits_to_keep(type(model)):
        return model(input_ids=batch, **kwargs).logits, positions
    keep, column = torch.unique(positions, return_inverse=True)
    return model(input_ids=batch, logits_to_keep=keep, **kwargs).logits, column


@functools.lru_cache(maxsize=32)
def _accepts_logits_to_keep(model_type: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters


def label_log_probs(
    model: Any,
    encoded: EncodedPrompt,
    prefix: PrefixState,
    example_ids: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Log-likelihood of every label word after each example: ``[len(example_ids), L]``.

    Differentiable (through the prefix, e.g. into a soft prompt) unless under ``no_grad``.

    Example:
        >>> enc = encode_prompt(prompt, tok, ("negative", "positive"))  # doctest: +SKIP
        >>> prefix = compute_prefix(model, enc)  # doctest: +SKIP
        >>> lp = label_log_probs(model, enc, prefix, [enc.example_ids(tok, "Fun")])  # doctest:+SKIP
        >>> lp.shape  # doctest: +SKIP
        torch.Size([1, 2])
    """
    # One row per distinct context; label l of example i reads row rows_of[i][l].
    row_index: dict[tuple[int, ...], int] = {}
    rows: list[tuple[int, ...]] = []
    targets: list[tuple[int, int, int, int]] = []  # (example, label, row, position)
    target_ids: list[int] = []
    for i, ids in enumerate(example_ids):
        if not ids:
            raise ValueError(f"example {i} encodes to no tokens")
        for label, word_ids in enumerate(encoded.label_ids):
            context = tuple(ids) + word_ids[:-1]
            row = row_index.setdefault(context, len(rows))
            if row == len(rows):
                rows.append(context)
            for k, token in enumerate(word_ids):
                targets.append((i, label, row, len(ids) - 1 + k))
                target_ids.append(token)
    device = model_device(model)
    width = max(len(r) for r in rows)
    batch = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for r, context in enumerate(rows):
        batch[r, : len(context)] = torch.tensor(context, dtype=torch.long)
    cache = prefix.expanded(len(rows), model.config)
    t = torch.tensor(targets, dtype=torch.long, device=device)
    logits, column = _logits_at(model, batch, cache, t[:, 3])
    picked = logits[t[:, 2], column].float().log_softmax(dim=-1)
    token_lp = picked.gather(1, torch.tensor(target_ids, device=device)[:, None])[:, 0]
    out = torch.zeros(len(example_ids), len(encoded.label_ids), device=device)
    return out.index_put((t[:, 0], t[:, 1]), token_lp, accumulate=True)


def score_examples(
    model: Any,
    tokenizer: Any,
    prompt: Prompt,
    examples: Sequence[Example],
    label_words: Sequence[str],
    batch_size: int = 16,
    soft_prompt: torch.Tensor | None = None,
    progress: bool = False,
    deep_prompt: PrefixState | None = None,
) -> ScoreResult:
    """Predict a label for each example by label-word log-likelihood.

    The prompt prefix (and ``soft_prompt``, ``[num_virtual_tokens, hidden]``, placed
    after the chat template's opening) is run once, on top of ``deep_prompt`` (learned
    per-layer keys/values, ``PrefixPrompt.state``) when given; examples are batched by
    length.

    Example:
        >>> task = load_task()  # doctest: +SKIP
        >>> prompt = default_prompt(task)  # doctest: +SKIP
        >>> r = score_examples(model, tok, prompt, task.test[:8], task.label_words)  # doctest:+SKIP
        >>> len(r.predictions), r.log_probs.shape  # doctest: +SKIP
        (8, torch.Size([8, 2]))
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    encoded = encode_prompt(prompt, tokenizer, label_words)
    for ex in examples:
        if ex.label >= len(label_words):
            raise ValueError(f"example label {ex.label} has no word in {tuple(label_words)}")
    ids = [encoded.example_ids(tokenizer, ex.text) for ex in examples]
    # Batch examples of similar length together so padding stays small.
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    result = torch.empty(len(ids), len(label_words), dtype=torch.float64)
    with torch.no_grad(), eval_mode(model):
        prefix = compute_prefix(model, encoded, soft_prompt, deep_prompt)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="scoring", disable=not progress):
            chunk = order[start : start + batch_size]
            lp = label_log_probs(model, encoded, prefix, [ids[i] for i in chunk])
            result[chunk] = lp.double().cpu()
    predictions = tuple(int(i) for i in result.argmax(dim=1)) if len(ids) else ()
    return ScoreResult(predictions=predictions, log_probs=result)
