"""One-shot compression presets for the packaged models, by name.

Each preset compresses a model in place and returns it. The SmolLM2 end-to-end test
and ``bench/bench_models.py`` run the same set, so a result in one reads in the other.

Example:
    >>> from squeezeprompt.models.presets import PRESETS
    >>> sorted(PRESETS)[:3]
    ['2:4', '2:4+int4', '2:4+int8']
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from squeezeprompt.models.sparse_presets import SPARSE24_INT4_LINEARS, sparsegpt_24_
from squeezeprompt.nn import (
    Int4Dynamic,
    Int4WeightOnly,
    Int8Dynamic,
    Int8WeightOnly,
    LinearFilter,
    SemiStructured24,
    SparseValues,
    quantize_,
)
from squeezeprompt.nn.filter import DEFAULT_EXCLUDE

HEAD = DEFAULT_EXCLUDE  # what the default filter leaves out is exactly the output head


def _g128_else_64(model: nn.Module, config: type, exclude: tuple[str, ...]) -> nn.Module:
    """``config`` at group 128 where it divides in_features, 64 elsewhere."""
    quantize_(
        model,
        config(group_size=128),
        LinearFilter(exclude=exclude, predicate=lambda name, mod: mod.in_features % 128 == 0),
    )
    return quantize_(model, config(group_size=64), LinearFilter(exclude=exclude))


def int4_g128(model: nn.Module) -> nn.Module:
    """int4 at group 128 where it divides in_features (SmolLM2's 576-wide inputs need 64)."""
    return _g128_else_64(model, Int4WeightOnly, DEFAULT_EXCLUDE)


def int4_g128_head(model: nn.Module) -> nn.Module:
    """:func:`int4_g128`, plus the output head as int8 weight-only (per channel).

    As in :func:`w4a8_head`: the head of a tied model gets its own packed copy, so a
    decode step reads a 28 MB int8 head instead of the 113 MB float one, which otherwise
    dominates an int4 model's decode. Activations stay float throughout.

    Example:
        >>> from squeezeprompt.models.presets import PRESETS
        >>> PRESETS["int4_g128+head"] is int4_g128_head
        True
    """
    int4_g128(model)
    return quantize_(model, Int8WeightOnly(), LinearFilter(include=HEAD, exclude=()))


def w4a8(model: nn.Module) -> nn.Module:
    """int4 weights as in :func:`int4_g128`, times activations rounded per token to int8."""
    return _g128_else_64(model, Int4Dynamic, DEFAULT_EXCLUDE)


def w4a8_head(model: nn.Module) -> nn.Module:
    """:func:`w4a8`, plus the output head as int8 weight-only (per channel).

    The head of a tied model gets its own packed copy; the token embedding it was tied
    to stays float, so the model grows by the int8 head (28 MB for SmolLM2) while a
    decode step no longer reads the float head (113 MB). int8 keeps the head's logits
    nearly exact (SmolLM2 held-out perplexity 49.94 vs 49.93 without it); int4 there
    cost far more (57.4 at group 64, 54.2 at group 32): see :func:`w4a8_head4`.
    """
    w4a8(model)
    return quantize_(model, Int8WeightOnly(), LinearFilter(include=HEAD, exclude=()))


def w4a8_head4(model: nn.Module) -> nn.Module:
    """:func:`w4a8` on every Linear including the output head (W4A8 at group 64 there).

    The fastest decode and the smallest head (18 MB), at a real cost in accuracy: the
    head's int4 rounding raised SmolLM2's held-out perplexity from 49.9 to 57.4.
    """
    return _g128_else_64(model, Int4Dynamic, ())


def sparse24(model: nn.Module) -> nn.Module:
    """2:4 (float values) on 43.75% of the Linear weights, SparseGPT-calibrated; rest fp32.

    2:4 on every Linear leaves SmolLM2 incoherent with every mask this package computes;
    this prunes ``q_proj`` and ``o_proj`` of every block and the MLP of blocks 11-20
    (why: :mod:`squeezeprompt.models.sparse_presets`). SmolLM2 held-out perplexity
    53.7 (dense 35.05; magnitude 2:4 on every Linear 2632), and it still answers
    "The capital of France is Paris, ...". Calibration: about 45 s of one CPU thread.
    """
    return sparsegpt_24_(model, SemiStructured24())


def sparse24_int8(model: nn.Module) -> nn.Module:
    """:func:`sparse24` with int8 values (per channel); every other Linear int8 weight-only.

    SmolLM2 held-out perplexity 54.2.
    """
    sparsegpt_24_(model, SemiStructured24(values=SparseValues.INT8))
    return quantize_(model, Int8WeightOnly())


def sparse24_int4(model: nn.Module) -> nn.Module:
    """2:4 with int4 values (group 64, rounded inside the SparseGPT sweep) on 38.75% of
    the Linear weights; every other Linear int4 as in :func:`int4_g128`.

    The MLP of blocks 12-19 only, one block fewer at each end than :func:`sparse24`:
    the int4 rounding of the rest costs accuracy of its own (int4_g128 alone: held-out
    perplexity 48.2), and with blocks 11-20 the model answered "The capital of France is
    France". SmolLM2 held-out perplexity 66.4.
    """
    config = SemiStructured24(values=SparseValues.INT4, group_size=64)
    sparsegpt_24_(model, config, SPARSE24_INT4_LINEARS)
    return int4_g128(model)


PRESETS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "int8": lambda m: quantize_(m, Int8WeightOnly()),
    "int4_g128": int4_g128,
    "int4_g128+head": int4_g128_head,
    "w4a8": w4a8,
    "w4a8+head": w4a8_head,
    "w4a8+head4": w4a8_head4,
    "w8a8": lambda m: quantize_(m, Int8Dynamic()),
    "bf16": lambda m: m.to(torch.bfloat16),
    "2:4": sparse24,
    "2:4+int8": sparse24_int8,
    "2:4+int4": sparse24_int4,
}
