// Tensor-core linear for M >= 16 with bf16/fp16 activations: a 64x64 output tile per
// block of 4 warps (2x2, 32x32 each), mma.sync m16n8k16 with float32 accumulators.
// The weight tile is dequantized by the loader straight into shared memory in the
// activation dtype, so the quantized weight never exists in dense form in global
// memory. Kept deliberately simple (no cp.async pipeline, no ldmatrix): correctness
// first, tuned on a GPU later (bench/bench_gpu.py).
#pragma once
#include "common.cuh"
#include "weight_stream.cuh"

namespace squeezeprompt::cuda {

constexpr int kTileM = 64;
constexpr int kTileN = 64;
constexpr int kTileK = 32;
// Padding of 8 half-words per shared row shifts successive rows by 4 banks, so the
// fragment loads of the 8 row groups of a warp fall into different banks.
constexpr int kTilePad = 8;
constexpr int kMmaThreads = 128;

template <typename T>
struct Mma;

template <>
struct Mma<__nv_bfloat16> {
  __device__ static void run(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

template <>
struct Mma<__half> {
  __device__ static void run(float* d, const uint32_t* a, const uint32_t* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

template <typename T>
__device__ __forceinline__ uint32_t load_pair(const T* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

template <typename T, typename Loader>
__global__ void __launch_bounds__(kMmaThreads)
    mma_tile_kernel(const T* __restrict__ x, Loader w, const float* __restrict__ bias,
                    T* __restrict__ y, int64_t m, int64_t n, int64_t k) {
  __shared__ __align__(16) T a_tile[kTileM][kTileK + kTilePad];
  __shared__ __align__(16) T b_tile[kTileN][kTileK + kTilePad];  // [n][k]: the "col" operand

  const int tid = threadIdx.x;
  const int warp = tid / kWarp, lane = tid % kWarp;
  const int warp_m = warp / 2, warp_n = warp % 2;
  const int group = lane / 4, quad = lane % 4;  // PTX fragment coordinates
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTileM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;

  float acc[2][4][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    for (int i = tid; i < kTileM * kTileK; i += kMmaThreads) {
      const int r = i / kTileK, c = i % kTileK;
      const int64_t gm = m0 + r, gk = k0 + c;
      a_tile[r][c] = (gm < m && gk < k) ? x[gm * k + gk] : from_float<T>(0.0f);
    }
    for (int i = tid; i < kTileN * kTileK; i += kMmaThreads) {
      const int r = i / kTileK, c = i % kTileK;
      const int64_t gn = n0 + r, gk = k0 + c;
      b_tile[r][c] = from_float<T>((gn < n && gk < k) ? w.at(gn, gk) : 0.0f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      uint32_t a[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const int r = warp_m * 32 + mi * 16 + group;
        a[mi][0] = load_pair(&a_tile[r][kk + quad * 2]);
        a[mi][1] = load_pair(&a_tile[r + 8][kk + quad * 2]);
        a[mi][2] = load_pair(&a_tile[r][kk + quad * 2 + 8]);
        a[mi][3] = load_pair(&a_tile[r + 8][kk + quad * 2 + 8]);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ++ni) {
        const int c = warp_n * 32 + ni * 8 + group;
        const uint32_t b[2] = {load_pair(&b_tile[c][kk + quad * 2]),
                               load_pair(&b_tile[c][kk + quad * 2 + 8])};
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) Mma<T>::run(acc[mi][ni], a[mi], b);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
      const int64_t r = m0 + warp_m * 32 + mi * 16 + group;
      const int64_t c = n0 + warp_n * 32 + ni * 8 + quad * 2;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t rr = r + (e / 2) * 8, cc = c + (e % 2);
        if (rr < m && cc < n) {
          const float v = acc[mi][ni][e];
          y[rr * n + cc] = from_float<T>(bias ? v + bias[cc] : v);
        }
      }
    }
  }
}

template <typename T, typename Loader>
cudaError_t launch_mma_tile(const T* x, const Loader& w, const float* bias, T* y, int64_t m,
                            int64_t n, int64_t k, cudaStream_t stream) {
  if (m == 0 || n == 0) return cudaSuccess;
  const int64_t grid_y = ceil_div(m, kTileM);
  if (grid_y > 65535) return cudaErrorInvalidConfiguration;  // M > 4M rows: split the batch
  const dim3 grid(static_cast<unsigned>(ceil_div(n, kTileN)), static_cast<unsigned>(grid_y));
  mma_tile_kernel<T, Loader><<<grid, kMmaThreads, 0, stream>>>(x, w, bias, y, m, n, k);
  return cudaGetLastError();
}

// Chooses between the tensor-core tile (bf16/fp16, M >= 16) and weight streaming.
// float32 activations always stream so their products stay in float32, as in the
// references (a tf32 or bf16 tensor-core path would round x).
template <typename T, typename Loader>
cudaError_t launch_linear(const T* x, const Loader& w, const float* bias, T* y, int64_t m,
                          int64_t n, int64_t k, cudaStream_t stream) {
  constexpr int kMinTensorCoreRows = 16;
  if constexpr (!std::is_same_v<T, float>) {
    if (m >= kMinTensorCoreRows) return launch_mma_tile(x, w, bias, y, m, n, k, stream);
  }
  return launch_weight_stream(x, w, bias, y, m, n, k, stream);
}

}  // namespace squeezeprompt::cuda
