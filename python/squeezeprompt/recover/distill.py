"""Logit distillation: pull the compressed model's next-token distribution to the dense one's.

Hinton et al., "Distilling the Knowledge in a Neural Network" (2015). The loss is
``T^2 * KL(softmax(t / T) || softmax(s / T))`` per token, averaged over the tokens
that count; the ``T^2`` keeps gradient magnitudes comparable across temperatures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    mask: Tensor | None = None,
) -> Tensor:
    """Mean per-token ``T^2 KL(teacher || student)`` over logits ``[..., vocab]``.

    ``mask`` (shape ``[...]``, bool or 0/1) selects the tokens that count, e.g. the
    attention mask; the teacher gets no gradient.

    Example:
        >>> z = torch.randn(2, 5, 10)
        >>> distillation_loss(z, z).item()
        0.0
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "distillation_loss: student and teacher logits must have the same shape, got "
            f"{list(student_logits.shape)} and {list(teacher_logits.shape)}"
        )
    if not temperature > 0:
        raise ValueError(f"distillation_loss: temperature must be > 0, got {temperature}")
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    per_token = (log_t.exp() * (log_t - log_s)).sum(dim=-1) * temperature**2
    if mask is None:
        return per_token.mean()
    if mask.shape != per_token.shape:
        raise ValueError(
            f"distillation_loss: mask must have shape {list(per_token.shape)} (logits without "
            f"the vocab dim), got {list(mask.shape)}"
        )
    weight = mask.to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp(min=1.0)


def distill_loss_fn(
    teacher: nn.Module, temperature: float = 1.0
) -> Callable[[nn.Module, Mapping[str, Any]], Tensor]:
    """A ``loss_fn(student, batch)`` for :func:`squeezeprompt.recover.train.train`.

    ``batch`` is a dict of model inputs (``input_ids``, optional ``attention_mask``);
    both models must return an object with ``.logits`` (transformers causal LMs do).

    Example:
        >>> from transformers import LlamaConfig, LlamaForCausalLM
        >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
        ...                   num_hidden_layers=1, num_attention_heads=2)
        >>> m = LlamaForCausalLM(cfg)
        >>> distill_loss_fn(m)(m, {"input_ids": torch.randint(0, 32, (1, 6))}).item()
        0.0
    """

    def loss_fn(student: nn.Module, batch: Mapping[str, Any]) -> Tensor:
        with torch.no_grad():
            teacher_logits = teacher(**batch).logits
        student_logits = student(**batch).logits
        return distillation_loss(
            student_logits, teacher_logits, temperature, mask=batch.get("attention_mask")
        )

    return loss_fn
