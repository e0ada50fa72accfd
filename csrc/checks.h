// Input checks shared by every backend (csrc/cpu and csrc/cuda): each message names
// the op, the argument, what was expected and what came, in the words of the fake
// kernels (python/squeezeprompt/ops/_checks.py), so an error reads the same on every
// device and under torch.compile.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/Optional.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <utility>

#include "formats.h"

namespace squeezeprompt {

inline bool is_activation_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kBFloat16 || t == at::kHalf;
}

inline void check_activation(const char* op, const at::Tensor& x, int64_t in_features) {
  TORCH_CHECK(is_activation_dtype(x.scalar_type()), op,
              ": x must be float32, bfloat16 or float16, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(x.size(-1) == in_features, op, ": x.shape[-1] must equal in_features (", in_features,
              "), got x.shape=", x.sizes());
}

inline void check_same_device(
    const char* op, const at::Tensor& x,
    std::initializer_list<std::pair<const char*, const at::Tensor*>> others) {
  for (const auto& [name, t] : others) {
    if (t == nullptr) continue;
    TORCH_CHECK(t->device() == x.device(), op, ": ", name, " must be on the same device as x (",
                x.device(), "), got ", t->device());
  }
}

// The dtype as Python spells it ("torch.int8"), so messages read like the fake kernels'.
inline std::string dtype_name(at::ScalarType t) {
  return "torch." + std::string(c10::getDtypeNames(t).first);
}

inline void check_dtype(const char* op, const char* name, const at::Tensor& t,
                        at::ScalarType want) {
  TORCH_CHECK(t.scalar_type() == want, op, ": ", name, " must be ", dtype_name(want), ", got ",
              dtype_name(t.scalar_type()));
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
// common case) are scanned in place with one branch-free pass that the compiler
// vectorises (NaN fails both comparisons): on a decode-sized linear, the tensor ops of
// the generic path, or a scalar loop with std::min and std::isfinite, cost as much as
// the kernel itself (measured: 29% of a 576 x 4608 int4 decode call).
inline bool all_positive_finite(const float* p, int64_t n) {
  constexpr float kMax = std::numeric_limits<float>::max();
  int bad = 0;
  for (int64_t i = 0; i < n; ++i)
    bad |= static_cast<int>(!(p[i] > 0.f)) | static_cast<int>(!(p[i] <= kMax));
  return bad == 0;
}

inline bool all_finite(const float* p, int64_t n) {
  constexpr float kMax = std::numeric_limits<float>::max();
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<int>(!(std::fabs(p[i]) <= kMax));
  return bad == 0;
}

inline void check_scales_positive_finite(const char* op, const char* name, const at::Tensor& s) {
  if (s.numel() == 0) return;
  const bool fast = s.scalar_type() == at::kFloat && s.is_contiguous() && s.device().is_cpu();
  if (fast && all_positive_finite(s.data_ptr<float>(), s.numel())) return;
  // Something is wrong (or the tensor is not plain float32): say what.
  auto f = s.to(at::kFloat);
  TORCH_CHECK(at::isfinite(f).all().item<bool>(), op, ": ", name,
              " must be finite, got NaN or Inf");
  TORCH_CHECK((f > 0).all().item<bool>(), op, ": ", name, " must be > 0, got min ",
              f.min().item<float>());
}

inline void check_finite(const char* op, const char* name, const at::Tensor& t) {
  if (t.numel() == 0) return;
  const bool fast = t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu();
  if (fast && all_finite(t.data_ptr<float>(), t.numel())) return;
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

struct LinearDims {
  int64_t out_features, in_features;
};

// Shape, dtype and device checks of an int8 weight [N, K] with one scale per output
// channel (int8_weight_linear, int8_dynamic_linear). Value checks are the caller's.
inline LinearDims check_int8_weight_inputs(const char* op, const at::Tensor& x,
                                           const at::Tensor& qweight, const char* scales_name,
                                           const at::Tensor& scales,
                                           const c10::optional<at::Tensor>& bias) {
  check_dtype(op, "qweight", qweight, at::kChar);
  TORCH_CHECK(qweight.dim() == 2, op,
              ": qweight must be 2-D [out_features, in_features], got shape ", qweight.sizes());
  const int64_t N = qweight.size(0), K = qweight.size(1);
  check_activation(op, x, K);
  check_float(op, scales_name, scales);
  check_shape(op, scales_name, scales, {N});
  check_same_device(op, x, {{"qweight", &qweight}, {scales_name, &scales}});
  check_bias(op, x, bias, N);
  return {N, K};
}

// The int4 grid every int4 op shares: a group size dividing K, and float per-group
// scales and zero points [N, K / G].
inline void check_int4_grid(const char* op, int64_t N, int64_t K, int64_t group_size,
                            const at::Tensor& scales, const at::Tensor& zeros) {
  TORCH_CHECK(group_size > 0, op, ": group_size must be positive, got ", group_size);
  TORCH_CHECK(K % group_size == 0, op, ": group_size must divide in_features (in_features=", K,
              ", group_size=", group_size, ")");
  const int64_t G = K / group_size;
  check_float(op, "scales", scales);
  check_float(op, "zeros", zeros);
  check_shape(op, "scales", scales, {N, G});
  check_shape(op, "zeros", zeros, {N, G});
}

// The same for packed int4 pairs [N, K / 2] with per-group scales and zeros [N, K / G].
inline LinearDims check_int4_weight_inputs(const char* op, const at::Tensor& x,
                                           const at::Tensor& qweight, const at::Tensor& scales,
                                           const at::Tensor& zeros, int64_t group_size,
                                           const c10::optional<at::Tensor>& bias) {
  check_dtype(op, "qweight", qweight, at::kByte);
  TORCH_CHECK(qweight.dim() == 2, op,
              ": qweight must be 2-D [out_features, in_features / 2] (two int4 codes per byte), "
              "got shape ",
              qweight.sizes());
  const int64_t N = qweight.size(0), K = qweight.size(1) * kInt4PerByte;
  check_activation(op, x, K);
  check_int4_grid(op, N, K, group_size, scales, zeros);
  check_same_device(op, x, {{"qweight", &qweight}, {"scales", &scales}, {"zeros", &zeros}});
  check_bias(op, x, bias, N);
  return {N, K};
}

inline int64_t sparse24_meta_cols(int64_t in_features) {
  return (in_features / kSparseGroup + kSparseGroupsPerMetaByte - 1) / kSparseGroupsPerMetaByte;
}

// Packed 2:4 + int4: values [N, K / 4] uint8 (the two kept codes of each group of 4
// columns in one byte), meta [N, ceil(K / 8)], scales/zeros [N, K / G] over the original K.
inline LinearDims check_sparse24_int4_inputs(const char* op, const at::Tensor& x,
                                             const at::Tensor& values, const at::Tensor& meta,
                                             const at::Tensor& scales, const at::Tensor& zeros,
                                             int64_t group_size,
                                             const c10::optional<at::Tensor>& bias) {
  check_dtype(op, "values", values, at::kByte);
  TORCH_CHECK(values.dim() == 2, op,
              ": values must be 2-D [out_features, in_features / 4] (the two kept int4 codes of "
              "each group of 4 columns in one byte), got shape ",
              values.sizes());
  const int64_t N = values.size(0), K = values.size(1) * kSparseGroup;
  check_activation(op, x, K);
  check_dtype(op, "meta", meta, at::kByte);
  check_shape(op, "meta", meta, {N, sparse24_meta_cols(K)});
  check_int4_grid(op, N, K, group_size, scales, zeros);
  check_same_device(op, x,
                    {{"values", &values}, {"meta", &meta}, {"scales", &scales}, {"zeros", &zeros}});
  check_bias(op, x, bias, N);
  return {N, K};
}

}  // namespace squeezeprompt
