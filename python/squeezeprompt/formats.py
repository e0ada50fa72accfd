"""Packed weight layouts, written once.

The C++ and CUDA kernels read the same layouts (``csrc/formats.h``); every
packing and unpacking in the package goes through this module.

**int4 pairs.** Codes are unsigned 0..15. Byte ``j`` of a row holds column ``2j`` in
its low nibble and column ``2j + 1`` in its high nibble, so a ``[N, K]`` code matrix
packs to ``[N, K / 2]`` uint8. A group of ``group_size`` consecutive columns shares
one scale and one zero point: ``w = (q - zero) * scale``. Symmetric quantization
is the special case ``zero = 8``.

**2:4 semi-structured.** In every group of 4 consecutive columns at most 2 are
nonzero. The 2 kept values are stored in column order (``values[N, K / 2]``) and
their column indices within the group as two 2-bit fields (bits 0-1 the first,
bits 2-3 the second). Two groups share a metadata byte, the even group in the
low nibble: ``meta[N, ceil(K / 8)]`` uint8. Values are float, or int8 with one
scale per output channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

INT4_MAX = 15
SPARSE_GROUP = 4


def pack_int4(codes: Tensor) -> Tensor:
    """Packs unsigned int4 codes ``[N, K]`` (values 0..15, K even) into ``[N, K / 2]`` uint8.

    Example:
        >>> pack_int4(torch.tensor([[1, 2, 15, 0]], dtype=torch.uint8))
        tensor([[ 33,  15]], dtype=torch.uint8)
    """
    if codes.dim() != 2:
        raise ValueError(f"pack_int4: codes must be 2-D [N, K], got shape {list(codes.shape)}")
    if codes.shape[1] % 2:
        raise ValueError(f"pack_int4: K must be even (two codes per byte), got K={codes.shape[1]}")
    if codes.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise TypeError(f"pack_int4: codes must be an integer tensor, got {codes.dtype}")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) > INT4_MAX):
        raise ValueError(
            f"pack_int4: codes must lie in [0, {INT4_MAX}], "
            f"got [{int(codes.min())}, {int(codes.max())}]"
        )
    c = codes.to(torch.uint8)
    return c[:, 0::2] | (c[:, 1::2] << 4)


def unpack_int4(packed: Tensor) -> Tensor:
    """Inverse of :func:`pack_int4`: ``[N, K / 2]`` uint8 to ``[N, K]`` uint8 codes.

    Example:
        >>> unpack_int4(torch.tensor([[33, 15]], dtype=torch.uint8))
        tensor([[ 1,  2, 15,  0]], dtype=torch.uint8)
    """
    if packed.dtype != torch.uint8 or packed.dim() != 2:
        raise ValueError(
            f"unpack_int4: packed must be 2-D uint8, got {packed.dtype} {list(packed.shape)}"
        )
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).reshape(packed.shape[0], -1)


def dequantize_int4(packed: Tensor, scales: Tensor, zeros: Tensor, group_size: int) -> Tensor:
    """Float32 weight ``[N, K]`` from packed int4 codes and per-group ``scales``/``zeros``.

    Example:
        >>> w = dequantize_int4(torch.tensor([[33, 15]], dtype=torch.uint8),
        ...                     torch.ones(1, 2), torch.full((1, 2), 8.0), group_size=2)
        >>> w.tolist()
        [[-7.0, -6.0, 7.0, -8.0]]
    """
    codes = unpack_int4(packed).float()
    s = scales.float().repeat_interleave(group_size, dim=1)
    z = zeros.float().repeat_interleave(group_size, dim=1)
    return (codes - z) * s


def _meta_bytes(in_features: int) -> int:
    groups = in_features // SPARSE_GROUP
    return (groups + 1) // 2


def sparse24_unpack(values: Tensor, meta: Tensor, scales: Tensor | None = None) -> Tensor:
    """Dense ``[N, K]`` weight from 2:4 ``values``/``meta`` (float32 when values are int8).

    Example:
        >>> v, m = torch.ops.squeezeprompt.sparse24_pack(torch.tensor([[0.0, 2.0, 0.0, 3.0]]))
        >>> sparse24_unpack(v, m).tolist()
        [[0.0, 2.0, 0.0, 3.0]]
    """
    n, half = values.shape
    k = half * 2
    groups = k // SPARSE_GROUP
    nibbles = torch.stack((meta & 0x0F, meta >> 4), dim=-1).reshape(n, -1)[:, :groups]
    idx = torch.stack((nibbles & 0x3, (nibbles >> 2) & 0x3), dim=-1).long()  # [N, groups, 2]
    cols = idx + torch.arange(groups, device=meta.device).view(1, groups, 1) * SPARSE_GROUP
    v = values.reshape(n, groups, 2)
    if values.dtype == torch.int8:
        if scales is None:
            raise ValueError("sparse24_unpack: int8 values need per-channel scales")
        v = v.float() * scales.float().view(n, 1, 1)
    dense = torch.zeros(n, k, dtype=v.dtype, device=values.device)
    return dense.scatter(1, cols.reshape(n, -1), v.reshape(n, -1))


@dataclass(frozen=True)
class Int4Weight:
    """A group-wise int4 weight as the kernels read it.

    Example:
        >>> from squeezeprompt.quantize.rtn import quantize_int4
        >>> qw = quantize_int4(torch.randn(8, 64), group_size=32)
        >>> qw.bits_per_weight
        6.0
    """

    qweight: Tensor  # [N, K / 2] uint8, int4 pairs
    scales: Tensor  # [N, K / group_size] float
    zeros: Tensor  # [N, K / group_size] float, in code units
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.qweight.shape[0], self.qweight.shape[1] * 2)

    @property
    def bits_per_weight(self) -> float:
        n, k = self.shape
        side = self.scales.numel() * self.scales.element_size()
        side += self.zeros.numel() * self.zeros.element_size()
        return 4.0 + 8.0 * side / (n * k)

    def dequantize(self) -> Tensor:
        return dequantize_int4(self.qweight, self.scales, self.zeros, self.group_size)


@dataclass(frozen=True)
class Int8Weight:
    """A per-output-channel symmetric int8 weight: ``w = qweight * scales[:, None]``.

    Example:
        >>> from squeezeprompt.quantize.rtn import quantize_int8
        >>> quantize_int8(torch.randn(4, 16)).qweight.dtype
        torch.int8
    """

    qweight: Tensor  # [N, K] int8
    scales: Tensor  # [N] float

    @property
    def bits_per_weight(self) -> float:
        n, k = self.qweight.shape
        return 8.0 + 8.0 * self.scales.numel() * self.scales.element_size() / (n * k)

    def dequantize(self) -> Tensor:
        return self.qweight.float() * self.scales.float()[:, None]
