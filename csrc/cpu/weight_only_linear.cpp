// Weight-only quantized linears (int8 per channel, int4 group-wise) on the CPU.
// Both share one driver: small M streams each weight once through the active ISA's
// kernels (decode is bound by memory bandwidth), large M dequantizes once and hands
// the compute-bound GEMM to BLAS, which measured faster than our own tiles there.
#include <algorithm>

#include "common.h"
#include "formats.h"
#include "kernels.h"

namespace squeezeprompt {
namespace {

// rows(x, M, n0, n1, out) computes out[:, n0:n1] straight from the packed weight;
// dequant(n0, n1, w) writes dequantized rows for the BLAS path.
template <typename Rows, typename Dequant>
at::Tensor weight_only_matmul(const at::Tensor& x2, int64_t N, int64_t K, Rows rows,
                              Dequant dequant) {
  const int64_t M = x2.size(0);
  if (M <= kStreamingMaxRows) {
    at::Tensor out = at::empty({M, N}, x2.options());
    const float* xp = x2.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, N, row_grain(M * K),
                     [&](int64_t n0, int64_t n1) { rows(xp, M, n0, n1, op); });
    return out;
  }
  // Prefill: dequantize a panel of rows into a reused buffer and multiply it at once,
  // so the float copy of the weight never exists whole (4x the int8 bytes, 8x int4):
  // no page faults on a fresh N x K buffer and the panel is still in cache for BLAS.
  at::Tensor out = at::empty({M, N}, x2.options());
  const int64_t panel = std::min<int64_t>(N, std::max<int64_t>(64, (int64_t{1} << 20) / K));
  at::Tensor w = at::empty({panel, K}, x2.options());
  float* wp = w.data_ptr<float>();
  for (int64_t p0 = 0; p0 < N; p0 += panel) {
    const int64_t count = std::min(panel, N - p0);
    // dequant writes row n at w + n * K; shift the base so rows p0.. land at the start.
    float* base = wp - p0 * K;
    at::parallel_for(0, count, row_grain(K),
                     [&](int64_t r0, int64_t r1) { dequant(p0 + r0, p0 + r1, base); });
    out.narrow(1, p0, count).copy_(at::mm(x2, w.narrow(0, 0, count).t()));
  }
  return out;
}

}  // namespace

at::Tensor int8_weight_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                  const at::Tensor& scales, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int8_weight_linear";
  const LinearDims dims = check_int8_weight_inputs(op, x, qweight, "scales", scales, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  check_scales_positive_finite(op, "scales", scales);

  at::Tensor q = qweight.contiguous();
  at::Tensor s = scales.to(at::kFloat).contiguous();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor out = weight_only_matmul(
      activations_fp32(x), N, K,
      [&](const float* xp, int64_t M, int64_t n0, int64_t n1, float* op) {
        kern.int8_weight_rows(xp, M, K, qp, sp, n0, n1, N, op);
      },
      [&](int64_t n0, int64_t n1, float* wp) { kern.int8_dequant_rows(qp, sp, K, n0, n1, wp); });
  return finish_output(out, x, bias);
}

at::Tensor int4_weight_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                  const at::Tensor& scales, const at::Tensor& zeros,
                                  int64_t group_size, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int4_weight_linear";
  const LinearDims dims = check_int4_weight_inputs(op, x, qweight, scales, zeros, group_size, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  check_scales_positive_finite(op, "scales", scales);
  check_finite(op, "zeros", zeros);

  at::Tensor q = qweight.contiguous();
  at::Tensor s = scales.to(at::kFloat).contiguous();
  at::Tensor z = zeros.to(at::kFloat).contiguous();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* sp = s.data_ptr<float>();
  const float* zp = z.data_ptr<float>();
  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor out = weight_only_matmul(
      activations_fp32(x), N, K,
      [&](const float* xp, int64_t M, int64_t n0, int64_t n1, float* op) {
        kern.int4_weight_rows(xp, M, K, qp, sp, zp, group_size, n0, n1, N, op);
      },
      [&](int64_t n0, int64_t n1, float* wp) {
        kern.int4_dequant_rows(qp, sp, zp, K, group_size, n0, n1, wp);
      });
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("int8_weight_linear", &int8_weight_linear_cpu);
  m.impl("int4_weight_linear", &int4_weight_linear_cpu);
}

}  // namespace squeezeprompt
