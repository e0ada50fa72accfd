// Layout helpers shared by the CPU kernels; their input checks are csrc/checks.h,
// shared with the CUDA backend.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/Optional.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <string>
#include <utility>

#include "checks.h"
#include "convert.h"

namespace squeezeprompt {

// t as a contiguous float32 tensor of its shape (t itself when it already is one). A
// 16-bit t is widened by convert.h's loops, not an ATen cast: at decode sizes the cast's
// fixed cost (a TensorIterator per call) was several times the conversion itself.
inline at::Tensor contiguous_fp32(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  if (c.scalar_type() == at::kFloat) return c;
  at::Tensor out = at::empty(c.sizes(), c.options().dtype(at::kFloat));
  AT_DISPATCH_REDUCED_FLOATING_TYPES(c.scalar_type(), "contiguous_fp32", [&] {
    cpu::convert::to_float(c.const_data_ptr<scalar_t>(), out.data_ptr<float>(), c.numel());
  });
  return out;
}

// Flattens x to a contiguous [M, K] float32 matrix (copying only when needed).
inline at::Tensor activations_fp32(const at::Tensor& x) {
  return contiguous_fp32(x.reshape({-1, x.size(-1)}));
}

// Turns a [M, N] float32 result (which it may overwrite) back into x's leading shape and
// dtype, adding the bias in float32 first: one rounding to x's dtype, as torch rounds.
inline at::Tensor finish_output(const at::Tensor& out, const at::Tensor& x,
                                const c10::optional<at::Tensor>& bias) {
  at::Tensor y = out.contiguous();
  const int64_t M = y.size(0), N = y.size(1);
  float* yp = y.data_ptr<float>();
  if (bias.has_value()) {
    const at::Tensor b = contiguous_fp32(*bias);
    const float* bp = b.const_data_ptr<float>();
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, N));
    at::parallel_for(0, M, grain, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t n = 0; n < N; ++n) yp[m * N + n] += bp[n];
    });
  }
  auto shape = x.sizes().vec();
  shape.back() = N;
  if (x.scalar_type() == at::kFloat) return y.view(shape);
  at::Tensor z = at::empty(shape, x.options());
  AT_DISPATCH_REDUCED_FLOATING_TYPES(x.scalar_type(), "finish_output", [&] {
    cpu::convert::from_float(yp, z.data_ptr<scalar_t>(), M * N);
  });
  return z;
}

// Output channels per parallel task, so that a task does at least ~128k multiply-adds:
// waking a second OpenMP thread costs microseconds when the machine is idle (and a
// whole scheduler time slice when it is oversubscribed), so tiny layers run on the
// calling thread. At 2^19, 576 x 576 at decode stayed on one thread and took 35 us
// where torch's int4 kernel took 25 on two; at 2^17 it takes 27 us on two, and
// SmolLM2 decode at 2 threads was unchanged within noise (int4 33.0 vs 33.1 tok/s).
inline int64_t row_grain(int64_t work_per_row) {
  constexpr int64_t kMinTaskWork = int64_t{1} << 17;
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
  return {contiguous_fp32(scales), contiguous_fp32(zeros)};
}

// Below this many rows a streaming kernel that reads each weight once wins;
// above it the work is compute-bound and a dequantized BLAS GEMM wins.
constexpr int64_t kStreamingMaxRows = 16;

}  // namespace squeezeprompt
