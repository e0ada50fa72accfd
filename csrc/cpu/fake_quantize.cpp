// Fake quantization (quantize then dequantize) for quantization-aware training,
// group-wise along the last dimension, with the straight-through / LSQ backward.
#include <algorithm>
#include <cmath>
#include <tuple>

#include "common.h"
#include "kernels.h"

namespace squeezeprompt {
namespace {

constexpr int64_t kQuantLowest = -32768;  // 16 bits at most, signed or unsigned
constexpr int64_t kQuantHighest = 65535;

struct Grouping {
  int64_t rows, groups, group_size;
  at::Tensor scale, zero;  // [rows, groups] float32, expanded from what the caller passed
};

Grouping check_and_group(const char* op, const at::Tensor& x, const at::Tensor& scale,
                         const at::Tensor& zero_point, int64_t qmin, int64_t qmax,
                         int64_t group_size) {
  TORCH_CHECK(is_activation_dtype(x.scalar_type()), op,
              ": x must be float32, bfloat16 or float16, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least 1 dimension, got a scalar");
  TORCH_CHECK(qmin < qmax && qmin >= kQuantLowest && qmax <= kQuantHighest, op,
              ": need qmin < qmax within [", kQuantLowest, ", ", kQuantHighest,
              "] (16 bits at most), got qmin=", qmin, ", qmax=", qmax);
  const int64_t K = x.size(-1);
  TORCH_CHECK(group_size > 0, op, ": group_size must be positive, got ", group_size);
  TORCH_CHECK(K % group_size == 0, op, ": group_size must divide x.shape[-1] (x.shape[-1]=", K,
              ", group_size=", group_size, ")");
  check_float(op, "scale", scale);
  check_float(op, "zero_point", zero_point);
  check_same_device(op, x, {{"scale", &scale}, {"zero_point", &zero_point}});
  auto group_shape = x.sizes().vec();
  group_shape.back() = K / group_size;
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"scale", &scale},
                                {"zero_point", &zero_point}}) {
    bool ok = t->dim() <= x.dim();
    for (int64_t i = 1; ok && i <= t->dim(); ++i) {
      const int64_t have = t->size(-i), want = group_shape[group_shape.size() - i];
      ok = have == want || have == 1;
    }
    TORCH_CHECK(ok, op, ": ", name, " must broadcast to x.shape[:-1] + [x.shape[-1] / group_size] = ",
                at::IntArrayRef(group_shape), ", got shape ", t->sizes());
  }
  check_scales_positive_finite(op, "scale", scale);
  check_finite(op, "zero_point", zero_point);
  const int64_t groups = K / group_size;
  const int64_t rows = K == 0 ? 0 : x.numel() / K;
  auto expand = [&](const at::Tensor& t) {
    return t.to(at::kFloat).expand(group_shape).reshape({rows, groups}).contiguous();
  };
  return {rows, groups, group_size, expand(scale), expand(zero_point)};
}

// Groups per task: about 64k elements, so small groups do not drown in task overhead.
inline int64_t grain(int64_t group_size) { return std::max<int64_t>(1, 65536 / group_size); }

inline float rounded_zero(float z, int64_t qmin, int64_t qmax) {
  return std::clamp(std::nearbyint(z), static_cast<float>(qmin), static_cast<float>(qmax));
}

}  // namespace

at::Tensor fake_quantize_cpu(const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& zero_point, int64_t qmin, int64_t qmax,
                             int64_t group_size) {
  const Grouping gr = check_and_group("fake_quantize", x, scale, zero_point, qmin, qmax, group_size);
  at::Tensor xf = x.to(at::kFloat).contiguous();
  at::Tensor y = at::empty_like(xf);
  const float* xp = xf.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const float* sp = gr.scale.data_ptr<float>();
  const float* zp = gr.zero.data_ptr<float>();
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  const cpu::Kernels& kern = cpu::active_kernels();
  at::parallel_for(0, gr.rows * gr.groups, grain(gr.group_size), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t base = b * gr.group_size;
      kern.fake_quant_group(xp + base, yp + base, gr.group_size, sp[b],
                            rounded_zero(zp[b], qmin, qmax), lo, hi);
    }
  });
  return y.to(x.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fake_quantize_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& scale,
    const at::Tensor& zero_point, int64_t qmin, int64_t qmax, int64_t group_size) {
  constexpr const char* op = "fake_quantize_backward";
  const Grouping gr = check_and_group(op, x, scale, zero_point, qmin, qmax, group_size);
  check_shape(op, "grad", grad, x.sizes());
  at::Tensor xf = x.to(at::kFloat).contiguous();
  at::Tensor gf = grad.to(at::kFloat).contiguous();
  at::Tensor gx = at::empty_like(xf);
  at::Tensor gs = at::empty({gr.rows, gr.groups}, xf.options());
  at::Tensor gz = at::empty({gr.rows, gr.groups}, xf.options());
  const float *xp = xf.data_ptr<float>(), *gp = gf.data_ptr<float>();
  const float *sp = gr.scale.data_ptr<float>(), *zp = gr.zero.data_ptr<float>();
  float *gxp = gx.data_ptr<float>(), *gsp = gs.data_ptr<float>(), *gzp = gz.data_ptr<float>();
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  const cpu::Kernels& kern = cpu::active_kernels();
  at::parallel_for(0, gr.rows * gr.groups, grain(gr.group_size), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t base = b * gr.group_size;
      gsp[b] = 0.f;
      gzp[b] = 0.f;
      kern.fake_quant_group_backward(xp + base, gp + base, gxp + base, gr.group_size, sp[b],
                                     rounded_zero(zp[b], qmin, qmax), lo, hi, gsp + b, gzp + b);
    }
  });
  auto group_shape = x.sizes().vec();
  group_shape.back() = gr.groups;
  return {gx.to(x.scalar_type()), gs.reshape(group_shape), gz.reshape(group_shape)};
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("fake_quantize", &fake_quantize_cpu);
  m.impl("fake_quantize_backward", &fake_quantize_backward_cpu);
}

}  // namespace squeezeprompt
