// kernels/cuda/rms_norm.cu
//
// RmsNorm: one block per row; a block-wide sum of squares, then each thread scales the elements it
// read. out may alias x: every element is read before the barrier inside BlockSum and written
// after it by the same thread.
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) RmsNormKernel(RmsNormArgs a) {
  __shared__ float scratch[32];
  const float* x = a.x + static_cast<int64_t>(blockIdx.x) * a.x_stride;
  float* out = a.out + static_cast<int64_t>(blockIdx.x) * a.out_stride;
  float ss = 0.0f;
  for (int64_t j = threadIdx.x; j < a.d; j += kThreads) ss += x[j] * x[j];
  ss = BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(a.d) + a.eps);
  for (int64_t j = threadIdx.x; j < a.d; j += kThreads) out[j] = x[j] * inv * a.weight[j];
}

}  // namespace

cudaError_t LaunchRmsNorm(const RmsNormArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF) return cudaErrorInvalidConfiguration;
  RmsNormKernel<<<static_cast<unsigned int>(a.n), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
