// kernels/cpu_ref/sparse_pattern.h
//
// The block-selection rules of the sparse prefill methods that do not depend on data (op.h's
// SparseConfig), shared by the cpu_ref spec, the fast cpu path and the CUDA backend so that all
// select the same blocks and accept the same configurations. Blocks are by position: query block =
// q_pos / q_block, key block = kv_pos / k_block. Pure inline functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
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

// InvalidArgument "<op>: sparse.<field>=<value> ..." for a SparseConfig no backend can run: an
// unknown method, a SALE threshold that is negative or not finite, block sizes below 1, windows
// and sinks below 0. Only the chosen method's fields are checked.
inline absl::Status ValidateSparseConfig(std::string_view op, const SparseConfig& c) {
  auto at_least = [op](std::string_view field, int64_t v, int64_t min) {
    return v >= min ? absl::OkStatus()
                    : absl::InvalidArgumentError(
                          absl::StrCat(AV(op), ": sparse.", AV(field), "=", v, " < ", min));
  };
  switch (c.method) {
    case SparseMethod::kDense:
      return absl::OkStatus();
    case SparseMethod::kSale:
      if (!(c.sale_threshold >= 0.0f) || !std::isfinite(c.sale_threshold)) {
        return absl::InvalidArgumentError(absl::StrCat(
            AV(op), ": sparse.sale_threshold=", c.sale_threshold, " is not finite and >= 0"));
      }
      TANDEM_RETURN_IF_ERROR(at_least("sale_q_block", c.sale_q_block, 1));
      TANDEM_RETURN_IF_ERROR(at_least("sale_k_block", c.sale_k_block, 1));
      TANDEM_RETURN_IF_ERROR(at_least("sale_local_window", c.sale_local_window, 0));
      TANDEM_RETURN_IF_ERROR(at_least("sale_sink", c.sale_sink, 0));
      return at_least("sale_min_tokens", c.sale_min_tokens, 0);
    case SparseMethod::kPowerAttention:
      TANDEM_RETURN_IF_ERROR(at_least("power_block", c.power_block, 1));
      TANDEM_RETURN_IF_ERROR(at_least("power_window_blocks", c.power_window_blocks, 0));
      return at_least("power_sink_blocks", c.power_sink_blocks, 0);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      AV(op), ": sparse.method=", static_cast<int>(c.method), " is not a SparseMethod"));
}

}  // namespace tandem::kernels::cpu_ref
