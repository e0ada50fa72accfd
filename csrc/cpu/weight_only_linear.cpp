// Weight-only quantized linears (int8 per channel, int4 group-wise) on the CPU, both
// on the streaming-or-BLAS driver of panel_matmul.h.
#include "common.h"
#include "formats.h"
#include "kernels.h"
#include "panel_matmul.h"

namespace squeezeprompt {

at::Tensor int8_weight_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                  const at::Tensor& scales, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int8_weight_linear";
  const LinearDims dims = check_int8_weight_inputs(op, x, qweight, "scales", scales, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  check_scales_positive_finite(op, "scales", scales);

  at::Tensor q = qweight.contiguous();
  at::Tensor s = contiguous_fp32(scales);
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor out = streaming_or_panel_matmul(
      activations_fp32(x), N, K, K,
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
  const Int4GridBuffers grid = int4_grid_buffers(op, scales, zeros);

  at::Tensor q = qweight.contiguous();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* sp = grid.scales_ptr();
  const float* zp = grid.zeros_ptr();
  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor out = streaming_or_panel_matmul(
      activations_fp32(x), N, K, K,
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
