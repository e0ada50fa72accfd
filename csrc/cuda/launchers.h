// Launchers for the CUDA kernels: raw pointers, sizes and a stream, no torch.
// register.cpp checks and converts torch tensors, then calls these; every .cu
// file compiles on its own with nvcc (scripts/check_cuda_compile.sh).
//
// Conventions shared by every launcher:
// - activations x are [M, K] row-major (leading dims flattened), of dtype `act`;
//   outputs y are [M, N] of the same dtype;
// - scales, zero points and biases arrive as float32 (register.cpp converts them:
//   they are small, and the references compute in float32 anyway);
// - the return value is the launch's cudaError_t.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace squeezeprompt::cuda {

// Element type of a tensor argument; register.cpp maps torch's ScalarType onto it.
enum class DType : int { kFloat32 = 0, kBFloat16 = 1, kFloat16 = 2, kInt8 = 3 };

// y = x @ (q * scales[:, None]).T + bias;  q int8 [N, K].
cudaError_t launch_int8_weight_linear(const void* x, DType act, const int8_t* qweight,
                                      const float* scales, const float* bias, void* y, int64_t m,
                                      int64_t n, int64_t k, cudaStream_t stream);

// y = x @ ((q - zeros) * scales).T + bias per group; q packed int4 pairs [N, K/2]
// (csrc/formats.h), scales/zeros [N, K/group_size]. Tensor-core path for M >= 16
// with bf16/fp16 activations, a weight-streaming path otherwise.
cudaError_t launch_int4_weight_linear(const void* x, DType act, const uint8_t* qweight,
                                      const float* scales, const float* zeros, int64_t group_size,
                                      const float* bias, void* y, int64_t m, int64_t n, int64_t k,
                                      cudaStream_t stream);

// W8A8: quantizes each row of x to int8 (into `workspace_q` [M, K] and
// `workspace_scales` [M]), multiplies with int8 q [N, K] in int32, rescales.
cudaError_t launch_int8_dynamic_linear(const void* x, DType act, const int8_t* qweight,
                                       const float* w_scales, const float* bias, void* y,
                                       int8_t* workspace_q, float* workspace_scales, int64_t m,
                                       int64_t n, int64_t k, cudaStream_t stream);

// Fake quantization of x viewed as [rows, K]; scale/zero_point are materialised
// per group, [rows, K/group_size] float32.
cudaError_t launch_fake_quantize(const void* x, DType act, const float* scale,
                                 const float* zero_point, int64_t qmin, int64_t qmax,
                                 int64_t group_size, void* y, int64_t rows, int64_t k,
                                 cudaStream_t stream);

// Gradients of fake_quantize: grad_x (dtype `act`, like x) and per-group float32
// grad_scale, grad_zero [rows, K/group_size].
cudaError_t launch_fake_quantize_backward(const void* grad, const void* x, DType act,
                                          const float* scale, const float* zero_point, int64_t qmin,
                                          int64_t qmax, int64_t group_size, void* grad_x,
                                          float* grad_scale, float* grad_zero, int64_t rows,
                                          int64_t k, cudaStream_t stream);

// y = x @ where(mask, weight, 0).T + bias; weight [N, K] has x's dtype, mask is bool
// stored as one byte per element. `bias` must already be rounded to x's dtype.
cudaError_t launch_masked_linear(const void* x, DType act, const void* weight, const uint8_t* mask,
                                 const float* bias, void* y, int64_t m, int64_t n, int64_t k,
                                 cudaStream_t stream);

// y = x @ sparse24_unpack(values, meta, scales).T + bias; values [N, K/2] of dtype
// `val` (float types, or int8 with per-channel `scales`), meta [N, ceil(K/8)].
cudaError_t launch_sparse24_linear(const void* x, DType act, const void* values, DType val,
                                   const uint8_t* meta, const float* scales, const float* bias,
                                   void* y, int64_t m, int64_t n, int64_t k, cudaStream_t stream);

}  // namespace squeezeprompt::cuda
