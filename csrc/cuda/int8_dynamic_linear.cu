// W8A8 for CUDA: per-token int8 quantization of x, int8 x int8 -> int32 dot products
// with dp4a, rescaled by the token scale and the weight's channel scale. Integer
// accumulation is exact, so the result matches the reference up to the final
// float32 rescale (the same three multiplications in the same order).
#include <algorithm>

#include "common.cuh"
#include "launchers.h"

namespace squeezeprompt::cuda {

constexpr int kInt8Max = 127;
constexpr int kQuantThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kQuantThreads)
    quantize_rows_kernel(const T* __restrict__ x, int8_t* __restrict__ q,
                         float* __restrict__ scales, int64_t k) {
  __shared__ float warp_max_shared[kQuantThreads / kWarp];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * k;
  float amax = 0.0f;
  bool non_finite = false;  // fmaxf drops NaN, so NaN/Inf are looked for separately
  for (int64_t i = threadIdx.x; i < k; i += kQuantThreads) {
    const float v = to_float(xr[i]);
    amax = fmaxf(amax, fabsf(v));
    non_finite |= !isfinite(v);
  }
  non_finite = __syncthreads_or(non_finite);
  amax = warp_max(amax);
  if (threadIdx.x % kWarp == 0) warp_max_shared[threadIdx.x / kWarp] = amax;
  __syncthreads();
  if (threadIdx.x < kWarp) {
    float v = threadIdx.x < kQuantThreads / kWarp ? warp_max_shared[threadIdx.x] : 0.0f;
    v = warp_max(v);
    if (threadIdx.x == 0) warp_max_shared[0] = v;
  }
  __syncthreads();
  amax = warp_max_shared[0];
  // As in the reference: an all-zero row gets scale 1 (its codes are 0 anyway), a row
  // of subnormals at least the smallest subnormal, and a row holding NaN or Inf codes
  // 0 and scale NaN, which makes its output row NaN.
  float scale =
      amax > 0.0f ? fmaxf(__fdiv_rn(amax, static_cast<float>(kInt8Max)), 1.401298464e-45f) : 1.0f;
  if (non_finite) scale = __int_as_float(0x7fc00000);
  if (threadIdx.x == 0) scales[row] = scale;
  for (int64_t i = threadIdx.x; i < k; i += kQuantThreads) {
    if (non_finite) {
      q[row * k + i] = 0;
      continue;
    }
    // Explicit IEEE division and round-half-to-even, the same as torch.round(x / s),
    // also under --use_fast_math.
    const float v = rintf(__fdiv_rn(to_float(xr[i]), scale));
    q[row * k + i] = static_cast<int8_t>(fminf(fmaxf(v, -kInt8Max), kInt8Max));
  }
}

constexpr int kDotWarps = 4;
constexpr int kDotRows = 8;
constexpr int64_t kMaxGridY = 65535;

// One warp per output channel and up to kDotRows tokens; VEC = 4 uses dp4a on
// 4-byte words (needs K % 4 == 0 for alignment), VEC = 1 plain int multiplies.
template <typename T, int VEC>
__global__ void __launch_bounds__(kWarp* kDotWarps)
    int8_dot_kernel(const int8_t* __restrict__ xq, const float* __restrict__ x_scales,
                    const int8_t* __restrict__ wq, const float* __restrict__ w_scales,
                    const float* __restrict__ bias, T* __restrict__ y, int64_t m, int64_t n,
                    int64_t k) {
  const int lane = threadIdx.x;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kDotWarps + threadIdx.y;
  if (col >= n) return;
  const int8_t* wr = wq + col * k;
  for (int64_t row0 = static_cast<int64_t>(blockIdx.y) * kDotRows; row0 < m;
       row0 += static_cast<int64_t>(gridDim.y) * kDotRows) {
    const int rows = static_cast<int>(m - row0 < kDotRows ? m - row0 : kDotRows);
    int32_t acc[kDotRows] = {};
    for (int64_t c = lane; c < k / VEC; c += kWarp) {
      if constexpr (VEC == 4) {
        const int w4 = *reinterpret_cast<const int*>(wr + c * 4);
#pragma unroll
        for (int r = 0; r < kDotRows; ++r) {
          if (r < rows) {
            acc[r] = __dp4a(*reinterpret_cast<const int*>(xq + (row0 + r) * k + c * 4), w4, acc[r]);
          }
        }
      } else {
        const int32_t w1 = wr[c];
#pragma unroll
        for (int r = 0; r < kDotRows; ++r) {
          if (r < rows) acc[r] += static_cast<int32_t>(xq[(row0 + r) * k + c]) * w1;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kDotRows; ++r) {
      const int32_t total = warp_sum(acc[r]);
      if (lane == 0 && r < rows) {
        // Explicit roundings stop nvcc contracting these into an FMA, which would
        // round differently from the reference's separate multiply and add.
        float v =
            __fmul_rn(__fmul_rn(static_cast<float>(total), x_scales[row0 + r]), w_scales[col]);
        if (bias) v = __fadd_rn(v, bias[col]);
        y[(row0 + r) * n + col] = from_float<T>(v);
      }
    }
  }
}

cudaError_t launch_int8_dynamic_linear(const void* x, DType act, const int8_t* qweight,
                                       const float* w_scales, const float* bias, void* y,
                                       int8_t* workspace_q, float* workspace_scales, int64_t m,
                                       int64_t n, int64_t k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    quantize_rows_kernel<T><<<static_cast<unsigned>(m), kQuantThreads, 0, stream>>>(
        static_cast<const T*>(x), workspace_q, workspace_scales, k);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const dim3 block(kWarp, kDotWarps);
    const dim3 grid(static_cast<unsigned>(ceil_div(n, kDotWarps)),
                    static_cast<unsigned>(std::min<int64_t>(ceil_div(m, kDotRows), kMaxGridY)));
    auto* yt = static_cast<T*>(y);
    if (k % 4 == 0) {
      int8_dot_kernel<T, 4><<<grid, block, 0, stream>>>(workspace_q, workspace_scales, qweight,
                                                        w_scales, bias, yt, m, n, k);
    } else {
      int8_dot_kernel<T, 1><<<grid, block, 0, stream>>>(workspace_q, workspace_scales, qweight,
                                                        w_scales, bias, yt, m, n, k);
    }
    return cudaGetLastError();
  });
}

}  // namespace squeezeprompt::cuda
