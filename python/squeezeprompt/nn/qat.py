"""Quantization-aware training: a linear whose weight passes through ``fake_quantize``.

The scale (and, asymmetric, the zero point) are learnable parameters initialised
from round-to-nearest; :meth:`FakeQuantLinear.to_quantized` turns the layer into the
real int4/int8 layer that computes exactly the fake-quantized weight.

Example:
    >>> fq = FakeQuantLinear.from_linear(torch.nn.Linear(64, 8), bits=4, group_size=32)
    >>> fq(torch.randn(2, 64)).sum().backward()
    >>> fq.scale.grad.shape
    torch.Size([8, 2])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from squeezeprompt.formats import pack_int4
from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.nn.weight_only import Int4WeightOnlyLinear, Int8WeightOnlyLinear
from squeezeprompt.ops import fake_quantize
from squeezeprompt.quantize.rtn import quantize_int4, quantize_int8

SUPPORTED_BITS = (4, 8)


def grid(bits: int, symmetric: bool) -> tuple[int, int, float | None]:
    """``(qmin, qmax, fixed_zero)`` of the integer grid the real layers store.

    int8 is the symmetric ``[-127, 127]`` grid of ``Int8WeightOnlyLinear``; int4 is the
    unsigned 0..15 code grid of ``Int4WeightOnlyLinear`` (symmetric = zero fixed at 8).

    Example:
        >>> grid(4, True), grid(4, False), grid(8, True)
        ((0, 15, 8.0), (0, 15, None), (-127, 127, 0.0))
    """
    if bits == 8:
        if not symmetric:
            raise ValueError("int8 fake quantization is symmetric only (the int8 layers are)")
        return -127, 127, 0.0
    if bits == 4:
        return 0, 15, 8.0 if symmetric else None
    raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")


@register_layer
class FakeQuantLinear(QuantizedLinearBase):
    """``y = x @ fake_quantize(weight).T + bias`` with a learnable per-group grid.

    Example:
        >>> FakeQuantLinear(64, 8, bits=8, group_size=64, symmetric=True).scale.shape
        torch.Size([8, 1])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bits: int = 4,
        group_size: int = 128,
        symmetric: bool = False,
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.qmin, self.qmax, fixed_zero = grid(bits, symmetric)
        if group_size <= 0 or in_features % group_size:
            raise ValueError(
                f"FakeQuantLinear: group_size must divide in_features "
                f"(in_features={in_features}, group_size={group_size})"
            )
        if bits == 8 and group_size != in_features:
            raise ValueError(
                f"FakeQuantLinear: int8 is per channel, so group_size must equal in_features "
                f"({in_features}), got {group_size}"
            )
        self.bits, self.group_size, self.symmetric = bits, group_size, symmetric
        groups = in_features // group_size
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.scale = nn.Parameter(torch.ones(out_features, groups))
        if fixed_zero is None:
            self.zero_point = nn.Parameter(torch.zeros(out_features, groups))
        else:
            self.register_buffer("zero_point", torch.full((out_features, groups), fixed_zero))

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, bits: int = 4, group_size: int | None = 128, symmetric: bool = False
    ) -> FakeQuantLinear:
        """Copies ``linear`` and starts the grid at round-to-nearest (``group_size=None``:
        per channel)."""
        k = linear.in_features
        g = k if group_size is None else group_size
        layer = cls(k, linear.out_features, linear.bias is not None, bits, g, symmetric)
        w = linear.weight.detach()
        layer.weight.data = w.float().clone()
        if bits == 8:
            layer.scale.data = quantize_int8(w).scales[:, None].clone()
        else:
            q = quantize_int4(w, group_size=g, symmetric=symmetric)
            layer.scale.data = q.scales.clone()
            layer.zero_point.data = q.zeros.clone()
        layer._copy_bias(linear)
        return layer.to(w.device)

    def init_kwargs(self) -> dict[str, Any]:
        return {
            **super().init_kwargs(),
            "bits": self.bits,
            "group_size": self.group_size,
            "symmetric": self.symmetric,
        }

    def fake_weight(self) -> Tensor:
        """The quantize-dequantized weight the forward uses (differentiable)."""
        return fake_quantize(
            self.weight, self.scale, self.zero_point, self.qmin, self.qmax, self.group_size
        )

    def forward(self, x: Tensor) -> Tensor:
        w = self.fake_weight().to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, bias)

    def dequantize(self) -> Tensor:
        return self.fake_weight().detach().float()

    @torch.no_grad()
    def to_quantized(self) -> Int4WeightOnlyLinear | Int8WeightOnlyLinear:
        """The real quantized layer holding exactly :meth:`fake_weight`'s grid points.

        Example:
            >>> fq = FakeQuantLinear.from_linear(torch.nn.Linear(64, 8), bits=4, group_size=32)
            >>> torch.equal(fq.to_quantized().dequantize(), fq.dequantize())
            True
        """
        s = self.scale.detach().float()
        if not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
            raise ValueError(
                f"FakeQuantLinear.to_quantized: every scale must be positive and finite, "
                f"got min {s.min().item()}"
            )
        z = self.zero_point.detach().float().round().clamp(self.qmin, self.qmax)
        w = self.weight.detach().float().reshape(self.out_features, -1, self.group_size)
        q = (torch.round(w / s[..., None]) + z[..., None]).clamp(self.qmin, self.qmax)
        q = q.reshape(self.out_features, self.in_features)
        bias = None if self.bias is None else self.bias
        if self.bits == 8:
            out: Any = Int8WeightOnlyLinear(self.in_features, self.out_features, bias is not None)
            out.qweight.copy_(q.to(torch.int8))
            out.scales.copy_(s[:, 0])
        else:
            out = Int4WeightOnlyLinear(
                self.in_features,
                self.out_features,
                bias is not None,
                group_size=self.group_size,
                symmetric=self.symmetric,
            )
            out.qweight.copy_(pack_int4(q.to(torch.uint8)))
            out.scales.copy_(s)
            out.zeros.copy_(z)
        if bias is not None:
            out.bias.data = bias.detach().float().clone()
        return out.to(self.weight.device)

    def extra_repr(self) -> str:
        learnable_zero = isinstance(self.zero_point, nn.Parameter)
        return (
            f"{self._repr_common()}, bits={self.bits}, group_size={self.group_size}, "
            f"symmetric={self.symmetric}, learnable_zero={learnable_zero}"
        )
