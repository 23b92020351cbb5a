#include "prefill_node/options.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::prefill {

absl::Status PrefillOptions::Validate() const {
  TANDEM_RETURN_IF_ERROR(model.Validate());
  TANDEM_RETURN_IF_ERROR(kv_store.Validate());
  if (transfer_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv_transfer_timeout_ms: ", absl::FormatDuration(transfer_timeout), " must be positive"));
  }
  if (max_waiting < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill_max_waiting: ", max_waiting, " must be >= 0"));
  }
  if (!(blend.recompute_ratio >= 0.0 && blend.recompute_ratio <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--blend_recompute_ratio: ", blend.recompute_ratio, " is outside [0, 1]"));
  }
  if (blend.check_layer < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--blend_check_layer: ", blend.check_layer, " must be >= 0"));
  }
  if (blend.min_blend_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--blend_min_tokens: ", blend.min_blend_tokens, " must be >= 0"));
  }
  if (node_id.empty()) return absl::InvalidArgumentError("--node_id: empty");
  return absl::OkStatus();
}

}  // namespace tandem::prefill
