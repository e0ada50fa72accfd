// How each weight format turns into float32 weights, written once and shared by the
// two linear kernels (weight_stream.cuh for small M, mma_tile.cuh for M >= 16).
//
// A loader exposes
//   kCols                        weights produced by one chunk,
//   chunks()                     chunks per output row (chunks() * kCols == K),
//   load(n, c, w[kCols])         the float32 weights of columns [c*kCols, (c+1)*kCols) of row n,
//   at(n, col)                   one float32 weight (the tensor-core tile fill).
// Every value is computed exactly as the *_ref functions compute it.
#pragma once
#include "../formats.h"
#include "common.cuh"

namespace squeezeprompt::cuda {

// Device copies of the accessors of Int4Pair and Sparse24Meta in formats.h, whose
// methods are host-only there. Same layout, same constants.
__device__ __forceinline__ int int4_code(uint8_t byte, int slot) {
  return (byte >> (4 * slot)) & kInt4Max;
}
__device__ __forceinline__ int sparse24_index(uint8_t byte, int group_in_byte, int slot) {
  return (byte >> (4 * group_in_byte + 2 * slot)) & 0x3;
}

// int8 per output channel: w = q * scale[n]. VEC bytes per chunk (4 needs K % 4 == 0).
template <int VEC>
struct Int8RowLoader {
  static constexpr int kCols = VEC;
  const int8_t* q;
  const float* scales;
  int64_t k;

  __device__ int64_t chunks() const { return k / VEC; }
  __device__ void load(int64_t n, int64_t c, float* w) const {
    const float s = scales[n];
    const int8_t* p = q + n * k + c * VEC;
    if constexpr (VEC == 4) {
      // One 32-bit load per lane: each weight byte is read exactly once.
      const char4 v = *reinterpret_cast<const char4*>(p);
      w[0] = v.x * s;
      w[1] = v.y * s;
      w[2] = v.z * s;
      w[3] = v.w * s;
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) w[j] = p[j] * s;
    }
  }
  __device__ float at(int64_t n, int64_t col) const { return q[n * k + col] * scales[n]; }
};

// int4 pairs (formats.h) with per-group scale and zero: w = (code - zero) * scale.
// VEC packed bytes per chunk, i.e. 2 * VEC weights (4 needs K % 8 == 0).
template <int VEC>
struct Int4GroupLoader {
  static constexpr int kCols = VEC * kInt4PerByte;
  const uint8_t* q;
  const float* scales;
  const float* zeros;
  int64_t group_size;
  int64_t k;

  __device__ int64_t chunks() const { return k / kCols; }
  // 32-bit division: a 64-bit one is a long emulated sequence on the GPU, and a column
  // index always fits (K < 2**31).
  __device__ int64_t group_index(int64_t n, int64_t col) const {
    const int g = static_cast<int>(group_size);
    return n * (k / group_size) + static_cast<int>(col) / g;
  }
  __device__ float dequant(int64_t n, int64_t col, int code) const {
    const int64_t g = group_index(n, col);
    return (static_cast<float>(code) - zeros[g]) * scales[g];
  }
  __device__ void load(int64_t n, int64_t c, float* w) const {
    const uint8_t* p = q + n * (k / 2) + c * VEC;
    uint8_t bytes[VEC];
    if constexpr (VEC == 4) {
      const uchar4 v = *reinterpret_cast<const uchar4*>(p);
      bytes[0] = v.x;
      bytes[1] = v.y;
      bytes[2] = v.z;
      bytes[3] = v.w;
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) bytes[j] = p[j];
    }
    const int64_t col0 = c * kCols;
    if (group_size % kCols == 0) {
      // The whole chunk lies in one group (the usual case, G = 32..128): one scale
      // and zero load and one division per chunk instead of per weight.
      const int64_t g = group_index(n, col0);
      const float s = scales[g], z = zeros[g];
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        w[2 * j] = (static_cast<float>(int4_code(bytes[j], 0)) - z) * s;
        w[2 * j + 1] = (static_cast<float>(int4_code(bytes[j], 1)) - z) * s;
      }
    } else {
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        w[2 * j] = dequant(n, col0 + 2 * j, int4_code(bytes[j], 0));
        w[2 * j + 1] = dequant(n, col0 + 2 * j + 1, int4_code(bytes[j], 1));
      }
    }
  }
  __device__ float at(int64_t n, int64_t col) const {
    return dequant(n, col, int4_code(q[n * (k / 2) + col / 2], static_cast<int>(col & 1)));
  }
};

// Dense weight of x's dtype with a boolean mask (one byte per element).
template <typename T>
struct MaskedLoader {
  static constexpr int kCols = 1;
  const T* weight;
  const uint8_t* mask;
  int64_t k;

  __device__ int64_t chunks() const { return k; }
  __device__ float at(int64_t n, int64_t col) const {
    const int64_t i = n * k + col;
    return mask[i] ? to_float(weight[i]) : 0.0f;
  }
  __device__ void load(int64_t n, int64_t c, float* w) const { w[0] = at(n, c); }
};

// 2:4 values [N, K/2] of type V (float types, or int8 with per-channel scales) and
// metadata (formats.h). One chunk is one group of 4 columns.
template <typename V>
struct Sparse24Loader {
  static constexpr int kCols = kSparseGroup;
  const V* values;
  const uint8_t* meta;
  const float* scales;  // int8 values only
  int64_t k;

  __device__ int64_t chunks() const { return k / kSparseGroup; }
  __device__ int64_t meta_cols() const {
    return (k / kSparseGroup + kSparseGroupsPerMetaByte - 1) / kSparseGroupsPerMetaByte;
  }
  __device__ float value(int64_t n, int64_t i) const {
    const float v = to_float(values[n * (k / 2) + i]);
    if constexpr (std::is_same_v<V, int8_t>) return v * scales[n];
    return v;
  }
  __device__ void load(int64_t n, int64_t c, float* w) const {
    const uint8_t m = meta[n * meta_cols() + c / kSparseGroupsPerMetaByte];
    const int half = static_cast<int>(c % kSparseGroupsPerMetaByte);
#pragma unroll
    for (int j = 0; j < kSparseGroup; ++j) w[j] = 0.0f;
    // A padded group repeats no index (first < second), so plain stores suffice.
    w[sparse24_index(m, half, 0)] = value(n, c * kSparseKept);
    w[sparse24_index(m, half, 1)] = value(n, c * kSparseKept + 1);
  }
  __device__ float at(int64_t n, int64_t col) const {
    float w[kSparseGroup];
    load(n, col / kSparseGroup, w);
    return w[col % kSparseGroup];
  }
};

}  // namespace squeezeprompt::cuda
