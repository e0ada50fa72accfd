// Fake quantization (quantize-dequantize) and its LSQ-style backward for CUDA.
// The per-element math copies fake_quantize_ref / fake_quantize_backward_ref in
// python/squeezeprompt/ops/fake_quant.py: IEEE division, round half to even.
#include <algorithm>

#include "common.cuh"
#include "launchers.h"

namespace squeezeprompt::cuda {

struct Grid {
  float qmin, qmax;
  __device__ float zero(float zero_point) const {
    return fminf(fmaxf(rintf(zero_point), qmin), qmax);
  }
};

constexpr int kFqThreads = 256;
constexpr int64_t kMaxBlocks = 65535 * 8;

template <typename T>
__global__ void __launch_bounds__(kFqThreads)
    fake_quantize_kernel(const T* __restrict__ x, const float* __restrict__ scale,
                         const float* __restrict__ zero_point, Grid grid, int64_t group_size,
                         T* __restrict__ y, int64_t total, int64_t k) {
  const int64_t groups_per_row = k / group_size;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kFqThreads) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kFqThreads) {
    const int64_t g = (i / k) * groups_per_row + (i % k) / group_size;
    const float s = scale[g];
    const float z = grid.zero(zero_point[g]);
    const float v = rintf(__fdiv_rn(to_float(x[i]), s)) + z;
    // fminf/fmaxf drop a NaN; the reference's clamp keeps it, so NaN skips the clamp.
    const float q = isnan(v) ? v : fminf(fmaxf(v, grid.qmin), grid.qmax);
    y[i] = from_float<T>((q - z) * s);
  }
}

constexpr int kFqWarps = 8;

// One warp per quantization group: lanes stride over its elements and the warp
// sums the group's scale and zero-point gradients without atomics.
template <typename T>
__global__ void __launch_bounds__(kWarp* kFqWarps)
    fake_quantize_backward_kernel(const T* __restrict__ grad, const T* __restrict__ x,
                                  const float* __restrict__ scale,
                                  const float* __restrict__ zero_point, Grid grid,
                                  int64_t group_size, T* __restrict__ grad_x,
                                  float* __restrict__ grad_scale, float* __restrict__ grad_zero,
                                  int64_t groups) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t g = blockIdx.x * static_cast<int64_t>(kFqWarps) + threadIdx.x / kWarp; g < groups;
       g += static_cast<int64_t>(gridDim.x) * kFqWarps) {
    const float s = scale[g];
    const float z = grid.zero(zero_point[g]);
    float ds_sum = 0.0f, dz_sum = 0.0f;
    // Groups tile each row, so group g covers elements [g * group_size, (g + 1) * group_size).
    for (int64_t j = lane; j < group_size; j += kWarp) {
      const int64_t i = g * group_size + j;
      const float gv = to_float(grad[i]);
      const float v = __fdiv_rn(to_float(x[i]), s);
      const float r = rintf(v);
      const float q = r + z;
      const bool below = q < grid.qmin;
      const bool above = q > grid.qmax;
      const bool inside = !(below || above);
      grad_x[i] = from_float<T>(inside ? gv : 0.0f);
      const float ds = below ? grid.qmin - z : (above ? grid.qmax - z : r - v);
      const float dz = inside ? 0.0f : -s;
      ds_sum += gv * ds;
      dz_sum += gv * dz;
    }
    ds_sum = warp_sum(ds_sum);
    dz_sum = warp_sum(dz_sum);
    if (lane == 0) {
      grad_scale[g] = ds_sum;
      grad_zero[g] = dz_sum;
    }
  }
}

cudaError_t launch_fake_quantize(const void* x, DType act, const float* scale,
                                 const float* zero_point, int64_t qmin, int64_t qmax,
                                 int64_t group_size, void* y, int64_t rows, int64_t k,
                                 cudaStream_t stream) {
  if (group_size <= 0 || k % group_size != 0) return cudaErrorInvalidValue;
  const int64_t total = rows * k;
  if (total == 0) return cudaSuccess;
  const Grid grid{static_cast<float>(qmin), static_cast<float>(qmax)};
  const auto blocks = static_cast<unsigned>(std::min(ceil_div(total, kFqThreads), kMaxBlocks));
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    fake_quantize_kernel<T><<<blocks, kFqThreads, 0, stream>>>(static_cast<const T*>(x), scale,
                                                               zero_point, grid, group_size,
                                                               static_cast<T*>(y), total, k);
    return cudaGetLastError();
  });
}

cudaError_t launch_fake_quantize_backward(const void* grad, const void* x, DType act,
                                          const float* scale, const float* zero_point, int64_t qmin,
                                          int64_t qmax, int64_t group_size, void* grad_x,
                                          float* grad_scale, float* grad_zero, int64_t rows,
                                          int64_t k, cudaStream_t stream) {
  if (group_size <= 0 || k % group_size != 0) return cudaErrorInvalidValue;
  const int64_t groups = rows * (k / group_size);
  if (groups == 0) return cudaSuccess;
  const Grid grid{static_cast<float>(qmin), static_cast<float>(qmax)};
  const auto blocks = static_cast<unsigned>(std::min(ceil_div(groups, kFqWarps), kMaxBlocks));
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    fake_quantize_backward_kernel<T><<<blocks, kWarp * kFqWarps, 0, stream>>>(
        static_cast<const T*>(grad), static_cast<const T*>(x), scale, zero_point, grid, group_size,
        static_cast<T*>(grad_x), grad_scale, grad_zero, groups);
    return cudaGetLastError();
  });
}

}  // namespace squeezeprompt::cuda
