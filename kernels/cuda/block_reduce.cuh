// kernels/cuda/block_reduce.cuh
//
// Warp and block reductions with shuffles (sum and max over float, max over uint64), small enough
// that .cu files need no cub header for them. Each block-level call uses `scratch` (32 entries of
// shared memory) and contains __syncthreads(), so every thread of the block must call it; the
// result is returned to all threads. blockDim.x must be a multiple of 32.
#pragma once

#include <cstdint>

namespace tandem::kernels::cuda {

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

__device__ __forceinline__ unsigned long long WarpMaxU64(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const unsigned long long other = __shfl_xor_sync(0xFFFFFFFFu, v, o);
    v = other > v ? other : v;
  }
  return v;
}

template <typename T, typename WarpOp>
__device__ __forceinline__ T BlockReduce(T v, T identity, T* scratch, WarpOp op) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = op(v);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : identity;
  return op(v);
}

__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  return BlockReduce<float>(v, 0.0f, scratch, [](float x) { return WarpSum(x); });
}

__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  return BlockReduce<float>(v, -__int_as_float(0x7F800000), scratch,
                            [](float x) { return WarpMax(x); });
}

__device__ __forceinline__ unsigned long long BlockMaxU64(unsigned long long v,
                                                          unsigned long long* scratch) {
  return BlockReduce<unsigned long long>(v, 0ull, scratch,
                                         [](unsigned long long x) { return WarpMaxU64(x); });
}

}  // namespace tandem::kernels::cuda
