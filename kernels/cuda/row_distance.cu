// kernels/cuda/row_distance.cu
//
// CacheBlend's deviation: out[i] = sum_j (a[i, j] - b[i, j])^2, one block per row with a
// block-wide sum (rows are a token's K or V, 192 values for SmolLM2, so one pass suffices).
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) RowDistanceKernel(RowDistanceArgs args) {
  __shared__ float scratch[32];
  const float* a = args.a + static_cast<int64_t>(blockIdx.x) * args.a_stride;
  const float* b = args.b + static_cast<int64_t>(blockIdx.x) * args.b_stride;
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < args.d; j += kThreads) {
    const float diff = a[j] - b[j];
    s = fmaf(diff, diff, s);
  }
  s = BlockSum(s, scratch);
  if (threadIdx.x == 0) args.out[static_cast<int64_t>(blockIdx.x) * args.out_stride] = s;
}

}  // namespace

cudaError_t LaunchRowDistance(const RowDistanceArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF) return cudaErrorInvalidConfiguration;
  RowDistanceKernel<<<static_cast<unsigned int>(a.n), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
