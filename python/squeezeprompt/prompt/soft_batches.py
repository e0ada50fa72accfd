"""Training batches for soft prompts, and the forward passes that read them.

Both sides reuse the evaluator's layout so that what is trained is exactly what is
later scored:

* ``LabelBatch``: an ``EncodedPrompt`` (chat head, soft prompt, instruction and
  demonstrations as a shared prefix) plus each example's ids and label. Its label
  log-likelihoods come from ``evaluate.label_log_probs`` over a prefix computed with
  the soft prompt, and are differentiable in it.
* ``TextBatch``: ``[batch, seq_len]`` windows of plain text (``evaluate.token_windows``);
  the soft prompt is prepended, as ``evaluate.perplexity`` does.

The learned prompt is either a ``SoftPrompt`` (input embeddings after the chat head) or
a ``PrefixPrompt`` (per-layer keys/values before everything); both train with the
same loop (``soft_train``) because only these forward passes tell them apart.

Example:
    >>> import torch
    >>> TextBatch(torch.zeros(2, 8, dtype=torch.long)).windows.shape
    torch.Size([2, 8])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from squeezeprompt.evaluate.encode import EncodedPrompt
from squeezeprompt.evaluate.prefix import PrefixState, cache_kwargs, compute_prefix, model_device
from squeezeprompt.evaluate.scoring import label_log_probs
from squeezeprompt.prompt.prefix import PrefixPrompt
from squeezeprompt.prompt.soft import SoftPrompt

LearnedPrompt = SoftPrompt | PrefixPrompt


@dataclass(frozen=True)
class LabelBatch:
    """Examples (as token ids after the shared prefix) and their class labels."""

    encoded: EncodedPrompt
    example_ids: tuple[tuple[int, ...], ...]
    labels: Tensor  # [B] class index into encoded.label_ids

    def __post_init__(self) -> None:
        if self.labels.shape != (len(self.example_ids),):
            raise ValueError(
                f"LabelBatch: expected labels of shape [{len(self.example_ids)}], "
                f"got {list(self.labels.shape)}"
            )
        if len(self.labels) and int(self.labels.max()) >= len(self.encoded.label_ids):
            raise ValueError(
                f"LabelBatch: label {int(self.labels.max())} has no label word "
                f"({len(self.encoded.label_ids)} label words)"
            )


@dataclass(frozen=True)
class TextBatch:
    """Full windows of text ``[batch, seq_len]`` (no padding)."""

    windows: Tensor


def shared_prefix(model: Any, learned: LearnedPrompt | None, encoded: EncodedPrompt) -> PrefixState:
    """The prompt's shared prefix with ``learned`` where the evaluator puts it.

    Example (needs a model):
        >>> shared_prefix(model, None, batch.encoded).length  # doctest: +SKIP
        41
    """
    if isinstance(learned, PrefixPrompt):
        return compute_prefix(model, encoded, deep_prompt=learned.state(model))
    return compute_prefix(model, encoded, None if learned is None else learned.embeddings)


def label_log_likelihoods(model: Any, soft: LearnedPrompt | None, batch: LabelBatch) -> Tensor:
    """``[B, num_labels]`` summed log-probabilities of each label word's tokens.

    Example (needs a model):
        >>> label_log_likelihoods(model, soft, batch).argmax(1)  # doctest: +SKIP
    """
    prefix = shared_prefix(model, soft, batch.encoded)
    return label_log_probs(model, batch.encoded, prefix, batch.example_ids)


def text_logits(model: Any, soft: LearnedPrompt | None, batch: TextBatch) -> Tensor:
    """Logits ``[B, T, vocab]`` at the text positions (virtual positions dropped).

    Example (needs a model):
        >>> text_logits(model, None, batch).shape  # doctest: +SKIP
    """
    ids = batch.windows.to(model_device(model))
    if soft is None:
        return model(input_ids=ids, use_cache=False).logits
    if isinstance(soft, PrefixPrompt):
        cache = soft.state(model).expanded(ids.shape[0], model.config)
        return model(input_ids=ids, **cache_kwargs(model, cache)).logits
    embeds = soft.insert(model.get_input_embeddings()(ids), position=0)
    logits = model(inputs_embeds=embeds, use_cache=False).logits
    return logits[:, soft.num_tokens :]


def labels_tensor(labels: list[int]) -> Tensor:
    """Class labels as the ``long`` tensor ``LabelBatch`` expects."""
    return torch.tensor(labels, dtype=torch.long)
