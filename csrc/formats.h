// Packed weight layouts shared by every backend. python/squeezeprompt/formats.py
// documents the same layouts; the two must agree bit for bit.
#pragma once
#include <cstdint>

namespace squeezeprompt {

// int4 pairs: byte j of a row holds column 2j in its low nibble and column 2j+1
// in its high nibble, unsigned codes 0..15. Dequantized w = (q - zero) * scale,
// with one (scale, zero) per group of `group_size` consecutive columns.
struct Int4Pair {
  uint8_t byte;
  uint8_t low() const { return byte & 0x0F; }
  uint8_t high() const { return byte >> 4; }
};
static_assert(sizeof(Int4Pair) == 1, "two int4 codes per byte");
constexpr int kInt4PerByte = 2;
constexpr int kInt4Max = 15;

// 2:4 semi-structured sparsity: each group of 4 consecutive columns keeps 2
// values (in column order) and a 4-bit index pair: bits 0-1 the column of the
// first kept value within the group, bits 2-3 the second (first < second).
// Two groups share a metadata byte: group 2j in the low nibble, 2j+1 in the high.
constexpr int kSparseGroup = 4;
constexpr int kSparseKept = 2;
constexpr int kSparseGroupsPerMetaByte = 2;
struct Sparse24Meta {
  uint8_t byte;
  int index(int group_in_byte, int slot) const {
    return (byte >> (4 * group_in_byte + 2 * slot)) & 0x3;
  }
};
static_assert(sizeof(Sparse24Meta) == 1, "two 2:4 groups per metadata byte");

// 2:4 + int4: the two kept values of group g (in the order above) are int4 codes in
// byte g of a values row, slot 0 in the low nibble: values[N, K / 4], one byte per
// group of 4 columns; meta as above. A kept code in column k dequantizes with the
// (scale, zero) of group k / group_size over the ORIGINAL K columns, as in Int4Pair.
struct Sparse24Int4Pair {
  uint8_t byte;
  uint8_t code(int slot) const { return slot == 0 ? (byte & 0x0F) : (byte >> 4); }
};
static_assert(sizeof(Sparse24Int4Pair) == 1, "one byte holds the two kept codes of a group");

}  // namespace squeezeprompt
