"""Dynamic activation quantization: activations quantized per token to int8 at run time,
against int8 weights per channel (W8A8) or group-wise int4 weights (W4A8).

Example:
    >>> q = Int8DynamicLinear.from_linear(torch.nn.Linear(32, 16))
    >>> q(torch.randn(4, 32)).shape
    torch.Size([4, 16])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear
from squeezeprompt.ops import int4_dynamic_linear, int8_dynamic_linear
from squeezeprompt.quantize.rtn import quantize_int8


@register_layer
class Int8DynamicLinear(QuantizedLinearBase):
    """int8 x int8 -> int32 linear; each token's activations get their own scale.

    Example:
        >>> Int8DynamicLinear(32, 16).qweight.shape
        torch.Size([16, 32])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("w_scales", torch.ones(out_features))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8DynamicLinear:
        """Symmetric per-channel int8 of ``linear.weight``; activations are quantized later."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        q = quantize_int8(linear.weight.detach())
        layer.qweight.copy_(q.qweight)
        layer.w_scales.copy_(q.scales)
        layer._copy_bias(linear)
        return layer.to(linear.weight.device)

    def forward(self, x: Tensor) -> Tensor:
        return int8_dynamic_linear(x, self.qweight, self.w_scales, self.bias)

    def dequantize(self) -> Tensor:
        return self.qweight.float() * self.w_scales.float()[:, None]

    def extra_repr(self) -> str:
        return (
            f"{self._repr_common()}, bits=8, activations=int8 per token (dynamic), "
            f"{self._repr_bytes()}"
        )


@register_layer
class Int4DynamicLinear(Int4WeightOnlyLinear):
    """W4A8: group-wise int4 weights times activations quantized per token to int8.

    The weight and its buffers (``qweight``, ``scales``, ``zeros``; ``group_size``,
    ``symmetric``) are :class:`Int4WeightOnlyLinear`'s, and so are ``from_linear``,
    ``from_int4`` and ``dequantize``; ``forward`` runs ``int4_dynamic_linear``, which
    also rounds each token's activations to int8 (scale ``max|x| / 127``) and multiplies
    codes by codes in integer arithmetic. The result differs from the weight-only layer
    by that rounding: at most half an activation step times ``sum |w|`` per output.

    Example:
        >>> q = Int4DynamicLinear.from_linear(torch.nn.Linear(576, 64), group_size=64)
        >>> q(torch.randn(2, 576)).shape, q.group_size
        (torch.Size([2, 64]), 64)
    """

    def forward(self, x: Tensor) -> Tensor:
        return int4_dynamic_linear(
            x, self.qweight, self.scales, self.zeros, self.group_size, self.bias
        )

    def extra_repr(self) -> str:
        return (
            f"{self._repr_common()}, bits=4, group_size={self.group_size}, "
            f"symmetric={self.symmetric}, activations=int8 per token (dynamic), "
            f"{self._repr_bytes()}"
        )
