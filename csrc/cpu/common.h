// Input checks and layout helpers shared by the CPU kernels. Every message
// names the op, the argument, what was expected and what came, in the same words
// as the fake kernels in python/squeezeprompt/ops/_checks.py.
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

namespace squeezeprompt {

inline bool is_activation_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

inline void check_activation(const char* op, const at::Tensor& x, int64_t in_features) {
  TORCH_CHECK(is_activation_dtype(x.scalar_type()), op,
              ": x must be float32, bfloat16 or float16, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(x.size(-1) == in_features, op, ": x.shape[-1] must equal in_features (",
              in_features, "), got x.shape=", x.sizes());
}

inline void check_same_device(const char* op, const at::Tensor& x,
                              std::initializer_list<std::pair<const char*, const at::Tensor*>> others) {
  for (const auto& [name, t] : others) {
    if (t == nullptr) continue;
    TORCH_CHECK(t->device() == x.device(), op, ": ", name, " must be on the same device as x (",
                x.device(), "), got ", t->device());
  }
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t, at::ScalarType want) {
  TORCH_CHECK(t.scalar_type() == want, op, ": ", name, " must be ", want, ", got ",
              t.scalar_type());
}

inline void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be a floating-point tensor, got ", t.scalar_type());
}

inline void check_shape(const char* op, const char* name, const at::Tensor& t,
                        at::IntArrayRef want) {
  TORCH_CHECK(t.sizes() == want, op, ": ", name, " must have shape ", want, ", got ", t.sizes());
}

// Scales are data, so only the real kernels can check them; a zero, negative or
// non-finite scale would silently produce garbage downstream. Float32 tensors (the
// common case) are scanned in place: on a decode-sized linear, the tensor ops of the
// generic path cost more than the kernel itself.
inline void check_scales_positive_finite(const char* op, const char* name, const at::Tensor& s) {
  if (s.numel() == 0) return;
  if (s.scalar_type() == at::kFloat && s.is_contiguous() && s.device().is_cpu()) {
    const float* p = s.data_ptr<float>();
    bool finite = true, positive = true;
    float lowest = p[0];
    for (int64_t i = 0; i < s.numel(); ++i) {
      finite &= std::isfinite(p[i]);
      positive &= p[i] > 0.f;
      lowest = std::min(lowest, p[i]);
    }
    TORCH_CHECK(finite, op, ": ", name, " must be finite, got NaN or Inf");
    TORCH_CHECK(positive, op, ": ", name, " must be > 0, got min ", lowest);
    return;
  }
  auto f = s.to(at::kFloat);
  TORCH_CHECK(at::isfinite(f).all().item<bool>(), op, ": ", name,
              " must be finite, got NaN or Inf");
  TORCH_CHECK((f > 0).all().item<bool>(), op, ": ", name,
              " must be > 0, got min ", f.min().item<float>());
}

inline void check_finite(const char* op, const char* name, const at::Tensor& t) {
  if (t.numel() == 0) return;
  if (t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu()) {
    const float* p = t.data_ptr<float>();
    bool finite = true;
    for (int64_t i = 0; i < t.numel(); ++i) finite &= std::isfinite(p[i]);
    TORCH_CHECK(finite, op, ": ", name, " must be finite, got NaN or Inf");
    return;
  }
  TORCH_CHECK(at::isfinite(t.to(at::kFloat)).all().item<bool>(), op, ": ", name,
              " must be finite, got NaN or Inf");
}

inline void check_bias(const char* op, const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                       int64_t out_features) {
  if (!bias.has_value()) return;
  check_float(op, "bias", *bias);
  check_shape(op, "bias", *bias, {out_features});
  check_same_device(op, x, {{"bias", &*bias}});
}

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

// Below this many rows a streaming kernel that reads each weight once wins;
// above it the work is compute-bound and a dequantized BLAS GEMM wins.
constexpr int64_t kStreamingMaxRows = 16;

}  // namespace squeezeprompt
