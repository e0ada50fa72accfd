// Training-time sparsity: y = x @ (weight * mask)^T + bias. Decode-sized inputs
// stream weight and mask once, masking in registers; larger ones mask a copy of
// the weight and use BLAS. (The autograd in python/squeezeprompt/ops/sparse.py
// keeps masked weights gradient-free.)
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"
#include "scalar_math.h"

namespace squeezeprompt {

at::Tensor masked_linear_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& mask,
                             const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "masked_linear";
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
              weight.sizes());
  check_activation(op, x, weight.size(1));
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), op, ": weight must have the dtype of x (",
              x.scalar_type(), "), got ", weight.scalar_type());
  check_dtype(op, "mask", mask, at::kBool);
  check_shape(op, "mask", mask, weight.sizes());
  check_same_device(op, x, {{"weight", &weight}, {"mask", &mask}});
  check_bias(op, x, bias, weight.size(0));
  const int64_t N = weight.size(0), K = weight.size(1);
  at::Tensor x2 = activations_fp32(x);
  const int64_t M = x2.size(0);
  if (M > kStreamingMaxRows) {
    // Materialising the masked weight costs one pass over it, small next to M rows of GEMM.
    at::Tensor w = at::where(mask, weight, at::zeros({}, weight.options()));
    at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
    return at::linear(x, w, b);
  }
  at::Tensor wc = weight.contiguous(), mc = mask.contiguous();
  at::Tensor out = at::empty({M, N}, x2.options());
  const float* xp = x2.data_ptr<float>();
  const bool* mp = mc.data_ptr<bool>();
  float* op_ = out.data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, wc.scalar_type(), op, [&] {
    const scalar_t* wp = wc.data_ptr<scalar_t>();
    at::parallel_for(0, N, row_grain(M * K), [&](int64_t n0, int64_t n1) {
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t* w_row = wp + n * K;
        const bool* m_row = mp + n * K;
        for (int64_t k = 0; k < K; ++k) {
          // A bitwise AND with an all-ones/all-zeros word: branch-free (a random mask
          // would mispredict half the time), vectorisable, and a masked NaN becomes 0
          // exactly as where() would make it (a multiply by 0 would keep the NaN).
          const float v = static_cast<float>(w_row[k]);
          uint32_t bits;
          std::memcpy(&bits, &v, sizeof(bits));
          bits &= 0u - static_cast<uint32_t>(m_row[k]);
          std::memcpy(&row[k], &bits, sizeof(bits));
        }
        for (int64_t m = 0; m < M; ++m)
          op_[m * N + n] = cpu::scalar::dot(xp + m * K, row.data(), K);
      }
    });
  });
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) { m.impl("masked_linear", &masked_linear_cpu); }

}  // namespace squeezeprompt
