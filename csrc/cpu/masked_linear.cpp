// Training-time sparsity: y = x @ (weight * mask)^T + bias. The dense GEMM is
// BLAS's; what this op adds is the masking contract and its checks (the
// autograd in python/squeezeprompt/ops/sparse.py keeps masked weights gradient-free).
#include "common.h"

namespace squeezeprompt {

at::Tensor masked_linear_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& mask,
                             const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "masked_linear";
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
              weight.sizes());
  check_activation(op, x, weight.size(1));
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), op,
              ": weight must have the dtype of x (", x.scalar_type(), "), got ",
              weight.scalar_type());
  check_dtype(op, "mask", mask, at::kBool);
  check_shape(op, "mask", mask, weight.sizes());
  check_same_device(op, x, {{"weight", &weight}, {"mask", &mask}});
  check_bias(op, x, bias, weight.size(0));
  at::Tensor w = weight.masked_fill(mask.logical_not(), 0);
  at::Tensor b = bias.has_value() ? bias->to(x.scalar_type()) : at::Tensor();
  return at::linear(x, w, b);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) { m.impl("masked_linear", &masked_linear_cpu); }

}  // namespace squeezeprompt
