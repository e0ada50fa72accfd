// W8A8 integer dot products (int8_dot_rows): int8 activation codes times int8 weight
// rows with exact int32 sums. Included by kernels_simd.h only (in its namespaces), so
// the AVX2 and AVX-512 translation units each get a copy.
//
// Products: AVX2 has no exact signed x signed byte product, but pmaddubsw (unsigned x
// signed, int16 pair sums that saturate) is exact once the signs move onto the
// activations: |w| as unsigned bytes times x * sign(w) (psignb), so a pair sum is at most
// 2 * 128 * 127 = 32512, even for w = -128 (|w| = 128 as a byte; x is in [-127, 127] by
// construction). pmaddwd by ones widens the pair sums to int32. With VNNI, vpdpbusd does
// the multiply, the widening and the add.
//
// The limit, measured on one Zen 3 core (AVX2, no VNNI) in L1-resident loops: 32 exact
// products cost 4 vector uops (psignb, pmaddubsw, pmaddwd, paddd) and the core sustains
// about 0.7 such groups per cycle: 72 GMAC/s in hand-written assembly, 67 from this code.
// Widening both operands to int16 for pmaddwd (the kernel this replaced; also 4 uops per
// 32 products) ran at 0.64 in assembly. The same loop without psignb, as fbgemm's AVX2
// kernel can run it (torch's dynamic Linear quantizes activations to 7-bit unsigned,
// reduce_range, so pmaddubsw cannot saturate), reaches the two multiply ports' limit of
// 1 group per cycle (100 GMAC/s). Hence past decode fbgemm's dynamic Linear (79 GMAC/s
// end to end at M = 128) stays about 20% ahead of an exact 8-bit product here.
//
// Blocking: the tile reaches that rate only from L1. Activation rows are packed once per
// call into panels of kDotActRows rows; a panel's K block (4 x 4096 bytes) stays in L1,
// a block of weight rows (64 x 4096) in L2, and each weight tile meets every panel while
// the block is there. The int32 partial sums of a K block go to acc (stored by the first
// block, added by the next). K = N = 4096, M = 128, one thread: 44 GMAC/s before (24-row
// int16 blocks re-read from L2 by every weight-row pair), 64 now.
#pragma once

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

constexpr int kDotBytes = 32;  // columns per step: one vector of codes
// Register tiles: 4 x 2 (8 accumulators, 15 of the 16 registers) measured 64 GMAC/s at
// M = 128 where 4 x 3, 3 x 3 and 2 x 4 ran at 58-59. At M = 1, 4 weight rows share each
// activation load (the weights stream from memory: bandwidth is the limit).
constexpr int kDotActRows = 4;               // activation rows per register tile
constexpr int kDotWeightRows = 2;            // weight rows per register tile (M > 1)
constexpr int kDotWeightRowsM1 = 4;          // weight rows per register tile at M = 1
constexpr int64_t kDotL1Bytes = 16 * 1024;   // activation panel budget (half of L1)
constexpr int64_t kDotL2Bytes = 256 * 1024;  // weight block budget (half of L2)
// Software prefetch of the weights (first pass only; dot_prefetch says where). Measured
// at M = 1 on one core: 4096 x 4096 from DRAM ran 1.08x fbgemm with each row prefetched
// 32 KiB ahead, 1.00-1.05x at 8-16 KiB, 0.9x without; 1536 x 576 from L3 ran 1.5x at
// 8 KiB and 1.4x at 32 KiB. Rows shorter than a page fared worse prefetched row by row
// (49152 x 576 from DRAM: 0.75x the int16 kernel this replaced) than along the tile's
// bytes in address order, 8 KiB ahead, as that kernel did (1.0x; 32 KiB 0.94x).
constexpr int64_t kDotPrefetchNear = 8192, kDotPrefetchFar = 32768;
constexpr int64_t kDotCachedWeightBytes = int64_t{8} << 20;
constexpr int64_t kDotPageBytes = 4096;

// acc += sum over each 4-byte group of absw (unsigned) x sx (signed), exactly.
inline __m256i dot_u8s8(__m256i acc, __m256i absw, __m256i sx) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, absw, sx);
#else
  const __m256i pairs = _mm256_maddubs_epi16(absw, sx);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

// The 8 lane sums of a[0..7] in one vector: three rounds of phadd and a cross-lane add.
inline __m256i hsum8_epi32(const __m256i* a) {
  const __m256i q0 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]), _mm256_hadd_epi32(a[2], a[3]));
  const __m256i q1 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]), _mm256_hadd_epi32(a[6], a[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20),
                          _mm256_permute2x128_si256(q0, q1, 0x31));
}

// Loops over registers are unrolled (#pragma GCC unroll) before GCC's scalar replacement
// sees them: left rolled, an accumulator array stays in memory and the tile loop stores
// part of it every step (0.59 -> 0.67 groups of 32 products per cycle on Zen 3).

// One 32-column step of a register tile: acc[m * NR + r] += x row m . w row r.
template <int MR, int NR>
inline void dot_step(const int8_t* x, const __m256i* wv, __m256i* acc) {
  __m256i aw[NR];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) aw[r] = _mm256_abs_epi8(wv[r]);
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + m * kDotBytes));
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      acc[m * NR + r] = dot_u8s8(acc[m * NR + r], aw[r], _mm256_sign_epi8(xv, wv[r]));
    }
  }
}

// Where a tile prefetches: for each 64 columns k it consumes, the lines at
// base + r * row_step + k * col_step, r < NR (base null: none).
struct DotPrefetch {
  const int8_t* base;
  int64_t row_step, col_step;
};

// One register tile: rows m < MR of a packed panel xs ([KC / 32][MR][32] bytes, zero
// past K) against weight rows w + r * K, r < NR, over kc columns. Sums go to
// c[m * N + r], added to what is there unless `first`.
template <int MR, int NR>
void dot_micro(const int8_t* xs, const int8_t* w, int64_t K, int64_t kc, int32_t* c, int64_t N,
               bool first, DotPrefetch pf) {
  constexpr int kAcc = MR * NR, kAccPadded = (kAcc + 7) / 8 * 8;
  __m256i acc[kAccPadded];
#pragma GCC unroll 16
  for (int i = 0; i < kAccPadded; ++i) acc[i] = _mm256_setzero_si256();
  const int64_t kv = kc & ~int64_t{kDotBytes - 1};
  int64_t k = 0;
  for (; k < kv; k += kDotBytes) {
    if (pf.base != nullptr && (k & 63) == 0) {
#pragma GCC unroll 16
      for (int r = 0; r < NR; ++r)
        _mm_prefetch(reinterpret_cast<const char*>(pf.base + r * pf.row_step + k * pf.col_step),
                     _MM_HINT_T0);
    }
    __m256i wv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r)
      wv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * K + k));
    dot_step<MR, NR>(xs + k * MR, wv, acc);
  }
  if (k < kc) {  // column tail: the panel is zero there, the weight row must not be over-read
    alignas(32) int8_t tail[NR][kDotBytes] = {};
    __m256i wv[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      std::memcpy(tail[r], w + r * K + k, static_cast<size_t>(kc - k));
      wv[r] = _mm256_load_si256(reinterpret_cast<const __m256i*>(tail[r]));
    }
    dot_step<MR, NR>(xs + k * MR, wv, acc);
  }
  alignas(32) int32_t sums[kAccPadded];
#pragma GCC unroll 16
  for (int i = 0; i < kAccPadded; i += 8)
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums + i), hsum8_epi32(acc + i));
#pragma GCC unroll 16
  for (int i = 0; i < kAcc; ++i) {
    int32_t& out = c[i / NR * N + i % NR];
    out = first ? sums[i] : out + sums[i];
  }
}

// Activation rows [m0, m0 + mr) of a panel, packed as dot_micro reads them.
void dot_pack_rows(const int8_t* xq, int64_t K, int64_t Kp, int64_t m0, int64_t mr, int8_t* xp) {
  int8_t* dst = xp + m0 * Kp;
  for (int64_t m = 0; m < mr; ++m)
    for (int64_t k = 0; k < K; k += kDotBytes)
      std::memcpy(dst + k * mr + m * kDotBytes, xq + (m0 + m) * K + k,
                  static_cast<size_t>(std::min<int64_t>(kDotBytes, K - k)));
}

// Calls tile(integral_constant<MR>, m0) for row tiles of kDotActRows, then the rest.
static_assert(kDotActRows <= 4, "over_dot_rows: the tail switch covers 1 to 3 rows");
template <typename Tile>
void over_dot_rows(int64_t m_begin, int64_t m_end, Tile tile) {
  int64_t m0 = m_begin;
  for (; m0 + kDotActRows <= m_end; m0 += kDotActRows)
    tile(std::integral_constant<int, kDotActRows>{}, m0);
  switch (m_end - m0) {
    case 3:
      tile(std::integral_constant<int, 3>{}, m0);
      break;
    case 2:
      tile(std::integral_constant<int, 2>{}, m0);
      break;
    case 1:
      tile(std::integral_constant<int, 1>{}, m0);
      break;
    default:
      break;
  }
}

// Block sizes of one call: K blocks of kc columns; in each, blocks of nc weight rows (in
// L2) that meet the activation panels one register tile of rows at a time. The panel is
// as wide as L1 allows: every K block ends in a reduction and a pass over acc, and a
// weight row read in pieces streams worse from memory. At M = 8, K = 4096 one panel of
// all 8 rows x 2048 columns ran at 47 GMAC/s where 4 rows x 4096 ran at 55 (8 x 4096,
// over the L1 budget, within noise of it).
struct DotBlocks {
  int64_t kc, nc;
};

inline DotBlocks dot_blocks(int64_t Kp, int64_t NR) {
  DotBlocks b{};
  b.kc = std::min(Kp, kDotL1Bytes / kDotActRows);
  b.nc = std::max(NR, kDotL2Bytes / b.kc / NR * NR);
  return b;
}

// The prefetch of weight tile rows [n, n + R) in its first pass (see kDotPrefetchNear).
inline DotPrefetch dot_prefetch(const int8_t* w, int64_t n, int64_t n1, int64_t N, int64_t K,
                                int64_t kb, int64_t kc, int64_t R) {
  if (kc == K && K < kDotPageBytes) {  // the tile's rows are contiguous: in address order
    if ((n + R) * K + kDotPrefetchNear > n1 * K) return {};
    return {w + n * K + kDotPrefetchNear, 64, R};
  }
  const int64_t distance = N * K > kDotCachedWeightBytes ? kDotPrefetchFar : kDotPrefetchNear;
  const int64_t ahead = R * ((distance + R * kc - 1) / (R * kc));  // whole tiles ahead
  if (n + ahead + R > n1) return {};
  return {w + (n + ahead) * K + kb, K, 1};
}

template <int NR>
void int8_dot_blocked(const int8_t* xp, int64_t M, int64_t K, int64_t Kp, const int8_t* w,
                      int64_t n0, int64_t n1, int64_t N, int32_t* acc) {
  const DotBlocks b = dot_blocks(Kp, NR);
  for (int64_t kb = 0; kb < K; kb += b.kc) {
    const int64_t kc = std::min(b.kc, K - kb);

    for (int64_t nb = n0; nb < n1; nb += b.nc) {
      const int64_t nb_end = std::min(n1, nb + b.nc);
      for (int64_t mb = 0; mb < M; mb += kDotActRows) {
        auto weight_tile = [&](auto nr, int64_t n) {
          constexpr int R = decltype(nr)::value;
          const DotPrefetch pf = mb == 0 ? dot_prefetch(w, n, n1, N, K, kb, kc, R) : DotPrefetch{};
          over_dot_rows(mb, std::min(M, mb + kDotActRows), [&](auto mr, int64_t m0) {
            constexpr int MR = decltype(mr)::value;
            dot_micro<MR, R>(xp + m0 * Kp + kb * MR, w + n * K + kb, K, kc, acc + m0 * N + n, N,
                             kb == 0, pf);
          });
        };
        int64_t n = nb;
        for (; n + NR <= nb_end; n += NR) weight_tile(std::integral_constant<int, NR>{}, n);
        for (; n < nb_end; ++n) weight_tile(std::integral_constant<int, 1>{}, n);
      }
    }
  }
}

void int8_dot_rows(const int8_t* xq, int64_t M, int64_t K, const int8_t* w, int64_t n0, int64_t n1,
                   int64_t N, int32_t* acc) {
  const int64_t Kp = (K + kDotBytes - 1) / kDotBytes * kDotBytes;
  std::vector<int8_t> xp(static_cast<size_t>(M * Kp));  // zero past K
  over_dot_rows(0, M, [&](auto mr, int64_t m0) { dot_pack_rows(xq, K, Kp, m0, mr, xp.data()); });
  if (M == 1)
    int8_dot_blocked<kDotWeightRowsM1>(xp.data(), M, K, Kp, w, n0, n1, N, acc);
  else
    int8_dot_blocked<kDotWeightRows>(xp.data(), M, K, Kp, w, n0, n1, N, acc);
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
