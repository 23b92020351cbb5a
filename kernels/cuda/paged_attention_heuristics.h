// kernels/cuda/paged_attention_heuristics.h
//
// Launch geometry of the CUDA PagedAttention: how many query heads one block serves (a chunk of a
// GQA group that shares one KV head) and how many warps split its keys. Shapes only; constexpr.
#pragma once

#include <algorithm>
#include <cstdint>

namespace tandem::kernels::cuda {

// Query heads per block: each lane keeps kAttentionMaxGroup x (head_dim / 32) accumulators.
inline constexpr int kAttentionMaxGroup = 8;
inline constexpr int kAttentionMaxWarps = 8;
inline constexpr int64_t kAttentionSmemBytes = 48 * 1024;  // no opt-in to larger dynamic smem

// Shared memory of one warp's partial state (running max, sum and output per head).
inline int64_t AttentionSmemPerWarp(int64_t heads_per_block, int64_t head_dim) {
  return (2 * kAttentionMaxGroup + heads_per_block * head_dim) *
         static_cast<int64_t>(sizeof(float));
}

// More warps split the keys of one query finer (decode over long contexts); bounded by what their
// partial states need in shared memory for the final merge.
inline int AttentionWarps(int64_t heads_per_block, int64_t head_dim) {
  const int64_t fit = kAttentionSmemBytes / AttentionSmemPerWarp(heads_per_block, head_dim);
  return static_cast<int>(std::clamp<int64_t>(fit, 1, kAttentionMaxWarps));
}

}  // namespace tandem::kernels::cuda
