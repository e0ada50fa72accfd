// 2:4 semi-structured sparsity on the CPU: packing a 2:4-sparse weight into kept
// values + 4-bit index metadata (layout in csrc/formats.h), and the linear that
// reads that packed form directly.
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "common.h"
#include "formats.h"
#include "kernels.h"
#include "sparse24_common.h"

namespace squeezeprompt {
namespace {

int64_t meta_bytes_per_row(int64_t K) {
  const int64_t groups = K / kSparseGroup;
  return (groups + kSparseGroupsPerMetaByte - 1) / kSparseGroupsPerMetaByte;
}

// Scatters one packed row back to dense [K] floats (unset columns are zero).
template <typename T>
void unpack_row(const T* values, const uint8_t* meta, int64_t K, float scale, float* row) {
  std::fill(row, row + K, 0.f);
  for (int64_t g = 0; g < K / kSparseGroup; ++g) {
    const Sparse24Meta byte{meta[g / kSparseGroupsPerMetaByte]};
    const int half = static_cast<int>(g % kSparseGroupsPerMetaByte);
    for (int slot = 0; slot < kSparseKept; ++slot) {
      row[g * kSparseGroup + byte.index(half, slot)] =
          static_cast<float>(values[g * kSparseKept + slot]) * scale;
    }
  }
}

}  // namespace

// F.linear multiplies every column, the pruned ones by an exact 0, so a NaN or Inf
// activation in a pruned column makes that output NaN; the streaming kernels read
// kept columns only and cannot see it. Rows without NaN/Inf (all but rare ones) cost
// one scan of x; the others check each output's pruned columns.
void poison_pruned_non_finite(const float* x, int64_t M, int64_t K, const uint8_t* meta, int64_t N,
                              float* out) {
  const int64_t mb = meta_bytes_per_row(K), groups = K / kSparseGroup;
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    if (std::all_of(xr, xr + K, [](float v) { return std::isfinite(v); })) continue;
    for (int64_t n = 0; n < N; ++n) {
      const uint8_t* mr = meta + n * mb;
      for (int64_t g = 0; g < groups; ++g) {
        const Sparse24Meta byte{mr[g / kSparseGroupsPerMetaByte]};
        const int half = static_cast<int>(g % kSparseGroupsPerMetaByte);
        const int kept0 = byte.index(half, 0), kept1 = byte.index(half, 1);
        bool hit = false;
        for (int i = 0; i < kSparseGroup; ++i)
          hit |= i != kept0 && i != kept1 && !std::isfinite(xr[g * kSparseGroup + i]);
        if (hit) {
          out[m * N + n] = std::numeric_limits<float>::quiet_NaN();
          break;
        }
      }
    }
  }
}

std::tuple<at::Tensor, at::Tensor> sparse24_pack_cpu(const at::Tensor& weight) {
  constexpr const char* op = "sparse24_pack";
  check_float(op, "weight", weight);
  TORCH_CHECK(weight.dim() == 2, op, ": weight must be 2-D [out_features, in_features], got shape ",
              weight.sizes());
  const int64_t N = weight.size(0), K = weight.size(1);
  TORCH_CHECK(K % kSparseGroup == 0, op, ": in_features must be a multiple of 4 for 2:4 sparsity, got ",
              K);
  check_finite(op, "weight", weight);
  at::Tensor w = weight.contiguous();
  at::Tensor values = at::empty({N, K / 2}, w.options());
  at::Tensor meta = at::zeros({N, meta_bytes_per_row(K)}, w.options().dtype(at::kByte));
  // Rows that break the 2:4 pattern are reported after the parallel loop, which may not throw.
  std::vector<int64_t> bad_row(static_cast<size_t>(at::get_num_threads()) + 1, -1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, w.scalar_type(), "sparse24_pack", [&] {
    const scalar_t* wp = w.data_ptr<scalar_t>();
    scalar_t* vp = values.data_ptr<scalar_t>();
    uint8_t* mp = meta.data_ptr<uint8_t>();
    const int64_t mb = meta_bytes_per_row(K);
    at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        for (int64_t g = 0; g < K / kSparseGroup; ++g) {
          const scalar_t* grp = wp + n * K + g * kSparseGroup;
          int idx[kSparseGroup];
          int kept = 0;
          for (int i = 0; i < kSparseGroup; ++i)
            if (static_cast<float>(grp[i]) != 0.f) idx[kept++] = i;
          if (kept > kSparseKept) {
            bad_row[static_cast<size_t>(at::get_thread_num())] = n;
            continue;
          }
          // Fill unused slots with zero-valued columns, keeping the indices ascending.
          for (int i = 0; kept < kSparseKept; ++i) {
            bool used = false;
            for (int j = 0; j < kept; ++j) used |= idx[j] == i;
            if (!used) idx[kept++] = i;
          }
          if (idx[0] > idx[1]) std::swap(idx[0], idx[1]);
          vp[n * (K / 2) + g * 2] = grp[idx[0]];
          vp[n * (K / 2) + g * 2 + 1] = grp[idx[1]];
          const int nibble = idx[0] | (idx[1] << 2);
          mp[n * mb + g / 2] |= static_cast<uint8_t>(nibble << (4 * (g % 2)));
        }
      }
    });
  });
  for (int64_t r : bad_row) {
    TORCH_CHECK(r < 0, op, ": weight is not 2:4 sparse: row ", r,
                " has a group of 4 columns with more than 2 nonzeros; prune it to 2:4 first");
  }
  return {values, meta};
}

at::Tensor sparse24_linear_cpu(const at::Tensor& x, const at::Tensor& values, const at::Tensor& meta,
                               const c10::optional<at::Tensor>& scales,
                               const c10::optional<at::Tensor>& bias) {
  constexpr const char* op = "sparse24_linear";
  TORCH_CHECK(values.dim() == 2, op,
              ": values must be 2-D [out_features, in_features / 2], got shape ", values.sizes());
  const int64_t N = values.size(0), K = values.size(1) * 2;
  check_activation(op, x, K);
  TORCH_CHECK(K % kSparseGroup == 0, op, ": in_features must be a multiple of 4, got ", K);
  check_dtype(op, "meta", meta, at::kByte);
  check_shape(op, "meta", meta, {N, meta_bytes_per_row(K)});
  const bool int8_values = values.scalar_type() == at::kChar;
  TORCH_CHECK(int8_values || is_activation_dtype(values.scalar_type()), op,
              ": values must be float32, bfloat16, float16 or int8, got ", values.scalar_type());
  if (int8_values) {
    TORCH_CHECK(scales.has_value(), op, ": int8 values need per-channel scales [", N, "], got None");
    check_float(op, "scales", *scales);
    check_shape(op, "scales", *scales, {N});
    check_same_device(op, x, {{"scales", &*scales}});
    check_scales_positive_finite(op, "scales", *scales);
  } else {
    TORCH_CHECK(!scales.has_value(), op, ": scales go with int8 values only, got ",
                values.scalar_type(), " values and scales");
  }
  check_same_device(op, x, {{"values", &values}, {"meta", &meta}});
  check_bias(op, x, bias, N);

  at::Tensor v = values.contiguous(), mt = meta.contiguous();
  at::Tensor s = int8_values ? contiguous_fp32(*scales) : at::Tensor();
  at::Tensor x2 = activations_fp32(x);
  const int64_t M = x2.size(0), mb = meta_bytes_per_row(K);
  const float* xp = x2.data_ptr<float>();
  const uint8_t* mp = mt.data_ptr<uint8_t>();
  const float* sp = int8_values ? s.data_ptr<float>() : nullptr;
  cpu::ValueType vt = cpu::ValueType::kFloat;
  switch (v.scalar_type()) {
    case at::kFloat: vt = cpu::ValueType::kFloat; break;
    case at::kBFloat16: vt = cpu::ValueType::kBFloat16; break;
    case at::kHalf: vt = cpu::ValueType::kHalf; break;
    case at::kChar: vt = cpu::ValueType::kInt8; break;
    default: TORCH_CHECK(false, op, ": unsupported values dtype ", v.scalar_type());
  }
  const void* vp = v.data_ptr();
  const cpu::Kernels& kern = cpu::active_kernels();
  at::Tensor out;
  if (M <= kStreamingMaxRows) {
    out = at::empty({M, N}, x2.options());
    float* op_ = out.data_ptr<float>();
    // Tasks sized as for a dense row, as in sparse24_int4.cpp (a kept product costs
    // about two dense ones).
    at::parallel_for(0, N, row_grain(M * K), [&](int64_t n0, int64_t n1) {
      kern.sparse24_rows(xp, M, K, vp, vt, mp, sp, n0, n1, N, op_);
    });
    poison_pruned_non_finite(xp, M, K, mp, N, op_);
  } else {
    // Compute-bound: scatter to dense once and let BLAS do the GEMM.
    at::Tensor w = at::empty({N, K}, x2.options());
    float* wp = w.data_ptr<float>();
    auto scatter = [&](auto* typed) {
      at::parallel_for(0, N, 16, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n)
          unpack_row(typed + n * (K / 2), mp + n * mb, K, sp ? sp[n] : 1.f, wp + n * K);
      });
    };
    switch (vt) {
      case cpu::ValueType::kFloat: scatter(v.data_ptr<float>()); break;
      case cpu::ValueType::kBFloat16: scatter(v.data_ptr<at::BFloat16>()); break;
      case cpu::ValueType::kHalf: scatter(v.data_ptr<at::Half>()); break;
      case cpu::ValueType::kInt8: scatter(v.data_ptr<int8_t>()); break;
    }
    out = at::mm(x2, w.t());
  }
  return finish_output(out, x, bias);
}

TORCH_LIBRARY_IMPL(squeezeprompt, CPU, m) {
  m.impl("sparse24_pack", &sparse24_pack_cpu);
  m.impl("sparse24_linear", &sparse24_linear_cpu);
}

}  // namespace squeezeprompt
