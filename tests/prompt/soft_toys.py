"""A tiny random Llama and problems with a known optimal soft prompt.

The targets come from the same frozen model reading a hidden soft prompt ``S*``:
a trained soft prompt can match them exactly (KL 0, all labels right), so "training
reduces the loss" is measured against a reachable optimum, not a hope.
"""

from __future__ import annotations

import copy
import random
from types import SimpleNamespace

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from squeezeprompt.evaluate.encode import EncodedPrompt
from squeezeprompt.evaluate.prompt import PromptParts
from squeezeprompt.prompt.soft import SoftPrompt
from squeezeprompt.prompt.soft_batches import LabelBatch, TextBatch, label_log_likelihoods
from squeezeprompt.quantize.rtn import quantize_int4

VOCAB = 64
HIDDEN = 32


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # the default 0.02 gives near-uniform outputs: nothing to fit
    )
    return LlamaForCausalLM(config).eval()


def hidden_prompt(num_tokens: int = 4, seed: int = 1) -> SoftPrompt:
    g = torch.Generator().manual_seed(seed)
    return SoftPrompt(torch.randn(num_tokens, HIDDEN, generator=g) * 0.5)


def encoded(head: tuple[int, ...] = (1, 2, 3), body: tuple[int, ...] = (4, 5)) -> EncodedPrompt:
    # Token-level prompt: the text parts are unused when example ids are given directly.
    return EncodedPrompt(
        parts=PromptParts("", "", "", "", ""),
        head_ids=head,
        body_ids=body,
        label_ids=((10, 12), (11, 12)),  # two-token label words: the summed path
    )


def random_rows(n: int, seed: int) -> tuple[tuple[int, ...], ...]:
    rng = random.Random(seed)
    return tuple(
        tuple(rng.randrange(13, VOCAB) for _ in range(rng.randint(2, 7))) for _ in range(n)
    )


@torch.no_grad()
def label_batches_from(
    model: nn.Module, target: SoftPrompt, n_batches: int, seed: int
) -> list[LabelBatch]:
    """Batches labelled by what ``model`` answers when it reads ``target``."""
    batches = []
    for b in range(n_batches):
        rows = random_rows(8, seed * 100 + b)
        probe = LabelBatch(encoded(), rows, torch.zeros(len(rows), dtype=torch.long))
        labels = label_log_likelihoods(model, target, probe).argmax(dim=1)
        batches.append(LabelBatch(encoded(), rows, labels))
    return batches


def text_batches(n_batches: int, seed: int, batch: int = 4, seq: int = 12) -> list[TextBatch]:
    g = torch.Generator().manual_seed(seed)
    return [TextBatch(torch.randint(0, VOCAB, (batch, seq), generator=g)) for _ in range(n_batches)]


class ReadsHiddenPrompt(nn.Module):
    """A teacher: the frozen model reading ``target`` before every text."""

    def __init__(self, model: nn.Module, target: SoftPrompt) -> None:
        super().__init__()
        self.model = model
        self.target = target

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> SimpleNamespace:
        embeds = self.target.insert(self.model.get_input_embeddings()(input_ids), 0)
        logits = self.model(inputs_embeds=embeds, use_cache=False).logits
        return SimpleNamespace(logits=logits[:, self.target.num_tokens :])


class _Int4Linear(nn.Module):
    """Test-only stand-in for the int4 layer: calls our op, keeps the dequantized copy."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        q = quantize_int4(linear.weight.detach(), group_size=16)
        self.q = q
        self.dequantized = q.dequantize()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.q
        return torch.ops.squeezeprompt.int4_weight_linear(
            x, q.qweight, q.scales, q.zeros, q.group_size, None
        )


def _swap_linears(model: nn.Module, make) -> None:
    for name, child in model.named_children():
        if isinstance(child, nn.Linear) and name != "lm_head":
            setattr(model, name, make(child))
        else:
            _swap_linears(child, make)


def int4_and_dense_twins() -> tuple[nn.Module, nn.Module]:
    """The tiny Llama with every Linear but the head on our int4 op, and a copy with
    the same (dequantized) weights as plain Linears: gradients must agree."""
    import squeezeprompt  # noqa: F401  (registers torch.ops.squeezeprompt)

    quantized = tiny_llama()
    _swap_linears(quantized, _Int4Linear)
    reference = copy.deepcopy(quantized)

    def dense(layer: nn.Module) -> nn.Linear:  # the same weights as a plain Linear
        out = nn.Linear(HIDDEN, 1, bias=False)
        out.weight = nn.Parameter(layer.dequantized.clone(), requires_grad=False)
        return out

    for layer in list(reference.modules()):
        for child_name, child in list(layer.named_children()):
            if isinstance(child, _Int4Linear):
                setattr(layer, child_name, dense(child))
    assert not any(isinstance(m, _Int4Linear) for m in reference.modules())
    return quantized, reference
