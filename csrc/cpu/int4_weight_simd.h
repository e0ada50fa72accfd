// Int4 group-wise weight-only SIMD kernels (decode, M <= 16): float32 activations
// times int4 codes decoded by kernels_simd.h's Int4Decoder. Included by kernels_simd.h
// only (in its namespaces, after its helpers), so the AVX2 and AVX-512 translation
// units each get a copy. Three paths: int4_rows_m1 (one activation row), int4_tile
// (activations that fit L1) and int4_rows_blocked (K-blocked, when they do not).
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

// M = 1, group_size a multiple of 16: kInt4RowsM1 weight rows per pass share each
// activation load, with the same arithmetic per weight as int4_tile ((raw - zero) *
// scale, then an FMA). Reading rows side by side needs the software prefetch along
// the tile's linear stream, as in int8_weight_simd.h (without it, 4096 x 4096 went from
// 1.6 to 1.9-2.1 ms). Measured on one Zen 3 core, median of 60 calls, against one row
// per pass: 4096 x 4096 g128 1.62 -> 1.59 ms, 576 x 576 g32 45 -> 42 us, 49152 x 576
// g32 3.64 -> 3.46 ms (2 rows were within noise of 3).
constexpr int kInt4RowsM1 = 3;
constexpr int64_t kInt4PrefetchBytes = 8192;

// kFactored: the scale leaves the inner loop. Each group sums x * (raw - zero) and
// multiplies by its scale once, a mul less per 8 codes (one Zen 3 core, median of 60
// calls: 4096 x 4096 g128 1.59 -> 1.25 ms, 576 x 576 g32 42 -> 32 us, 49152 x 576 g32
// 3.46 -> 2.79 ms).
// Those partial sums are up to 1 / scale times larger than the reference's, so
// int4_weight_rows takes this path only when no partial sum can overflow (sum |x| small
// enough, below); the rounding error stays within the same K-term bound.
template <int NR, bool kFactored>
void int4_rows_m1(const Int4Decoder& dec, const float* x, const uint8_t* qr, int64_t row_bytes,
                  const float* sr, const float* zr, int64_t G, int64_t group_size, float* out) {
  __m256 a0[NR], a1[NR];
  for (int r = 0; r < NR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < G; ++g) {
    __m256 s[NR], zl[NR], b0[NR], b1[NR];
    for (int r = 0; r < NR; ++r) {
      s[r] = _mm256_mul_ps(_mm256_set1_ps(sr[r * G + g]), dec.lane_scale);
      zl[r] = _mm256_mul_ps(_mm256_set1_ps(zr[r * G + g]), dec.lane_zero);
      b0[r] = b1[r] = _mm256_setzero_ps();
    }
    for (int64_t k = g * group_size; k < (g + 1) * group_size; k += 16) {
      // The pass has consumed NR * k / 2 bytes of its contiguous rows: one prefetch per
      // 64-byte line of that stream.
      if (((NR * k / 2) & 63) < NR * 8)
        _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k / 2 + kInt4PrefetchBytes),
                     _MM_HINT_T0);
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < NR; ++r) {
        if constexpr (kFactored) {
          const __m256i bytes = Int4Decoder::broadcast8(qr + r * row_bytes + k / 2);
          b0[r] = _mm256_fmadd_ps(x0, _mm256_sub_ps(dec.from(bytes, dec.shuffle_lo), zl[r]), b0[r]);
          b1[r] = _mm256_fmadd_ps(x1, _mm256_sub_ps(dec.from(bytes, dec.shuffle_hi), zl[r]), b1[r]);
        } else {
          __m256 w0, w1;
          dec.weights16(qr + r * row_bytes + k / 2, zl[r], s[r], w0, w1);
          a0[r] = _mm256_fmadd_ps(x0, w0, a0[r]);
          a1[r] = _mm256_fmadd_ps(x1, w1, a1[r]);
        }
      }
    }
    if constexpr (kFactored)
      for (int r = 0; r < NR; ++r) {
        a0[r] = _mm256_fmadd_ps(b0[r], s[r], a0[r]);
        a1[r] = _mm256_fmadd_ps(b1[r], s[r], a1[r]);
      }
  }
  for (int r = 0; r < NR; ++r) out[r] = hsum(_mm256_add_ps(a0[r], a1[r]));
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
  if (M >= kInt4BlockedMinRows && M <= kInt4BlockedMaxRows && group_size % 16 == 0 &&
      M * K * int64_t{sizeof(float)} > kInt4BlockedMinActBytes) {
    int4_rows_blocked(dec, x, M, K, q, scales, zeros, group_size, n0, n1, N, out);
    return;
  }
  int64_t n = n0;
  if (M == 1 && group_size % 16 == 0) {
    auto rows_m1 = [&](auto factored) {
      for (; n + kInt4RowsM1 <= n1; n += kInt4RowsM1)
        int4_rows_m1<kInt4RowsM1, decltype(factored)::value>(dec, x, q + n * row_bytes, row_bytes,
                                                             scales + n * G, zeros + n * G, G,
                                                             group_size, out + n);
    };
    if (sum_abs(x, K) < kInt4FactoredMaxSumAbs)
      rows_m1(std::true_type{});
    else
      rows_m1(std::false_type{});
  }
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
