"""Sparse linears: masked (training), packed 2:4 (inference), and 2:4 + int4.

Example:
    >>> lin = torch.nn.Linear(64, 16)
    >>> s = Sparse24Linear.from_linear(lin)  # prunes by magnitude: lin is dense
    >>> s(torch.randn(2, 64)).shape, s.sparsity
    (torch.Size([2, 16]), 0.5)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.formats import sparse24_unpack
from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.nn.masks import is_24_mask, magnitude_mask_24
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear
from squeezeprompt.ops import masked_linear, sparse24_linear, sparse24_pack
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8


def _mask_24(weight: Tensor, mask: Tensor | None) -> Tensor:
    """The given 2:4 mask (checked), else the weight's own zeros if 2:4, else magnitude."""
    if mask is None:
        nonzero = weight != 0
        # More than half nonzero cannot be 2:4: skip the per-group check for dense weights.
        if 2 * int(nonzero.sum()) <= nonzero.numel() and is_24_mask(nonzero):
            return nonzero
        return magnitude_mask_24(weight)
    if mask.shape != weight.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"2:4 mask must be bool with the weight's shape {list(weight.shape)}, "
            f"got {mask.dtype} {list(mask.shape)}"
        )
    if not is_24_mask(mask):
        raise ValueError("2:4 mask keeps more than 2 of some group of 4 consecutive columns")
    return mask


@register_layer
class MaskedLinear(QuantizedLinearBase):
    """Training-time sparsity: a float weight times a fixed bool ``mask`` buffer.

    Masked weights get no gradient, so the pattern survives fine-tuning.

    Example:
        >>> m = MaskedLinear.from_linear(torch.nn.Linear(8, 4), torch.rand(4, 8) > 0.5)
        >>> m.weight.requires_grad, m.mask.dtype
        (True, torch.bool)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.register_buffer("mask", torch.ones(out_features, in_features, dtype=torch.bool))

    @classmethod
    def from_linear(cls, linear: nn.Linear, mask: Tensor) -> MaskedLinear:
        """Wraps ``linear`` (weight copied, dtype kept) with ``mask`` (True = keep)."""
        if mask.shape != linear.weight.shape or mask.dtype != torch.bool:
            raise ValueError(
                f"MaskedLinear: mask must be bool with the weight's shape "
                f"{list(linear.weight.shape)}, got {mask.dtype} {list(mask.shape)}"
            )
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        layer.weight.data = linear.weight.detach().clone()
        layer.mask.copy_(mask)
        layer._copy_bias(linear)
        return layer.to(linear.weight.device)

    @property
    def sparsity(self) -> float:
        return 1.0 - float(self.mask.float().mean())

    def forward(self, x: Tensor) -> Tensor:
        # The op wants weight and x in one dtype; cast only when they differ.
        w = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        return masked_linear(x, w, self.mask, self.bias)

    def dequantize(self) -> Tensor:
        return (self.weight * self.mask).float()

    def extra_repr(self) -> str:
        return f"{self._repr_common()}, sparsity={self.sparsity:.3f}, bytes={self.nbytes()}"


@register_layer
class Sparse24Linear(QuantizedLinearBase):
    """Packed 2:4 weight (``values[N, K/2]`` + ``meta``), values float or int8 per channel.

    Example:
        >>> s = Sparse24Linear.from_linear(torch.nn.Linear(32, 8), int8_values=True)
        >>> s.values.dtype, s.scales.shape
        (torch.int8, torch.Size([8]))
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, int8_values: bool = False
    ) -> None:
        super().__init__(in_features, out_features, bias)
        if in_features % 4:
            raise ValueError(
                f"Sparse24Linear: in_features must be a multiple of 4, got {in_features}"
            )
        self.int8_values = int8_values
        vdtype = torch.int8 if int8_values else torch.float32
        self.register_buffer("values", torch.zeros(out_features, in_features // 2, dtype=vdtype))
        meta_cols = (in_features // 4 + 1) // 2
        self.register_buffer("meta", torch.zeros(out_features, meta_cols, dtype=torch.uint8))
        self.register_buffer("scales", torch.ones(out_features) if int8_values else None)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, mask: Tensor | None = None, int8_values: bool = False
    ) -> Sparse24Linear:
        """Packs ``linear.weight * mask``; without a mask, prunes by magnitude unless the
        weight is already 2:4."""
        w = linear.weight.detach()
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, int8_values)
        values, meta = sparse24_pack(w * _mask_24(w, mask))
        if int8_values:
            q = quantize_int8(values)
            layer.values.copy_(q.qweight)
            layer.scales.copy_(q.scales)
        else:
            layer.values = values.clone()
        layer.meta.copy_(meta)
        layer._copy_bias(linear)
        return layer.to(w.device)

    def init_kwargs(self) -> dict[str, Any]:
        return {**super().init_kwargs(), "int8_values": self.int8_values}

    @property
    def sparsity(self) -> float:
        return 1.0 - float((self.dequantize() != 0).float().mean())

    def forward(self, x: Tensor) -> Tensor:
        return sparse24_linear(x, self.values, self.meta, self.scales, self.bias)

    def dequantize(self) -> Tensor:
        return sparse24_unpack(self.values, self.meta, self.scales).float()

    def extra_repr(self) -> str:
        values = "int8 per channel" if self.int8_values else str(self.values.dtype)
        return f"{self._repr_common()}, sparsity=2:4, values={values}, {self._repr_bytes()}"


@register_layer
class Sparse24Int4Linear(Int4WeightOnlyLinear):
    """2:4-pruned weight stored as **dense** group-wise int4.

    No packed 2:4-int4 op exists yet, so this runs the dense int4 kernel on a weight
    whose pruned entries are exact zeros (the int4 grids here represent 0 exactly):
    the accuracy is that of 2:4 + int4, but bytes and speed are those of dense int4.

    Example:
        >>> s = Sparse24Int4Linear.from_linear(torch.nn.Linear(64, 8), group_size=32)
        >>> (s.dequantize() != 0).float().mean().item() <= 0.5
        True
    """

    @classmethod
    def from_linear(  # type: ignore[override]
        cls,
        linear: nn.Linear,
        group_size: int = 128,
        symmetric: bool = False,
        mask: Tensor | None = None,
    ) -> Sparse24Int4Linear:
        w = linear.weight.detach()
        pruned = w * _mask_24(w, mask)
        q = quantize_int4(pruned, group_size=group_size, symmetric=symmetric)
        layer = cls.from_int4(q, linear.bias, symmetric=symmetric)
        assert isinstance(layer, Sparse24Int4Linear)
        return layer

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sparsity=2:4 (stored dense: no packed 2:4-int4 kernel)"
