"""Training batches for soft prompts, and the forward passes that read them.

Both sides reuse the evaluator's layout so that what is trained is exactly what is
later scored:

* ``LabelBatch``: an ``EncodedPrompt`` (chat head, soft prompt, instruction and
  demonstrations as a shared prefix) plus each example's ids and label. Its label
  log-likelihoods come from ``evaluate.label_log_probs`` over a prefix computed with
  the soft prompt, and are differentiable in it.
* ``TextBatch``: ``[batch, seq_len]`` windows of plain text (``evaluate.token_windows``);
  the soft prompt is prepended, as ``evaluate.perplexity`` does.

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
from squeezeprompt.evaluate.prefix import compute_prefix, model_device
from squeezeprompt.evaluate.scoring import label_log_probs
from squeezeprompt.prompt.soft import SoftPrompt


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


def label_log_likelihoods(model: Any, soft: SoftPrompt | None, batch: LabelBatch) -> Tensor:
    """``[B, num_labels]`` summed log-probabilities of each label word's tokens.

    Example (needs a model):
        >>> label_log_likelihoods(model, soft, batch).argmax(1)  # doctest: +SKIP
    """
    vectors = None if soft is None else soft.embeddings
    prefix = compute_prefix(model, batch.encoded, vectors)
    return label_log_probs(model, batch.encoded, prefix, batch.example_ids)


def text_logits(model: Any, soft: SoftPrompt | None, batch: TextBatch) -> Tensor:
    """Logits ``[B, T, vocab]`` at the text positions (soft positions dropped).

    Example (needs a model):
        >>> text_logits(model, None, batch).shape  # doctest: +SKIP
    """
    ids = batch.windows.to(model_device(model))
    if soft is None:
        return model(input_ids=ids, use_cache=False).logits
    embeds = soft.insert(model.get_input_embeddings()(ids), position=0)
    logits = model(inputs_embeds=embeds, use_cache=False).logits
    return logits[:, soft.num_tokens :]


def labels_tensor(labels: list[int]) -> Tensor:
    """Class labels as the ``long`` tensor ``LabelBatch`` expects."""
    return torch.tensor(labels, dtype=torch.long)
