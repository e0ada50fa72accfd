// Layout helpers shared by the CPU kernels; their input checks are csrc/checks.h,
// shared with the CUDA backend.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Optional.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "checks.h"

namespace squeezeprompt {

// Flattens x to a contiguous [M, K] float32 matrix (copying only when needed).
inline at::Tensor activations_fp32(const at::Tensor& x) {
  return x.reshape({-1, x.size(-1)}).to(at::kFloat).contiguous();
}

// Turns a [M, N] float32 result back into x's leading shape and dtype.
inline at::Tensor finish_output(const at::Tensor& out, const at::Tensor& x,
                                const c10::optional<at::Tensor>& bias) {
  at::Tensor y = out;
  if (bias.has_value()) y.add_(bias->to(at::kFloat));
  auto shape = x.sizes().vec();
  shape.back() = out.size(1);
  y = y.view(shape);
  return x.scalar_type() == at::kFloat ? y : y.to(x.scalar_type());
}

// Output channels per parallel task, so that a task does at least ~512k multiply-adds:
// waking a second OpenMP thread costs microseconds when the machine is idle and a
// whole scheduler time slice when it is oversubscribed, so small layers (e.g.
// 576 x 576 at decode) run on the calling thread.
inline int64_t row_grain(int64_t work_per_row) {
  constexpr int64_t kMinTaskWork = int64_t{1} << 19;
  return std::max<int64_t>(4, kMinTaskWork / std::max<int64_t>(1, work_per_row));
}

// An op's int4 group grid as its kernels read it: scales and zeros as contiguous
// float32, after the value checks every int4 kernel relies on (scales > 0 and finite,
// zeros finite; the shapes were checked with the op's other inputs).
struct Int4GridBuffers {
  at::Tensor scales, zeros;
  const float* scales_ptr() const { return scales.data_ptr<float>(); }
  const float* zeros_ptr() const { return zeros.data_ptr<float>(); }
};

inline Int4GridBuffers int4_grid_buffers(const char* op, const at::Tensor& scales,
                                         const at::Tensor& zeros) {
  check_scales_positive_finite(op, "scales", scales);
  check_finite(op, "zeros", zeros);
  return {scales.to(at::kFloat).contiguous(), zeros.to(at::kFloat).contiguous()};
}

// Below this many rows a streaming kernel that reads each weight once wins;
// above it the work is compute-bound and a dequantized BLAS GEMM wins.
constexpr int64_t kStreamingMaxRows = 16;

}  // namespace squeezeprompt
