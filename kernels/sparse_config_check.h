// kernels/sparse_config_check.h
//
// Host-side validation of a SparseConfig (sparse_pattern.h), shared by every backend's Supports()
// and Run() so that all accept the same configurations. Kept apart from sparse_pattern.h because
// it returns absl::Status, which device code cannot include. Pure inline functions.
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/sparse_pattern.h"

namespace tandem::kernels {

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

}  // namespace tandem::kernels
