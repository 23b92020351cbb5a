// kernels/cuda/softmax.cu
//
// Softmax in place over each row of scale * x, with max subtraction: one block per row, three
// passes over the row (max, sum of exponentials, write) with block-wide reductions in between.
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) SoftmaxKernel(SoftmaxArgs a) {
  __shared__ float scratch[32];
  float* x = a.x + static_cast<int64_t>(blockIdx.x) * a.x_stride;
  float m = -__int_as_float(0x7F800000);
  for (int64_t j = threadIdx.x; j < a.d; j += kThreads) m = fmaxf(m, a.scale * x[j]);
  m = BlockMax(m, scratch);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < a.d; j += kThreads) s += expf(a.scale * x[j] - m);
  s = BlockSum(s, scratch);
  const float inv = 1.0f / s;
  for (int64_t j = threadIdx.x; j < a.d; j += kThreads) x[j] = expf(a.scale * x[j] - m) * inv;
}

}  // namespace

cudaError_t LaunchSoftmax(const SoftmaxArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.d == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF) return cudaErrorInvalidConfiguration;
  SoftmaxKernel<<<static_cast<unsigned int>(a.n), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
