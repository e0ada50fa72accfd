// The driver every packed-weight linear shares: small M streams each weight once
// through the active ISA's kernels (decode is bound by memory bandwidth), large M
// dequantizes a panel of rows at a time and hands the compute-bound GEMM to BLAS,
// which measured faster than our own tiles there.
#pragma once
#include <algorithm>

#include "common.h"

namespace squeezeprompt {

// rows(x, M, n0, n1, out) computes out[:, n0:n1] straight from the packed weight;
// dequant(n0, n1, w) writes dequantized rows n0..n1 at w + n * K for the BLAS path.
// work_per_row: multiply-adds per output channel at M = 1 (sizes the parallel tasks).
template <typename Rows, typename Dequant>
at::Tensor streaming_or_panel_matmul(const at::Tensor& x2, int64_t N, int64_t K,
                                     int64_t work_per_row, Rows rows, Dequant dequant) {
  const int64_t M = x2.size(0);
  if (M <= kStreamingMaxRows) {
    at::Tensor out = at::empty({M, N}, x2.options());
    const float* xp = x2.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, N, row_grain(M * work_per_row),
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

}  // namespace squeezeprompt
