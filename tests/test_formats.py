"""Packed layouts: int4 pairs and 2:4 metadata round-trip exactly.

Hypothesis draws the shapes and the sparsity pattern (so groups with 0, 1 and 2
nonzeros and K % 8 == 4 all occur); a seed it draws fills in the values.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from squeezeprompt.formats import (
    Int4Weight,
    Int8Weight,
    dequantize_int4,
    pack_int4,
    sparse24_unpack,
    unpack_int4,
)
from squeezeprompt.ops import sparse24_pack, sparse24_pack_ref

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Every set of at most 2 of the 4 columns of a group: the legal 2:4 patterns.
PATTERNS = [c for r in range(3) for c in itertools.combinations(range(4), r)]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@given(
    n=st.integers(1, 6),
    half_k=st.integers(1, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_unpack_int4_inverts_pack_int4(n, half_k, seed):
    codes = torch.randint(0, 16, (n, 2 * half_k), generator=_generator(seed), dtype=torch.uint8)
    packed = pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.shape == (n, half_k)
    assert torch.equal(unpack_int4(packed), codes)


@given(n=st.integers(1, 6), half_k=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_pack_int4_inverts_unpack_int4(n, half_k, seed):
    packed = torch.randint(0, 256, (n, half_k), generator=_generator(seed), dtype=torch.uint8)
    assert torch.equal(pack_int4(unpack_int4(packed)), packed)


def test_pack_int4_nibble_order():
    # Column 2j in the low nibble, 2j + 1 in the high nibble.
    codes = torch.tensor([[1, 2, 15, 0], [0, 15, 7, 8]], dtype=torch.uint8)
    assert pack_int4(codes).tolist() == [[0x21, 0x0F], [0xF0, 0x87]]


@pytest.mark.parametrize("dtype", [torch.int8, torch.int16, torch.int32, torch.int64])
def test_pack_int4_accepts_integer_dtypes(dtype):
    codes = torch.tensor([[3, 12]], dtype=dtype)
    assert pack_int4(codes).tolist() == [[0xC3]]


@pytest.mark.parametrize(
    ("codes", "error", "words"),
    [
        (torch.zeros(2, 3, dtype=torch.uint8), ValueError, "even"),
        (torch.zeros(4, dtype=torch.uint8), ValueError, "2-D"),
        (torch.tensor([[0, 16]], dtype=torch.uint8), ValueError, "[0, 15]"),
        (torch.tensor([[-1, 3]], dtype=torch.int32), ValueError, "[0, 15]"),
        (torch.zeros(2, 4), TypeError, "integer"),
    ],
    ids=["odd_k", "1d", "code_16", "negative", "float"],
)
def test_pack_int4_rejects_bad_codes(codes, error, words):
    with pytest.raises(error) as info:
        pack_int4(codes)
    assert "pack_int4" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    "packed", [torch.zeros(2, 3, dtype=torch.int8), torch.zeros(6, dtype=torch.uint8)]
)
def test_unpack_int4_rejects_bad_input(packed):
    with pytest.raises(ValueError, match="unpack_int4"):
        unpack_int4(packed)


def test_dequantize_int4_known_values():
    packed = pack_int4(torch.tensor([[0, 15, 8, 4]], dtype=torch.uint8))
    w = dequantize_int4(packed, torch.tensor([[0.5, 2.0]]), torch.tensor([[8.0, 4.0]]), 2)
    assert w.tolist() == [[-4.0, 3.5, 8.0, 0.0]]


def test_weight_dataclasses():
    q4 = Int4Weight(
        qweight=torch.zeros(4, 8, dtype=torch.uint8),
        scales=torch.ones(4, 2),
        zeros=torch.full((4, 2), 8.0),
        group_size=8,
    )
    assert q4.shape == (4, 16)
    assert q4.bits_per_weight == 4.0 + 8.0 * (8 * 4 + 8 * 4) / 64  # fp32 scale + zero
    assert torch.equal(q4.dequantize(), torch.full((4, 16), -8.0))
    q8 = Int8Weight(
        qweight=torch.full((2, 4), -3, dtype=torch.int8), scales=torch.tensor([1.0, 2.0])
    )
    assert q8.bits_per_weight == 8.0 + 8.0 * 2 * 4 / 8
    assert q8.dequantize().tolist() == [[-3.0] * 4, [-6.0] * 4]
    with pytest.raises(AttributeError):
        q8.scales = torch.ones(2)  # frozen


@st.composite
def sparse24_weights(draw):
    """A 2:4-sparse [N, K] weight: pattern per group drawn, values from a drawn seed."""
    n = draw(st.integers(1, 5))
    groups = draw(st.integers(1, 9))  # odd counts give K % 8 == 4
    patterns = draw(st.lists(st.sampled_from(PATTERNS), min_size=n * groups, max_size=n * groups))
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    gen = _generator(draw(st.integers(0, 2**31 - 1)))
    mask = torch.zeros(n * groups, 4, dtype=torch.bool)
    for g, cols in enumerate(patterns):
        mask[g, list(cols)] = True
    # Magnitudes in [0.5, 2): never zero, so the drawn pattern is the weight's pattern.
    values = (torch.rand(n * groups, 4, generator=gen) * 1.5 + 0.5) * torch.where(
        torch.rand(n * groups, 4, generator=gen) < 0.5, -1.0, 1.0
    )
    return (values * mask).reshape(n, groups * 4).to(dtype)


@given(w=sparse24_weights())
def test_sparse24_pack_matches_ref_and_unpack_inverts_it(w):
    values, meta = sparse24_pack(w)
    ref_values, ref_meta = sparse24_pack_ref(w)
    n, k = w.shape
    assert values.shape == (n, k // 2) and values.dtype == w.dtype
    assert meta.shape == (n, (k // 4 + 1) // 2) and meta.dtype == torch.uint8
    assert torch.equal(values, ref_values), "op and reference pack different values"
    assert torch.equal(meta, ref_meta), "op and reference pack different metadata"
    assert torch.equal(sparse24_unpack(values, meta), w)
    # Within a group the two stored column indices are distinct and ascending.
    nibbles = torch.stack((meta & 0xF, meta >> 4), -1).reshape(n, -1)[:, : k // 4]
    assert bool(((nibbles & 3) < (nibbles >> 2)).all())
    if k % 8:
        assert bool((meta[:, -1] >> 4 == 0).all()), "the unused high nibble must be zero"


@given(w=sparse24_weights(), seed=st.integers(0, 2**31 - 1))
def test_sparse24_unpack_applies_int8_scales(w, seed):
    ints = (w.float() * 50).round().clamp(-127, 127)
    values, meta = sparse24_pack(ints)
    scales = torch.rand(w.shape[0], generator=_generator(seed)) + 0.01
    dense = sparse24_unpack(values.to(torch.int8), meta, scales)
    assert dense.dtype == torch.float32
    assert torch.equal(dense, ints * scales[:, None])
    with pytest.raises(ValueError, match="scales"):
        sparse24_unpack(values.to(torch.int8), meta)
