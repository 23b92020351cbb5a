// kernels/cuda/kv_write.cu
//
// KvWrite: copies token t's K and V rows into the pools at slot slots[t], converting to the pool's
// dtype (f16 rounds to nearest even, as FloatToHalf does). One thread per (token, kv head, dim).
// A slot outside the pool cannot be reported from the device; that token is skipped rather than
// written out of bounds.
#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <DType T>
__device__ __forceinline__ void StorePool(void* pool, int64_t i, float v) {
  if constexpr (T == DType::kF32) {
    static_cast<float*>(pool)[i] = v;
  } else {
    static_cast<uint16_t*>(pool)[i] = FloatToHalfBits(v);
  }
}

template <DType T>
__global__ void __launch_bounds__(kThreads) KvWriteKernel(KvWriteArgs a) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= a.n * a.n_kv_heads * a.head_dim) return;
  const int64_t d = idx % a.head_dim;
  const int64_t g = (idx / a.head_dim) % a.n_kv_heads;
  const int64_t t = idx / (a.head_dim * a.n_kv_heads);
  const int64_t slot = a.slots[t];
  if (slot < 0 || slot >= a.num_pages * a.page_tokens) return;
  // slot = page * page_tokens + offset, and pools are contiguous, so the slot is the token row.
  const int64_t dst = (slot * a.n_kv_heads + g) * a.head_dim + d;
  StorePool<T>(a.k_pool, dst, a.k[t * a.k_stride0 + g * a.k_stride1 + d]);
  StorePool<T>(a.v_pool, dst, a.v[t * a.v_stride0 + g * a.v_stride1 + d]);
}

}  // namespace

cudaError_t LaunchKvWrite(const KvWriteArgs& a, cudaStream_t stream) {
  const int64_t total = a.n * a.n_kv_heads * a.head_dim;
  if (total == 0) return cudaSuccess;
  if (CeilDiv(total, kThreads) > 0x7FFFFFFFu) return cudaErrorInvalidConfiguration;
  return DispatchDType<kKvPoolDTypes>(a.pool_dtype, [&](auto tag) {
    KvWriteKernel<decltype(tag)::value><<<CeilDiv(total, kThreads), kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace tandem::kernels::cuda
