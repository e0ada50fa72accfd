// Int8 weight-only SIMD kernel (decode, M <= kStreamingMaxRows): float32 activations
// times int8 weight rows, one scale per output channel. Included by kernels_simd.h only
// (in its namespaces, after its helpers), so the AVX2 and AVX-512 translation units
// each get a copy. At M = 1 with K >= 32, where codes_as_subnormals() allows it and the
// activations are pairable, the byte-plane path (int8_rows_m1_planes, below) runs;
// otherwise int8_tile.
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

// The M = 1 byte-plane path. A 32-bit lane of a 32-byte load holds the codes of four
// consecutive columns, 4j + b in byte b. XOR with 0x80 turns each signed code w into the
// unsigned w + 128, and the lane masked to byte b (b < 3) is (w + 128) * 2^(8b): as a
// float that is (w + 128) * 2^(8b - 149), exact (bit patterns below 2^24 read linearly,
// subnormal or exponent 1); byte 3 is shifted down. So an XOR, three masks, a shift and
// four FMAs cover 32 codes of a row where int8_tile takes four widenings, four
// conversions and four FMAs: Zen 3 issues these from four vector pipes, the FMAs from
// two of them. The activations are laid out to match, once per
// call: per 32 columns, plane b holds x[4j + b] * 2^(s - 8b) (b < 3; plane 3 x[4j + 3] * 2^s),
// s = 125 - e for sum |x| < 2^e as in the paired int4 path (int4_weight_simd.h), so every
// product is a normal float unless it is below 2^-126 in that scaled space. The offset
// leaves every group of kInt8PlaneGroup columns: its sums minus 128 * (the group's sum of
// x, per lane) go to the totals, which is 2^(s - 149) * sum x * w. Subtracted once at the
// end instead, 128 * sum x dominated the totals when x has a large mean: x = 10 + U(0, 1)
// over K = 16384 gave errors of 2.4e-4 of the largest output, against 5.5e-7 converting;
// per group 1.0e-6. The rounding still scales with 128 sum |x| rather than sum |x w|:
// with codes of the spread real per-channel weights have (standard deviation about 30)
// the error is about 3 times the converting kernel's, and an all-zero weight row gives
// a tiny nonzero result (uniform codes, as in the tests: about the same both ways). The
// tests bound it by K eps32 (|x| @ (|w| + 128 scale)). The path is taken where
// codes_as_subnormals() allows it, with the paired int4 path's bounds on sum |x|
// (pairable). A standalone loop of it against int8_tile's, one Zen 3 core: 64 x 4096
// (weight in L2) 10.2 -> 7.6 us, 4096 x 4096 (in L3) 0.82 -> 0.67 ms.
constexpr int kInt8PlaneRows = 4;
constexpr int64_t kInt8PlaneGroup = 256;  // columns per subtraction of the offset

struct Int8Planes {
  const float* x;             // per 32 columns: planes 0-3, 8 floats each
  const Floats8* group_sums;  // per group, lane j: 128 * 2^(s - 149) * the lane's sum of x
  int64_t columns;            // columns covered by the planes (K rounded down to 32)
  float unscale[2];           // the accumulated sums times both give sum x * w
};

inline Int8Planes int8_planes(const float* x, int64_t K) {
  static thread_local std::vector<Floats8> buffer;
  const int64_t K32 = K / 32 * 32, groups = (K32 + kInt8PlaneGroup - 1) / kInt8PlaneGroup;
  buffer.resize(static_cast<size_t>(K32 / 8 + groups));
  float* planes = buffer.data()->v;
  Floats8* sums = buffer.data() + K32 / 8;
  const int s = subnormal_row_exponent(sum_abs(x, K));
  __m256 up[4][2];
  for (int b = 0; b < 4; ++b) {
    const auto [u0, u1] = split_power_of_two(s - 8 * (b < 3 ? b : 0));
    up[b][0] = _mm256_set1_ps(u0);
    up[b][1] = _mm256_set1_ps(u1);
  }
  const auto [down0, down1] = split_power_of_two(s - 149 + 7);  // 7: the offset 128
  // Per 32 columns, an 8 x 4 transpose: the unpacks and shuffles leave plane b's lanes in
  // the order of columns 4j + b for j = 0, 2, 4, 6, 1, 3, 5, 7, which the permute undoes.
  const __m256i lane_order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t g = 0; g < groups; ++g) {
    __m256 lane_sum = _mm256_setzero_ps();
    for (int64_t c = g * kInt8PlaneGroup; c < std::min(K32, (g + 1) * kInt8PlaneGroup); c += 32) {
      const __m256 v0 = _mm256_loadu_ps(x + c), v1 = _mm256_loadu_ps(x + c + 8);
      const __m256 v2 = _mm256_loadu_ps(x + c + 16), v3 = _mm256_loadu_ps(x + c + 24);
      const __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
      const __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
      const __m256 plane[4] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xEE),
                               _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xEE)};
      for (int b = 0; b < 4; ++b) {
        const __m256 ordered = _mm256_permutevar8x32_ps(plane[b], lane_order);
        lane_sum = _mm256_add_ps(lane_sum, ordered);
        // Both factors are at least 2^-8 and the product stays below 2^126: exact
        // unless the value leaves the normal range at the bottom (see above).
        _mm256_store_ps(planes + c + 8 * b, _mm256_mul_ps(_mm256_mul_ps(ordered, up[b][0]), up[b][1]));
      }
    }
    const __m256 scaled = _mm256_mul_ps(_mm256_mul_ps(lane_sum, _mm256_set1_ps(down0)),
                                        _mm256_set1_ps(down1));
    _mm256_store_ps(sums[g].v, scaled);
  }
  const auto [undo0, undo1] = split_power_of_two(149 - s);
  return {planes, sums, K32, {undo0, undo1}};
}

template <int NR>
void int8_rows_m1_planes(const Int8Planes& xp, const float* x, int64_t K, const int8_t* qr,
                         const float* scales, float* out) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const __m256i byte0 = _mm256_set1_epi32(0xFF), byte1 = _mm256_set1_epi32(0xFF00),
                byte2 = _mm256_set1_epi32(0xFF0000);
  const int64_t ahead = stream_prefetch_bytes(NR * K);
  __m256 total[NR];
  for (int r = 0; r < NR; ++r) total[r] = _mm256_setzero_ps();
  for (int64_t g0 = 0, g = 0; g0 < xp.columns; g0 += kInt8PlaneGroup, ++g) {
    __m256 a0[NR], a1[NR];  // two chains per row
    for (int r = 0; r < NR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    const int64_t g1 = std::min(xp.columns, g0 + kInt8PlaneGroup);
    for (int64_t k = g0; k < g1; k += 32) {
      // One prefetch per 64-byte line consumed (the tile consumes NR * 32 bytes a step).
      if (((NR * k) & 63) < NR * 32)
        for (int p = 0; p < NR * 32; p += 64)
          _mm_prefetch(reinterpret_cast<const char*>(qr + NR * k + p + ahead), _MM_HINT_T0);
      const float* xc = xp.x + k;
      for (int r = 0; r < NR; ++r) {
        const __m256i v = _mm256_xor_si256(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qr + r * K + k)), flip);
        a0[r] = _mm256_fmadd_ps(_mm256_load_ps(xc), _mm256_castsi256_ps(_mm256_and_si256(v, byte0)),
                                a0[r]);
        a1[r] = _mm256_fmadd_ps(_mm256_load_ps(xc + 8),
                                _mm256_castsi256_ps(_mm256_and_si256(v, byte1)), a1[r]);
        a0[r] = _mm256_fmadd_ps(_mm256_load_ps(xc + 16),
                                _mm256_castsi256_ps(_mm256_and_si256(v, byte2)), a0[r]);
        a1[r] = _mm256_fmadd_ps(_mm256_load_ps(xc + 24),
                                _mm256_castsi256_ps(_mm256_srli_epi32(v, 24)), a1[r]);
      }
    }
    // The offset leaves each group's sums here, so the totals never carry 128 * sum x.
    const __m256 offset = _mm256_load_ps(xp.group_sums[g].v);
    for (int r = 0; r < NR; ++r)
      total[r] = _mm256_add_ps(total[r], _mm256_sub_ps(_mm256_add_ps(a0[r], a1[r]), offset));
  }
  for (int r = 0; r < NR; ++r) {
    float tail = 0.f;
    for (int64_t k = xp.columns; k < K; ++k) tail += x[k] * static_cast<float>(qr[r * K + k]);
    out[r] = (hsum(total[r]) * xp.unscale[0] * xp.unscale[1] + tail) * scales[r];
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
  if (M == 1 && K >= 32 && codes_as_subnormals() && pairable(x, 1, K)) {
    const Int8Planes xp = int8_planes(x, K);
    int64_t n = n0;
    for (; n + kInt8PlaneRows <= n1; n += kInt8PlaneRows)
      int8_rows_m1_planes<kInt8PlaneRows>(xp, x, K, q + n * K, scales + n, out + n);
    for (; n < n1; ++n) int8_rows_m1_planes<1>(xp, x, K, q + n * K, scales + n, out + n);
  } else if (M == 1)
    int8_weight_rows_nr<kInt8RowsPerTileM1>(x, M, K, q, scales, n0, n1, N, out);
  else
    int8_weight_rows_nr<kInt8RowsPerTile>(x, M, K, q, scales, n0, n1, N, out);
}

}  // namespace
}  // namespace SP_SIMD_NS
}  // namespace cpu
}  // namespace squeezeprompt
