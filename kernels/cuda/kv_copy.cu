// kernels/cuda/kv_copy.cu
//
// KvWrite copies token t's K and V rows into the pools at slot slots[t], converting to the pool's
// dtype (f16 rounds to nearest even, as FloatToHalf does); KvGather reads them back into f32 rows
// (f16 widens exactly). One thread per (token, kv head, dim). A slot outside the pool cannot be
// reported from the device: KvWrite skips that token rather than write out of bounds, KvGather
// writes its rows as zeros.
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
__device__ __forceinline__ float LoadPool(const void* pool, int64_t i) {
  if constexpr (T == DType::kF32) {
    return static_cast<const float*>(pool)[i];
  } else {
    return HalfBitsToFloat(static_cast<const uint16_t*>(pool)[i]);
  }
}

// kToPool: KvWrite; else KvGather.
template <DType T, bool kToPool>
__global__ void __launch_bounds__(kThreads) KvCopyKernel(KvCopyArgs a) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= a.n * a.n_kv_heads * a.head_dim) return;
  const int64_t d = idx % a.head_dim;
  const int64_t g = (idx / a.head_dim) % a.n_kv_heads;
  const int64_t t = idx / (a.head_dim * a.n_kv_heads);
  const int64_t slot = a.slots[t];
  const bool in_pool = slot >= 0 && slot < a.num_pages * a.page_tokens;
  // slot = page * page_tokens + offset, and pools are contiguous, so the slot is the token row.
  const int64_t pool_i = (slot * a.n_kv_heads + g) * a.head_dim + d;
  float* k = a.k + t * a.k_stride0 + g * a.k_stride1 + d;
  float* v = a.v + t * a.v_stride0 + g * a.v_stride1 + d;
  if constexpr (kToPool) {
    if (!in_pool) return;
    StorePool<T>(a.k_pool, pool_i, *k);
    StorePool<T>(a.v_pool, pool_i, *v);
  } else {
    *k = in_pool ? LoadPool<T>(a.k_pool, pool_i) : 0.0f;
    *v = in_pool ? LoadPool<T>(a.v_pool, pool_i) : 0.0f;
  }
}

template <bool kToPool>
cudaError_t LaunchKvCopy(const KvCopyArgs& a, cudaStream_t stream) {
  const int64_t total = a.n * a.n_kv_heads * a.head_dim;
  if (total == 0) return cudaSuccess;
  if (CeilDiv(total, kThreads) > 0x7FFFFFFFu) return cudaErrorInvalidConfiguration;
  return DispatchDType<kKvPoolDTypes>(a.pool_dtype, [&](auto tag) {
    KvCopyKernel<decltype(tag)::value, kToPool>
        <<<CeilDiv(total, kThreads), kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace

cudaError_t LaunchKvWrite(const KvCopyArgs& a, cudaStream_t stream) {
  return LaunchKvCopy<true>(a, stream);
}

cudaError_t LaunchKvGather(const KvCopyArgs& a, cudaStream_t stream) {
  return LaunchKvCopy<false>(a, stream);
}

}  // namespace tandem::kernels::cuda
