// SIMD kernels written once with 256-bit AVX2 intrinsics and compiled twice:
// kernels_avx2.cpp (-mavx2 -mfma -mf16c) and kernels_avx512.cpp (AVX-512 flags,
// where the compiler gets 32 registers and EVEX encodings, and __AVX512VNNI__
// switches the int16 dot products to vpdpwssd). Define SP_SIMD_NS before including.
// Everything has internal linkage so the two copies never meet at link time.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>
#include <cstdint>
#include <vector>

#include "formats.h"
#include "kernels.h"
#include "scalar_math.h"

#ifndef SP_SIMD_NS
#error "define SP_SIMD_NS (avx2 or avx512) before including kernels_simd.h"
#endif

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

// Register tiles: one weight row at a time is decoded once per group of up to MR
// activation rows, each with two independent accumulators (an FMA chain would
// otherwise wait on its own latency). The accumulators are plain locals of the
// row loop: indexing an accumulator array by a runtime row index forces it to the
// stack, which measured 2-3x slower.
constexpr int kActRowsPerTile = 4;

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

inline __m256 load_int8x8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

// Calls tile(std::integral_constant<int, MR>{}, m0) over all M activation rows in
// steps of kMaxRows (at most 8), then one step for the leftover rows (not one per row).
// The weight row stays in L1 between the steps, so DRAM sees each byte once.
template <int kMaxRows = kActRowsPerTile, typename Tile>
void over_rows(int64_t M, Tile tile) {
  static_assert(kMaxRows >= 1 && kMaxRows <= 8, "over_rows: 1 to 8 rows per step");
  int64_t m0 = 0;
  for (; m0 + kMaxRows <= M; m0 += kMaxRows) tile(std::integral_constant<int, kMaxRows>{}, m0);
  auto rest = [&](auto mr) {
    if constexpr (decltype(mr)::value < kMaxRows) tile(mr, m0);
  };
  switch (M - m0) {
    case 7: rest(std::integral_constant<int, 7>{}); break;
    case 6: rest(std::integral_constant<int, 6>{}); break;
    case 5: rest(std::integral_constant<int, 5>{}); break;
    case 4: rest(std::integral_constant<int, 4>{}); break;
    case 3: rest(std::integral_constant<int, 3>{}); break;
    case 2: rest(std::integral_constant<int, 2>{}); break;
    case 1: rest(std::integral_constant<int, 1>{}); break;
    default: break;
  }
}

// ---------------------------------------------------------------- weight prefetch

// Software prefetch distance along a decode kernel's weight stream. A tile reads its NR
// weight rows side by side, which the hardware prefetcher follows poorly: without a
// software prefetch a 49152 x 576 int8 weight streamed from DRAM at half the speed of
// one row at a time. The NR rows of a tile and the next tile's are contiguous, so the
// stream is linear: the kernels prefetch one line per line consumed, two tiles
// (2 * tile_bytes) ahead of the tile's progress, within [8, 32] KiB, so each tile's
// lines are requested while an earlier one is computed. One Zen 3 core, weight read
// from DRAM, medians of 30-40 calls in interleaved runs, 4096 x 4096 at M = 1: int8
// weight-only 1.23 / 1.13 ms at 8 KiB ahead, 1.10 / 1.01 ms under this rule (32 KiB);
// int4 M = 1 (int4_rows_m1_paired, 12 KiB tiles) 1.16 / 1.21 / 1.08 ms at 8 KiB, 0.96 at
// 24 KiB, 0.92-1.02 at 32 KiB. 576 x 1536, 1536 x 576 and 49152 x 576 were unchanged; a
// fixed 32 KiB had slowed int8 576 x 1536 (2.3 KiB tiles) from 40 to 55 us.
inline int64_t stream_prefetch_bytes(int64_t tile_bytes) {
  return std::clamp<int64_t>(2 * tile_bytes, 8192, 32768);
}

// ---------------------------------------------------------------- activation chunks

// The K-blocked decode path (int4_weight_simd.h) takes a chunk of columns of all M
// activation rows from L1 while a block of weight rows streams past. (The same scheme
// for int8 weight-only, NR x 4 tiles over 24 KiB chunks, ran 4096 x 4096 at M = 8 in
// 3.5 ms against int8_tile's 3.2: there the tiles already reach 80% of the FMA peak.)
struct alignas(32) Floats8 {
  float v[8];
};

struct ActivationChunks {
  const float* data;
  int64_t M, width;  // columns per chunk (the last one may be narrower)
  // Chunk starting at column c0 (a multiple of width): row m at at(c0) + m * width.
  const float* at(int64_t c0) const { return data + c0 * M; }
};

// x [M, K] cut into equal chunks of a multiple of `align` columns whose M rows take at
// most max_bytes, copied chunk by chunk with the rows of a chunk side by side: in x
// itself they are K floats apart, at K = 4096 a multiple of 4 KiB, so a chunk's rows
// share L1 sets (8 rows fill a set's 8 ways) and evict each other. The buffer is this
// thread's scratch, kept between calls; whole vectors, so each 32-byte load stays in one
// cache line (16 bytes off, every other load was split: 30% slower).
inline ActivationChunks pack_activation_chunks(const float* x, int64_t M, int64_t K,
                                               int64_t max_bytes, int64_t align) {
  const int64_t bytes = M * K * int64_t{sizeof(float)};
  const int64_t chunks = (bytes + max_bytes - 1) / max_bytes;
  const int64_t width = ((K + chunks - 1) / chunks + align - 1) / align * align;
  static thread_local std::vector<Floats8> buffer;
  buffer.resize(static_cast<size_t>((chunks * M * width + 7) / 8));
  float* packed = buffer.data()->v;
  for (int64_t j = 0; j < chunks; ++j)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t c0 = j * width, w = std::min(width, K - c0);
      if (w > 0) std::memcpy(packed + (j * M + m) * width, x + m * K + c0, w * sizeof(float));
    }
  return {packed, M, width};
}

// ---------------------------------------------------------------- int8 weight-only

// The streaming kernel (int8_weight_rows) is int8_weight_simd.h, included below; this is
// the prefill path's dequantization (then BLAS).
void int8_dequant_rows(const int8_t* q, const float* scales, int64_t K, int64_t n0, int64_t n1,
                       float* w) {
  const int64_t Kv = K & ~int64_t{7};
  for (int64_t n = n0; n < n1; ++n) {
    const __m256 s = _mm256_set1_ps(scales[n]);
    int64_t k = 0;
    for (; k < Kv; k += 8) _mm256_storeu_ps(w + n * K + k, _mm256_mul_ps(load_int8x8(q + n * K + k), s));
    for (; k < K; ++k) w[n * K + k] = static_cast<float>(q[n * K + k]) * scales[n];
  }
}

// ---------------------------------------------------------------- int4 weight-only

// Sixteen int4 codes from one 8-byte broadcast, with no variable shift: pshufb
// gives every 32-bit lane its byte, even lanes keep the low nibble (code), odd lanes
// the high nibble in place (16 * code). The odd lanes' zero is multiplied and their
// scale divided by 16, both exact (powers of two), so (raw - zero) * scale rounds
// exactly as the reference's (code - zero) * scale: a code equal to its zero gives
// an exact 0 (an FMA with -zero * scale would leave a rounding residue, which turns a
// huge activation into a huge output and an Inf one into Inf where F.linear gives NaN).
struct Int4Decoder {
  __m256i shuffle_lo, shuffle_hi, nibble_mask;
  __m256 lane_scale;  // {1, 1/16, 1, 1/16, ...}
  __m256 lane_zero;   // {1, 16, 1, 16, ...}
  Int4Decoder()
      : shuffle_lo(_mm256_setr_epi8(0, -1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1,  //
                                    2, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1, 3, -1, -1, -1)),
        shuffle_hi(_mm256_setr_epi8(4, -1, -1, -1, 4, -1, -1, -1, 5, -1, -1, -1, 5, -1, -1, -1,  //
                                    6, -1, -1, -1, 6, -1, -1, -1, 7, -1, -1, -1, 7, -1, -1, -1)),
        nibble_mask(_mm256_setr_epi32(0x0F, 0xF0, 0x0F, 0xF0, 0x0F, 0xF0, 0x0F, 0xF0)),
        lane_scale(_mm256_setr_ps(1.f, 1.f / 16, 1.f, 1.f / 16, 1.f, 1.f / 16, 1.f, 1.f / 16)),
        lane_zero(_mm256_setr_ps(1.f, 16.f, 1.f, 16.f, 1.f, 16.f, 1.f, 16.f)) {}

  // All 8 bytes (columns [2j, 2j + 16)) broadcast to every 64-bit lane.
  static __m256i broadcast8(const uint8_t* bytes) {
    int64_t eight;
    std::memcpy(&eight, bytes, sizeof(eight));
    return _mm256_set1_epi64x(eight);
  }
  // Codes of 8 columns as raw floats (odd lanes x16): from 4 bytes, or half of a broadcast.
  __m256 raw(const uint8_t* bytes) const {
    int32_t four;
    std::memcpy(&four, bytes, sizeof(four));
    return from(_mm256_set1_epi32(four), shuffle_lo);
  }
  __m256 from(__m256i b, __m256i shuffle) const {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_shuffle_epi8(b, shuffle), nibble_mask));
  }
  // Weights of 16 columns from their 8 code bytes, (raw - zl) * s: zl and s are the
  // group's zero and scale already multiplied by lane_zero and lane_scale.
  void weights16(const uint8_t* bytes, __m256 zl, __m256 s, __m256& w0, __m256& w1) const {
    const __m256i b = broadcast8(bytes);
    w0 = _mm256_mul_ps(_mm256_sub_ps(from(b, shuffle_lo), zl), s);
    w1 = _mm256_mul_ps(_mm256_sub_ps(from(b, shuffle_hi), zl), s);
  }
};

// The condition of the factored paths (the paired int4 paths of int4_weight_simd.h, for
// every activation row, and sparse24_int4_tile at M = 1), which sum x * code (or
// x * (code - zero)) per group and scale once. Their partial sums are bounded by
// 240 * sum |x| (sparse24_int4_tile's odd lanes hold 16 * (code - zero); the paired sums
// stay below 31 * sum |x|), so sum |x| below 2^118 keeps them below float max with room
// for the sum's own rounding; NaN or Inf in x fails the test.
constexpr float kInt4FactoredMaxSumAbs = 0x1p118f;
// The paired paths divide half the activations by 16, exact unless that leaves the
// normal range (below 2^-126). From sum |x| >= 2^-96 on, what such a value loses (under
// 2^-149 * 255 per column) is far below the float32 rounding of the result's own sums
// (2^-96 * 2^-24); a row of all-tiny activations sends the call to the per-weight paths.
constexpr float kInt4PairedMinSumAbs = 0x1p-96f;

inline float sum_abs(const float* x, int64_t K) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 acc = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    acc = _mm256_add_ps(acc, _mm256_and_ps(_mm256_loadu_ps(x + k), magnitude));
  float sum = hsum(acc);
  for (; k < K; ++k) sum += std::fabs(x[k]);
  return sum;
}


// ---------------------------------------------------------------- W8A8 int8 x int8

// The activation quantization; the dot products (int8_dot_rows) are int8_dot_simd.h.
// Same arithmetic as scalar::quantize_row_int8: IEEE division and round-half-even
// are exact in both, so the codes agree bit for bit.
void quantize_row_int8(const float* x, int64_t K, int8_t* q, float* scale_out) {
  const int64_t Kv = K & ~int64_t{7};
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 zero = _mm256_setzero_ps();
  __m256 vmax = zero, vprobe = zero;
  for (int64_t k = 0; k < Kv; k += 8) {
    const __m256 v = _mm256_loadu_ps(x + k);
    vmax = _mm256_max_ps(vmax, _mm256_and_ps(v, abs_mask));
    vprobe = _mm256_add_ps(vprobe, _mm256_mul_ps(v, zero));  // NaN lanes: NaN or Inf seen
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float amax = 0.f, probe = 0.f;
  for (float v : lanes) amax = std::max(amax, v);
  for (int64_t k = Kv; k < K; ++k) {
    amax = std::max(amax, std::fabs(x[k]));
    probe += x[k] * 0.f;
  }
  const bool non_finite = _mm256_movemask_ps(_mm256_cmp_ps(vprobe, vprobe, _CMP_UNORD_Q)) != 0;
  if (non_finite || std::isnan(probe)) return scalar::quantize_non_finite_row(K, q, scale_out);
  const float scale = scalar::int8_row_scale(amax);
  *scale_out = scale;
  const __m256 vs = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-scalar::kInt8Max),
               hi = _mm256_set1_ps(scalar::kInt8Max);
  for (int64_t k = 0; k < Kv; k += 8) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + k), vs),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    const __m256i i32 = _mm256_cvtps_epi32(r);
    const __m256i i16 = _mm256_packs_epi32(i32, i32);  // per 128-bit lane: a0..3 a0..3
    const __m256i i8 = _mm256_packs_epi16(i16, i16);
    const int32_t low = _mm_cvtsi128_si32(_mm256_castsi256_si128(i8));
    const int32_t high = _mm_cvtsi128_si32(_mm256_extracti128_si256(i8, 1));
    std::memcpy(q + k, &low, 4);
    std::memcpy(q + k + 4, &high, 4);
  }
  for (int64_t k = Kv; k < K; ++k) {
    const float r = std::nearbyint(x[k] / scale);
    q[k] = static_cast<int8_t>(std::clamp(r, -scalar::kInt8Max, scalar::kInt8Max));
  }
}

// ---------------------------------------------------------------- 2:4 sparse

inline __m256 load8(const float* v) { return _mm256_loadu_ps(v); }
inline __m256 load8(const int8_t* v) { return load_int8x8(v); }
inline __m256 load8(const scalar::BFloat16Bits* v) {
  const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}
inline __m256 load8(const scalar::HalfBits* v) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v)));
}

// The kept activations of a 16-column step (4 groups) are gathered with in-lane permutes
// (vpermilps), so each group must sit in the 128-bit lane its values take: values 0-3
// (groups 0 and 1) in the low lane, 4-7 (groups 2 and 3) in the high one. The
// activations are laid out once per call of sparse24_rows or sparse24_int4_rows (once
// per thread's share of the output channels) with the groups of each step in the order
// 0, 2, 1, 3: the step's first 8 floats hold groups 0 | 2, the next 8 groups 1 | 3. Then
// permute(first) gives the kept x of groups 0 and 2 in value lanes {0, 1, 4, 5},
// permute(second) those of groups 1 and 3 in lanes {2, 3, 6, 7}, and one blend joins
// them. vpermilps reads the low 2 bits of each control lane, and value lane e's index
// sits at bit 2e of the step's 16 metadata bits (csrc/formats.h), so the control is
// those bits shifted per lane: no table. Against the table of vpermps indices this
// replaced (two metadata byte and two table loads, cross-lane permutes, one chain at M =
// 1), one Zen 3 core, int8 values, bf16 activations, medians: 4096 x 4096 at M = 1 1.82
// -> 1.57 ms in cache and 2.1-3.0 -> 1.2-1.6 ms read from DRAM (0.42-0.57x -> 0.82-0.91x
// our dense int8 kernel, interleaved); M = 8 11.1 -> 7.8 ms; 1536 x 576 at M = 1 100 ->
// 68 us, M = 8 594 -> 314 us. A software prefetch along the values (4 or 16 KiB ahead)
// made the DRAM case slower: rows are read one at a time, a linear stream the hardware
// prefetcher follows.
struct Sparse24SwappedX {
  const float* data;
  int64_t width;  // columns per row: K rounded down to whole steps
  const float* row(int64_t m) const { return data + m * width; }
};

inline Sparse24SwappedX sparse24_swap_groups(const float* x, int64_t M, int64_t K) {
  static thread_local std::vector<Floats8> buffer;
  const int64_t width = K & ~int64_t{15};
  buffer.resize(static_cast<size_t>(M * width / 8));
  // Empty when K < 16 (data() may then be null): no step reads it.
  float* out = reinterpret_cast<float*>(buffer.data());
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < width; k += 16) {
      const __m256 a = _mm256_loadu_ps(x + m * K + k), b = _mm256_loadu_ps(x + m * K + k + 8);
      _mm256_store_ps(out + m * width + k, _mm256_permute2f128_ps(a, b, 0x20));
      _mm256_store_ps(out + m * width + k + 8, _mm256_permute2f128_ps(a, b, 0x31));
    }
  }
  return {out, width};
}

// Per value lane e, where its 2-bit index sits in the metadata: bit 2e of the step's 16
// bits, plus 16 for the second step of a 32-bit load. vpsrlvd by these gives the control.
inline __m256i sparse24_shifts(int first_bit) {
  return _mm256_add_epi32(_mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14),
                          _mm256_set1_epi32(first_bit));
}

// The 16-column step at column k, for every activation row of the tile, into acc: v
// holds the step's 8 kept values, ctrl the permute control from its metadata.
template <int MR>
inline void sparse24_step(const Sparse24SwappedX& xs, int64_t m0, int64_t k, __m256i ctrl,
                          __m256 v, __m256* acc) {
  for (int m = 0; m < MR; ++m) {
    const float* xk = xs.row(m0 + m) + k;
    const __m256 first = _mm256_permutevar_ps(_mm256_load_ps(xk), ctrl);
    const __m256 second = _mm256_permutevar_ps(_mm256_load_ps(xk + 8), ctrl);
    acc[m] = _mm256_fmadd_ps(v, _mm256_blend_ps(first, second, 0xCC), acc[m]);
  }
}

// Two steps per pass into two accumulators per row, so at M = 1 the FMA chain does
// not wait on its own latency; one 32-bit metadata load serves both.
template <int MR, typename T>
void sparse24_tile(const Sparse24SwappedX& xs, const float* x, int64_t K, const T* vr,
                   const uint8_t* mr, float scale, int64_t n, int64_t N, int64_t m0, float* out) {
  const int64_t groups = K / kSparseGroup;
  const int64_t gv = xs.width / kSparseGroup;  // groups covered by 16-column steps
  const __m256i shifts0 = sparse24_shifts(0), shifts1 = sparse24_shifts(16);
  __m256 acc0[MR], acc1[MR];
  for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 8 <= gv; g += 8) {
    int32_t meta4;
    std::memcpy(&meta4, mr + g / 2, sizeof(meta4));
    const __m256i meta = _mm256_set1_epi32(meta4);
    sparse24_step<MR>(xs, m0, g * kSparseGroup, _mm256_srlv_epi32(meta, shifts0),
                      load8(vr + 2 * g), acc0);
    sparse24_step<MR>(xs, m0, (g + 4) * kSparseGroup, _mm256_srlv_epi32(meta, shifts1),
                      load8(vr + 2 * g + 8), acc1);
  }
  if (g < gv) {  // a lone step: read only its own 2 metadata bytes
    uint16_t meta2;
    std::memcpy(&meta2, mr + g / 2, sizeof(meta2));
    sparse24_step<MR>(xs, m0, g * kSparseGroup,
                      _mm256_srlv_epi32(_mm256_set1_epi32(meta2), shifts0), load8(vr + 2 * g),
                      acc0);
  }
  for (int m = 0; m < MR; ++m) {
    const float tail = scalar::sparse24_dot(x + (m0 + m) * K, vr, mr, gv, groups);
    out[(m0 + m) * N + n] = (hsum(_mm256_add_ps(acc0[m], acc1[m])) + tail) * scale;
  }
}

template <typename T>
void sparse24_rows_of(const float* x, int64_t M, int64_t K, const T* values, const uint8_t* meta,
                      const float* scales, int64_t n0, int64_t n1, int64_t N, float* out) {
  const int64_t mb = scalar::sparse24_meta_bytes(K);
  const Sparse24SwappedX xs = sparse24_swap_groups(x, M, K);
  for (int64_t n = n0; n < n1; ++n) {
    const float scale = scales != nullptr ? scales[n] : 1.f;
    over_rows(M, [&](auto mr, int64_t m0) {
      sparse24_tile<decltype(mr)::value>(xs, x, K, values + n * (K / 2), meta + n * mb, scale, n,
                                         N, m0, out);
    });
  }
}

void sparse24_rows(const float* x, int64_t M, int64_t K, const void* values, ValueType vt,
                   const uint8_t* meta, const float* scales, int64_t n0, int64_t n1, int64_t N,
                   float* out) {
  switch (vt) {
    case ValueType::kFloat:
      return sparse24_rows_of(x, M, K, static_cast<const float*>(values), meta, scales, n0, n1, N,
                              out);
    case ValueType::kBFloat16:
      return sparse24_rows_of(x, M, K, static_cast<const scalar::BFloat16Bits*>(values), meta,
                              scales, n0, n1, N, out);
    case ValueType::kHalf:
      return sparse24_rows_of(x, M, K, static_cast<const scalar::HalfBits*>(values), meta, scales,
                              n0, n1, N, out);
    case ValueType::kInt8:
      return sparse24_rows_of(x, M, K, static_cast<const int8_t*>(values), meta, scales, n0, n1, N,
                              out);
  }
}

// ---------------------------------------------------------------- 2:4 + int4

// The kept activations are gathered as in sparse24_tile (sparse24_step, on the activations
// laid out by sparse24_swap_groups), so the codes are decoded in value order: lanes 0-7
// hold slots 0 and 1 of groups 0, 1, 2 and 3. Byte offsets (within a broadcast) of those
// codes: even lanes keep the low nibble, odd lanes the high one, as in Int4Decoder.
// `first` is the step's first byte: 0 or 4 of an 8-byte broadcast.
inline __m256i sparse24_int4_shuffle(int first) {
  const char a = static_cast<char>(first), b = static_cast<char>(first + 1),
             c = static_cast<char>(first + 2), d = static_cast<char>(first + 3);
  return _mm256_setr_epi8(a, -1, -1, -1, a, -1, -1, -1, b, -1, -1, -1, b, -1, -1, -1,  //
                          c, -1, -1, -1, c, -1, -1, -1, d, -1, -1, -1, d, -1, -1, -1);
}

// group_size % 16 == 0 (so K % 16 == 0 too): a step never straddles two groups and
// there is no column tail. Two accumulators per row, alternating steps, so the FMA
// chain does not wait on its own latency at M = 1. kFactored (M = 1, under the sum |x|
// condition the paired int4 paths of int4_weight_simd.h use too): each group sums
// x * (raw - zero) and multiplies by its scale once, a mul less per 8 kept codes
// (4096 x 4096 g128, one Zen 3 core: 1.48 -> 1.37 ms).
template <int MR, bool kFactored = false>
void sparse24_int4_tile(const Int4Decoder& dec, const Sparse24SwappedX& xs, int64_t K,
                        const uint8_t* vr, const uint8_t* mr, const float* sr, const float* zr,
                        int64_t group_size, int64_t n, int64_t N, int64_t m0, float* out) {
  static_assert(!kFactored || MR == 1, "the factored path keeps one group sum per chain");
  const __m256i shuffle0 = sparse24_int4_shuffle(0), shuffle1 = sparse24_int4_shuffle(4);
  const __m256i shifts0 = sparse24_shifts(0), shifts1 = sparse24_shifts(16);
  const int64_t G = K / group_size;
  __m256 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sr[g]), dec.lane_scale);
    const __m256 zl = _mm256_mul_ps(_mm256_set1_ps(zr[g]), dec.lane_zero);
    // The weights of one step: (raw - zero) * scale, or (raw - zero) when factored.
    auto weights = [&](__m256 raw) {
      const __m256 centred = _mm256_sub_ps(raw, zl);
      return kFactored ? centred : _mm256_mul_ps(centred, s);
    };
    __m256 b0[MR], b1[MR];  // this group's sums when factored
    __m256* c0 = a0;
    __m256* c1 = a1;
    if constexpr (kFactored) {
      b0[0] = b1[0] = _mm256_setzero_ps();
      c0 = b0;
      c1 = b1;
    }
    const int64_t end = (g + 1) * group_size;
    int64_t k = g * group_size;
    for (; k + 32 <= end; k += 32) {  // 8 code bytes and 4 metadata bytes at once
      const __m256i b = Int4Decoder::broadcast8(vr + k / kSparseGroup);
      int32_t meta4;
      std::memcpy(&meta4, mr + k / 8, sizeof(meta4));
      const __m256i mv = _mm256_set1_epi32(meta4);
      const __m256 w0 = weights(dec.from(b, shuffle0));
      const __m256 w1 = weights(dec.from(b, shuffle1));
      sparse24_step<MR>(xs, m0, k, _mm256_srlv_epi32(mv, shifts0), w0, c0);
      sparse24_step<MR>(xs, m0, k + 16, _mm256_srlv_epi32(mv, shifts1), w1, c1);
    }
    if (k < end) {  // a lone step: read only its own 4 code and 2 metadata bytes
      int32_t four;
      uint16_t meta2;
      std::memcpy(&four, vr + k / kSparseGroup, sizeof(four));
      std::memcpy(&meta2, mr + k / 8, sizeof(meta2));
      const __m256 w = weights(dec.from(_mm256_set1_epi32(four), shuffle0));
      const __m256i ctrl = _mm256_srlv_epi32(_mm256_set1_epi32(meta2), shifts0);
      sparse24_step<MR>(xs, m0, k, ctrl, w, c0);
    }
    if constexpr (kFactored) {
      a0[0] = _mm256_fmadd_ps(b0[0], s, a0[0]);
      a1[0] = _mm256_fmadd_ps(b1[0], s, a1[0]);
    }
  }
  for (int m = 0; m < MR; ++m) out[(m0 + m) * N + n] = hsum(_mm256_add_ps(a0[m], a1[m]));
}

void sparse24_int4_rows(const float* x, int64_t M, int64_t K, const uint8_t* values,
                        const uint8_t* meta, const float* scales, const float* zeros,
                        int64_t group_size, int64_t n0, int64_t n1, int64_t N, float* out) {
  if (group_size % 16 != 0) {  // a 16-column step would span two groups
    kernels_scalar().sparse24_int4_rows(x, M, K, values, meta, scales, zeros, group_size, n0, n1, N,
                                        out);
    return;
  }
  const Int4Decoder dec;
  const int64_t G = K / group_size, mb = scalar::sparse24_meta_bytes(K);
  const Sparse24SwappedX xs = sparse24_swap_groups(x, M, K);  // K % 16 == 0: no tail
  // Factored only from 64-column groups: at 32 the per-group cost ate the gain.
  if (M == 1 && group_size >= 64 && sum_abs(x, K) < kInt4FactoredMaxSumAbs) {
    for (int64_t n = n0; n < n1; ++n)
      sparse24_int4_tile<1, true>(dec, xs, K, values + n * (K / kSparseGroup), meta + n * mb,
                                  scales + n * G, zeros + n * G, group_size, n, N, 0, out);
    return;
  }
  for (int64_t n = n0; n < n1; ++n)
    over_rows(M, [&](auto mr, int64_t m0) {
      sparse24_int4_tile<decltype(mr)::value>(dec, xs, K, values + n * (K / kSparseGroup),
                                              meta + n * mb, scales + n * G, zeros + n * G,
                                              group_size, n, N, m0, out);
    });
}

// The BLAS path's scatter runs once per call, not per activation row: the portable
// code is not what limits it.
void sparse24_int4_dequant_rows(const uint8_t* values, const uint8_t* meta, const float* scales,
                                const float* zeros, int64_t K, int64_t group_size, int64_t n0,
                                int64_t n1, float* w) {
  kernels_scalar().sparse24_int4_dequant_rows(values, meta, scales, zeros, K, group_size, n0, n1,
                                              w);
}

// ---------------------------------------------------------------- fake quantization

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// Bit-identical to scalar::fake_quant: same division, rounding, clamp and product.
void fake_quant_group(const float* x, float* y, int64_t n, float s, float z, float lo, float hi) {
  const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vlo = _mm256_set1_ps(lo),
               vhi = _mm256_set1_ps(hi);
  const int64_t nv = n & ~int64_t{7};
  for (int64_t i = 0; i < nv; i += 8) {
    const __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs), kRound);
    // Operand order matters: max/min return their second operand when either is NaN,
    // so x's NaN must come second to survive the clamp as std::clamp lets it.
    const __m256 q = _mm256_min_ps(vhi, _mm256_max_ps(vlo, _mm256_add_ps(r, vz)));
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(q, vz), vs));
  }
  scalar::fake_quant(x + nv, y + nv, n - nv, s, z, lo, hi);
}

void fake_quant_group_backward(const float* x, const float* g, float* gx, int64_t n, float s,
                               float z, float lo, float hi, float* sum_s, float* sum_z) {
  const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(z), vlo = _mm256_set1_ps(lo),
               vhi = _mm256_set1_ps(hi);
  const __m256 below_ds = _mm256_set1_ps(lo - z), above_ds = _mm256_set1_ps(hi - z);
  __m256 acc_s = _mm256_setzero_ps(), acc_out = _mm256_setzero_ps();
  const int64_t nv = n & ~int64_t{7};
  for (int64_t i = 0; i < nv; i += 8) {
    const __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i), vs);
    const __m256 r = _mm256_round_ps(v, kRound);
    const __m256 q = _mm256_add_ps(r, vz);
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 below = _mm256_cmp_ps(q, vlo, _CMP_LT_OQ);
    const __m256 above = _mm256_cmp_ps(q, vhi, _CMP_GT_OQ);
    const __m256 outside = _mm256_or_ps(below, above);
    _mm256_storeu_ps(gx + i, _mm256_andnot_ps(outside, gv));
    __m256 ds = _mm256_blendv_ps(_mm256_sub_ps(r, v), below_ds, below);
    ds = _mm256_blendv_ps(ds, above_ds, above);
    acc_s = _mm256_fmadd_ps(gv, ds, acc_s);
    acc_out = _mm256_add_ps(acc_out, _mm256_and_ps(outside, gv));
  }
  // d/dzero is -scale on every clamped element: sum the gradients, scale once.
  *sum_s += hsum(acc_s);
  *sum_z -= hsum(acc_out) * s;
  scalar::fake_quant_backward(x + nv, g + nv, gx + nv, n - nv, s, z, lo, hi, sum_s, sum_z);
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt

// The int4 and int8 weight-only streaming kernels, the W8A8 dot products and W4A8 (int4 codes x
// int8 activations) live in their own files, in these same namespaces.
#include "int4_weight_simd.h"
#include "int8_dot_simd.h"
#include "int8_weight_simd.h"
#include "w4a8_simd.h"

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

const Kernels kTable = {
    &int8_weight_rows,  &int4_weight_rows, &int8_dequant_rows,
    &int4_dequant_rows, &int8_dot_rows,    &quantize_row_int8,
    &int4_int8_pack_row, &int4_int8_rows,
    &sparse24_rows,     &fake_quant_group, &fake_quant_group_backward,
    &sparse24_int4_rows, &sparse24_int4_dequant_rows,
};

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
