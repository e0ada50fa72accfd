"""The quantization grid that GPTQ, AWQ and SparseGPT round onto.

A :class:`WeightGrid` names one of the packed formats of ``formats.py`` and knows how
to fit its per-group parameters, round a column onto it and pack the final codes. Its
rounding is the same as ``rtn.py``, so an algorithm that never moves a weight
reproduces round-to-nearest exactly.

* int4: codes 0..15, ``w = (q - zero) * scale``, one ``(scale, zero)`` per group of
  ``group_size`` input columns (``None`` = one group per row); asymmetric over
  ``[min(w, 0), max(w, 0)]`` or symmetric with ``zero = 8``.
* int8: codes -127..127, symmetric, one scale per output channel (the only int8
  layout the kernels read).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch
from torch import Tensor

from squeezeprompt.formats import INT4_MAX, Int4Weight, Int8Weight, pack_int4

INT8_MAX = 127


class Bits(Enum):
    """Bit width of a weight grid."""

    INT4 = 4
    INT8 = 8


@dataclass(frozen=True)
class WeightGrid:
    """Which packed format a quantizer targets.

    Example:
        >>> WeightGrid(Bits.INT4, group_size=128).groups(in_features=256)
        2
        >>> WeightGrid(Bits.INT8, group_size=None, symmetric=True).qmax
        127
    """

    bits: Bits = Bits.INT4
    group_size: int | None = 128
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.bits, Bits):
            raise TypeError(f"WeightGrid: bits must be a Bits member, got {self.bits!r}")
        if self.group_size is not None and (
            not isinstance(self.group_size, int) or self.group_size <= 0
        ):
            raise ValueError(
                f"WeightGrid: group_size must be a positive int or None, got {self.group_size!r}"
            )
        if self.bits is Bits.INT8 and (self.group_size is not None or not self.symmetric):
            raise ValueError(
                "WeightGrid: int8 weights are symmetric per output channel "
                "(group_size=None, symmetric=True), got "
                f"group_size={self.group_size}, symmetric={self.symmetric}"
            )

    @property
    def qmin(self) -> int:
        return 0 if self.bits is Bits.INT4 else -INT8_MAX

    @property
    def qmax(self) -> int:
        return INT4_MAX if self.bits is Bits.INT4 else INT8_MAX

    def group_width(self, in_features: int) -> int:
        """Columns per group for a weight with ``in_features`` columns."""
        g = in_features if self.group_size is None else self.group_size
        if in_features % g:
            raise ValueError(
                f"WeightGrid: group_size must divide in_features "
                f"(in_features={in_features}, group_size={g})"
            )
        if self.bits is Bits.INT4 and in_features % 2:
            raise ValueError(
                f"WeightGrid: int4 needs an even in_features (two codes per byte), "
                f"got {in_features}"
            )
        return g

    def groups(self, in_features: int) -> int:
        return in_features // self.group_width(in_features)

    def fit(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """Round-to-nearest ``(scale, zero)`` per row of one group of columns ``w [N, G]``.

        Example:
            >>> s, z = WeightGrid(Bits.INT4, 2).fit(torch.tensor([[-1.0, 14.0]]))
            >>> s.tolist(), z.tolist()
            ([1.0], [1.0])
        """
        w = w.float()
        if self.bits is Bits.INT8:
            scale = _nonzero(w.abs().amax(dim=1) / INT8_MAX)
            return scale, torch.zeros_like(scale)
        if self.symmetric:
            scale = _nonzero(w.abs().amax(dim=1) / 7)
            return scale, torch.full_like(scale, 8.0)
        lo = w.amin(dim=1).clamp(max=0)
        hi = w.amax(dim=1).clamp(min=0)
        scale = _nonzero((hi - lo) / INT4_MAX)
        return scale, torch.round(-lo / scale).clamp(0, INT4_MAX)

    def fit_all(self, w: Tensor) -> tuple[Tensor, Tensor]:
        """``(scales, zeros)`` of shape ``[N, groups]`` for a whole weight ``[N, K]``."""
        n, k = w.shape
        g = self.group_width(k)
        params = [self.fit(w[:, j : j + g]) for j in range(0, k, g)]
        return torch.stack([p[0] for p in params], 1), torch.stack([p[1] for p in params], 1)

    def codes(self, w: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
        """Float codes of ``w`` with ``scale``/``zero`` broadcast against it (last dim = rows)."""
        return (torch.round(w.float() / scale) + zero).clamp(self.qmin, self.qmax)

    def round(self, w: Tensor, scale: Tensor, zero: Tensor) -> Tensor:
        """Quantize-dequantize ``w`` (float32) under the given parameters."""
        return (self.codes(w, scale, zero) - zero) * scale

    def round_weight(self, w: Tensor) -> Tensor:
        """Round-to-nearest quantize-dequantize of a whole weight ``[N, K]`` (float32).

        Example:
            >>> w = torch.randn(4, 8)
            >>> grid = WeightGrid(Bits.INT4, 4)
            >>> torch.equal(grid.round_weight(w), grid.pack(grid.codes_all(w), *grid.fit_all(w))
            ...             .dequantize())
            True
        """
        scales, zeros = self.fit_all(w)
        g = self.group_width(w.shape[1])
        return self.round(w, *(t.repeat_interleave(g, dim=1) for t in (scales, zeros)))

    def codes_all(self, w: Tensor) -> Tensor:
        """Round-to-nearest codes ``[N, K]`` of a whole weight under :meth:`fit_all`."""
        scales, zeros = self.fit_all(w)
        g = self.group_width(w.shape[1])
        return self.codes(w, *(t.repeat_interleave(g, dim=1) for t in (scales, zeros)))

    def pack(self, codes: Tensor, scales: Tensor, zeros: Tensor) -> Int4Weight | Int8Weight:
        """The packed weight from float codes ``[N, K]`` and ``[N, groups]`` parameters."""
        if self.bits is Bits.INT8:
            return Int8Weight(qweight=codes.to(torch.int8), scales=scales[:, 0].contiguous())
        return Int4Weight(
            qweight=pack_int4(codes.to(torch.uint8)),
            scales=scales.contiguous(),
            zeros=zeros.contiguous(),
            group_size=self.group_width(codes.shape[1]),
        )


def _nonzero(scale: Tensor) -> Tensor:
    # An all-zero row or group rounds to zeros under any scale; 1 keeps it finite.
    return torch.where(scale > 0, scale, torch.ones_like(scale))
