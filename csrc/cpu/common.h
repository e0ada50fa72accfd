// Input checks and layout helpers shared by the CPU kernels. Every message
// names the op, the argument, what was expected and what came, in the same words
// as the fake kernels in python/squeezeprompt/ops/_checks.py.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Optional.h>
#include <torch/library.h>

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
// non-finite scale would silently produce garbage downstream.
inline void check_scales_positive_finite(const char* op, const char* name, const at::Tensor& s) {
  if (s.numel() == 0) return;
  auto f = s.to(at::kFloat);
  TORCH_CHECK(at::isfinite(f).all().item<bool>(), op, ": ", name,
              " must be finite, got NaN or Inf");
  TORCH_CHECK((f > 0).all().item<bool>(), op, ": ", name,
              " must be > 0, got min ", f.min().item<float>());
}

inline void check_finite(const char* op, const char* name, const at::Tensor& t) {
  if (t.numel() == 0) return;
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
  return y.reshape(shape).to(x.scalar_type());
}

// Below this many rows a streaming kernel that reads each weight once wins;
// above it the work is compute-bound and a dequantized BLAS GEMM wins.
constexpr int64_t kStreamingMaxRows = 16;

// Dot product written so the compiler vectorises it (four independent sums).
inline float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

}  // namespace squeezeprompt
