// AVX2 + FMA + F16C kernels (CMakeLists gives *_avx2.cpp exactly these flags).
#define SP_SIMD_NS avx2
#include "kernels_simd.h"

namespace squeezeprompt {
namespace cpu {

const Kernels& kernels_avx2() { return avx2::kTable; }

}  // namespace cpu
}  // namespace squeezeprompt
