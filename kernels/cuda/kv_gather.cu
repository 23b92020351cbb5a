// kernels/cuda/kv_gather.cu
//
// KvGather: token t's K and V rows read from pool slot slots[t] into contiguous f32 tensors, the
// inverse of KvWrite (f16 widens exactly). One thread per (token, kv head, dim). A slot outside
// the pool cannot be reported from the device; that token's rows are written as zeros instead.
#include <cstdint>

#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <DType T>
__device__ __forceinline__ float LoadPool(const void* pool, int64_t i) {
  if constexpr (T == DType::kF32) {
    return static_cast<const float*>(pool)[i];
  } else {
    return HalfBitsToFloat(static_cast<const uint16_t*>(pool)[i]);
  }
}

template <DType T>
__global__ void __launch_bounds__(kThreads) KvGatherKernel(KvGatherArgs a) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= a.n * a.n_kv_heads * a.head_dim) return;
  const int64_t d = idx % a.head_dim;
  const int64_t g = (idx / a.head_dim) % a.n_kv_heads;
  const int64_t t = idx / (a.head_dim * a.n_kv_heads);
  const int64_t slot = a.slots[t];
  const bool ok = slot >= 0 && slot < a.num_pages * a.page_tokens;
  // slot = page * page_tokens + offset, and pools are contiguous, so the slot is the token row.
  const int64_t src = (slot * a.n_kv_heads + g) * a.head_dim + d;
  a.k[t * a.k_stride0 + g * a.k_stride1 + d] = ok ? LoadPool<T>(a.k_pool, src) : 0.0f;
  a.v[t * a.v_stride0 + g * a.v_stride1 + d] = ok ? LoadPool<T>(a.v_pool, src) : 0.0f;
}

}  // namespace

cudaError_t LaunchKvGather(const KvGatherArgs& a, cudaStream_t stream) {
  const int64_t total = a.n * a.n_kv_heads * a.head_dim;
  if (total == 0) return cudaSuccess;
  if (CeilDiv(total, kThreads) > 0x7FFFFFFFu) return cudaErrorInvalidConfiguration;
  return DispatchDType<kKvPoolDTypes>(a.pool_dtype, [&](auto tag) {
    KvGatherKernel<decltype(tag)::value><<<CeilDiv(total, kThreads), kThreads, 0, stream>>>(a);
    return cudaGetLastError();
  });
}

}  // namespace tandem::kernels::cuda
