// kernels/model/prefill_attention.h
//
// The pieces ModelRunner uses to run a single sequence's prefill chunk through AttentionPrefill
// (dense, SALE or PowerAttention, kernels/op.h) instead of PagedAttention: the per-request report
// of what attention cost. (The sequence's K/V reach the op through the KvGather op, on every
// backend.) Plain data.
#pragma once

#include <cstdint>

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

}  // namespace tandem::model
