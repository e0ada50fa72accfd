// Int8 weight-only SIMD kernel (decode, M <= kStreamingMaxRows): float32 activations
// times int8 weight rows, one scale per output channel. Included by kernels_simd.h only
// (in its namespaces, after its helpers), so the AVX2 and AVX-512 translation units
// each get a copy.
//
// Register tile: NR weight rows x MR activation rows. Each 8-weight vector is widened
// and converted once and feeds MR FMAs; each activation vector is loaded once and
// feeds NR FMAs. At M = 1 the convert (vpmovsxbd + vcvtdq2ps) is the cost, so NR = 4
// rows share every x load; above it the FMAs are, and 3 x 4 tiles keep 12 independent
// chains with at most 4 loads per 12 FMAs (x of 4 rows at K = 4096 is 64 KiB: L2, not
// L1). Measured on Zen 3 (AVX2, 16 registers), K = N = 4096, weight in L3, one thread:
// one weight row per tile ran 1.4 ms at M = 1 and 6.5 ms at M = 8, these tiles 0.7 ms
// and 3.2 ms (M = 8 is then at the FMA peak). 2 or 4 rows at M > 1 were slower (4 x 4
// tiles, 16 accumulators, spill); 3 or 5 rows at M = 1 were within noise of 4.
#pragma once

namespace squeezeprompt {
namespace cpu {
namespace SP_SIMD_NS {
namespace {

constexpr int kInt8RowsPerTileM1 = 4;  // weight rows per tile at M = 1
constexpr int kInt8RowsPerTile = 3;    // weight rows per tile at M > 1 (with 4 activation rows)

// out[m0 + m, n + r] for r < NR, m < MR. U accumulator sets (k unrolled by 8 * U) keep
// at least 8 FMA chains in flight when NR * MR is small. `prefetch`: first pass over
// these rows (later activation-row blocks find them in L1).
template <int NR, int MR, int U>
void int8_tile(const float* x, int64_t K, const int8_t* q, const float* scales, int64_t n,
               int64_t N, int64_t m0, bool prefetch, float* out) {
  __m256 acc[U][NR][MR];
  for (int u = 0; u < U; ++u)
    for (int r = 0; r < NR; ++r)
      for (int m = 0; m < MR; ++m) acc[u][r][m] = _mm256_setzero_ps();
  const int8_t* qr = q + n * K;
  const float* xr = x + m0 * K;
  constexpr int kStep = 8 * U, kStepBytes = NR * kStep;
  const int64_t KU = K / kStep * kStep, K8 = K & ~int64_t{7};
  const int64_t ahead = stream_prefetch_bytes(NR * K);
  int64_t k = 0;
  for (; k < KU; k += kStep) {
    // One prefetch per 64-byte line consumed: the tile has consumed NR * k bytes.
    if (prefetch && (kStepBytes >= 64 || ((NR * k) & 63) < kStepBytes))
      for (int p = 0; p < kStepBytes; p += 64)
        _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k + p + ahead), _MM_HINT_T0);
    for (int u = 0; u < U; ++u) {
      __m256 w[NR];
      for (int r = 0; r < NR; ++r) w[r] = load_int8x8(qr + r * K + k + 8 * u);
      for (int m = 0; m < MR; ++m) {
        const __m256 xv = _mm256_loadu_ps(xr + m * K + k + 8 * u);
        for (int r = 0; r < NR; ++r) acc[u][r][m] = _mm256_fmadd_ps(xv, w[r], acc[u][r][m]);
      }
    }
  }
  for (; k < K8; k += 8) {
    __m256 w[NR];
    for (int r = 0; r < NR; ++r) w[r] = load_int8x8(qr + r * K + k);
    for (int m = 0; m < MR; ++m) {
      const __m256 xv = _mm256_loadu_ps(xr + m * K + k);
      for (int r = 0; r < NR; ++r) acc[0][r][m] = _mm256_fmadd_ps(xv, w[r], acc[0][r][m]);
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int m = 0; m < MR; ++m) {
      __m256 a = acc[0][r][m];
      for (int u = 1; u < U; ++u) a = _mm256_add_ps(a, acc[u][r][m]);
      float sum = hsum(a);
      for (int64_t kk = K8; kk < K; ++kk)
        sum += xr[m * K + kk] * static_cast<float>(qr[r * K + kk]);
      out[(m0 + m) * N + n + r] = sum * scales[n + r];
    }
}

template <int NR>
void int8_weight_rows_nr(const float* x, int64_t M, int64_t K, const int8_t* q, const float* scales,
                         int64_t n0, int64_t n1, int64_t N, float* out) {
  // Every activation row (in blocks of up to 4) before the next weight rows: the tile's
  // NR rows stay in L1 between blocks, so memory sees each weight byte once.
  auto all_rows = [&](auto nr, int64_t n) {
    constexpr int R = decltype(nr)::value;
    over_rows(M, [&](auto mr, int64_t m0) {
      constexpr int MR = decltype(mr)::value;
      int8_tile<R, MR, (R * MR < 8 ? 2 : 1)>(x, K, q, scales, n, N, m0, m0 == 0, out);
    });
  };
  int64_t n = n0;
  for (; n + NR <= n1; n += NR) all_rows(std::integral_constant<int, NR>{}, n);
  for (; n < n1; ++n) all_rows(std::integral_constant<int, 1>{}, n);
}

void int8_weight_rows(const float* x, int64_t M, int64_t K, const int8_t* q, const float* scales,
                      int64_t n0, int64_t n1, int64_t N, float* out) {
  if (M == 1)
    int8_weight_rows_nr<kInt8RowsPerTileM1>(x, M, K, q, scales, n0, n1, N, out);
  else
    int8_weight_rows_nr<kInt8RowsPerTile>(x, M, K, q, scales, n0, n1, N, out);
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
