// Weight-only int8 (per channel) and int4 (per group) linears for CUDA.
#include "launchers.h"
#include "mma_tile.cuh"
#include "weight_loaders.cuh"

namespace squeezeprompt::cuda {

cudaError_t launch_int8_weight_linear(const void* x, DType act, const int8_t* qweight,
                                      const float* scales, const float* bias, void* y, int64_t m,
                                      int64_t n, int64_t k, cudaStream_t stream) {
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    const auto* xt = static_cast<const T*>(x);
    auto* yt = static_cast<T*>(y);
    // 4-byte weight loads need every row to start 4-byte aligned.
    if (k % 4 == 0) {
      return launch_linear(xt, Int8RowLoader<4>{qweight, scales, k}, bias, yt, m, n, k, stream);
    }
    return launch_linear(xt, Int8RowLoader<1>{qweight, scales, k}, bias, yt, m, n, k, stream);
  });
}

cudaError_t launch_int4_weight_linear(const void* x, DType act, const uint8_t* qweight,
                                      const float* scales, const float* zeros, int64_t group_size,
                                      const float* bias, void* y, int64_t m, int64_t n, int64_t k,
                                      cudaStream_t stream) {
  if (group_size <= 0 || k % group_size != 0 || k % 2 != 0) return cudaErrorInvalidValue;
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    const auto* xt = static_cast<const T*>(x);
    auto* yt = static_cast<T*>(y);
    if (k % 8 == 0) {
      const Int4GroupLoader<4> w{qweight, scales, zeros, group_size, k};
      return launch_linear(xt, w, bias, yt, m, n, k, stream);
    }
    const Int4GroupLoader<1> w{qweight, scales, zeros, group_size, k};
    return launch_linear(xt, w, bias, yt, m, n, k, stream);
  });
}

}  // namespace squeezeprompt::cuda
