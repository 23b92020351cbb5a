// kernels/cuda/paged_attention.cu
//
// PagedAttention: one block per (query token, KV head, chunk of <= 8 query heads of its GQA group),
// so each K/V row read from the pool serves every query head that shares it. Warps take keys
// 0..q_pos round-robin; a warp reads one key row coalesced (lane = dims lane, lane+32, ...),
// reduces the dot products with shuffles and keeps an online softmax (running max, sum, weighted V)
// per head in registers. The warps' partial states merge through shared memory at the end. fp32
// throughout; f16 pools are widened on load. Correct for prefill (each query scans its own prefix),
// sized for decode; a split-K (flash-decoding) grid over long contexts is the next speed step.
#include <cstdint>

#include "kernels/cuda/block_reduce.cuh"
#include "kernels/cuda/dequant.cuh"
#include "kernels/cuda/dispatch.cuh"
#include "kernels/cuda/op_args.h"
#include "kernels/cuda/paged_attention_heuristics.h"
#include "kernels/cuda/supported.h"

namespace tandem::kernels::cuda {
namespace {

constexpr int kG = kAttentionMaxGroup;

template <DType P>
__device__ __forceinline__ float LoadPool(const void* pool, int64_t i) {
  if constexpr (P == DType::kF32) {
    return static_cast<const float*>(pool)[i];
  } else {
    return HalfBitsToFloat(static_cast<const uint16_t*>(pool)[i]);
  }
}

// kE = ceil(head_dim / 32) values per lane.
template <DType P, int kE>
__global__ void __launch_bounds__(kAttentionMaxWarps * 32)
    PagedAttentionKernel(PagedAttentionArgs a) {
  extern __shared__ float smem[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const int64_t t = blockIdx.x;
  const int64_t g = blockIdx.y;
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t h0 = g * group + static_cast<int64_t>(blockIdx.z) * kG;
  const int heads = static_cast<int>(min(static_cast<int64_t>(kG), g * group + group - h0));
  const int64_t hd = a.head_dim;

  float q[kG][kE], acc[kG][kE], m[kG], l[kG];
#pragma unroll
  for (int gi = 0; gi < kG; ++gi) {
    m[gi] = -__int_as_float(0x7F800000);
    l[gi] = 0.0f;
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      const int64_t d = lane + 32 * e;
      acc[gi][e] = 0.0f;
      q[gi][e] = (gi < heads && d < hd) ? a.q[t * a.q_stride0 + (h0 + gi) * a.q_stride1 + d] : 0.0f;
    }
  }

  const int64_t seq = a.q_seq[t];
  int64_t last = a.q_pos[t];  // inclusive
  if (seq < 0 || seq >= a.n_seqs) last = -1;
  last = min(last, a.max_pages * a.page_tokens - 1);
  const int32_t* pages = a.page_table + seq * a.page_table_stride;
  for (int64_t p = warp; p <= last; p += warps) {
    const int64_t page = pages[p / a.page_tokens];
    if (page < 0 || page >= a.num_pages) continue;  // unmapped: skip rather than fault
    const int64_t row = ((page * a.page_tokens + p % a.page_tokens) * a.n_kv_heads + g) * hd;
    float kv[kE], vv[kE];
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      const int64_t d = lane + 32 * e;
      kv[e] = d < hd ? LoadPool<P>(a.k_pool, row + d) : 0.0f;
      vv[e] = d < hd ? LoadPool<P>(a.v_pool, row + d) : 0.0f;
    }
#pragma unroll
    for (int gi = 0; gi < kG; ++gi) {
      if (gi >= heads) break;  // block-uniform
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < kE; ++e) s += q[gi][e] * kv[e];
      s = WarpSum(s) * a.scale;
      const float m_new = fmaxf(m[gi], s);
      const float corr = expf(m[gi] - m_new);
      const float w = expf(s - m_new);
      l[gi] = l[gi] * corr + w;
#pragma unroll
      for (int e = 0; e < kE; ++e) acc[gi][e] = acc[gi][e] * corr + w * vv[e];
      m[gi] = m_new;
    }
  }

  // Merge: [warps][kG] maxima, [warps][kG] sums, then [warps][heads][hd] outputs.
  float* sm_m = smem;
  float* sm_l = sm_m + warps * kG;
  float* sm_acc = sm_l + warps * kG;
#pragma unroll
  for (int gi = 0; gi < kG; ++gi) {
    if (gi >= heads) break;
    if (lane == 0) {
      sm_m[warp * kG + gi] = m[gi];
      sm_l[warp * kG + gi] = l[gi];
    }
#pragma unroll
    for (int e = 0; e < kE; ++e) {
      const int64_t d = lane + 32 * e;
      if (d < hd) sm_acc[(warp * heads + gi) * hd + d] = acc[gi][e];
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < heads * hd; i += blockDim.x) {
    const int gi = static_cast<int>(i / hd);
    const int64_t d = i % hd;
    float mx = -__int_as_float(0x7F800000);
    for (int w = 0; w < warps; ++w) mx = fmaxf(mx, sm_m[w * kG + gi]);
    float sum = 0.0f, o = 0.0f;
    if (mx > -__int_as_float(0x7F800000)) {  // at least one key was seen
      for (int w = 0; w < warps; ++w) {
        const float f = expf(sm_m[w * kG + gi] - mx);
        sum += sm_l[w * kG + gi] * f;
        o += sm_acc[(w * heads + gi) * hd + d] * f;
      }
    }
    a.out[t * a.out_stride0 + (h0 + gi) * a.out_stride1 + d] = sum > 0.0f ? o / sum : 0.0f;
  }
}

template <DType P, int kE>
cudaError_t Launch(const PagedAttentionArgs& a, cudaStream_t stream) {
  const int64_t group = a.n_heads / a.n_kv_heads;
  const int64_t heads_per_block = group < kG ? group : kG;
  const int warps = AttentionWarps(heads_per_block, a.head_dim);
  const int64_t smem = warps * AttentionSmemPerWarp(heads_per_block, a.head_dim);
  const dim3 grid(static_cast<unsigned int>(a.n), static_cast<unsigned int>(a.n_kv_heads),
                  CeilDiv(group, kG));
  PagedAttentionKernel<P, kE><<<grid, warps * 32, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPagedAttention(const PagedAttentionArgs& a, cudaStream_t stream) {
  if (a.n == 0) return cudaSuccess;
  if (a.n > 0x7FFFFFFF || a.n_kv_heads > 65535 || a.head_dim > 256 || a.n_kv_heads <= 0) {
    return cudaErrorInvalidConfiguration;
  }
  return DispatchDType<kKvPoolDTypes>(a.pool_dtype, [&](auto tag) {
    constexpr DType kP = decltype(tag)::value;
    if (a.head_dim <= 32) return Launch<kP, 1>(a, stream);
    if (a.head_dim <= 64) return Launch<kP, 2>(a, stream);
    if (a.head_dim <= 128) return Launch<kP, 4>(a, stream);
    return Launch<kP, 8>(a, stream);
  });
}

}  // namespace tandem::kernels::cuda
