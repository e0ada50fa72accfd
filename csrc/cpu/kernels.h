// The table of per-ISA CPU kernels and the runtime dispatcher that picks one.
//
// Kernels are pure functions on raw pointers: no checks, no threads, and no
// allocation beyond per-thread scratch buffers kept between calls (activations laid out
// for a kernel: pack_activation_chunks and sparse24_swap_groups in kernels_simd.h,
// pair_activations in int4_weight_simd.h, int8_planes in int8_weight_simd.h). The op files
// (weight_only_linear.cpp, ...) validate inputs, split the output channels across
// torch's thread pool with at::parallel_for, and call the active table, so
// torch.set_num_threads governs every kernel. Each ISA has its own translation unit
// (kernels_scalar.cpp, kernels_avx2.cpp, kernels_avx512.cpp); the two SIMD ones
// compile the same source, kernels_simd.h, under different flags.
#pragma once
#include <cstdint>

namespace squeezeprompt {
namespace cpu {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// W4A8 activation rows are padded to whole 64-column chunks (one 32-byte load of codes).
// Internal linkage: this header is compiled under different -m flags (see scalar_math.h).
constexpr int64_t kInt4Int8RowAlign = 64;
static constexpr int64_t int4_int8_row_stride(int64_t K) {
  return (K + kInt4Int8RowAlign - 1) / kInt4Int8RowAlign * kInt4Int8RowAlign;
}

// Element types of 2:4 sparse values.
enum class ValueType : int { kFloat = 0, kBFloat16 = 1, kHalf = 2, kInt8 = 3 };

struct Kernels {
  // out[m*N + n] = scales[n] * sum_k x[m*K + k] * q[n*K + k], for n in [n0, n1), m < M.
  void (*int8_weight_rows)(const float* x, int64_t M, int64_t K, const int8_t* q,
                           const float* scales, int64_t n0, int64_t n1, int64_t N, float* out);
  // out[m*N + n] = sum_k x[m*K + k] * (code(n, k) - zeros[n, g]) * scales[n, g], g = k / group.
  void (*int4_weight_rows)(const float* x, int64_t M, int64_t K, const uint8_t* q,
                           const float* scales, const float* zeros, int64_t group_size,
                           int64_t n0, int64_t n1, int64_t N, float* out);
  // w[n*K + k] = dequantized weight, for rows n in [n0, n1) (prefill: then BLAS).
  void (*int8_dequant_rows)(const int8_t* q, const float* scales, int64_t K, int64_t n0,
                            int64_t n1, float* w);
  void (*int4_dequant_rows)(const uint8_t* q, const float* scales, const float* zeros, int64_t K,
                            int64_t group_size, int64_t n0, int64_t n1, float* w);
  // acc[m*N + n] = sum_k xq[m*K + k] * w[n*K + k], exact int32, for n in [n0, n1), all M.
  void (*int8_dot_rows)(const int8_t* xq, int64_t M, int64_t K, const int8_t* w, int64_t n0,
                        int64_t n1, int64_t N, int32_t* acc);
  // One activation row to int8: *scale = max|x| / 127 (1 if all zero), q = clamp(round(x/scale)).
  void (*quantize_row_int8)(const float* x, int64_t K, int8_t* q, float* scale);
  // W4A8: one row of int8 codes xq[K] into the layout int4_int8_rows reads for this group
  // size (the ISA's own), xr[kInt4Int8RowAlign-rounded K], padding zero.
  void (*int4_int8_pack_row)(const int8_t* xq, int64_t K, int64_t group_size, int8_t* xr);
  // W4A8: out[m*N + n] = xscale[m] * sum_g scales[n, g] * (sum_{k in g} xq[m, k] * code(n, k)
  //   - zeros[n, g] * xsum[m*G + g]), G = K / group_size, for n in [n0, n1), all M; xr rows
  // (int4_int8_pack_row) are int4_int8_row_stride(K) bytes apart.
  void (*int4_int8_rows)(const int8_t* xr, const float* xsum, const float* xscale, int64_t M,
                         int64_t K, const uint8_t* q, const float* scales, const float* zeros,
                         int64_t group_size, int64_t n0, int64_t n1, int64_t N, float* out);
  // 2:4 sparse rows: out[m*N + n] = scale_n * sum over kept (value, column) of value * x[m, column].
  void (*sparse24_rows)(const float* x, int64_t M, int64_t K, const void* values, ValueType vt,
                        const uint8_t* meta, const float* scales, int64_t n0, int64_t n1,
                        int64_t N, float* out);
  // Fake quantization of one group of n values with scale s and (rounded, clamped) zero z.
  void (*fake_quant_group)(const float* x, float* y, int64_t n, float s, float z, float lo,
                           float hi);
  // Its backward: grad_x, and the group's sums for d/dscale and d/dzero.
  void (*fake_quant_group_backward)(const float* x, const float* g, float* gx, int64_t n, float s,
                                    float z, float lo, float hi, float* sum_s, float* sum_z);
  // 2:4 + int4 rows (layout in formats.h): out[m*N + n] = sum over the kept (code, column k)
  // of (code - zeros[n, k / group]) * scales[n, k / group] * x[m*K + k], n in [n0, n1).
  void (*sparse24_int4_rows)(const float* x, int64_t M, int64_t K, const uint8_t* values,
                             const uint8_t* meta, const float* scales, const float* zeros,
                             int64_t group_size, int64_t n0, int64_t n1, int64_t N, float* out);
  // w[n*K + k] = the dense dequantized weight (pruned columns exactly 0), rows [n0, n1).
  void (*sparse24_int4_dequant_rows)(const uint8_t* values, const uint8_t* meta,
                                     const float* scales, const float* zeros, int64_t K,
                                     int64_t group_size, int64_t n0, int64_t n1, float* w);
};

const Kernels& kernels_scalar();
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();

// The kernels of the active ISA: the best the CPU supports, or the one forced by
// SQUEEZEPROMPT_CPU_ISA=scalar|avx2|avx512 (read once, at first use).
const Kernels& active_kernels();
Isa active_isa();
const char* isa_name(Isa isa);
bool isa_supported(Isa isa);
// Forces an ISA for this process (tests); raises if the CPU lacks it.
void set_active_isa(Isa isa);

// How the paired int4 kernels (int4_weight_simd.h) and the int8 weight-only kernel at
// M = 1 (int8_weight_simd.h) turn code lanes into floats: with cvtdq2ps, or by reading
// each lane as a subnormal float (int4: code * 2^-149; int8: (code + 128) * 2^(8b - 149)
// for byte b of the lane) against activations scaled by powers of two. kAuto picks the subnormal reading where the CPU
// runs subnormal inputs at full speed (AMD Zen). SQUEEZEPROMPT_CODE_DECODE=auto|convert|
// subnormal sets the mode (read once, at first use); the op _set_cpu_code_decode forces
// one (tests).
enum class CodeDecode : int { kAuto = 0, kConvert = 1, kSubnormal = 2 };
// Whether this thread's calls may read codes as subnormals: the mode allows it and the
// thread's MXCSR does not treat subnormal inputs as zero.
bool codes_as_subnormals();

}  // namespace cpu
}  // namespace squeezeprompt
