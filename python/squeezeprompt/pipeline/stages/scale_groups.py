"""Where AWQ and SmoothQuant put their per-input-channel scales in a Llama-style block.

Dividing the input of a Linear by ``s`` and multiplying its weight columns by ``s``
leaves the function unchanged; the division is folded into whatever writes that input
(:mod:`squeezeprompt.quantize.fold`). In a Llama block four tensors are written by one
module and read by Linears only, so four groups share one scale vector each:

=============================  ================================
source (divides its output)    members (columns scaled)
=============================  ================================
``input_layernorm``            ``q_proj``, ``k_proj``, ``v_proj``
``self_attn.v_proj``           ``self_attn.o_proj``
``post_attention_layernorm``   ``mlp.gate_proj``, ``mlp.up_proj``
``mlp.up_proj``                ``mlp.down_proj``
=============================  ================================

``v_proj -> o_proj`` passes through attention, which mixes tokens but not channels, so
a per-channel scale commutes with it. With grouped-query attention each value channel
feeds ``repeat`` query heads; the scale of ``o_proj``'s inputs is then tied across those
heads (AWQ's reference code skips the pair in that case; tying keeps it, and reduces to
AWQ's rule when ``repeat == 1``).

Example:
    >>> from transformers import LlamaConfig, LlamaForCausalLM
    >>> cfg = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...                   num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
    >>> groups = llama_groups("model.layers.0", LlamaForCausalLM(cfg).model.layers[0])
    >>> [(g.source.rsplit(".", 1)[-1], g.repeat) for g in groups]
    [('input_layernorm', 1), ('v_proj', 2), ('post_attention_layernorm', 1), ('up_proj', 1)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from squeezeprompt.nn.sparse import MaskedLinear
from squeezeprompt.quantize.fold import (
    fold_into_linear_outputs,
    fold_into_norm,
    scale_weight_inputs,
)

# Norms computing ``weight * x / rms(x)``, with no bias and no ``1 + weight`` offset:
# only for those is dividing ``weight`` by ``s`` the same as dividing the output.
FOLDABLE_NORMS = frozenset({"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen3RMSNorm"})


@dataclass(frozen=True)
class ScaleGroup:
    """Linears reading one tensor (``members``) and the module writing it (``source``).

    Names are qualified in the model. A scale vector lives in the members' input space
    (``[K]``); ``repeat > 1`` means source channel ``kv * head_dim + i`` feeds member
    channels ``(kv * repeat + r) * head_dim + i`` for every ``r < repeat``.

    Example:
        >>> g = ScaleGroup("v", ("o",), repeat=2, head_dim=1)
        >>> g.expand(torch.tensor([1.0, 2.0])).tolist()
        [1.0, 1.0, 2.0, 2.0]
    """

    source: str
    members: tuple[str, ...]
    repeat: int = 1
    head_dim: int = 1

    def _heads(self, k: int) -> int:
        return k // (self.repeat * self.head_dim)

    def expand(self, t: Tensor) -> Tensor:
        """Source-space ``[C]`` -> member-space ``[C * repeat]`` (each value repeated per head)."""
        if self.repeat == 1:
            return t
        kv = t.numel() // self.head_dim
        return t.view(kv, 1, self.head_dim).expand(kv, self.repeat, self.head_dim).reshape(-1)

    def reduce(self, v: Tensor, how: Literal["mean", "max"]) -> Tensor:
        """Member-space ``[K]`` -> source-space, by mean or max over the tied heads.

        Example:
            >>> ScaleGroup("v", ("o",), 2, 1).reduce(torch.tensor([1.0, 3.0, 2.0, 2.0]), "max")
            tensor([3., 2.])
        """
        if self.repeat == 1:
            return v
        tied = v.view(self._heads(v.numel()), self.repeat, self.head_dim)
        return (tied.mean(1) if how == "mean" else tied.amax(1)).reshape(-1)

    def tie_columns(self, weight: Tensor) -> Tensor:
        """``[N, K]`` -> ``[N * repeat, K / repeat]``: tied columns become extra rows, so a
        per-column statistic of the result is one per source channel.

        Example:
            >>> ScaleGroup("v", ("o",), 2, 1).tie_columns(torch.tensor([[1.0, 2.0]])).tolist()
            [[1.0], [2.0]]
        """
        if self.repeat == 1:
            return weight
        n, k = weight.shape
        tied = weight.reshape(n, self._heads(k), self.repeat, self.head_dim).permute(0, 2, 1, 3)
        return tied.reshape(n * self.repeat, k // self.repeat)

    def source_scales(self, s: Tensor) -> Tensor:
        """The source-space vector of a member-space scale built by :meth:`expand`.

        Example:
            >>> ScaleGroup("v", ("o",), 2, 1).source_scales(torch.tensor([1.0, 1.0, 2.0, 2.0]))
            tensor([1., 2.])
        """
        if self.repeat == 1:
            return s
        return s.view(self._heads(s.numel()), self.repeat, self.head_dim)[:, 0].reshape(-1)


def _child(module: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        module = getattr(module, part, None)  # type: ignore[assignment]
        if module is None:
            return None
    return module


def llama_groups(prefix: str, block: nn.Module) -> list[ScaleGroup]:
    """The four scale groups of a Llama-style decoder block named ``prefix``.

    Raises ``ValueError`` naming what is missing for other block layouts (fused
    ``qkv_proj``, LayerNorm with bias, Gemma's ``1 + weight`` norm...).

    Example: see the module docstring.
    """
    needed = (
        "input_layernorm",
        "post_attention_layernorm",
        *(f"self_attn.{p}_proj" for p in "qkvo"),
        *(f"mlp.{p}_proj" for p in ("gate", "up", "down")),
    )
    parts = {path: _child(block, path) for path in needed}
    missing = [p for p, m in parts.items() if m is None]
    if missing:
        raise ValueError(
            f"{prefix} ({type(block).__name__}) is not a Llama-style block: no {missing[0]}"
        )
    for norm in ("input_layernorm", "post_attention_layernorm"):
        cls = type(parts[norm]).__name__
        if cls not in FOLDABLE_NORMS:
            raise ValueError(
                f"{prefix}.{norm} is a {cls}; scales fold only into {sorted(FOLDABLE_NORMS)}"
            )
    v, o = parts["self_attn.v_proj"], parts["self_attn.o_proj"]
    repeat, rest = divmod(o.in_features, v.out_features)
    head_dim = int(getattr(_child(block, "self_attn"), "head_dim", 0))
    if rest or (repeat > 1 and (head_dim <= 0 or v.out_features % head_dim)):
        raise ValueError(
            f"{prefix}: o_proj reads {o.in_features} channels, v_proj writes "
            f"{v.out_features} (head_dim {head_dim}): not a whole number of heads each"
        )

    def q(path: str) -> str:
        return f"{prefix}.{path}"

    return [
        ScaleGroup(q("input_layernorm"), tuple(q(f"self_attn.{p}_proj") for p in "qkv")),
        ScaleGroup(q("self_attn.v_proj"), (q("self_attn.o_proj"),), repeat, head_dim or 1),
        ScaleGroup(q("post_attention_layernorm"), (q("mlp.gate_proj"), q("mlp.up_proj"))),
        ScaleGroup(q("mlp.up_proj"), (q("mlp.down_proj"),)),
    ]


@torch.no_grad()
def fold_group(model: nn.Module, group: ScaleGroup, s: Tensor) -> None:
    """Multiplies every member's weight columns by ``s`` and divides the source's output
    channels by it, in place: the model computes the same function (up to rounding).

    Example:
        >>> m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
        >>> x = torch.randn(3, 2); before = m(x)
        >>> fold_group(m, ScaleGroup("0", ("1",)), torch.tensor([4.0, 0.5]))
        >>> torch.allclose(m(x), before, atol=1e-6)
        True
    """
    source = model.get_submodule(group.source)
    t = group.source_scales(s)
    if isinstance(source, (nn.Linear, MaskedLinear)):
        w, b = fold_into_linear_outputs(source.weight, source.bias, t)
        source.weight.copy_(w)
        if b is not None:
            source.bias.copy_(b)
    elif type(source).__name__ in FOLDABLE_NORMS:
        source.weight.copy_(fold_into_norm(source.weight, t))
    else:
        raise TypeError(f"fold_group: cannot divide the output of {group.source} ({source!r})")
    for name in group.members:
        member = model.get_submodule(name)
        if not isinstance(member, (nn.Linear, MaskedLinear)):
            raise TypeError(f"fold_group: {name} is a {type(member).__name__}, not a float Linear")
        member.weight.copy_(scale_weight_inputs(member.weight, s))
