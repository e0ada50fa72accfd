// 2:4 + int4 on the CPU: the linear that reads a 2:4 weight whose kept values are
// group-wise int4 codes (layout in csrc/formats.h). At decode it streams half the
// codes of the dense int4 layout plus 4 metadata bits per group; at prefill it
// scatters panels of dense float rows for BLAS, as the dense int4 linear does.
#include "common.h"
#include "formats.h"
#include "kernels.h"
#include "panel_matmul.h"
#include "sparse24_common.h"

namespace squeezeprompt {

at::Tensor sparse24_int4_linear_cpu(const at::Tensor& x, const at::Tensor& values,
                                    const at::Tensor& meta, const at::Tensor& scales,
                                    const at::Tensor& zeros, int64_t group_size,
                                    const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "sparse24_int4_linear";
  const LinearDims dims =
      check_sparse24_int4_inputs(op, x, values, meta, scales, zeros, group_size, bias);
  const int64_t N = dims.out_features, K = dims.in_features;
  const Int4GridBuffers grid = int4_grid_buffers(op, scales, zeros);

  at::Tensor v = values.contiguous(), mt = meta.contiguous();
  const uint8_t* vp = v.data_ptr<uint8_t>();
  const uint8_t* mp = mt.data_ptr<uint8_t>();
  const float* sp = grid.scales_ptr();
  const float* zp = grid.zeros_ptr();
  const cpu::Kernels& kern = cpu::active_kernels();
  const at::Tensor x2 = activations_fp32(x);
  // Tasks are sized as for a dense row (K, not the K / 2 kept products): each kept
  // product costs about twice a dense one (the x permutes), and with K / 2 a 576 x 1536
  // layer stayed on one thread where the dense int4 layer used two.
  at::Tensor out = streaming_or_panel_matmul(
      x2, N, K, K,
      [&](const float* xp, int64_t M, int64_t n0, int64_t n1, float* o) {
        kern.sparse24_int4_rows(xp, M, K, vp, mp, sp, zp, group_size, n0, n1, N, o);
      },
      [&](int64_t n0, int64_t n1, float* wp) {
        kern.sparse24_int4_dequant_rows(vp, mp, sp, zp, K, group_size, n0, n1, wp);
      });
  // Only the streaming path skips pruned columns; the BLAS path multiplies their zeros.
  if (x2.size(0) <= kStreamingMaxRows)
    poison_pruned_non_finite(x2.data_ptr<float>(), x2.size(0), K, mp, N, out.data_ptr<float>());
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("sparse24_int4_linear", &sparse24_int4_linear_cpu);
}

}  // namespace squeezeprompt
