// kernels/cuda/matmul_tiled.cu
//
// MatMul for many tokens (prefill): a block dequantizes a kTileOut x kTileK weight tile into shared
// memory once and reuses it for kTileTokens tokens, fp32 FMA with fp32 accumulation. Correctness
// first: a plain two-tile SGEMM without tensor cores or multi-stage copies (see the report for the
// planned bf16 MMA version). Each of the 256 threads owns 4 output columns x 4 tokens.
#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/matmul_heuristics.h"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

static_assert(kTileK == 32, "one k-step is one 32-element quantization unit");
static_assert(kTileThreads == 256 && kTileOut == 64 && kTileTokens == 64,
              "the 16 x 16 thread grid below owns 4 x 4 outputs each");

template <DType T>
__global__ void __launch_bounds__(kTileThreads) TiledKernel(MatMulArgs a) {
  // +1 column: the transposed stores below hit 32 different banks.
  __shared__ float ws[kTileK][kTileOut + 1];
  __shared__ float xs[kTileK][kTileTokens + 1];
  const int tid = threadIdx.x;
  const int tx = tid & 15;  // output columns tx*4 .. tx*4+3: coalesced stores of y
  const int ty = tid >> 4;  // tokens ty*4 .. ty*4+3
  const int64_t o0 = static_cast<int64_t>(blockIdx.x) * kTileOut;
  const int64_t t0 = static_cast<int64_t>(blockIdx.y) * kTileTokens;

  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }

  // Quantized tiles are decoded by the first kTileOut threads (one unit each) while the others
  // load x; float tiles are spread over all threads.
  constexpr int kXFirst = IsFloatWeight(T) ? 0 : kTileOut;
  for (int64_t k0 = 0; k0 < a.in; k0 += kTileK) {
    if constexpr (IsFloatWeight(T)) {
      const int r = tid >> 2;
      const int kk0 = (tid & 3) * 8;
      const int64_t o = o0 + r;
      const uint8_t* row = a.w + o * a.w_row_bytes;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const int64_t k = k0 + kk0 + i;
        ws[kk0 + i][r] = (o < a.out && k < a.in) ? LoadFloatWeight<T>(row, k) : 0.0f;
      }
    } else {
      if (tid < kTileOut) {
        const int64_t o = o0 + tid;
        float w[32];
        if (o < a.out) {
          DequantUnit<T>(a.w + o * a.w_row_bytes, k0 / 32, w);
        } else {
#pragma unroll
          for (int i = 0; i < 32; ++i) w[i] = 0.0f;
        }
#pragma unroll
        for (int i = 0; i < 32; ++i) ws[i][tid] = w[i];
      }
    }
    if (tid >= kXFirst) {
      for (int e = tid - kXFirst; e < kTileTokens * kTileK; e += kTileThreads - kXFirst) {
        const int c = e / kTileK;
        const int kk = e % kTileK;
        const int64_t t = t0 + c;
        const int64_t k = k0 + kk;
        xs[kk][c] = (t < a.n && k < a.in) ? a.x[t * a.x_stride + k] : 0.0f;
      }
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      float wv[4], xv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) wv[i] = ws[kk][tx * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) xv[j] = xs[kk][ty * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += wv[i] * xv[j];
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t t = t0 + ty * 4 + j;
    if (t >= a.n) continue;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t o = o0 + tx * 4 + i;
      if (o >= a.out) continue;
      float* y = a.y + t * a.y_stride + o;
      *y = a.accumulate ? *y + acc[i][j] : acc[i][j];
    }
  }
}

}  // namespace

cudaError_t LaunchMatMulTiled(const MatMulArgs& a, cudaStream_t stream) {
  if (CeilDiv(a.n, kTileTokens) > 65535u) return cudaErrorInvalidConfiguration;
  const dim3 grid(CeilDiv(a.out, kTileOut), CeilDiv(a.n, kTileTokens));
  return DispatchDType<kWeightDTypes>(a.w_dtype, [&](auto tag) {
    constexpr DType kT = decltype(tag)::value;
    TiledKernel<kT><<<grid, kTileThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace tandem::kernels::cuda
