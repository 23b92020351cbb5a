// kernels/cuda/rope.cu
//
// Rope in place: one thread per (token, head, rotated pair). Pair i of a head turns by
// positions[t] * freq_base^(-2i / n_rot); the angle and its sine/cosine are computed in fp64 (cheap
// on Hopper, and this op is tiny) because an fp32 angle is off by ~1e-3 rad past position 8192,
// which cpu_ref (also fp64) would flag. kAdjacentPairs rotates
// (x[2i], x[2i+1]) and kHalfSplit rotates (x[i], x[i + n_rot/2]). Values past n_rot are untouched.
#include <cstdint>

#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) RopeKernel(RopeArgs a) {
  const int64_t half = a.n_rot / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= a.n * a.heads * half) return;
  const int64_t i = idx % half;
  const int64_t h = (idx / half) % a.heads;
  const int64_t t = idx / (half * a.heads);
  const double theta = static_cast<double>(a.positions[t]) *
                       pow(static_cast<double>(a.freq_base),
                           -2.0 * static_cast<double>(i) / static_cast<double>(a.n_rot));
  double s, c;
  sincos(theta, &s, &c);
  float* x = a.x + t * a.stride0 + h * a.stride1;
  const int64_t i0 = a.half_split ? i : 2 * i;
  const int64_t i1 = a.half_split ? i + half : 2 * i + 1;
  const double x0 = x[i0];
  const double x1 = x[i1];
  x[i0] = static_cast<float>(x0 * c - x1 * s);
  x[i1] = static_cast<float>(x0 * s + x1 * c);
}

}  // namespace

cudaError_t LaunchRope(const RopeArgs& a, cudaStream_t stream) {
  const int64_t total = a.n * a.heads * (a.n_rot / 2);
  if (total == 0) return cudaSuccess;
  if (CeilDiv(total, kThreads) > 0x7FFFFFFFu) return cudaErrorInvalidConfiguration;
  RopeKernel<<<CeilDiv(total, kThreads), kThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace tandem::kernels::cuda
