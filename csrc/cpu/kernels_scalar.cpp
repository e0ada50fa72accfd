// Portable kernels: the fallback on CPUs without AVX2 and the plain statement of
// what every SIMD kernel computes. Compiled for baseline x86-64 (or any target).
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "formats.h"
#include "kernels.h"
#include "scalar_math.h"

namespace squeezeprompt {
namespace cpu {
namespace {

using scalar::dot;

void int8_dequant_rows(const int8_t* q, const float* scales, int64_t K, int64_t n0, int64_t n1,
                       float* w) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t k = 0; k < K; ++k) w[n * K + k] = static_cast<float>(q[n * K + k]) * scales[n];
}

void int4_dequant_rows(const uint8_t* q, const float* scales, const float* zeros, int64_t K,
                       int64_t group_size, int64_t n0, int64_t n1, float* w) {
  for (int64_t n = n0; n < n1; ++n)
    scalar::int4_dequant_row(q, scales, zeros, K, group_size, n, w + n * K);
}

void int8_weight_rows(const float* x, int64_t M, int64_t K, const int8_t* q, const float* scales,
                      int64_t n0, int64_t n1, int64_t N, float* out) {
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t k = 0; k < K; ++k) row[k] = static_cast<float>(q[n * K + k]);
    for (int64_t m = 0; m < M; ++m) out[m * N + n] = dot(x + m * K, row.data(), K) * scales[n];
  }
}

void int4_weight_rows(const float* x, int64_t M, int64_t K, const uint8_t* q, const float* scales,
                      const float* zeros, int64_t group_size, int64_t n0, int64_t n1, int64_t N,
                      float* out) {
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = n0; n < n1; ++n) {
    scalar::int4_dequant_row(q, scales, zeros, K, group_size, n, row.data());
    for (int64_t m = 0; m < M; ++m) out[m * N + n] = dot(x + m * K, row.data(), K);
  }
}

void int8_dot_rows(const int8_t* xq, int64_t M, int64_t K, const int8_t* w, int64_t n0, int64_t n1,
                   int64_t N, int32_t* acc) {
  for (int64_t n = n0; n < n1; ++n)
    for (int64_t m = 0; m < M; ++m) {
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<int32_t>(xq[m * K + k]) * static_cast<int32_t>(w[n * K + k]);
      acc[m * N + n] = s;
    }
}

// W4A8, portable layout: codes in column order, padding zero.
void int4_int8_pack_row(const int8_t* xq, int64_t K, int64_t /*group_size*/, int8_t* xr) {
  std::copy(xq, xq + K, xr);
  std::fill(xr + K, xr + int4_int8_row_stride(K), int8_t{0});
}

// Exact int32 sums per group (|sum| <= 127 * 15 * group_size), then one float product
// per group, as every ISA does: the zero term is a dot product over groups.
void int4_int8_rows(const int8_t* xr, const float* xsum, const float* xscale, int64_t M, int64_t K,
                    const uint8_t* q, const float* scales, const float* zeros, int64_t group_size,
                    int64_t n0, int64_t n1, int64_t N, float* out) {
  const int64_t G = K / group_size, stride = int4_int8_row_stride(K);
  std::unique_ptr<int16_t[]> codes(new int16_t[K]);
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t k = 0; k < K; ++k) codes[k] = scalar::int4_code(q + n * (K / kInt4PerByte), k);
    const float* sr = scales + n * G;
    const float* zr = zeros + n * G;
    for (int64_t m = 0; m < M; ++m) {
      const int8_t* xm = xr + m * stride;
      float acc = 0.f, zero_term = 0.f;
      for (int64_t g = 0; g < G; ++g) {
        int32_t d = 0;
        for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k)
          d += static_cast<int32_t>(xm[k]) * codes[k];
        acc += sr[g] * static_cast<float>(d);
        zero_term += sr[g] * zr[g] * xsum[m * G + g];
      }
      out[m * N + n] = xscale[m] * (acc - zero_term);
    }
  }
}

void sparse24_rows(const float* x, int64_t M, int64_t K, const void* values, ValueType vt,
                   const uint8_t* meta, const float* scales, int64_t n0, int64_t n1, int64_t N,
                   float* out) {
  scalar::sparse24_rows_range(x, M, K, values, vt, meta, scales, n0, n1, N, out);
}

void fake_quant_group_backward(const float* x, const float* g, float* gx, int64_t n, float s,
                               float z, float lo, float hi, float* sum_s, float* sum_z) {
  scalar::fake_quant_backward(x, g, gx, n, s, z, lo, hi, sum_s, sum_z);
}

const Kernels kScalar = {
    &int8_weight_rows,
    &int4_weight_rows,
    &int8_dequant_rows,
    &int4_dequant_rows,
    &int8_dot_rows,
    &scalar::quantize_row_int8,
    &int4_int8_pack_row,
    &int4_int8_rows,
    &sparse24_rows,
    &scalar::fake_quant,
    &fake_quant_group_backward,
    &scalar::sparse24_int4_rows,
    &scalar::sparse24_int4_dequant_rows,
};

}  // namespace

const Kernels& kernels_scalar() { return kScalar; }

}  // namespace cpu
}  // namespace squeezeprompt
