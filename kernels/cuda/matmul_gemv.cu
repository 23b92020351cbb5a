// kernels/cuda/matmul_gemv.cu
//
// MatMul for few tokens (n <= kGemvMaxTokens): memory bound, so each weight byte is read once. One
// warp per output row; for quantized weights each lane decodes whole 32-element units and dots them
// with every token's x (float4 loads when aligned); for float weights lanes stride over elements so
// the warp's loads are coalesced. fp32 accumulation, one warp reduction per token.
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/matmul_heuristics.h"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kMaxN = kGemvMaxTokens;

template <DType T>
__global__ void __launch_bounds__(kGemvWarpsPerBlock * 32) GemvKernel(MatMulArgs a) {
  const int lane = threadIdx.x & 31;
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kGemvWarpsPerBlock + (threadIdx.x >> 5);
  if (o >= a.out) return;  // warp-uniform; no block-level barrier below
  const uint8_t* row = a.w + o * a.w_row_bytes;
  const int n = static_cast<int>(a.n);
  float acc[kMaxN];
#pragma unroll
  for (int j = 0; j < kMaxN; ++j) acc[j] = 0.0f;

  if constexpr (IsFloatWeight(T)) {
    for (int64_t k = lane; k < a.in; k += 32) {
      const float wv = LoadFloatWeight<T>(row, k);
#pragma unroll
      for (int j = 0; j < kMaxN; ++j) {
        if (j < n) acc[j] += wv * a.x[j * a.x_stride + k];
      }
    }
  } else {
    const int64_t units = a.in / 32;
    for (int64_t u = lane; u < units; u += 32) {
      float w[32];
      DequantUnit<T>(row, u, w);
#pragma unroll
      for (int j = 0; j < kMaxN; ++j) {
        if (j >= n) break;
        const float* xr = a.x + j * a.x_stride + u * 32;
        float s = 0.0f;
        if (a.x_vec4) {
          const float4* x4 = reinterpret_cast<const float4*>(xr);
#pragma unroll
          for (int i = 0; i < 8; ++i) {
            const float4 xv = x4[i];
            s += w[4 * i] * xv.x + w[4 * i + 1] * xv.y + w[4 * i + 2] * xv.z + w[4 * i + 3] * xv.w;
          }
        } else {
#pragma unroll
          for (int i = 0; i < 32; ++i) s += w[i] * xr[i];
        }
        acc[j] += s;
      }
    }
  }

#pragma unroll
  for (int j = 0; j < kMaxN; ++j) {
    if (j >= n) break;  // n is warp-uniform, so the shuffles below see the full warp
    const float v = WarpSum(acc[j]);
    if (lane == 0) {
      float* y = a.y + j * a.y_stride + o;
      *y = a.accumulate ? *y + v : v;
    }
  }
}

}  // namespace

cudaError_t LaunchMatMulGemv(const MatMulArgs& a, cudaStream_t stream) {
  if (a.n > kMaxN) return cudaErrorInvalidValue;
  return DispatchDType<kWeightDTypes>(a.w_dtype, [&](auto tag) {
    constexpr DType kT = decltype(tag)::value;
    GemvKernel<kT><<<CeilDiv(a.out, kGemvWarpsPerBlock), kGemvWarpsPerBlock * 32, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace tandem::kernels::cuda
