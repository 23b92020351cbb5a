// kernels/model/prefill_attention.h
//
// The pieces ModelRunner uses to run a single sequence's prefill chunk through AttentionPrefill
// (dense, SALE or PowerAttention, kernels/op.h) instead of PagedAttention: the per-request report
// of what attention cost, and the gather of a sequence's K/V out of the paged pool into the
// contiguous f32 layout the op takes. Plain data and a stateless function; callers own memory.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/tensor_view.h"
#include "kernels/op.h"

namespace tandem::model {

// What attention cost in one Forward(): returned with its logits.
struct PrefillAttentionReport {
  kernels::SparseMethod method = kernels::SparseMethod::kDense;
  int32_t prefill_calls = 0;  // AttentionPrefill calls (layers x prefill chunks)
  int64_t causal_blocks = 0;  // summed AttentionStats over those calls
  int64_t computed_blocks = 0;
  double attention_seconds = 0.0;  // attention ops, prefill and paged, summed over layers/chunks
  double gather_seconds = 0.0;     // copying K/V out of the pages for AttentionPrefill
  double density() const {
    return causal_blocks > 0 ? static_cast<double>(computed_blocks) / causal_blocks : 1.0;
  }
};

// Copies positions [0, n_tokens) of one sequence from a host pool
// [num_pages, page_tokens, n_kv_heads, head_dim] (f32 or f16) whose page p is pages[p] into `dst`,
// [n_tokens, n_kv_heads, head_dim] f32 host memory. InvalidArgument for bad pages or dtypes.
absl::Status GatherSequenceKv(const TensorView& pool, absl::Span<const int32_t> pages,
                              int32_t n_tokens, float* dst);

}  // namespace tandem::model
