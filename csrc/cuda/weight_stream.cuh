// Weight-streaming linear for small M (decode) and float32 activations: one warp per
// output channel, its lanes striding along K, up to MR activation rows per warp so
// each weight is dequantized once per MR rows. At M <= 8 the time is the weight
// read, so the kernel's job is to keep every weight byte read exactly once.
#pragma once
#include <algorithm>

#include "common.cuh"

namespace squeezeprompt::cuda {

constexpr int kStreamWarps = 4;
constexpr int64_t kMaxGridY = 65535;

template <typename T, typename Loader, int MR>
__global__ void __launch_bounds__(kWarp* kStreamWarps)
    weight_stream_kernel(const T* __restrict__ x, Loader w, const float* __restrict__ bias,
                         T* __restrict__ y, int64_t m, int64_t n, int64_t k) {
  const int lane = threadIdx.x;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kStreamWarps + threadIdx.y;
  if (col >= n) return;  // whole warp leaves together: the shuffles below stay full-warp
  const int64_t chunks = w.chunks();
  // grid.y is capped at 65535, so very tall inputs loop over row blocks.
  for (int64_t row0 = static_cast<int64_t>(blockIdx.y) * MR; row0 < m;
       row0 += static_cast<int64_t>(gridDim.y) * MR) {
    const int rows = static_cast<int>(m - row0 < MR ? m - row0 : MR);
    float acc[MR];
#pragma unroll
    for (int r = 0; r < MR; ++r) acc[r] = 0.0f;
    for (int64_t c = lane; c < chunks; c += kWarp) {
      float wv[Loader::kCols];
      w.load(col, c, wv);
#pragma unroll
      for (int r = 0; r < MR; ++r) {
        if (r < rows) {
          const T* xr = x + (row0 + r) * k + c * Loader::kCols;
#pragma unroll
          for (int j = 0; j < Loader::kCols; ++j) acc[r] += to_float(xr[j]) * wv[j];
        }
      }
    }
#pragma unroll
    for (int r = 0; r < MR; ++r) {
      const float total = warp_sum(acc[r]);
      if (lane == 0 && r < rows) {
        y[(row0 + r) * n + col] = from_float<T>(bias ? total + bias[col] : total);
      }
    }
  }
}

template <typename T, typename Loader>
cudaError_t launch_weight_stream(const T* x, const Loader& w, const float* bias, T* y, int64_t m,
                                 int64_t n, int64_t k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  const dim3 block(kWarp, kStreamWarps);
  const unsigned grid_x = static_cast<unsigned>(ceil_div(n, kStreamWarps));
  if (m == 1) {
    weight_stream_kernel<T, Loader, 1>
        <<<dim3(grid_x, 1), block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else if (m <= 4) {
    weight_stream_kernel<T, Loader, 4>
        <<<dim3(grid_x, 1), block, 0, stream>>>(x, w, bias, y, m, n, k);
  } else {
    const unsigned grid_y = static_cast<unsigned>(std::min<int64_t>(ceil_div(m, 8), kMaxGridY));
    weight_stream_kernel<T, Loader, 8>
        <<<dim3(grid_x, grid_y), block, 0, stream>>>(x, w, bias, y, m, n, k);
  }
  return cudaGetLastError();
}

}  // namespace squeezeprompt::cuda
