// W4A8 SIMD kernels: int4 weight codes times int8 activations with integer dot products,
// one float multiply-add per group. Included by kernels_simd.h only (in its namespaces,
// after its helpers), so the AVX2 and AVX-512 translation units each get a copy.
//
// Layout: an activation row is split into 64-column chunks, each stored as 32 bytes of
// its even columns then 32 bytes of its odd columns. One 32-byte load of a weight row
// (byte j: column 2j in the low nibble, 2j + 1 in the high) then lines up with them:
// low nibbles against the even bytes, high nibbles against the odd ones, and
// vpmaddubsw (u8 x s8 -> s16 pairs) multiplies both with no unpacking beyond two ANDs.
// Nothing saturates: a pair is at most 2 * 15 * 127 = 3810, the even plus the odd pair
// 7620 < 32767, and vpmaddwd widens each chunk to int32 before chunks are added.
//
// Group sizes that are multiples of 64 keep whole chunks in one group; multiples of 32
// split a chunk at its 128-bit halves (int32 lanes 0-3 are columns 0-31, 4-7 columns
// 32-63), so each half gets its group's scale. Other group sizes use the portable layout
// and kernel.
#pragma once

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

constexpr int64_t kW4A8Chunk = 64;   // columns per 32-byte code load
constexpr int64_t kW4A8MBlock = 32;  // activation rows kept in L2 while weights stream
constexpr int kW4A8WeightRows = 4;   // weight rows per tile at M = 1 (independent FMA chains)
constexpr int kW4A8ActRows = 4;      // activation rows per tile sharing each code unpack

inline bool w4a8_simd_layout(int64_t group_size) { return group_size % 32 == 0; }

void int4_int8_pack_row(const int8_t* xq, int64_t K, int64_t group_size, int8_t* xr) {
  if (!w4a8_simd_layout(group_size))
    return kernels_scalar().int4_int8_pack_row(xq, K, group_size, xr);
  const int64_t stride = int4_int8_row_stride(K);
  for (int64_t c = 0; c < stride; c += kW4A8Chunk)
    for (int64_t j = 0; j < kW4A8Chunk / 2; ++j) {
      const int64_t k = c + 2 * j;
      xr[c + j] = k < K ? xq[k] : int8_t{0};
      xr[c + kW4A8Chunk / 2 + j] = k + 1 < K ? xq[k + 1] : int8_t{0};
    }
}

struct W4A8Problem {
  const int8_t* xr;
  const float* xsum;
  const float* xscale;
  int64_t stride;  // bytes between xr rows
  int64_t K, G, group_size;
  const uint8_t* q;
  int64_t row_bytes;
  const float* scales;
  const float* zeros;
  int64_t N;
  float* out;
};

// The pointers of one tile: NR weight rows and MR activation rows, so the chunk loops
// only add offsets (the scalar address arithmetic otherwise rivals the vector work).
template <int NR, int MR>
struct W4A8Tile {
  const uint8_t* q[NR];
  const float* s[NR];
  const int8_t* x[MR];
  // Bytes from a code to the same code two tiles on. At decode each weight byte is read
  // once from DRAM; prefetching the rows two tiles ahead measured 5-8% faster on the
  // 576 x 49152 lm_head (the hardware prefetcher follows each row only after it starts).
  int64_t ahead;
  W4A8Tile(const W4A8Problem& p, int64_t n, int64_t m0) : ahead(2 * NR * p.row_bytes) {
    for (int r = 0; r < NR; ++r) {
      q[r] = p.q + (n + r) * p.row_bytes;
      s[r] = p.scales + (n + r) * p.G;
    }
    for (int m = 0; m < MR; ++m) x[m] = p.xr + (m0 + m) * p.stride;
  }
};

// Chunk c of the tile as exact int32 lanes (vpmaddwd against ones widens the int16 pair
// sums), assigned (kFirst) or added to i32. kHalf: the last chunk of a row that ends
// after 32 columns; its upper 16 code bytes read as zeros, as xr's padding is.
template <bool kFirst, bool kHalf, int NR, int MR>
inline __attribute__((always_inline)) void w4a8_chunk(const W4A8Tile<NR, MR>& t, int64_t c,
                                                      __m256i (&i32)[MR][NR]) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  for (int r = 0; r < NR; ++r) {
    const uint8_t* src = t.q[r] + (kW4A8Chunk / 2) * c;
    if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(src + t.ahead), _MM_HINT_T0);
    const __m256i b =
        kHalf ? _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)))
              : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    const __m256i lo = _mm256_and_si256(b, mask);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), mask);
    for (int m = 0; m < MR; ++m) {
      const int8_t* xc = t.x[m] + kW4A8Chunk * c;
      const __m256i xe = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc));
      const __m256i xo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + 32));
      const __m256i d =
          _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
      const __m256i v = _mm256_madd_epi16(d, ones);
      i32[m][r] = kFirst ? v : _mm256_add_epi32(i32[m][r], v);
    }
  }
}

// Group sizes that are multiples of 64: exact int32 sums over the group's chunks, then
// one float FMA with the group's scale per group.
template <int NR, int MR>
inline void w4a8_whole_chunks(const W4A8Problem& p, const W4A8Tile<NR, MR>& t,
                              __m256 (&acc)[MR][NR]) {
  const int64_t per_group = p.group_size / kW4A8Chunk;
  int64_t c = 0;
  for (int64_t g = 0; g < p.G; ++g) {
    __m256i i32[MR][NR];
    w4a8_chunk<true, false>(t, c++, i32);
    for (const int64_t end = c + per_group - 1; c < end; ++c) w4a8_chunk<false, false>(t, c, i32);
    for (int r = 0; r < NR; ++r) {
      const __m256 s = _mm256_set1_ps(t.s[r][g]);
      for (int m = 0; m < MR; ++m)
        acc[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[m][r]), s, acc[m][r]);
    }
  }
}

// Group sizes that are odd multiples of 32: a float FMA per chunk, each 128-bit half with
// the scale of its own group; K may end in a half chunk.
template <int NR, int MR>
inline void w4a8_half_chunks(const W4A8Problem& p, const W4A8Tile<NR, MR>& t,
                             __m256 (&acc)[MR][NR]) {
  const int64_t full = p.K / kW4A8Chunk;
  auto fma_chunk = [&](const __m256i(&i32)[MR][NR], int64_t ga, int64_t gb) {
    for (int r = 0; r < NR; ++r) {
      const __m256 s = _mm256_set_m128(_mm_set1_ps(t.s[r][gb]), _mm_set1_ps(t.s[r][ga]));
      for (int m = 0; m < MR; ++m)
        acc[m][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i32[m][r]), s, acc[m][r]);
    }
  };
  for (int64_t c = 0; c < full; ++c) {
    __m256i i32[MR][NR];
    w4a8_chunk<true, false>(t, c, i32);
    fma_chunk(i32, c * kW4A8Chunk / p.group_size, (c * kW4A8Chunk + kW4A8Chunk / 2) / p.group_size);
  }
  if (full * kW4A8Chunk < p.K) {
    __m256i i32[MR][NR];
    w4a8_chunk<true, true>(t, full, i32);
    fma_chunk(i32, p.G - 1, p.G - 1);
  }
}

// One tile: NR weight rows from n against MR activation rows from m0. The zero term
// sum_g scales * zeros * xsum is a dot product over groups, subtracted before the sum.
template <int NR, int MR>
void w4a8_tile(const W4A8Problem& p, int64_t n, int64_t m0) {
  const W4A8Tile<NR, MR> t(p, n, m0);
  __m256 acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = _mm256_setzero_ps();
  if (p.group_size % kW4A8Chunk == 0)
    w4a8_whole_chunks(p, t, acc);
  else
    w4a8_half_chunks(p, t, acc);
  const int64_t Gv = p.G & ~int64_t{7};
  for (int r = 0; r < NR; ++r) {
    const float* zr = p.zeros + (n + r) * p.G;
    __m256 zv[MR];
    float zt[MR];
    for (int m = 0; m < MR; ++m) {
      zv[m] = _mm256_setzero_ps();
      zt[m] = 0.f;
    }
    for (int64_t g = 0; g < Gv; g += 8) {
      const __m256 sz = _mm256_mul_ps(_mm256_loadu_ps(t.s[r] + g), _mm256_loadu_ps(zr + g));
      for (int m = 0; m < MR; ++m)
        zv[m] = _mm256_fmadd_ps(sz, _mm256_loadu_ps(p.xsum + (m0 + m) * p.G + g), zv[m]);
    }
    for (int64_t g = Gv; g < p.G; ++g)
      for (int m = 0; m < MR; ++m) zt[m] += t.s[r][g] * zr[g] * p.xsum[(m0 + m) * p.G + g];
    for (int m = 0; m < MR; ++m)
      p.out[(m0 + m) * p.N + n + r] =
          p.xscale[m0 + m] * (hsum(_mm256_sub_ps(acc[m][r], zv[m])) - zt[m]);
  }
}

void int4_int8_rows(const int8_t* xr, const float* xsum, const float* xscale, int64_t M, int64_t K,
                    const uint8_t* q, const float* scales, const float* zeros, int64_t group_size,
                    int64_t n0, int64_t n1, int64_t N, float* out) {
  if (!w4a8_simd_layout(group_size))
    return kernels_scalar().int4_int8_rows(xr, xsum, xscale, M, K, q, scales, zeros, group_size, n0,
                                           n1, N, out);
  const int64_t G = K / group_size;
  for (int64_t mb = 0; mb < M; mb += kW4A8MBlock) {
    const int64_t stride = int4_int8_row_stride(K);
    const W4A8Problem p{
        xr + mb * stride, xsum + mb * G, xscale + mb, stride, K,           G, group_size, q,
        K / kInt4PerByte, scales,        zeros,       N,      out + mb * N};
    const int64_t rows = std::min(kW4A8MBlock, M - mb);
    int64_t n = n0;
    if (rows == 1) {  // decode: four weight rows share each activation load
      for (; n + kW4A8WeightRows <= n1; n += kW4A8WeightRows)
        w4a8_tile<kW4A8WeightRows, 1>(p, n, 0);
      for (; n < n1; ++n) w4a8_tile<1, 1>(p, n, 0);
      continue;
    }
    for (; n < n1; ++n) {
      int64_t m0 = 0;
      for (; m0 + kW4A8ActRows <= rows; m0 += kW4A8ActRows) w4a8_tile<1, kW4A8ActRows>(p, n, m0);
      switch (rows - m0) {
        case 3:
          w4a8_tile<1, 3>(p, n, m0);
          break;
        case 2:
          w4a8_tile<1, 2>(p, n, m0);
          break;
        case 1:
          w4a8_tile<1, 1>(p, n, m0);
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
