"""Quantization-aware training: a linear whose weight passes through ``fake_quantize``.

The scale (and, asymmetric, the zero point) are learnable parameters initialised
from round-to-nearest (:meth:`FakeQuantLinear.from_linear`) or copied from a layer that is
already quantized (:meth:`FakeQuantLinear.from_quantized`, e.g. after GPTQ);
:meth:`FakeQuantLinear.to_quantized` turns the layer into the real int4/int8 layer that
computes exactly the fake-quantized weight. An optional bool ``mask`` keeps pruned weights
at exactly zero through training and conversion.

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

from squeezeprompt.formats import Int4Weight, pack_int4
from squeezeprompt.nn.base import QuantizedLinearBase, register_layer
from squeezeprompt.nn.masks import is_24_mask
from squeezeprompt.nn.sparse import Sparse24Int4Linear
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

    With ``masked=True`` the layer holds a bool ``mask`` buffer (True = keep) and computes
    ``fake_quantize(weight * mask)``: masked weights get no gradient and quantize to an
    exact zero (every grid here holds 0: the zero point is an integer code).

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
        masked: bool = False,
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
        self.register_buffer(
            "mask", torch.ones(out_features, in_features, dtype=torch.bool) if masked else None
        )

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

    @classmethod
    @torch.no_grad()
    def from_quantized(
        cls,
        layer: Int4WeightOnlyLinear | Int8WeightOnlyLinear,
        dense: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> FakeQuantLinear:
        """A fake-quant layer that computes exactly what ``layer`` computes, to train further.

        The grid (scales, zero points) is ``layer``'s own, so rounding chosen by GPTQ or
        AWQ is kept. The latent weight is ``layer``'s dequantized weight, moved towards
        ``dense`` (the weight before quantization) but kept inside the same rounding bin,
        so every code is unchanged while the latent weight remembers how close each
        weight sat to a bin edge, as QAT from the float weight would. ``mask`` (True =
        keep) pins pruned weights at zero.

        Example:
            >>> lin = torch.nn.Linear(64, 8)
            >>> q = Int4WeightOnlyLinear.from_linear(lin, group_size=32)
            >>> fq = FakeQuantLinear.from_quantized(q, dense=lin.weight)
            >>> torch.equal(fq.dequantize(), q.dequantize())
            True
        """
        if isinstance(layer, Int4WeightOnlyLinear):
            bits, g, symmetric = 4, layer.group_size, layer.symmetric
            scale, zero = layer.scales.float(), layer.zeros.float()
        elif isinstance(layer, Int8WeightOnlyLinear):
            bits, g, symmetric = 8, layer.in_features, True
            scale, zero = layer.scales.float()[:, None], None
        else:
            raise TypeError(
                "FakeQuantLinear.from_quantized: expected an Int4WeightOnlyLinear or "
                f"Int8WeightOnlyLinear, got {type(layer).__name__}"
            )
        out = cls(
            layer.in_features,
            layer.out_features,
            layer.bias is not None,
            bits,
            g,
            symmetric,
            masked=mask is not None,
        )
        latent = layer.dequantize().float()
        if dense is not None:
            if dense.shape != latent.shape:
                raise ValueError(
                    f"FakeQuantLinear.from_quantized: dense weight must have shape "
                    f"{list(latent.shape)}, got {list(dense.shape)}"
                )
            # 0.49, not 0.5: a residual of exactly half a bin could round either way.
            bound = 0.49 * scale.repeat_interleave(g, dim=1)
            residual = dense.detach().float().to(latent.device) - latent
            latent = latent + torch.maximum(torch.minimum(residual, bound), -bound)
        if mask is not None:
            if mask.shape != latent.shape or mask.dtype != torch.bool:
                raise ValueError(
                    f"FakeQuantLinear.from_quantized: mask must be bool with shape "
                    f"{list(latent.shape)}, got {mask.dtype} {list(mask.shape)}"
                )
            out.mask.copy_(mask)
            latent = latent * mask
        out.weight.data = latent
        out.scale.data = scale.clone()
        if zero is not None and bits == 4:
            out.zero_point.data = zero.clone()
        if layer.bias is not None:
            out.bias.data = layer.bias.detach().float().clone()
        return out.to(latent.device)

    def init_kwargs(self) -> dict[str, Any]:
        return {
            **super().init_kwargs(),
            "bits": self.bits,
            "group_size": self.group_size,
            "symmetric": self.symmetric,
            "masked": self.mask is not None,
        }

    def masked_weight(self) -> Tensor:
        """The latent weight with pruned entries zeroed (no gradient reaches them)."""
        return self.weight if self.mask is None else self.weight * self.mask

    def fake_weight(self) -> Tensor:
        """The quantize-dequantized weight the forward uses (differentiable)."""
        return fake_quantize(
            self.masked_weight(),
            self.scale,
            self.zero_point,
            self.qmin,
            self.qmax,
            self.group_size,
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

        A masked int4 layer whose mask is 2:4 becomes a ``Sparse24Int4Linear`` (the
        quantize stage's choice for 2:4 + int4).

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
        w = self.masked_weight().detach().float()
        w = w.reshape(self.out_features, -1, self.group_size)
        q = (torch.round(w / s[..., None]) + z[..., None]).clamp(self.qmin, self.qmax)
        q = q.reshape(self.out_features, self.in_features)
        bias = None if self.bias is None else self.bias
        if self.bits == 8:
            out: Any = Int8WeightOnlyLinear(self.in_features, self.out_features, bias is not None)
            out.qweight.copy_(q.to(torch.int8))
            out.scales.copy_(s[:, 0])
        else:
            q4 = Int4Weight(pack_int4(q.to(torch.uint8)), s, z, self.group_size)
            if self.mask is not None and is_24_mask(self.mask):
                # Packed 2:4: the mask's unkept weights are the exact zeros.
                out = Sparse24Int4Linear.from_int4(q4, bias, self.symmetric, mask=self.mask)
            else:
                out = Int4WeightOnlyLinear.from_int4(q4, bias, symmetric=self.symmetric)
        if bias is not None:
            out.bias.data = bias.detach().float().clone()
        return out.to(self.weight.device)

    def extra_repr(self) -> str:
        learnable_zero = isinstance(self.zero_point, nn.Parameter)
        return (
            f"{self._repr_common()}, bits={self.bits}, group_size={self.group_size}, "
            f"symmetric={self.symmetric}, learnable_zero={learnable_zero}, "
            f"masked={self.mask is not None}"
        )
