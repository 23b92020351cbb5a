// kernels/cuda/swiglu.cu
//
// SwiGlu: out = silu(gate) * up, elementwise; out may alias gate or up (each element is read before
// it is written, by the same thread).
#include <cstdint>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) SwiGluKernel(SwiGluArgs a) {
  const int64_t i = blockIdx.x;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if (j >= a.f) return;
  const float g = a.gate[i * a.gate_stride + j];
  const float u = a.up[i * a.up_stride + j];
  a.out[i * a.out_stride + j] = g / (1.0f + expf(-g)) * u;
}

}  // namespace

cudaError_t LaunchSwiGlu(const SwiGluArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.f == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF || CeilDiv(a.f, kThreads) > 65535u) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned int>(a.n), CeilDiv(a.f, kThreads));
  SwiGluKernel<<<grid, kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
