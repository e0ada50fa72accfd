// Int4 group-wise weight-only SIMD kernels (decode, M <= 16): float32 activations
// times int4 codes. Included by kernels_simd.h only (in its namespaces, after its
// helpers), so the AVX2 and AVX-512 translation units each get a copy. The paired paths
// (codes widened byte by byte against activations laid out to match, zero and scale
// out of the loop) take most calls: int4_rows_m1_paired at M = 1, int4_rows_paired's
// 3 x 4 tiles at M = 2-16 where int4_paired_rows_win says so; on AMD's Zen cores they
// read the code lanes as subnormal floats rather than converting them (code_lanes). The
// others decode with kernels_simd.h's Int4Decoder: int4_rows_m1 and int4_tile
// (activations too large or too small to pair, small groups from M = 5, group sizes
// not a multiple of 16) and int4_rows_blocked (K-blocked, when the activations outgrow
// L1).
#pragma once

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

// Up to kInt4ActRows activation rows per tile, so at M = 8 each weight is decoded once
// rather than once per 4-row block: 576 x 576 g32 at M = 8 went from 101 to 78 us on
// one Zen 3 core (K = 4096 g128 was unchanged). Above 4 rows one accumulator per row
// (MR >= 5 independent chains) is enough, and two would not fit 16 registers.
constexpr int kInt4ActRows = 8;

template <int MR>
void int4_tile(const Int4Decoder& dec, const float* x, int64_t K, const uint8_t* qr,
               const float* sr, const float* zr, int64_t group_size, int64_t n, int64_t N,
               int64_t m0, float* out) {
  constexpr bool kTwoChains = MR <= 4;
  const int64_t G = K / group_size;
  __m256 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) a0[m] = a1[m] = _mm256_setzero_ps();
  if (group_size % 16 == 0) {
    for (int64_t g = 0; g < G; ++g) {
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sr[g]), dec.lane_scale);
      const __m256 zl = _mm256_mul_ps(_mm256_set1_ps(zr[g]), dec.lane_zero);
      for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 16) {
        __m256 w0, w1;
        dec.weights16(qr + k / 2, zl, s, w0, w1);
        for (int m = 0; m < MR; ++m) {
          const float* xm = x + (m0 + m) * K + k;
          a0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(xm), w0, a0[m]);
          __m256& second = kTwoChains ? a1[m] : a0[m];
          second = _mm256_fmadd_ps(_mm256_loadu_ps(xm + 8), w1, second);
        }
      }
    }
  } else {  // group_size a multiple of 8: 8 codes per step
    for (int64_t g = 0; g < G; ++g) {
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sr[g]), dec.lane_scale);
      const __m256 zl = _mm256_mul_ps(_mm256_set1_ps(zr[g]), dec.lane_zero);
      for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 8) {
        const __m256 w = _mm256_mul_ps(_mm256_sub_ps(dec.raw(qr + k / 2), zl), s);
        for (int m = 0; m < MR; ++m)
          a0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (m0 + m) * K + k), w, a0[m]);
      }
    }
  }
  for (int m = 0; m < MR; ++m) out[(m0 + m) * N + n] = hsum(_mm256_add_ps(a0[m], a1[m]));
}

// M = 1, group_size a multiple of 16, when int4_rows_m1_paired (below) may not be used:
// kInt4RowsM1 weight rows per pass share each activation load, with the same arithmetic
// per weight as int4_tile ((raw - zero) * scale, then an FMA). Reading rows side by side
// needs the software prefetch along the tile's linear stream (stream_prefetch_bytes in
// kernels_simd.h; this older path keeps a fixed 8 KiB; without any, 4096 x 4096 went
// from 1.6 to 1.9-2.1 ms). Measured on one Zen 3 core,
// median of 60 calls, against one row per pass: 4096 x 4096 g128 1.62 -> 1.59 ms, 576 x
// 576 g32 45 -> 42 us, 49152 x 576 g32 3.64 -> 3.46 ms (2 rows were within noise of 3).
constexpr int kInt4RowsM1 = 3;
constexpr int64_t kInt4PrefetchBytes = 8192;

template <int NR>
void int4_rows_m1(const Int4Decoder& dec, const float* x, const uint8_t* qr, int64_t row_bytes,
                  const float* sr, const float* zr, int64_t G, int64_t group_size, float* out) {
  __m256 a0[NR], a1[NR];
  for (int r = 0; r < NR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m256 s[NR], zl[NR];
    for (int r = 0; r < NR; ++r) {
      s[r] = _mm256_mul_ps(_mm256_set1_ps(sr[r * G + g]), dec.lane_scale);
      zl[r] = _mm256_mul_ps(_mm256_set1_ps(zr[r * G + g]), dec.lane_zero);
    }
    for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 16) {
      // The pass has consumed NR * k / 2 bytes of its contiguous rows: one prefetch per
      // 64-byte line of that stream.
      if (((NR * k / 2) & 63) < NR * 8)
        _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k / 2 + kInt4PrefetchBytes),
                     _MM_HINT_T0);
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < NR; ++r) {
        __m256 w0, w1;
        dec.weights16(qr + r * row_bytes + k / 2, zl[r], s[r], w0, w1);
        a0[r] = _mm256_fmadd_ps(x0, w0, a0[r]);
        a1[r] = _mm256_fmadd_ps(x1, w1, a1[r]);
      }
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum(_mm256_add_ps(a0[r], a1[r]));
}

// The M = 1 fast path. vpmovzxbd widens 8 code bytes to 8 lanes, lane j holding the
// codes of columns 2j (low nibble, lo) and 2j + 1 (high nibble, hi) as lo + 16 hi, so
// the activations are laid out to match, once per call: per 16 columns, the 8 values
// x[2j] - x[2j + 1] / 16, then the 8 values x[2j + 1] / 16. A lane then adds
//   (x[2j] - x[2j + 1] / 16) * lo + (x[2j + 1] / 16) * (lo + 16 hi) = x[2j] lo + x[2j + 1] hi,
// a mask and two conversions per 16 codes where Int4Decoder needs two shuffles, two
// masks, two conversions and two subtractions of the zero. The zero and the scale
// leave the loop: each group sums x * code per lane, subtracts zero * (the group's
// per-lane sum of x, x[2j] + x[2j + 1]) and is scaled once. One Zen 3 core, median of 60
// calls, against int4_rows_m1 with the scale factored out (the previous path): 4096 x
// 4096 g128 1.24 -> 0.73 ms (0.78 ms with the weight read from DRAM), 576 x 576 g32 32 ->
// 20 us, 49152 x 576 g32 2.80 -> 1.75 ms. Six rows per pass, one chain each: against
// four rows with separate chains for the two FMAs, 576 x 1536 g32 53 -> 49 us, g64 44
// -> 42 us, g128 unchanged (three rows of two chains: 0.79 ms at 4096 x 4096). The loop
// runs 2.3 cycles per 16 codes and row with the weight in L2 (1.9 in L1), against 1.7
// for 70% of one core's read bandwidth; converting with the 2^23 trick (or, then
// subtract) instead of cvtdq2ps measured 2.6-2.9 cycles. Reading the lanes as subnormal
// floats instead (below) drops both conversions: 1.8-1.9 cycles in L2.
constexpr int kInt4PairedRows = 6;

struct PairedActivations {
  const float* x;             // row m at x + m * K, laid out as above
  const Floats8* group_sums;  // row m, group g at [m * G + g]; lane j: x[2j] + x[2j + 1]
  const Floats8* unscale;     // row m: lanes 0 and 1 multiply that row's results
};

// Whether every activation row allows the paired paths: sum |x| within
// [kInt4PairedMinSumAbs, kInt4FactoredMaxSumAbs) (see kernels_simd.h).
inline bool pairable(const float* x, int64_t M, int64_t K) {
  for (int64_t m = 0; m < M; ++m) {
    const float magnitude = sum_abs(x + m * K, K);
    if (!(magnitude >= kInt4PairedMinSumAbs && magnitude < kInt4FactoredMaxSumAbs)) return false;
  }
  return true;
}

// The code lanes as floats: converted, or read as subnormals (lane value * 2^-149, see
// below) where codes_as_subnormals() allows it.
template <bool kSubnormal>
inline __m256 code_lanes(__m256i lanes) {
  return kSubnormal ? _mm256_castsi256_ps(lanes) : _mm256_cvtepi32_ps(lanes);
}

// Reading the code lanes as subnormals saves both conversions: lane value c is the float
// c * 2^-149, exact, and an FMA takes it at full speed on AMD's Zen cores (codes_as_
// subnormals). Each activation row is scaled by 2^s, s = 125 - e for sum |x| < 2^e, so
// its paired values stay below 2^126 and a product x 2^s c 2^-149 is a normal float for
// every |x| above 2^-101 sum |x|. The group sums of x are scaled by 2^(s - 149) to match
// and the results by 2^(149 - s). Every scaling is by powers of two that are normal
// floats (two factors where one would leave float's range), so against the converted
// codes the results differ only where a value falls below 2^-126 in the scaled space,
// by under 2^-149 there: a product (under 2^-124 sum |x| each after rescaling), or a
// group's scaled sum, which needs weight scales below about 2^-100. Under flush-to-zero
// alone such values become 0, within the same bound; denormals-are-zero would read every
// code as 0, so codes_as_subnormals() converts under it. One Zen 3
// core, the op alone, median of 5-3000 calls, converted -> subnormal: 4096 x 4096 g128
// at M = 1 815 -> 639 us, M = 2 1.28 -> 1.13 ms, M = 8 4.12 -> 3.89 ms; 576 x 1536 g64 65
// -> 57 us, 49152 x 576 g64 1.67 -> 1.38 ms (results bit-identical on random data).
inline int subnormal_row_exponent(float sum_abs_x) {
  int e = 0;
  std::frexp(sum_abs_x, &e);  // sum |x| < 2^e
  return 125 - e;
}

// 2^t as two normal float factors (t within [-252, 254]).
inline std::pair<float, float> split_power_of_two(int t) {
  const int half = t / 2;
  return {std::ldexp(1.f, half), std::ldexp(1.f, t - half)};
}

// x [M, K] in the paired layout, in this thread's scratch (kept between calls); scaled
// for the subnormal reading when subnormal is set.
inline PairedActivations pair_activations(const float* x, int64_t M, int64_t K, int64_t group_size,
                                          bool subnormal) {
  static thread_local std::vector<Floats8> buffer;
  const int64_t G = K / group_size;
  buffer.resize(static_cast<size_t>(M * (K / 8 + G + 1)));
  float* paired = buffer.data()->v;
  Floats8* sums = buffer.data() + M * K / 8;
  Floats8* unscale = sums + M * G;
  const __m256i evens_then_odds = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256 sixteenth = _mm256_set1_ps(1.f / 16);
  for (int64_t m = 0; m < M; ++m) {
    const int s = subnormal ? subnormal_row_exponent(sum_abs(x + m * K, K)) : 149;
    const auto [up0, up1] = split_power_of_two(subnormal ? s : 0);
    const __m256 up_first = _mm256_set1_ps(up0), up_second = _mm256_set1_ps(up1);
    const auto [down0, down1] = split_power_of_two(s - 149);
    const auto [undo0, undo1] = split_power_of_two(149 - s);
    unscale[m].v[0] = undo0;
    unscale[m].v[1] = undo1;
    for (int64_t g = 0; g < G; ++g) {
      __m256 sum = _mm256_setzero_ps();
      for (int64_t k = m * K + g * group_size; k < m * K + (g + 1) * group_size; k += 16) {
        const __m256 a = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + k), evens_then_odds);
        const __m256 b = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + k + 8), evens_then_odds);
        const __m256 even = _mm256_permute2f128_ps(a, b, 0x20);
        const __m256 odd = _mm256_permute2f128_ps(a, b, 0x31);
        // Both factors are at least 1 and the product stays below 2^126: exact.
        const __m256 even_up = _mm256_mul_ps(_mm256_mul_ps(even, up_first), up_second);
        const __m256 odd_up = _mm256_mul_ps(_mm256_mul_ps(odd, up_first), up_second);
        const __m256 odd16 = _mm256_mul_ps(odd_up, sixteenth);
        _mm256_store_ps(paired + k, _mm256_sub_ps(even_up, odd16));
        _mm256_store_ps(paired + k + 8, odd16);
        sum = _mm256_add_ps(sum, _mm256_add_ps(even, odd));
      }
      sum = _mm256_mul_ps(_mm256_mul_ps(sum, _mm256_set1_ps(down0)), _mm256_set1_ps(down1));
      _mm256_store_ps(sums[m * G + g].v, sum);
    }
  }
  return {paired, sums, unscale};
}

template <int NR, bool kSubnormal>
void int4_rows_m1_paired(const PairedActivations& xa, const uint8_t* qr, int64_t row_bytes,
                         const float* sr, const float* zr, int64_t G, int64_t group_size,
                         float* out) {
  const __m256i low_nibble = _mm256_set1_epi32(0x0F);
  const int64_t ahead = stream_prefetch_bytes(NR * row_bytes);
  __m256 acc[NR];
  for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m256 group_sum[NR];
    for (int r = 0; r < NR; ++r) group_sum[r] = _mm256_setzero_ps();
    for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 16) {
      if (((NR * k / 2) & 63) < NR * 8)  // as in int4_rows_m1
        _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k / 2 + ahead), _MM_HINT_T0);
      const __m256 x_lo = _mm256_load_ps(xa.x + k), x_byte = _mm256_load_ps(xa.x + k + 8);
      for (int r = 0; r < NR; ++r) {
        const __m256i bytes = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr + r * row_bytes + k / 2)));
        const __m256 lo = code_lanes<kSubnormal>(_mm256_and_si256(bytes, low_nibble));
        group_sum[r] = _mm256_fmadd_ps(x_lo, lo, group_sum[r]);
        group_sum[r] = _mm256_fmadd_ps(x_byte, code_lanes<kSubnormal>(bytes), group_sum[r]);
      }
    }
    const __m256 x_sum = _mm256_load_ps(xa.group_sums[g].v);
    for (int r = 0; r < NR; ++r) {
      const __m256 centred = _mm256_fnmadd_ps(_mm256_set1_ps(zr[r * G + g]), x_sum, group_sum[r]);
      acc[r] = _mm256_fmadd_ps(centred, _mm256_set1_ps(sr[r * G + g]), acc[r]);
    }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum(acc[r]) * xa.unscale[0].v[0] * xa.unscale[0].v[1];
}

// M = 2-16, the paired layout in register tiles of kInt4PairedTileRows weight rows x up to
// kActRowsPerTile activation rows, as int8_tile: 12 accumulators, each weight row's codes
// decoded once per 16 columns (vpmovzxbd, a mask, two conversions) for 8 FMAs, the
// activations read from the paired copy as memory operands. Each group's sums go to
// totals kept in L1 (no register is left for them), zero and scale applied there; the
// weight rows stay in L1 across the activation-row blocks, prefetched by the first.
// One Zen 3 core, median of 10-20 calls, against the paths below (int4_rows_blocked at
// K = 4096, int4_tile otherwise), 4096 x 4096 g128: M = 2 1.76 -> 1.22 ms, M = 4 2.86 ->
// 1.88, M = 6 3.88 -> 3.03, M = 8 4.39 -> 3.81 (59% -> 68% of the FMA peak), M = 16 9.0
// -> 8.0; g32 at M = 2 1.96 -> 1.56 ms; 576 x 1536 g32 at M = 3 121 -> 109 us. The
// group's flush costs 24 FMAs per 12 accumulators, so from M = 5 on small groups lose
// to int4_tile's decode shared by 8 rows (576 x 1536 g32 at M = 5: 156 -> 186 us; g64 at
// M = 16: 430 -> 452 us): int4_paired_rows_win says where this path is taken. The tile
// is not inlined: inside int4_weight_rows GCC kept activations in registers across the
// weight rows and spilled an accumulator (M = 8: 3.95 ms against 3.62 on its own).
constexpr int kInt4PairedTileRows = 3;

inline bool int4_paired_rows_win(int64_t M, int64_t group_size) {
  return M == 1 || (M >= 2 && M <= 4 && group_size >= 32) ||
         (M >= 5 && M <= 16 && group_size >= 128);
}

template <int NR, int MR, bool kSubnormal>
__attribute__((noinline)) void int4_paired_tile(const PairedActivations& xa, int64_t K,
                                                const uint8_t* qr, int64_t row_bytes,
                                                const float* sr, const float* zr, int64_t G,
                                                int64_t group_size, int64_t n, int64_t N,
                                                int64_t m0, bool prefetch, float* out) {
  const __m256i low_nibble = _mm256_set1_epi32(0x0F);
  const int64_t ahead = stream_prefetch_bytes(NR * row_bytes);
  Floats8 total[NR][MR];
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MR; ++m) _mm256_store_ps(total[r][m].v, _mm256_setzero_ps());
  const float* x = xa.x + m0 * K;
  for (int64_t g = 0; g < G; ++g) {
    __m256 acc[NR][MR];
    for (int r = 0; r < NR; ++r)
      for (int m = 0; m < MR; ++m) acc[r][m] = _mm256_setzero_ps();
    for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 16) {
      if (prefetch && ((NR * k / 2) & 63) < NR * 8)  // as in int4_rows_m1
        _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k / 2 + ahead), _MM_HINT_T0);
      for (int r = 0; r < NR; ++r) {
        const __m256i bytes = _mm256_cvtepu8_epi32(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(qr + r * row_bytes + k / 2)));
        const __m256 lo = code_lanes<kSubnormal>(_mm256_and_si256(bytes, low_nibble));
        const __m256 byte = code_lanes<kSubnormal>(bytes);
        for (int m = 0; m < MR; ++m) {
          acc[r][m] = _mm256_fmadd_ps(_mm256_load_ps(x + m * K + k), lo, acc[r][m]);
          acc[r][m] = _mm256_fmadd_ps(_mm256_load_ps(x + m * K + k + 8), byte, acc[r][m]);
        }
      }
    }
    for (int r = 0; r < NR; ++r) {
      const __m256 zero = _mm256_set1_ps(zr[r * G + g]), scale = _mm256_set1_ps(sr[r * G + g]);
      for (int m = 0; m < MR; ++m) {
        const __m256 x_sum = _mm256_load_ps(xa.group_sums[(m0 + m) * G + g].v);
        const __m256 centred = _mm256_fnmadd_ps(zero, x_sum, acc[r][m]);
        _mm256_store_ps(total[r][m].v,
                        _mm256_fmadd_ps(centred, scale, _mm256_load_ps(total[r][m].v)));
      }
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MR; ++m) {
      const float* undo = xa.unscale[m0 + m].v;
      out[(m0 + m) * N + n + r] = hsum(_mm256_load_ps(total[r][m].v)) * undo[0] * undo[1];
    }
}

template <bool kSubnormal>
void int4_rows_paired(const PairedActivations& xa, int64_t M, int64_t K, const uint8_t* q,
                      const float* scales, const float* zeros, int64_t group_size, int64_t n0,
                      int64_t n1, int64_t N, float* out) {
  const int64_t G = K / group_size, row_bytes = K / kInt4PerByte;
  if (M == 1) {
    int64_t n = n0;
    for (; n + kInt4PairedRows <= n1; n += kInt4PairedRows)
      int4_rows_m1_paired<kInt4PairedRows, kSubnormal>(
          xa, q + n * row_bytes, row_bytes, scales + n * G, zeros + n * G, G, group_size, out + n);
    for (; n < n1; ++n)
      int4_rows_m1_paired<1, kSubnormal>(xa, q + n * row_bytes, row_bytes, scales + n * G,
                                         zeros + n * G, G, group_size, out + n);
    return;
  }
  auto all_rows = [&](auto nr, int64_t n) {
    constexpr int R = decltype(nr)::value;
    over_rows(M, [&](auto mr, int64_t m0) {
      int4_paired_tile<R, decltype(mr)::value, kSubnormal>(xa, K, q + n * row_bytes, row_bytes,
                                                           scales + n * G, zeros + n * G, G,
                                                           group_size, n, N, m0, m0 == 0, out);
    });
  };
  int64_t n = n0;
  for (; n + kInt4PairedTileRows <= n1; n += kInt4PairedTileRows)
    all_rows(std::integral_constant<int, kInt4PairedTileRows>{}, n);
  for (; n < n1; ++n) all_rows(std::integral_constant<int, 1>{}, n);
}

// M = 4-16 when the activations outgrow L1: x of 8 rows at K = 4096 is 128 KiB, in
// L2, and int4_tile's 16 activation loads per 16 codes then cost more than its FMAs.
// Here the columns are cut into chunks whose x (all M rows) takes 24 of L1's 32 KiB,
// and kInt4BlockRows weight rows take each chunk in turn; their partial sums wait in
// a buffer of accumulator vectors, so each lane adds the same products in the same
// order as int4_tile (the results are bit-identical). Each segment prefetches the
// row's next one (after the last chunk, the next block's row), kInt4BlockRows segments
// ahead. Measured on one Zen 3 core, median of 30 calls, int4_tile -> this: 4096 x
// 4096 g128 at M = 8 5.8 -> 4.2 ms, M = 16 11.7 -> 8.5 ms, M = 4 2.8 -> 2.7 ms, 576 x
// 1536 g32 at M = 16 0.45 -> 0.56 ms (x of 36 KiB: hence kInt4BlockedMinActBytes),
// 1536 x 576 g32 at M = 8 0.29 -> 0.26 ms. At M = 2-3 it was 4-8% slower.
constexpr int64_t kInt4ChunkActBytes = 24576;
constexpr int64_t kInt4BlockedMinActBytes = 40960;
constexpr int kInt4BlockRows = 16;
constexpr int64_t kInt4BlockedMinRows = 4, kInt4BlockedMaxRows = 16;

// Columns [c0, c1) of one weight row against activation rows m0..m0 + MR, adding into
// acc[2 * m] and acc[2 * m + 1] (the two chains of row m0 + m). xc is the chunk's
// activations, row m at xc + m * chunk. Its loop is int4_tile's with chunk bounds; it
// is kept apart because int4_tile written as one segment over [0, K) measured 576 x
// 1536 g32 at M = 8 0.21 -> 0.35 ms (the per-group bounds at 2 steps per group).
template <int MR>
void int4_segment(const Int4Decoder& dec, const float* xc, int64_t chunk, const uint8_t* qr,
                  const float* sr, const float* zr, int64_t group_size, int64_t c0, int64_t c1,
                  int64_t m0, __m256* acc) {
  constexpr bool kTwoChains = MR <= 4;
  __m256 a0[MR], a1[MR];
  for (int m = 0; m < MR; ++m) {
    a0[m] = acc[2 * m];
    a1[m] = acc[2 * m + 1];
  }
  for (int64_t g = c0 / group_size; g * group_size < c1; ++g) {
    const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sr[g]), dec.lane_scale);
    const __m256 zl = _mm256_mul_ps(_mm256_set1_ps(zr[g]), dec.lane_zero);
    const int64_t k1 = std::min(c1, (g + 1) * group_size);
    for (int64_t k = std::max(c0, g * group_size); k < k1; k += 16) {
      __m256 w0, w1;
      dec.weights16(qr + k / 2, zl, s, w0, w1);
      for (int m = 0; m < MR; ++m) {
        const float* xm = xc + (m0 + m) * chunk + (k - c0);
        a0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(xm), w0, a0[m]);
        __m256& second = kTwoChains ? a1[m] : a0[m];
        second = _mm256_fmadd_ps(_mm256_loadu_ps(xm + 8), w1, second);
      }
    }
  }
  for (int m = 0; m < MR; ++m) {
    acc[2 * m] = a0[m];
    acc[2 * m + 1] = a1[m];
  }
}

void int4_rows_blocked(const Int4Decoder& dec, const float* x, int64_t M, int64_t K,
                       const uint8_t* q, const float* scales, const float* zeros,
                       int64_t group_size, int64_t n0, int64_t n1, int64_t N, float* out) {
  const int64_t G = K / group_size, row_bytes = K / kInt4PerByte;
  const ActivationChunks xs = pack_activation_chunks(x, M, K, kInt4ChunkActBytes, 16);
  const int64_t chunk = xs.width;
  __m256 acc[kInt4BlockRows * 2 * kInt4BlockedMaxRows];
  for (int64_t nb = n0; nb < n1; nb += kInt4BlockRows) {
    const int64_t rows = std::min<int64_t>(kInt4BlockRows, n1 - nb);
    for (int64_t i = 0; i < rows * 2 * M; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < K; c0 += chunk) {
      const int64_t c1 = std::min(K, c0 + chunk);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t n = nb + r;
        const uint8_t* qr = q + n * row_bytes;
        const uint8_t* next = c1 < K                    ? qr + c1 / kInt4PerByte
                              : n + kInt4BlockRows < n1 ? qr + kInt4BlockRows * row_bytes
                                                        : nullptr;
        if (next != nullptr)
          for (int64_t p = 0; p < chunk / kInt4PerByte; p += 64)
            _mm_prefetch(reinterpret_cast<const char*>(next + p), _MM_HINT_T0);
        over_rows<kInt4ActRows>(M, [&](auto mr, int64_t m0) {
          int4_segment<decltype(mr)::value>(dec, xs.at(c0), chunk, qr, scales + n * G,
                                            zeros + n * G, group_size, c0, c1, m0,
                                            acc + (r * M + m0) * 2);
        });
      }
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t m = 0; m < M; ++m)
        out[m * N + nb + r] = hsum(_mm256_add_ps(acc[(r * M + m) * 2], acc[(r * M + m) * 2 + 1]));
  }
}

void int4_weight_rows(const float* x, int64_t M, int64_t K, const uint8_t* q, const float* scales,
                      const float* zeros, int64_t group_size, int64_t n0, int64_t n1, int64_t N,
                      float* out) {
  if (group_size % 8 != 0) {  // the decoder works on 8 codes of one group at a time
    kernels_scalar().int4_weight_rows(x, M, K, q, scales, zeros, group_size, n0, n1, N, out);
    return;
  }
  const Int4Decoder dec;
  const int64_t G = K / group_size, row_bytes = K / kInt4PerByte;
  if (group_size % 16 == 0 && int4_paired_rows_win(M, group_size) && pairable(x, M, K)) {
    const bool subnormal = codes_as_subnormals();
    const PairedActivations xa = pair_activations(x, M, K, group_size, subnormal);
    if (subnormal)
      int4_rows_paired<true>(xa, M, K, q, scales, zeros, group_size, n0, n1, N, out);
    else
      int4_rows_paired<false>(xa, M, K, q, scales, zeros, group_size, n0, n1, N, out);
    return;
  }
  if (M >= kInt4BlockedMinRows && M <= kInt4BlockedMaxRows && group_size % 16 == 0 &&
      M * K * int64_t{sizeof(float)} > kInt4BlockedMinActBytes) {
    int4_rows_blocked(dec, x, M, K, q, scales, zeros, group_size, n0, n1, N, out);
    return;
  }
  int64_t n = n0;
  if (M == 1 && group_size % 16 == 0)  // activations too large or too small to pair
    for (; n + kInt4RowsM1 <= n1; n += kInt4RowsM1)
      int4_rows_m1<kInt4RowsM1>(dec, x, q + n * row_bytes, row_bytes, scales + n * G, zeros + n * G,
                                G, group_size, out + n);
  for (; n < n1; ++n)
    over_rows<kInt4ActRows>(M, [&](auto mr, int64_t m0) {
      int4_tile<decltype(mr)::value>(dec, x, K, q + n * row_bytes, scales + n * G, zeros + n * G,
                                     group_size, n, N, m0, out);
    });
}

void int4_dequant_rows(const uint8_t* q, const float* scales, const float* zeros, int64_t K,
                       int64_t group_size, int64_t n0, int64_t n1, float* w) {
  if (group_size % 8 != 0) {
    for (int64_t n = n0; n < n1; ++n)
      scalar::int4_dequant_row(q, scales, zeros, K, group_size, n, w + n * K);
    return;
  }
  const Int4Decoder dec;
  const int64_t G = K / group_size, row_bytes = K / kInt4PerByte;
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const float sc = scales[n * G + g];
      const __m256 s = _mm256_mul_ps(_mm256_set1_ps(sc), dec.lane_scale);
      const __m256 zl = _mm256_mul_ps(_mm256_set1_ps(zeros[n * G + g]), dec.lane_zero);
      for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 8)
        _mm256_storeu_ps(w + n * K + k,
                         _mm256_mul_ps(_mm256_sub_ps(dec.raw(q + n * row_bytes + k / 2), zl), s));
    }
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
