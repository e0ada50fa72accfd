// What the two 2:4 linears (float/int8 values in sparse24.cpp, int4 values in
// sparse24_int4.cpp) share on the CPU.
#pragma once
#include <cstdint>

namespace squeezeprompt {

// F.linear multiplies every column, the pruned ones by an exact 0, so a NaN or Inf
// activation in a pruned column makes that output NaN; the streaming kernels read
// kept columns only and cannot see it. Sets out[m * N + n] to NaN where that happens
// (x is [M, K] float32, meta the [N, ceil(K / 8)] 2:4 metadata).
void poison_pruned_non_finite(const float* x, int64_t M, int64_t K, const uint8_t* meta, int64_t N,
                              float* out);

}  // namespace squeezeprompt
