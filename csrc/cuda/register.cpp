// Registers the CUDA kernels (csrc/cuda/*.cu) for torch.ops.squeezeprompt. Compiled
// only in CUDA builds (CMakeLists.txt defines SQUEEZEPROMPT_WITH_CUDA=1 there).
//
// This file only checks and converts tensors; the math lives in the .cu files and
// its meaning in the *_ref functions of python/squeezeprompt/ops/. Error messages
// use the words of the fake kernels (python/squeezeprompt/ops/_checks.py).
//
// SQUEEZEPROMPT_GPU_BACKEND=cuda|triton (read once, when the library loads) picks the
// implementation for the ops that also have Triton kernels: with "triton" they are
// left unregistered here and python/squeezeprompt/ops/triton registers its kernels
// for the CUDA key instead.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "checks.h"
#include "cuda/launchers.h"

namespace squeezeprompt::cuda {
namespace {

DType dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kHalf:
      return DType::kFloat16;
    case at::kChar:
      return DType::kInt8;
    default:
      TORCH_CHECK(false, "squeezeprompt CUDA: unsupported dtype ", t.scalar_type());
  }
}

void check_launch(const char* op, cudaError_t err) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

// The shared checks (csrc/checks.h) plus what only this backend needs.
void check_cuda(const char* op, const at::Tensor& x) {
  TORCH_CHECK(x.is_cuda(), op, ": x must be a CUDA tensor, got ", x.device());
}

void check_activation(const char* op, const at::Tensor& x, int64_t in_features) {
  squeezeprompt::check_activation(op, x, in_features);
  check_cuda(op, x);
}

void check_on(const char* op, const at::Tensor& x, const char* name, const at::Tensor& t) {
  squeezeprompt::check_same_device(op, x, {{name, &t}});
}

// Small per-channel or per-group tensors: converted to float32 once, as the
// references do.
at::Tensor as_float(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

const float* bias_ptr(const char* op, const at::Tensor& x, const std::optional<at::Tensor>& bias,
                      int64_t n, at::Tensor& holder, bool round_to_x = false) {
  if (!bias.has_value()) return nullptr;
  check_bias(op, x, bias, n);
  // masked_linear's reference adds the bias in x's dtype.
  holder = as_float(round_to_x ? bias->to(x.scalar_type()) : *bias);
  return holder.data_ptr<float>();
}

// The kernels read packed weights 4 bytes at a time; a view with an odd storage
// offset would make those loads misaligned, so such a weight is copied once.
at::Tensor aligned_weight(const at::Tensor& t) {
  constexpr uintptr_t kAlign = 16;
  auto c = t.contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % kAlign != 0) c = c.clone();
  return c;
}

struct Flat {
  at::Tensor x2d;  // [M, K], contiguous
  at::Tensor y;    // x's leading shape + [N]
  int64_t m;
};

Flat flatten_rows(const at::Tensor& x, int64_t n) {
  const int64_t k = x.size(-1);
  auto out_shape = x.sizes().vec();
  out_shape.back() = n;
  Flat f{x.reshape({-1, k}).contiguous(), at::empty(out_shape, x.options()), 0};
  f.m = f.x2d.size(0);
  return f;
}

at::Tensor int8_weight_linear(const at::Tensor& x, const at::Tensor& qweight,
                              const at::Tensor& scales, const std::optional<at::Tensor>& bias) {
  const char* op = "int8_weight_linear";
  const LinearDims dims = check_int8_weight_inputs(op, x, qweight, "scales", scales, bias);
  const int64_t n = dims.out_features, k = dims.in_features;
  check_cuda(op, x);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor b;
  const float* bp = bias_ptr(op, x, bias, n, b);
  const auto q = aligned_weight(qweight);
  const auto s = as_float(scales);
  auto f = flatten_rows(x, n);
  check_launch(op, launch_int8_weight_linear(f.x2d.data_ptr(), dtype_of(x), q.data_ptr<int8_t>(),
                                             s.data_ptr<float>(), bp, f.y.data_ptr(), f.m, n, k,
                                             c10::cuda::getCurrentCUDAStream()));
  return f.y;
}

at::Tensor int4_weight_linear(const at::Tensor& x, const at::Tensor& qweight,
                              const at::Tensor& scales, const at::Tensor& zeros, int64_t group_size,
                              const std::optional<at::Tensor>& bias) {
  const char* op = "int4_weight_linear";
  const LinearDims dims = check_int4_weight_inputs(op, x, qweight, scales, zeros, group_size, bias);
  const int64_t n = dims.out_features, k = dims.in_features;
  check_cuda(op, x);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor b;
  const float* bp = bias_ptr(op, x, bias, n, b);
  const auto q = aligned_weight(qweight);
  const auto s = as_float(scales), z = as_float(zeros);
  auto f = flatten_rows(x, n);
  check_launch(
      op, launch_int4_weight_linear(f.x2d.data_ptr(), dtype_of(x), q.data_ptr<uint8_t>(),
                                    s.data_ptr<float>(), z.data_ptr<float>(), group_size, bp,
                                    f.y.data_ptr(), f.m, n, k, c10::cuda::getCurrentCUDAStream()));
  return f.y;
}

at::Tensor int8_dynamic_linear(const at::Tensor& x, const at::Tensor& qweight,
                               const at::Tensor& w_scales, const std::optional<at::Tensor>& bias) {
  const char* op = "int8_dynamic_linear";
  const LinearDims dims = check_int8_weight_inputs(op, x, qweight, "w_scales", w_scales, bias);
  const int64_t n = dims.out_features, k = dims.in_features;
  check_cuda(op, x);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor b;
  const float* bp = bias_ptr(op, x, bias, n, b);
  const auto q = aligned_weight(qweight);
  const auto s = as_float(w_scales);
  auto f = flatten_rows(x, n);
  auto xq = at::empty({f.m, k}, x.options().dtype(at::kChar));
  auto xs = at::empty({f.m}, x.options().dtype(at::kFloat));
  check_launch(op, launch_int8_dynamic_linear(f.x2d.data_ptr(), dtype_of(x), q.data_ptr<int8_t>(),
                                              s.data_ptr<float>(), bp, f.y.data_ptr(),
                                              xq.data_ptr<int8_t>(), xs.data_ptr<float>(), f.m, n,
                                              k, c10::cuda::getCurrentCUDAStream()));
  return f.y;
}

// Per-group view shared by both fake_quantize directions: x.shape[:-1] + [K/G].
std::vector<int64_t> fq_checks(const char* op, const at::Tensor& x, const at::Tensor& scale,
                               const at::Tensor& zero_point, int64_t qmin, int64_t qmax,
                               int64_t group_size) {
  TORCH_CHECK(x.dim() >= 1, op, ": x must have at least 1 dimension, got a scalar");
  check_activation(op, x, x.size(-1));
  TORCH_CHECK(qmin < qmax && qmin >= -32768 && qmax <= 65535, op,
              ": need qmin < qmax within [-32768, 65535] (16 bits at most), got qmin=", qmin,
              ", qmax=", qmax);
  const int64_t k = x.size(-1);
  TORCH_CHECK(group_size > 0, op, ": group_size must be positive, got ", group_size);
  TORCH_CHECK(k % group_size == 0, op, ": group_size must divide x.shape[-1] (x.shape[-1]=", k,
              ", group_size=", group_size, ")");
  check_on(op, x, "scale", scale);
  check_on(op, x, "zero_point", zero_point);
  auto shape = x.sizes().vec();
  shape.back() = k / group_size;
  for (const auto* t : {&scale, &zero_point}) {
    TORCH_CHECK(t->is_floating_point(), op, ": scale and zero_point must be floating-point, got ",
                t->scalar_type());
    bool ok = t->dim() <= static_cast<int64_t>(shape.size());
    for (int64_t i = 1; ok && i <= t->dim(); ++i) {
      const int64_t have = t->size(-i), want = shape[shape.size() - i];
      ok = have == 1 || have == want;
    }
    TORCH_CHECK(ok, op, ": ", t == &scale ? "scale" : "zero_point",
                " must broadcast to x.shape[:-1] + [x.shape[-1] / group_size] = ",
                at::IntArrayRef(shape), ", got shape ", t->sizes());
  }
  return shape;
}

at::Tensor per_group(const at::Tensor& t, const std::vector<int64_t>& shape) {
  return t.to(at::kFloat).expand(shape).contiguous();
}

at::Tensor fake_quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                         int64_t qmin, int64_t qmax, int64_t group_size) {
  const char* op = "fake_quantize";
  const auto shape = fq_checks(op, x, scale, zero_point, qmin, qmax, group_size);
  const c10::cuda::CUDAGuard guard(x.device());
  const auto xc = x.contiguous();
  const auto s = per_group(scale, shape), z = per_group(zero_point, shape);
  auto y = at::empty_like(xc);
  const int64_t k = x.size(-1);
  check_launch(op, launch_fake_quantize(xc.data_ptr(), dtype_of(x), s.data_ptr<float>(),
                                        z.data_ptr<float>(), qmin, qmax, group_size, y.data_ptr(),
                                        xc.numel() / std::max<int64_t>(k, 1), k,
                                        c10::cuda::getCurrentCUDAStream()));
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fake_quantize_backward(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& scale,
    const at::Tensor& zero_point, int64_t qmin, int64_t qmax, int64_t group_size) {
  const char* op = "fake_quantize_backward";
  const auto shape = fq_checks(op, x, scale, zero_point, qmin, qmax, group_size);
  check_shape(op, "grad", grad, x.sizes().vec());
  check_on(op, x, "grad", grad);
  const c10::cuda::CUDAGuard guard(x.device());
  const auto xc = x.contiguous();
  const auto gc = grad.to(x.scalar_type()).contiguous();
  const auto s = per_group(scale, shape), z = per_group(zero_point, shape);
  auto grad_x = at::empty_like(xc);
  auto grad_s = at::empty(shape, x.options().dtype(at::kFloat));
  auto grad_z = at::empty_like(grad_s);
  const int64_t k = x.size(-1);
  check_launch(op, launch_fake_quantize_backward(
                       gc.data_ptr(), xc.data_ptr(), dtype_of(x), s.data_ptr<float>(),
                       z.data_ptr<float>(), qmin, qmax, group_size, grad_x.data_ptr(),
                       grad_s.data_ptr<float>(), grad_z.data_ptr<float>(),
                       xc.numel() / std::max<int64_t>(k, 1), k, c10::cuda::getCurrentCUDAStream()));
  return {grad_x, grad_s, grad_z};
}

at::Tensor masked_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& mask,
                         const std::optional<at::Tensor>& bias) {
  const char* op = "masked_linear";
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
              weight.sizes());
  const int64_t n = weight.size(0), k = weight.size(1);
  check_activation(op, x, k);
  TORCH_CHECK(weight.scalar_type() == x.scalar_type(), op, ": weight must have the dtype of x (",
              x.scalar_type(), "), got ", weight.scalar_type());
  TORCH_CHECK(mask.scalar_type() == at::kBool, op, ": mask must be torch.bool, got ",
              mask.scalar_type());
  check_shape(op, "mask", mask, {n, k});
  check_on(op, x, "weight", weight);
  check_on(op, x, "mask", mask);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor b;
  const float* bp = bias_ptr(op, x, bias, n, b, /*round_to_x=*/true);
  const auto w = weight.contiguous();
  const auto mk = mask.contiguous();
  auto f = flatten_rows(x, n);
  // torch.bool is one byte holding 0 or 1.
  check_launch(op,
               launch_masked_linear(f.x2d.data_ptr(), dtype_of(x), w.data_ptr(),
                                    reinterpret_cast<const uint8_t*>(mk.data_ptr<bool>()), bp,
                                    f.y.data_ptr(), f.m, n, k, c10::cuda::getCurrentCUDAStream()));
  return f.y;
}

at::Tensor sparse24_linear(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                           const std::optional<at::Tensor>& scales,
                           const std::optional<at::Tensor>& bias) {
  const char* op = "sparse24_linear";
  TORCH_CHECK(values.dim() == 2, op,
              ": values must be 2-D [out_features, in_features / 2], got shape ", values.sizes());
  const int64_t n = values.size(0), k = values.size(1) * 2;
  check_activation(op, x, k);
  TORCH_CHECK(k % 4 == 0, op, ": in_features must be a multiple of 4, got ", k);
  TORCH_CHECK(meta.scalar_type() == at::kByte, op, ": meta must be torch.uint8, got ",
              meta.scalar_type());
  check_shape(op, "meta", meta, {n, (k / 4 + 1) / 2});
  const auto vt = values.scalar_type();
  const bool int8_values = vt == at::kChar;
  TORCH_CHECK(int8_values || vt == at::kFloat || vt == at::kBFloat16 || vt == at::kHalf, op,
              ": values must be float32, bfloat16, float16 or int8, got ", vt);
  at::Tensor s;
  if (int8_values) {
    TORCH_CHECK(scales.has_value(), op, ": int8 values need per-channel scales [", n,
                "], got None");
    check_shape(op, "scales", *scales, {n});
    check_on(op, x, "scales", *scales);
    s = as_float(*scales);
  } else {
    TORCH_CHECK(!scales.has_value(), op, ": scales go with int8 values only, got ", vt,
                " values and scales");
  }
  check_on(op, x, "values", values);
  check_on(op, x, "meta", meta);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor b;
  const float* bp = bias_ptr(op, x, bias, n, b);
  const auto v = values.contiguous();
  const auto mt = meta.contiguous();
  auto f = flatten_rows(x, n);
  check_launch(op, launch_sparse24_linear(
                       f.x2d.data_ptr(), dtype_of(x), v.data_ptr(), dtype_of(values),
                       mt.data_ptr<uint8_t>(), int8_values ? s.data_ptr<float>() : nullptr, bp,
                       f.y.data_ptr(), f.m, n, k, c10::cuda::getCurrentCUDAStream()));
  return f.y;
}

// "triton" hands the ops that have Triton kernels to python/squeezeprompt/ops/triton.
// An unknown value is reported and ignored: throwing while the library loads would
// abort the process instead of raising a Python error.
bool triton_backend_selected() {
  const char* value = std::getenv("SQUEEZEPROMPT_GPU_BACKEND");
  const std::string v = value == nullptr ? "" : value;
  if (v.empty() || v == "cuda") return false;
  if (v == "triton") return true;
  TORCH_WARN("SQUEEZEPROMPT_GPU_BACKEND must be 'cuda' or 'triton', got '", v,
             "'; using the CUDA kernels");
  return false;
}

}  // namespace

TORCH_LIBRARY_IMPL(squeezeprompt, CUDA, m) {
  if (!triton_backend_selected()) {
    m.impl("int8_weight_linear", &int8_weight_linear);
    m.impl("int4_weight_linear", &int4_weight_linear);
    m.impl("fake_quantize", &fake_quantize);
    m.impl("fake_quantize_backward", &fake_quantize_backward);
  }
  m.impl("int8_dynamic_linear", &int8_dynamic_linear);
  m.impl("masked_linear", &masked_linear);
  m.impl("sparse24_linear", &sparse24_linear);
}

}  // namespace squeezeprompt::cuda
