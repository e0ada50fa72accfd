// W8A8 on the CPU: each activation row is quantized to int8 with its own scale
// (absmax / 127, symmetric), multiplied against int8 weights with exact int32
// accumulation, then rescaled by the row scale and the weight channel scale.
#include <utility>

#include "common.h"
#include "kernels.h"

namespace squeezeprompt {
namespace {

// Returns int8 codes [M, K] and per-row scales [M]; matches quantize_activations_ref.
std::pair<at::Tensor, at::Tensor> quantize_rows(const cpu::Kernels& kern, const at::Tensor& x2) {
  const int64_t M = x2.size(0), K = x2.size(1);
  at::Tensor q = at::empty({M, K}, x2.options().dtype(at::kChar));
  at::Tensor s = at::empty({M}, x2.options());
  const float* xp = x2.data_ptr<float>();
  int8_t* qp = q.data_ptr<int8_t>();
  float* sp = s.data_ptr<float>();
  at::parallel_for(0, M, row_grain(K), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) kern.quantize_row_int8(xp + m * K, K, qp + m * K, sp + m);
  });
  return {q, s};
}

}  // namespace

at::Tensor int8_dynamic_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                   const at::Tensor& w_scales,
                                   const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int8_dynamic_linear";
  const LinearDims dims = check_int8_weight_inputs(op, x, qweight, "w_scales", w_scales, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  check_scales_positive_finite(op, "w_scales", w_scales);

  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor x2 = activations_fp32(x);
  auto [xq, xs] = quantize_rows(kern, x2);
  const int64_t M = x2.size(0);
  at::Tensor w = qweight.contiguous();
  at::Tensor ws = contiguous_fp32(w_scales);
  // One kernel for every M: at::_int_mm on CPU measured ~30x slower than it here.
  at::Tensor acc = at::empty({M, N}, x2.options().dtype(at::kInt));
  const int8_t* xqp = xq.data_ptr<int8_t>();
  const int8_t* wp = w.data_ptr<int8_t>();
  int32_t* ap = acc.data_ptr<int32_t>();
  at::parallel_for(0, N, row_grain(M * K), [&](int64_t n0, int64_t n1) {
    kern.int8_dot_rows(xqp, M, K, wp, n0, n1, N, ap);
  });
  // acc * x_scale * w_scale in one pass, in that order (the rounding of the three ATen
  // ops this replaced: their fixed cost per call was most of a decode-size call's time).
  at::Tensor out = at::empty({M, N}, x2.options());
  const float* xsp = xs.const_data_ptr<float>();
  const float* wsp = ws.const_data_ptr<float>();
  float* outp = out.data_ptr<float>();
  at::parallel_for(0, M, row_grain(N), [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      const int32_t* a = ap + m * N;
      float* o = outp + m * N;
      for (int64_t n = 0; n < N; ++n) o[n] = static_cast<float>(a[n]) * xsp[m] * wsp[n];
    }
  });
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("int8_dynamic_linear", &int8_dynamic_linear_cpu);
}

}  // namespace squeezeprompt
