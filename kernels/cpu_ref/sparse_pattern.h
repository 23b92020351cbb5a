// kernels/cpu_ref/sparse_pattern.h
//
// The block-selection rules of the sparse prefill methods that do not depend on data (op.h's
// SparseConfig), shared by the cpu_ref spec and the fast cpu path so that both select the same
// blocks. Blocks are by position: query block = q_pos / q_block, key block = kv_pos / k_block.
// Pure inline functions.
#pragma once

#include <cstdint>

#include "kernels/op.h"

namespace tandem::kernels::cpu_ref {

// Block sizes the method works at (and counts AttentionStats in). Dense counts 64 x 64 blocks.
inline int64_t QBlock(const SparseConfig& c) {
  switch (c.method) {
    case SparseMethod::kSale:
      return c.sale_q_block;
    case SparseMethod::kPowerAttention:
      return c.power_block;
    default:
      return 64;
  }
}
inline int64_t KBlock(const SparseConfig& c) {
  switch (c.method) {
    case SparseMethod::kSale:
      return c.sale_k_block;
    case SparseMethod::kPowerAttention:
      return c.power_block;
    default:
      return 64;
  }
}

// PowerAttention: key block kb is read by query block qb (kb <= qb).
inline bool PowerKeeps(const SparseConfig& c, int64_t qb, int64_t kb) {
  if (kb > qb) return false;
  const int64_t d = qb - kb;
  return d == 0 || (d & (d - 1)) == 0 || kb < c.power_sink_blocks || d < c.power_window_blocks;
}

// SALE runs dense (every block) for tiny thresholds, as the authors' kernel does below 1e-5, and
// for contexts of at most sale_min_tokens keys.
inline bool SaleIsDense(const SparseConfig& c, int64_t n_kv) {
  return c.sale_threshold < 1e-5f || n_kv <= c.sale_min_tokens;
}

// SALE's mandatory blocks of query block qb, computed exactly before the estimate: the sink (key
// blocks starting before sale_sink) and the local window (key blocks ending after the query block's
// start minus sale_local_window; this includes the diagonal).
inline bool SaleMandatory(const SparseConfig& c, int64_t qb, int64_t kb) {
  const int64_t k_begin = kb * c.sale_k_block;
  const int64_t k_end = k_begin + c.sale_k_block;
  return k_begin < c.sale_sink || k_end > qb * c.sale_q_block - c.sale_local_window;
}

}  // namespace tandem::kernels::cpu_ref
