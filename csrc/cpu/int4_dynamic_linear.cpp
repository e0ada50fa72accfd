// W4A8 on the CPU: group-wise int4 weights (the int4_weight_linear layout) times
// activations quantized per token to int8 at run time. Each activation row is quantized
// once (as int8_dynamic_linear does), laid out for the active ISA's kernel and summed
// per group; the kernel multiplies int4 codes by int8 codes in exact integer arithmetic
// and spends one float multiply-add per group, where the weight-only kernel dequantizes
// every weight to float. The zero points enter as zeros[n, g] * sum of the group's codes.
//
// One kernel for every M: the work is integer dot products, which outrun the float GEMM
// the weight-only op hands large M to (measured in bench/).
#include <vector>

#include "common.h"
#include "formats.h"
#include "kernels.h"

namespace squeezeprompt {
namespace {

// Scratch of one call, in plain vectors: three at::empty calls cost about a microsecond,
// which is a tenth of a 576 x 576 decode linear.
struct QuantizedRows {
  std::vector<int8_t> xr;     // [M, int4_int8_row_stride(K)] in the kernel's layout
  std::vector<float> xsum;    // [M, G]: per-group sums of the codes (exact integers)
  std::vector<float> xscale;  // [M]: NaN for a row holding NaN or Inf (its codes are 0)
};

QuantizedRows quantize_rows(const cpu::Kernels& kern, const at::Tensor& x2, int64_t group_size) {
  const int64_t M = x2.size(0), K = x2.size(1), G = K / group_size;
  const int64_t stride = cpu::int4_int8_row_stride(K);
  QuantizedRows r{std::vector<int8_t>(static_cast<size_t>(M * stride)),
                  std::vector<float>(static_cast<size_t>(M * G)),
                  std::vector<float>(static_cast<size_t>(M))};
  const float* xp = x2.data_ptr<float>();
  at::parallel_for(0, M, row_grain(K), [&](int64_t m0, int64_t m1) {
    std::vector<int8_t> q(static_cast<size_t>(K));
    for (int64_t m = m0; m < m1; ++m) {
      kern.quantize_row_int8(xp + m * K, K, q.data(), &r.xscale[m]);
      kern.int4_int8_pack_row(q.data(), K, group_size, &r.xr[m * stride]);
      for (int64_t g = 0; g < G; ++g) {
        int32_t s = 0;
        for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) s += q[k];
        r.xsum[m * G + g] = static_cast<float>(s);  // |s| <= 127 * group_size: exact
      }
    }
  });
  return r;
}

}  // namespace

at::Tensor int4_dynamic_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                   const at::Tensor& scales, const at::Tensor& zeros,
                                   int64_t group_size, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int4_dynamic_linear";
  const LinearDims dims = check_int4_weight_inputs(op, x, qweight, scales, zeros, group_size, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  const Int4GridBuffers grid = int4_grid_buffers(op, scales, zeros);

  const cpu::Kernels& kern = cpu::active_kernels();
  const at::Tensor x2 = activations_fp32(x);
  const int64_t M = x2.size(0);
  const QuantizedRows rows = quantize_rows(kern, x2, group_size);
  at::Tensor q = qweight.contiguous();
  at::Tensor out = at::empty({M, N}, x2.options());
  const int8_t* xrp = rows.xr.data();
  const float* sump = rows.xsum.data();
  const float* scalep = rows.xscale.data();
  const uint8_t* qp = q.data_ptr<uint8_t>();
  const float* sp = grid.scales_ptr();
  const float* zp = grid.zeros_ptr();
  float* op_out = out.data_ptr<float>();
  at::parallel_for(0, N, row_grain(M * K), [&](int64_t n0, int64_t n1) {
    kern.int4_int8_rows(xrp, sump, scalep, M, K, qp, sp, zp, group_size, n0, n1, N, op_out);
  });
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("int4_dynamic_linear", &int4_dynamic_linear_cpu);
}

}  // namespace squeezeprompt
