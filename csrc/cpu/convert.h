// Exact float32 <-> bfloat16 / float16 conversion loops for the ops' activations and
// outputs. At decode sizes the fixed cost of an ATen dtype cast (a TensorIterator per
// call) dwarfs converting a few thousand values: the two casts made a 576 x 576 layer
// with bf16 activations about 4 us slower than with fp32 ones, a fifth of the call.
//
// The results are bit for bit those of torch's vectorised CPU casts:
//   bf16 -> f32  the 16 bits shifted up (exact, NaN payload kept);
//   f32 -> bf16  round to nearest even, every NaN -> 0xFFFF (ATen's cvtfp32_bf16);
//   f16 <-> f32  the F16C instructions (round to nearest even, NaN quieted with its
//                payload's high bits kept), emulated in integers where F16C may be absent.
// (torch's own scalar tail loop, for the last few values of a cast, gives fp16 NaNs
// other payloads; which values are NaN never differs.)
//
// Both SIMD tables require F16C (isa.cpp), so the vector loops run whenever the active
// ISA is not scalar, and SQUEEZEPROMPT_CPU_ISA=scalar exercises the portable loops.
// Everything has internal linkage, as in scalar_math.h: a shared inline symbol compiled
// under different -m flags could let the linker pick a copy this CPU cannot run.
#pragma once
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SQUEEZEPROMPT_CONVERT_F16C 1
#endif

namespace squeezeprompt {
namespace cpu {
namespace convert {
namespace {

inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// ---- Portable scalar conversions (one value) ----

inline float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0xFFFF;
  // Adding 0x7FFF plus the kept part's lowest bit rounds to nearest, ties to even; a
  // carry out of the mantissa correctly bumps the exponent (up to infinity).
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0x1F)  // Inf, or a NaN made quiet as F16C does
    return bits_float(sign | 0x7F800000u | (mant << 13) | (mant != 0 ? 0x400000u : 0u));
  if (exp != 0) return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
  // Zero or subnormal: mant * 2^-24 is exact in float32 (and a normal number there).
  return bits_float(sign | float_bits(static_cast<float>(mant) * 0x1p-24f));
}

inline uint16_t float_to_half(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u)  // NaN: quiet, the payload's top 10 bits kept
    return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
  if (a >= 0x38800000u) {
    // Normal: rebias the exponent (127 -> 15), then round away the low 13 bits.
    const uint32_t r = a - 0x38000000u + 0xFFFu + ((a >> 13) & 1u);
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // Subnormal result (or zero): round mant24 * 2^(e - 126) to an integer count of 2^-24
  // in integers, so neither the rounding mode nor flush-to-zero can change it.
  const uint32_t e = a >> 23;
  if (e < 102) return sign;  // below 2^-25, so it rounds to zero
  const uint32_t m = (a & 0x7FFFFFu) | 0x800000u, shift = 126 - e;  // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal
  return static_cast<uint16_t>(sign | q);
}

// ---- AVX2 + F16C loops (n values, scalar tail with the same semantics) ----

#ifdef SQUEEZEPROMPT_CONVERT_F16C
__attribute__((target("avx2,f16c"))) void bf16_to_float_avx2(const uint16_t* src, float* dst,
                                                             int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    const __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
  }
  for (; i < n; ++i) dst[i] = bf16_to_float(src[i]);
}

__attribute__((target("avx2,f16c"))) void float_to_bf16_avx2(const float* src, uint16_t* dst,
                                                             int64_t n) {
  const __m256i bias = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);
  const __m256i nan = _mm256_set1_epi32(0xFFFF);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 f = _mm256_loadu_ps(src + i);
    const __m256i u = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, bias), lsb), 16);
    const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(f, f, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, nan, is_nan);
    // Every lane is <= 0xFFFF, so the unsigned-saturating pack is a plain narrowing.
    const __m128i packed =
        _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), packed);
  }
  for (; i < n; ++i) dst[i] = float_to_bf16(src[i]);
}

__attribute__((target("avx2,f16c"))) void half_to_float_f16c(const uint16_t* src, float* dst,
                                                             int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i,
                     _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

__attribute__((target("avx2,f16c"))) void float_to_half_f16c(const float* src, uint16_t* dst,
                                                             int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
#endif

// ---- Dispatch ----

inline bool use_simd() {
#ifdef SQUEEZEPROMPT_CONVERT_F16C
  return active_isa() != Isa::kScalar;
#else
  return false;
#endif
}

// Runs convert(begin, end) over [0, n), split across torch's threads only when each
// task gets enough values to pay for waking a thread (see row_grain in common.h).
template <typename Fn>
void for_chunks(int64_t n, const Fn& convert) {
  constexpr int64_t kMinTaskValues = int64_t{1} << 16;
  if (n < 2 * kMinTaskValues) {
    convert(0, n);
    return;
  }
  at::parallel_for(0, n, kMinTaskValues, convert);
}

template <typename T>
constexpr bool is_bf16() {
  static_assert(std::is_same_v<T, c10::BFloat16> || std::is_same_v<T, c10::Half>,
                "squeezeprompt::cpu::convert: bfloat16 or half only");
  return std::is_same_v<T, c10::BFloat16>;
}

// dst[i] = float(src[i]) for i < n, exactly. Example:
//   to_float(x.const_data_ptr<c10::BFloat16>(), x2.data_ptr<float>(), x.numel());
template <typename T>
void to_float(const T* src, float* dst, int64_t n) {
  const auto* s = reinterpret_cast<const uint16_t*>(src);
  [[maybe_unused]] const bool simd = use_simd();
  for_chunks(n, [&](int64_t b, int64_t e) {
#ifdef SQUEEZEPROMPT_CONVERT_F16C
    if (simd) {
      if constexpr (is_bf16<T>())
        bf16_to_float_avx2(s + b, dst + b, e - b);
      else
        half_to_float_f16c(s + b, dst + b, e - b);
      return;
    }
#endif
    for (int64_t i = b; i < e; ++i)
      dst[i] = is_bf16<T>() ? bf16_to_float(s[i]) : half_to_float(s[i]);
  });
}

// dst[i] = T(src[i]) for i < n, rounded as torch rounds. Example:
//   from_float(out.const_data_ptr<float>(), y.data_ptr<c10::Half>(), out.numel());
template <typename T>
void from_float(const float* src, T* dst, int64_t n) {
  auto* d = reinterpret_cast<uint16_t*>(dst);
  [[maybe_unused]] const bool simd = use_simd();
  for_chunks(n, [&](int64_t b, int64_t e) {
#ifdef SQUEEZEPROMPT_CONVERT_F16C
    if (simd) {
      if constexpr (is_bf16<T>())
        float_to_bf16_avx2(src + b, d + b, e - b);
      else
        float_to_half_f16c(src + b, d + b, e - b);
      return;
    }
#endif
    for (int64_t i = b; i < e; ++i)
      d[i] = is_bf16<T>() ? float_to_bf16(src[i]) : float_to_half(src[i]);
  });
}

}  // namespace
}  // namespace convert
}  // namespace cpu
}  // namespace squeezeprompt
