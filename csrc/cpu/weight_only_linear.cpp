// Weight-only quantized linears (int8 per channel, int4 group-wise) on the CPU.
// Both share one driver: small M streams each weight row once (decode is bound by
// memory bandwidth), large M dequantizes once and hands the GEMM to BLAS.
#include <vector>

#include "common.h"
#include "formats.h"

namespace squeezeprompt {
namespace {

template <typename DequantRow>
at::Tensor weight_only_matmul(const at::Tensor& x2, int64_t N, int64_t K, DequantRow dequant_row) {
  const int64_t M = x2.size(0);
  const float* xp = x2.data_ptr<float>();
  if (M <= kStreamingMaxRows) {
    at::Tensor out = at::empty({M, N}, x2.options());
    float* op = out.data_ptr<float>();
    at::parallel_for(0, N, 8, [&](int64_t n0, int64_t n1) {
      std::vector<float> row(static_cast<size_t>(K));
      for (int64_t n = n0; n < n1; ++n) {
        dequant_row(n, row.data());
        for (int64_t m = 0; m < M; ++m) op[m * N + n] = dot(xp + m * K, row.data(), K);
      }
    });
    return out;
  }
  at::Tensor w = at::empty({N, K}, x2.options());
  float* wp = w.data_ptr<float>();
  at::parallel_for(0, N, 8, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) dequant_row(n, wp + n * K);
  });
  return at::mm(x2, w.t());
}

}  // namespace

at::Tensor int8_weight_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                  const at::Tensor& scales, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int8_weight_linear";
  check_dtype(op, "qweight", qweight, at::kChar);
  TORCH_CHECK(qweight.dim() == 2, op, ": qweight must be 2-D [out_features, in_features], got shape ",
              qweight.sizes());
  const int64_t N = qweight.size(0), K = qweight.size(1);
  check_activation(op, x, K);
  check_float(op, "scales", scales);
  check_shape(op, "scales", scales, {N});
  check_same_device(op, x, {{"qweight", &qweight}, {"scales", &scales}});
  check_bias(op, x, bias, N);
  check_scales_positive_finite(op, "scales", scales);

  at::Tensor q = qweight.contiguous();
  at::Tensor s = scales.to(at::kFloat).contiguous();
  const int8_t* qp = q.data_ptr<int8_t>();
  const float* sp = s.data_ptr<float>();
  at::Tensor out = weight_only_matmul(activations_fp32(x), N, K, [&](int64_t n, float* row) {
    const int8_t* src = qp + n * K;
    const float scale = sp[n];
    for (int64_t k = 0; k < K; ++k) row[k] = static_cast<float>(src[k]) * scale;
  });
  return finish_output(out, x, bias);
}

at::Tensor int4_weight_linear_cpu(const at::Tensor& x, const at::Tensor& qweight,
                                  const at::Tensor& scales, const at::Tensor& zeros,
                                  int64_t group_size, const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "int4_weight_linear";
  check_dtype(op, "qweight", qweight, at::kByte);
  TORCH_CHECK(qweight.dim() == 2, op,
              ": qweight must be 2-D [out_features, in_features / 2] (two int4 codes per byte), "
              "got shape ", qweight.sizes());
  const int64_t N = qweight.size(0), K = qweight.size(1) * kInt4PerByte;
  check_activation(op, x, K);
  TORCH_CHECK(group_size > 0, op, ": group_size must be positive, got ", group_size);
  TORCH_CHECK(K % group_size == 0, op, ": group_size must divide in_features (in_features=", K,
              ", group_size=", group_size, ")");
  const int64_t G = K / group_size;
  check_float(op, "scales", scales);
  check_float(op, "zeros", zeros);
  check_shape(op, "scales", scales, {N, G});
  check_shape(op, "zeros", zeros, {N, G});
  check_same_device(op, x, {{"qweight", &qweight}, {"scales", &scales}, {"zeros", &zeros}});
  check_bias(op, x, bias, N);
  check_scales_positive_finite(op, "scales", scales);
  check_finite(op, "zeros", zeros);

  at::Tensor q = qweight.contiguous();
  at::Tensor s = scales.to(at::kFloat).contiguous();
  at::Tensor z = zeros.to(at::kFloat).contiguous();
  const auto* qp = reinterpret_cast<const Int4Pair*>(q.data_ptr<uint8_t>());
  const float* sp = s.data_ptr<float>();
  const float* zp = z.data_ptr<float>();
  const int64_t bytes_per_row = K / kInt4PerByte;
  at::Tensor out = weight_only_matmul(activations_fp32(x), N, K, [&](int64_t n, float* row) {
    const Int4Pair* src = qp + n * bytes_per_row;
    for (int64_t g = 0; g < G; ++g) {
      const float scale = sp[n * G + g], zero = zp[n * G + g];
      for (int64_t k = g * group_size; k < (g + 1) * group_size; ++k) {
        const Int4Pair pair = src[k / kInt4PerByte];
        const int code = (k % kInt4PerByte == 0) ? pair.low() : pair.high();
        row[k] = (static_cast<float>(code) - zero) * scale;
      }
    }
  });
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("int8_weight_linear", &int8_weight_linear_cpu);
  m.impl("int4_weight_linear", &int4_weight_linear_cpu);
}

}  // namespace squeezeprompt
