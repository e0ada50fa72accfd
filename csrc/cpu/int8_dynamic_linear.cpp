// W8A8 on the CPU: each activation row is quantized to int8 with its own scale
// (absmax / 127, symmetric), multiplied against int8 weights with exact int32
// accumulation, then rescaled by the row scale and the weight channel scale.
#include <algorithm>
#include <cmath>

#include "common.h"

namespace squeezeprompt {
namespace {

constexpr float kInt8Max = 127.f;

// Returns int8 codes [M, K] and per-row scales [M]; matches int8_dynamic_linear_ref.
std::pair<at::Tensor, at::Tensor> quantize_rows(const at::Tensor& x2) {
  const int64_t M = x2.size(0), K = x2.size(1);
  at::Tensor q = at::empty({M, K}, x2.options().dtype(at::kChar));
  at::Tensor s = at::empty({M}, x2.options());
  const float* xp = x2.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = s.data_ptr<float>();
  at::parallel_for(0, M, 1, [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const float* row = xp + m * K;
      float amax = 0.f;
      for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(row[k]));
      // An all-zero row quantizes to zeros with any scale; 1 keeps the division finite.
      const float scale = amax > 0.f ? amax / kInt8Max : 1.f;
      sp[m] = scale;
      for (int64_t k = 0; k < K; ++k) {
        const float r = std::nearbyint(row[k] / scale);
        qp[m * K + k] = static_cast<int8_t>(std::clamp(r, -kInt8Max, kInt8Max));
      }
    }
  });
  return {q, s};
}

int32_t dot_int8(const int8_t* a, const int8_t* b, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<int16_t>(a[i]) * static_cast<int16_t>(b[i]);
  return s;
}

}  // namespace

at::Tensor int8_dynamic_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                   const at::Tensor& w_scales,
                                   const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int8_dynamic_linear";
  check_dtype(op, "qweight", qweight, at::kChar);
  TORCH_CHECK(qweight.dim() == 2, op,
              ": qweight must be 2-D [out_features, in_features], got shape ", qweight.sizes());
  const int64_t N = qweight.size(0), K = qweight.size(1);
  check_activation(op, x, K);
  check_float(op, "w_scales", w_scales);
  check_shape(op, "w_scales", w_scales, {N});
  check_same_device(op, x, {{"qweight", &qweight}, {"w_scales", &w_scales}});
  check_bias(op, x, bias, N);
  check_scales_positive_finite(op, "w_scales", w_scales);

  at::Tensor x2 = activations_fp32(x);
  auto [xq, xs] = quantize_rows(x2);
  const int64_t M = x2.size(0);
  at::Tensor w = qweight.contiguous();
  at::Tensor ws = w_scales.to(at::kFloat).contiguous();
  at::Tensor acc;
  if (M <= kStreamingMaxRows) {
    acc = at::empty({M, N}, x2.options().dtype(at::kInt));
    const int8_t* xqp = xq.data_ptr<int8_t>();
    const int8_t* wp = w.data_ptr<int8_t>();
    int32_t* ap = acc.data_ptr<int32_t>();
    at::parallel_for(0, N, 8, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t m = 0; m < M; ++m) ap[m * N + n] = dot_int8(xqp + m * K, wp + n * K, K);
    });
  } else {
    acc = at::_int_mm(xq, w.t());
  }
  at::Tensor out = acc.to(at::kFloat).mul_(xs.unsqueeze(1)).mul_(ws.unsqueeze(0));
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) { m.impl("int8_dynamic_linear", &int8_dynamic_linear_cpu); }

}  // namespace squeezeprompt
