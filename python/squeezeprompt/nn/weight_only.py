"""Weight-only quantized linears: int8 per channel and int4 per group.

Example:
    >>> lin = torch.nn.Linear(256, 64)
    >>> q = Int4WeightOnlyLinear.from_linear(lin, group_size=128)
    >>> q(torch.randn(2, 256)).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from squeezeprompt.formats import Int4Weight, dequantize_int4
from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.ops import int4_weight_linear, int8_weight_linear
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8


@register_layer
class Int8WeightOnlyLinear(QuantizedLinearBase):
    """``y = x @ (qweight * scales[:, None]).T + bias`` with symmetric per-channel int8.

    Example:
        >>> q = Int8WeightOnlyLinear.from_linear(torch.nn.Linear(16, 8))
        >>> q.qweight.dtype, q(torch.randn(3, 16, dtype=torch.bfloat16)).dtype
        (torch.int8, torch.bfloat16)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scales", torch.ones(out_features))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        """Round-to-nearest int8 of ``linear.weight`` (see ``quantize.rtn.quantize_int8``)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        q = quantize_int8(linear.weight.detach())
        layer.qweight.copy_(q.qweight)
        layer.scales.copy_(q.scales)
        layer._copy_bias(linear)
        return layer.to(linear.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        return int8_weight_linear(x, self.qweight, self.scales, self.bias)

    def dequantize(self) -> Tensor:
        return self.qweight.float() * self.scales.float()[:, None]

    def extra_repr(self) -> str:
        return f"{self._repr_common()}, bits=8, per_channel=True, {self._repr_bytes()}"


@register_layer
class Int4WeightOnlyLinear(QuantizedLinearBase):
    """Group-wise int4: ``w = (code - zero) * scale`` per ``group_size`` input columns.

    Example:
        >>> q = Int4WeightOnlyLinear.from_linear(torch.nn.Linear(64, 8), group_size=32)
        >>> q.qweight.shape, q.scales.shape
        (torch.Size([8, 32]), torch.Size([8, 2]))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        group_size: int = 128,
        symmetric: bool = False,
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self._init_grid(group_size, symmetric, columns_per_byte=2)
        self.register_buffer(
            "qweight", torch.zeros(out_features, in_features // 2, dtype=torch.uint8)
        )

    def _init_grid(self, group_size: int, symmetric: bool, columns_per_byte: int) -> None:
        """Checks the group size and registers the grid (``scales``, ``zeros``: code 8 is
        zero); subclasses with another code layout call it instead of ``__init__``."""
        k = self.in_features
        if group_size <= 0 or k % group_size or k % columns_per_byte:
            raise ValueError(
                f"{type(self).__name__}: group_size must divide in_features and in_features "
                f"must be a multiple of {columns_per_byte} (in_features={k}, "
                f"group_size={group_size})"
            )
        self.group_size = group_size
        self.symmetric = symmetric
        groups = k // group_size
        self.register_buffer("scales", torch.ones(self.out_features, groups))
        self.register_buffer("zeros", torch.full((self.out_features, groups), 8.0))

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int = 128, symmetric: bool = False
    ) -> Int4WeightOnlyLinear:
        """Round-to-nearest int4 of ``linear.weight`` (see ``quantize.rtn.quantize_int4``)."""
        q = quantize_int4(linear.weight.detach(), group_size=group_size, symmetric=symmetric)
        return cls.from_int4(q, linear.bias, symmetric=symmetric)

    @classmethod
    def from_int4(
        cls, q: Int4Weight, bias: Tensor | None = None, symmetric: bool = False
    ) -> Int4WeightOnlyLinear:
        """Wraps an already quantized :class:`~squeezeprompt.formats.Int4Weight` (GPTQ, QAT).

        Example:
            >>> q = quantize_int4(torch.randn(8, 64), group_size=32)
            >>> Int4WeightOnlyLinear.from_int4(q).group_size
            32
        """
        n, k = q.shape
        layer = cls(k, n, bias is not None, group_size=q.group_size, symmetric=symmetric)
        layer.qweight.copy_(q.qweight)
        layer.scales.copy_(q.scales)
        layer.zeros.copy_(q.zeros)
        if bias is not None:
            assert layer.bias is not None
            layer.bias.data = bias.detach().float().clone()
        return layer.to(q.qweight.device)

    def init_kwargs(self) -> dict[str, Any]:
        return {**super().init_kwargs(), "group_size": self.group_size, "symmetric": self.symmetric}

    def forward(self, x: Tensor) -> Tensor:
        return int4_weight_linear(
            x, self.qweight, self.scales, self.zeros, self.group_size, self.bias
        )

    def dequantize(self) -> Tensor:
        return dequantize_int4(self.qweight, self.scales, self.zeros, self.group_size)

    def extra_repr(self) -> str:
        return (
            f"{self._repr_common()}, bits=4, group_size={self.group_size}, "
            f"symmetric={self.symmetric}, {self._repr_bytes()}"
        )
