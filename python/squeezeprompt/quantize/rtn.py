"""Round-to-nearest quantization of a float weight into the packed formats.

These define the default grids: int8 symmetric per output channel, int4 per group
(asymmetric over [min(w, 0), max(w, 0)], or symmetric with the zero fixed at 8).
"""

from __future__ import annotations

import torch
from torch import Tensor

from squeezeprompt.formats import INT4_MAX, Int4Weight, Int8Weight, pack_int4

INT8_MAX = 127


def _check_weight(fn: str, w: Tensor) -> None:
    if w.dim() != 2:
        raise ValueError(
            f"{fn}: weight must be 2-D [out_features, in_features], got {list(w.shape)}"
        )
    if not w.is_floating_point():
        raise TypeError(f"{fn}: weight must be floating point, got {w.dtype}")
    bad = ~torch.isfinite(w)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{fn}: weight must be finite, got {w[row, col].item()} at [{row}, {col}] "
            f"({int(bad.sum())} non-finite values)"
        )


def _nonzero_scale(scale: Tensor) -> Tensor:
    # An all-zero channel or group quantizes to zeros under any scale; 1 keeps it valid.
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantize_int8(weight: Tensor) -> Int8Weight:
    """Symmetric per-output-channel int8: ``scale = max|w_row| / 127``.

    Example:
        >>> q = quantize_int8(torch.tensor([[0.5, -1.0], [2.0, 0.0]]))
        >>> q.qweight.tolist(), q.scales.tolist()
        ([[64, -127], [127, 0]], [0.007874016..., 0.015748031...])
    """
    _check_weight("quantize_int8", weight)
    w = weight.float()
    scales = _nonzero_scale(w.abs().amax(dim=1) / INT8_MAX)
    q = torch.round(w / scales[:, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return Int8Weight(qweight=q, scales=scales)


def quantize_int4(weight: Tensor, group_size: int = 128, symmetric: bool = False) -> Int4Weight:
    """Group-wise int4 round-to-nearest.

    Asymmetric: ``scale = (max(w,0) - min(w,0)) / 15``, ``zero = round(-min(w,0) / scale)``.
    Symmetric: ``scale = max|w| / 7`` with the zero point fixed at 8 (codes -8..7 shifted).

    Example:
        >>> q = quantize_int4(torch.randn(16, 256), group_size=128)
        >>> q.qweight.shape, q.scales.shape
        (torch.Size([16, 128]), torch.Size([16, 2]))
    """
    _check_weight("quantize_int4", weight)
    n, k = weight.shape
    if group_size <= 0 or k % group_size:
        raise ValueError(
            f"quantize_int4: group_size must divide in_features "
            f"(in_features={k}, group_size={group_size})"
        )
    if k % 2:
        raise ValueError(f"quantize_int4: in_features must be even (two codes per byte), got {k}")
    w = weight.float().reshape(n, k // group_size, group_size)
    if symmetric:
        scales = _nonzero_scale(w.abs().amax(dim=2) / 7)
        zeros = torch.full_like(scales, 8.0)
    else:
        lo = w.amin(dim=2).clamp(max=0)
        hi = w.amax(dim=2).clamp(min=0)
        scales = _nonzero_scale((hi - lo) / INT4_MAX)
        zeros = torch.round(-lo / scales).clamp(0, INT4_MAX)
    codes = (torch.round(w / scales[..., None]) + zeros[..., None]).clamp(0, INT4_MAX)
    return Int4Weight(
        qweight=pack_int4(codes.reshape(n, k).to(torch.uint8)),
        scales=scales,
        zeros=zeros,
        group_size=group_size,
    )
