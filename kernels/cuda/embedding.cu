// kernels/cuda/embedding.cu
//
// Embedding: out[i, :] = dequant(table[ids[i], :]). One thread per 32-element unit (quantized) or
// per element (float tables). An id outside [0, vocab) cannot be reported from the device, so its
// row is written as zeros instead of reading out of bounds.
#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 128;

template <DType T>
__global__ void EmbeddingKernel(EmbeddingArgs a) {
  const int64_t i = blockIdx.x;
  const int64_t id = a.ids[i];
  const bool valid = id >= 0 && id < a.vocab;
  const uint8_t* row = a.table + (valid ? id : 0) * a.table_row_bytes;
  float* out = a.out + i * a.out_stride;
  const int64_t idx = static_cast<int64_t>(blockIdx.y) * kThreads + threadIdx.x;
  if constexpr (IsFloatWeight(T)) {
    if (idx < a.d) out[idx] = valid ? LoadFloatWeight<T>(row, idx) : 0.0f;
  } else {
    if (idx * 32 >= a.d) return;
    float w[32];
    if (valid) {
      DequantUnit<T>(row, idx, w);
    } else {
#pragma unroll
      for (int k = 0; k < 32; ++k) w[k] = 0.0f;
    }
#pragma unroll
    for (int k = 0; k < 32; ++k) out[idx * 32 + k] = w[k];
  }
}

}  // namespace

cudaError_t LaunchEmbedding(const EmbeddingArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.d == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF) return cudaErrorInvalidConfiguration;
  return DispatchDType<kWeightDTypes>(a.table_dtype, [&](auto tag) {
    constexpr DType kT = decltype(tag)::value;
    const int64_t items = IsFloatWeight(kT) ? a.d : a.d / 32;
    const dim3 grid(static_cast<unsigned int>(a.n), CeilDiv(items, kThreads));
    EmbeddingKernel<kT><<<grid, kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace tandem::kernels::cuda
