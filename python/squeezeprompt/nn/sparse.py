"""Sparse linears: masked (training), packed 2:4 (inference), and packed 2:4 + int4.

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

from squeezeprompt.formats import (
    Int4Weight,
    sparse24_int4_pack,
    sparse24_int4_unpack,
    sparse24_unpack,
)
from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.nn.masks import is_24_mask, magnitude_mask_24
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear
from squeezeprompt.ops import masked_linear, sparse24_int4_linear, sparse24_linear, sparse24_pack
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
    """2:4 weight whose kept values are group-wise int4 codes, stored packed.

    Buffers: ``values[N, K/4]`` uint8 (the two kept codes of each group of 4 columns),
    the 2:4 ``meta``, and the int4 grid ``scales``/``zeros`` ``[N, K/group_size]`` over
    the original columns (layout in ``squeezeprompt.formats``); ``forward`` runs
    ``sparse24_int4_linear``. It is an :class:`Int4WeightOnlyLinear` in what it computes
    and in its grid (``group_size``, ``symmetric``, ``scales``, ``zeros``), so QAT and
    the config bookkeeping treat both alike; it has no dense ``qweight``.

    Example:
        >>> s = Sparse24Int4Linear.from_linear(torch.nn.Linear(64, 8), group_size=32)
        >>> s.values.shape, (s.dequantize() != 0).float().mean().item() <= 0.5
        (torch.Size([8, 16]), True)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        group_size: int = 128,
        symmetric: bool = False,
    ) -> None:
        # The parent's grid and checks, but not its dense codes: skip its __init__.
        QuantizedLinearBase.__init__(self, in_features, out_features, bias)
        self._init_grid(group_size, symmetric, columns_per_byte=4)
        # Codes 8 under zero points 8: an empty layer computes a zero weight.
        self.register_buffer(
            "values", torch.full((out_features, in_features // 4), 0x88, dtype=torch.uint8)
        )
        meta_cols = (in_features // 4 + 1) // 2
        self.register_buffer("meta", torch.zeros(out_features, meta_cols, dtype=torch.uint8))

    @classmethod
    def from_linear(  # type: ignore[override]
        cls,
        linear: nn.Linear,
        group_size: int = 128,
        symmetric: bool = False,
        mask: Tensor | None = None,
    ) -> Sparse24Int4Linear:
        """Prunes ``linear.weight`` to 2:4 (``mask``, else its own zeros if 2:4, else by
        magnitude), quantizes it round-to-nearest and packs the kept codes."""
        w = linear.weight.detach()
        keep = _mask_24(w, mask)
        q = quantize_int4(w * keep, group_size=group_size, symmetric=symmetric)
        return cls.from_int4(q, linear.bias, symmetric=symmetric, mask=keep)

    @classmethod
    def from_int4(  # type: ignore[override]
        cls,
        q: Int4Weight,
        bias: Tensor | None = None,
        symmetric: bool = False,
        mask: Tensor | None = None,
    ) -> Sparse24Int4Linear:
        """Packs an int4 weight whose pattern is 2:4 (GPTQ, AWQ, QAT after pruning).

        ``mask`` names the kept weights (the rest become exact zeros); without one the
        nonzeros of ``q.dequantize()`` are kept. Raises if the pattern is not 2:4.

        Example:
            >>> w = torch.randn(8, 64) * torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(16)
            >>> q = quantize_int4(w, group_size=32)
            >>> torch.equal(Sparse24Int4Linear.from_int4(q).dequantize(), q.dequantize())
            True
        """
        p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, q.group_size, mask)
        n, k = p.shape
        layer = cls(k, n, bias is not None, group_size=q.group_size, symmetric=symmetric)
        layer.values.copy_(p.values)
        layer.meta.copy_(p.meta)
        layer.scales.copy_(p.scales)
        layer.zeros.copy_(p.zeros)
        if bias is not None:
            assert layer.bias is not None
            layer.bias.data = bias.detach().float().clone()
        return layer.to(q.qweight.device)

    def forward(self, x: Tensor) -> Tensor:
        return sparse24_int4_linear(
            x, self.values, self.meta, self.scales, self.zeros, self.group_size, self.bias
        )

    def dequantize(self) -> Tensor:
        return sparse24_int4_unpack(
            self.values, self.meta, self.scales, self.zeros, self.group_size
        )

    def extra_repr(self) -> str:
        return (
            f"{self._repr_common()}, sparsity=2:4, bits=4, group_size={self.group_size}, "
            f"symmetric={self.symmetric}, {self._repr_bytes()}"
        )
