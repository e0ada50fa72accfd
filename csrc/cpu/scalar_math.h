// Scalar building blocks shared by every ISA: the portable kernels use them whole,
// the SIMD kernels for the tails their vectors do not cover. Everything here has
// internal linkage on purpose: this header is compiled under different -m flags in
// different translation units, and a shared inline symbol could let the linker pick
// an AVX2 copy for the portable path.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>

#include "formats.h"
#include "kernels.h"

namespace squeezeprompt {
namespace cpu {
namespace scalar {
namespace {

constexpr float kInt8Max = 127.f;

// Four independent sums so the compiler can vectorise without -ffast-math.
float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

inline int int4_code(const uint8_t* row_bytes, int64_t k) {
  const Int4Pair pair{row_bytes[k / kInt4PerByte]};
  return (k % kInt4PerByte == 0) ? pair.low() : pair.high();
}

void int4_dequant_row(const uint8_t* q, const float* scales, const float* zeros, int64_t K,
                      int64_t group_size, int64_t n, float* row) {
  const int64_t G = K / group_size;
  const uint8_t* src = q + n * (K / kInt4PerByte);
  for (int64_t g = 0; g < G; ++g) {
    const float scale = scales[n * G + g], zero = zeros[n * G + g];
    for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k)
      row[k] = (static_cast<float>(int4_code(src, k)) - zero) * scale;
  }
}

// The scale of a row that holds NaN or Inf: no int8 grid fits it, so its codes are 0
// and its scale NaN, which makes that row's output NaN and leaves the other rows alone.
inline void quantize_non_finite_row(int64_t K, int8_t* q, float* scale_out) {
  std::fill(q, q + K, int8_t{0});
  *scale_out = std::numeric_limits<float>::quiet_NaN();
}

// amax / 127, kept off zero: for a row of tiny subnormals the quotient underflows to 0,
// and a zero scale would divide the row into Inf and NaN.
inline float int8_row_scale(float amax) {
  return amax > 0.f ? std::max(amax / kInt8Max, std::numeric_limits<float>::denorm_min()) : 1.f;
}

// Must agree bit for bit with quantize_activations_ref: a division (not a multiply
// by the reciprocal) and round-half-to-even.
void quantize_row_int8(const float* x, int64_t K, int8_t* q, float* scale_out) {
  float amax = 0.f, probe = 0.f;
  for (int64_t k = 0; k < K; ++k) {
    amax = std::max(amax, std::fabs(x[k]));
    probe += x[k] * 0.f;  // NaN iff some x is NaN or Inf (std::max would drop a NaN)
  }
  if (std::isnan(probe)) return quantize_non_finite_row(K, q, scale_out);
  const float scale = int8_row_scale(amax);
  *scale_out = scale;
  for (int64_t k = 0; k < K; ++k) {
    const float r = std::nearbyint(x[k] / scale);
    q[k] = static_cast<int8_t>(std::clamp(r, -kInt8Max, kInt8Max));
  }
}

// 16-bit floats travel as raw bits: c10's Half/BFloat16 have external-linkage inline
// members, which must not be compiled into the AVX translation units (see above).
struct BFloat16Bits {
  uint16_t bits;
};
struct HalfBits {
  uint16_t bits;
};

inline float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24, exact in float
    const float f = std::ldexp(static_cast<float>(man), -24);
    return sign ? -f : f;
  }
  if (exp == 31) return bits_to_float(sign | 0x7F800000u | (man << 13));  // Inf / NaN
  return bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

inline float value_as_float(const float* v, int64_t i) { return v[i]; }
inline float value_as_float(const int8_t* v, int64_t i) { return static_cast<float>(v[i]); }
inline float value_as_float(const BFloat16Bits* v, int64_t i) {
  return bits_to_float(static_cast<uint32_t>(v[i].bits) << 16);
}
inline float value_as_float(const HalfBits* v, int64_t i) { return half_to_float(v[i].bits); }

// Sum over 2:4 groups [g0, g1) of one packed row against one activation row.
template <typename T>
float sparse24_dot(const float* xr, const T* vr, const uint8_t* mr, int64_t g0, int64_t g1) {
  float acc = 0.f;
  for (int64_t g = g0; g < g1; ++g) {
    const Sparse24Meta byte{mr[g / kSparseGroupsPerMetaByte]};
    const int half = static_cast<int>(g % kSparseGroupsPerMetaByte);
    acc += value_as_float(vr, 2 * g) * xr[g * kSparseGroup + byte.index(half, 0)] +
           value_as_float(vr, 2 * g + 1) * xr[g * kSparseGroup + byte.index(half, 1)];
  }
  return acc;
}

inline int64_t sparse24_meta_bytes(int64_t K) {
  return (K / kSparseGroup + kSparseGroupsPerMetaByte - 1) / kSparseGroupsPerMetaByte;
}

template <typename T>
void sparse24_rows_typed(const float* x, int64_t M, int64_t K, const T* values, const uint8_t* meta,
                         const float* scales, int64_t n0, int64_t n1, int64_t N, float* out) {
  const int64_t mb = sparse24_meta_bytes(K);
  for (int64_t n = n0; n < n1; ++n) {
    const float scale = scales != nullptr ? scales[n] : 1.f;
    for (int64_t m = 0; m < M; ++m)
      out[m * N + n] =
          sparse24_dot(x + m * K, values + n * (K / 2), meta + n * mb, 0, K / kSparseGroup) * scale;
  }
}

void sparse24_rows_range(const float* x, int64_t M, int64_t K, const void* values, ValueType vt,
                         const uint8_t* meta, const float* scales, int64_t n0, int64_t n1,
                         int64_t N, float* out) {
  switch (vt) {
    case ValueType::kFloat:
      return sparse24_rows_typed(x, M, K, static_cast<const float*>(values), meta, scales, n0, n1,
                                 N, out);
    case ValueType::kBFloat16:
      return sparse24_rows_typed(x, M, K, static_cast<const BFloat16Bits*>(values), meta, scales,
                                 n0, n1, N, out);
    case ValueType::kHalf:
      return sparse24_rows_typed(x, M, K, static_cast<const HalfBits*>(values), meta, scales, n0,
                                 n1, N, out);
    case ValueType::kInt8:
      return sparse24_rows_typed(x, M, K, static_cast<const int8_t*>(values), meta, scales, n0, n1,
                                 N, out);
  }
}

// One 2:4 + int4 row as its kept weights and their columns (K / 2 each): every kept code
// dequantized once as (code - zero) * scale, a sub then a mul like the reference, so a
// code equal to its zero is an exact 0.
void sparse24_int4_decode_row(const uint8_t* vr, const uint8_t* mr, const float* sr,
                              const float* zr, int64_t K, int64_t group_size, float* w,
                              int32_t* cols) {
  for (int64_t g = 0; g < K / kSparseGroup; ++g) {
    const Sparse24Meta byte{mr[g / kSparseGroupsPerMetaByte]};
    const Sparse24Int4Pair pair{vr[g]};
    const int half = static_cast<int>(g % kSparseGroupsPerMetaByte);
    for (int slot = 0; slot < kSparseKept; ++slot) {
      const int64_t k = g * kSparseGroup + byte.index(half, slot);
      const int64_t q = k / group_size;
      w[g * kSparseKept + slot] = (static_cast<float>(pair.code(slot)) - zr[q]) * sr[q];
      cols[g * kSparseKept + slot] = static_cast<int32_t>(k);
    }
  }
}

void sparse24_int4_rows(const float* x, int64_t M, int64_t K, const uint8_t* values,
                        const uint8_t* meta, const float* scales, const float* zeros,
                        int64_t group_size, int64_t n0, int64_t n1, int64_t N, float* out) {
  const int64_t kept = K / 2, mb = sparse24_meta_bytes(K), G = K / group_size;
  // Raw arrays, not std::vector: its shared template code could be the copy compiled
  // with AVX flags (see the top of this file).
  std::unique_ptr<float[]> w(new float[kept]);
  std::unique_ptr<int32_t[]> cols(new int32_t[kept]);
  for (int64_t n = n0; n < n1; ++n) {
    sparse24_int4_decode_row(values + n * (K / kSparseGroup), meta + n * mb, scales + n * G,
                             zeros + n * G, K, group_size, w.get(), cols.get());
    for (int64_t m = 0; m < M; ++m) {
      const float* xr = x + m * K;
      float s0 = 0.f, s1 = 0.f;  // two chains, as sparse24_dot's two products per group
      for (int64_t i = 0; i < kept; i += 2) {
        s0 += w[i] * xr[cols[i]];
        s1 += w[i + 1] * xr[cols[i + 1]];
      }
      out[m * N + n] = s0 + s1;
    }
  }
}

void sparse24_int4_dequant_rows(const uint8_t* values, const uint8_t* meta, const float* scales,
                                const float* zeros, int64_t K, int64_t group_size, int64_t n0,
                                int64_t n1, float* w) {
  const int64_t kept = K / 2, mb = sparse24_meta_bytes(K), G = K / group_size;
  std::unique_ptr<float[]> v(new float[kept]);
  std::unique_ptr<int32_t[]> cols(new int32_t[kept]);
  for (int64_t n = n0; n < n1; ++n) {
    sparse24_int4_decode_row(values + n * (K / kSparseGroup), meta + n * mb, scales + n * G,
                             zeros + n * G, K, group_size, v.get(), cols.get());
    float* row = w + n * K;
    std::fill(row, row + K, 0.f);
    for (int64_t i = 0; i < kept; ++i) row[cols[i]] = v[i];
  }
}

// Must agree bit for bit with fake_quantize_ref: divide, round half to even, clamp.
void fake_quant(const float* x, float* y, int64_t n, float s, float z, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    const float q = std::clamp(std::nearbyint(x[i] / s) + z, lo, hi);
    y[i] = (q - z) * s;
  }
}

void fake_quant_backward(const float* x, const float* g, float* gx, int64_t n, float s, float z,
                         float lo, float hi, float* sum_s, float* sum_z) {
  float ss = 0.f, sz = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] / s;
    const float r = std::nearbyint(v);
    const float q = r + z;
    if (q < lo) {
      gx[i] = 0.f;
      ss += g[i] * (lo - z);
      sz -= g[i] * s;
    } else if (q > hi) {
      gx[i] = 0.f;
      ss += g[i] * (hi - z);
      sz -= g[i] * s;
    } else {
      gx[i] = g[i];
      ss += g[i] * (r - v);
    }
  }
  *sum_s += ss;
  *sum_z += sz;
}

}  // namespace
}  // namespace scalar
}  // namespace cpu
}  // namespace squeezeprompt
