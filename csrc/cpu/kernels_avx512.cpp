// AVX-512 kernels (CMakeLists gives *_avx512.cpp F/BW/VL/DQ/VNNI/BF16 flags). The
// source is the AVX2 one: compiled here it gets 32 vector registers and EVEX
// encodings, and the W8A8 dot products use VNNI (vpdpwssd). Selected only when
// cpuid reports every one of those extensions (csrc/cpu/isa.cpp).
#define SP_SIMD_NS avx512
#include "kernels_simd.h"

namespace squeezeprompt {
namespace cpu {

const Kernels& kernels_avx512() { return avx512::kTable; }

}  // namespace cpu
}  // namespace squeezeprompt
