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

**2:4 + int4.** The 2 kept values of each group of 4 columns are int4 codes in one
byte (the first kept value in the low nibble): ``values[N, K / 4]`` uint8, with the
2:4 ``meta`` above. Scales and zeros are ``[N, K / group_size]`` over the *original* K
columns: a kept code in column ``k`` dequantizes as ``(q - zero) * scale`` of group
``k // group_size``; pruned columns are exactly 0. 2 + 2 bits per weight, plus the
group's scale and zero.
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
        tensor([[33, 15]], dtype=torch.uint8)
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


def _kept_columns(mask: Tensor) -> Tensor:
    """``[N, K/4, 2]`` column indices (within each group of 4) that 2:4 packing keeps.

    The mask's True columns come first, then its lowest False ones, each pair sorted:
    the rule of ``sparse24_pack`` with ``mask`` as the nonzero pattern.
    """
    n, k = mask.shape
    groups = mask.reshape(n, k // SPARSE_GROUP, SPARSE_GROUP)
    col = torch.arange(SPARSE_GROUP, device=mask.device)
    order = (~groups).long() * SPARSE_GROUP + col
    return order.argsort(dim=-1)[..., :2].sort(dim=-1).values


def _meta_from_columns(idx: Tensor) -> Tensor:
    nibble = (idx[..., 0] | (idx[..., 1] << 2)).to(torch.uint8)
    if nibble.shape[1] % 2:
        nibble = torch.nn.functional.pad(nibble, (0, 1))
    return nibble[:, 0::2] | (nibble[:, 1::2] << 4)


def _meta_columns(meta: Tensor, groups: int) -> Tensor:
    """Inverse of :func:`_meta_from_columns`: ``[N, groups, 2]`` int64 indices."""
    nibbles = torch.stack((meta & 0x0F, meta >> 4), dim=-1).reshape(meta.shape[0], -1)
    nibbles = nibbles[:, :groups]
    return torch.stack((nibbles & 0x3, (nibbles >> 2) & 0x3), dim=-1).long()


def sparse24_int4_pack(
    qweight: Tensor,
    scales: Tensor,
    zeros: Tensor,
    group_size: int,
    mask: Tensor | None = None,
) -> Sparse24Int4Weight:
    """Packs a group-wise int4 weight (:func:`pack_int4` layout) whose pattern is 2:4.

    ``mask`` (bool ``[N, K]``, at most 2 True per group of 4) names the kept weights;
    without one, the nonzeros of the dequantized weight are kept. Raises if the pattern
    is not 2:4. The packed layer computes the int4 weight with every unkept entry 0.

    Example:
        >>> q = pack_int4(torch.tensor([[8, 11, 8, 3]], dtype=torch.uint8))
        >>> p = sparse24_int4_pack(q, torch.ones(1, 1), torch.full((1, 1), 8.0), 4)
        >>> p.values.tolist(), p.meta.tolist(), p.dequantize().tolist()
        ([[59]], [[13]], [[0.0, 3.0, 0.0, -5.0]])
    """
    codes = unpack_int4(qweight)
    n, k = codes.shape
    if k % SPARSE_GROUP:
        raise ValueError(f"sparse24_int4_pack: in_features must be a multiple of 4, got {k}")
    if mask is None:
        mask = dequantize_int4(qweight, scales, zeros, group_size) != 0
    elif mask.shape != codes.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"sparse24_int4_pack: mask must be bool with shape {[n, k]}, "
            f"got {mask.dtype} {list(mask.shape)}"
        )
    if bool((mask.reshape(n, k // SPARSE_GROUP, SPARSE_GROUP).sum(-1) > 2).any()):
        raise ValueError(
            "sparse24_int4_pack: the pattern is not 2:4 (a group of 4 columns keeps more "
            "than 2 weights)"
        )
    idx = _kept_columns(mask)
    kept = codes.reshape(n, k // SPARSE_GROUP, SPARSE_GROUP).gather(-1, idx.to(torch.int64))
    # A filler slot (in a group keeping fewer than 2) holds its zero point's code, so it
    # dequantizes to an exact 0: only possible where that zero point is a code.
    filler = ~mask.reshape(n, k // SPARSE_GROUP, SPARSE_GROUP).gather(-1, idx)
    z_cols = zeros.float().repeat_interleave(group_size, dim=1).reshape(n, -1, SPARSE_GROUP)
    z_slot = z_cols.gather(-1, idx)
    is_code = (z_slot == z_slot.round()) & (z_slot >= 0) & (z_slot <= INT4_MAX)
    if bool((filler & ~is_code).any()):
        raise ValueError(
            "sparse24_int4_pack: a group of 4 keeps fewer than 2 weights and its zero point "
            "is not an integer code in [0, 15], so its empty slot cannot hold an exact 0"
        )
    kept = torch.where(filler, z_slot.round().clamp(0, INT4_MAX).to(torch.uint8), kept)
    values = (kept[..., 0] | (kept[..., 1] << 4)).to(torch.uint8)
    return Sparse24Int4Weight(values, _meta_from_columns(idx), scales, zeros, group_size)


def sparse24_int4_unpack(
    values: Tensor, meta: Tensor, scales: Tensor, zeros: Tensor, group_size: int
) -> Tensor:
    """Dense float32 ``[N, K]`` weight of a packed 2:4 + int4 weight (pruned entries 0).

    Example:
        >>> v, m = torch.tensor([[59]], dtype=torch.uint8), torch.tensor([[13]], dtype=torch.uint8)
        >>> sparse24_int4_unpack(v, m, torch.ones(1, 1), torch.full((1, 1), 8.0), 4).tolist()
        [[0.0, 3.0, 0.0, -5.0]]
    """
    n, groups = values.shape
    k = groups * SPARSE_GROUP
    cols = _meta_columns(meta, groups) + SPARSE_GROUP * torch.arange(
        groups, device=meta.device
    ).view(1, groups, 1)
    codes = torch.stack((values & 0x0F, values >> 4), dim=-1).float()  # [N, groups, 2]
    q = torch.div(cols, group_size, rounding_mode="floor")
    s = scales.float().gather(1, q.reshape(n, -1)).reshape(n, groups, 2)
    z = zeros.float().gather(1, q.reshape(n, -1)).reshape(n, groups, 2)
    kept = (codes - z) * s
    dense = torch.zeros(n, k, dtype=torch.float32, device=values.device)
    return dense.scatter(1, cols.reshape(n, -1), kept.reshape(n, -1))


@dataclass(frozen=True)
class Sparse24Int4Weight:
    """A 2:4 weight whose kept values are group-wise int4 codes, as the kernels read it.

    Example:
        >>> from squeezeprompt.quantize.rtn import quantize_int4
        >>> w = torch.randn(8, 64) * torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(16)
        >>> q = quantize_int4(w, group_size=32)
        >>> p = sparse24_int4_pack(q.qweight, q.scales, q.zeros, 32)
        >>> p.bits_per_weight, torch.equal(p.dequantize(), q.dequantize())  # 2 + 1 + 64 / 32
        (5.0, True)
    """

    values: Tensor  # [N, K / 4] uint8: the two kept codes of each group of 4 columns
    meta: Tensor  # [N, ceil(K / 8)] uint8 2:4 metadata
    scales: Tensor  # [N, K / group_size] float, over the original K columns
    zeros: Tensor  # [N, K / group_size] float, in code units
    group_size: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.values.shape[0], self.values.shape[1] * SPARSE_GROUP)

    @property
    def bits_per_weight(self) -> float:
        n, k = self.shape
        stored = sum(t.numel() * t.element_size() for t in (self.values, self.meta))
        stored += sum(t.numel() * t.element_size() for t in (self.scales, self.zeros))
        return 8.0 * stored / (n * k)

    def dequantize(self) -> Tensor:
        return sparse24_int4_unpack(
            self.values, self.meta, self.scales, self.zeros, self.group_size
        )


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
