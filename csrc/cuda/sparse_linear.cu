// Sparse linears for CUDA: a dense weight under a boolean mask, and packed 2:4.
// The 2:4 kernel reads half the weight bytes of the dense one; it does not use the
// sparse tensor cores (their metadata layout differs from csrc/formats.h).
#include "launchers.h"
#include "mma_tile.cuh"
#include "weight_loaders.cuh"

namespace squeezeprompt::cuda {

cudaError_t launch_masked_linear(const void* x, DType act, const void* weight, const uint8_t* mask,
                                 const float* bias, void* y, int64_t m, int64_t n, int64_t k,
                                 cudaStream_t stream) {
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    const MaskedLoader<T> w{static_cast<const T*>(weight), mask, k};
    return launch_linear(static_cast<const T*>(x), w, bias, static_cast<T*>(y), m, n, k, stream);
  });
}

template <typename T, typename V>
cudaError_t sparse24_for(const void* x, const void* values, const uint8_t* meta,
                         const float* scales, const float* bias, void* y, int64_t m, int64_t n,
                         int64_t k, cudaStream_t stream) {
  const Sparse24Loader<V> w{static_cast<const V*>(values), meta, scales, k};
  return launch_linear(static_cast<const T*>(x), w, bias, static_cast<T*>(y), m, n, k, stream);
}

cudaError_t launch_sparse24_linear(const void* x, DType act, const void* values, DType val,
                                   const uint8_t* meta, const float* scales, const float* bias,
                                   void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream) {
  if (k % kSparseGroup != 0) return cudaErrorInvalidValue;
  return dispatch_activation(act, [&](auto tag) {
    using T = decltype(tag);
    switch (val) {
      case DType::kInt8:
        if (scales == nullptr) return cudaErrorInvalidValue;
        return sparse24_for<T, int8_t>(x, values, meta, scales, bias, y, m, n, k, stream);
      case DType::kFloat32:
        return sparse24_for<T, float>(x, values, meta, scales, bias, y, m, n, k, stream);
      case DType::kBFloat16:
        return sparse24_for<T, __nv_bfloat16>(x, values, meta, scales, bias, y, m, n, k, stream);
      case DType::kFloat16:
        return sparse24_for<T, __half>(x, values, meta, scales, bias, y, m, n, k, stream);
    }
    return cudaErrorInvalidValue;
  });
}

}  // namespace squeezeprompt::cuda
