#include "prefill_node/options.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::prefill {

absl::Status PrefillOptions::Validate() const {
  if (model_path.empty()) return absl::InvalidArgumentError("--model: no model file given");
  if (backend.empty()) return absl::InvalidArgumentError("--backend: empty");
  TANDEM_RETURN_IF_ERROR(runner.Validate());
  if (runner.kv_dtype != DType::kF16 && runner.kv_dtype != DType::kF32) {
    return absl::InvalidArgumentError("--kv_dtype: must be f16 or f32");
  }
  if (kv_block_tokens < 1 || kv_block_tokens > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_block_tokens: ", kv_block_tokens, " is outside 1..65535"));
  }
  TANDEM_RETURN_IF_ERROR(kv_store.Validate());
  if (transfer_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kv_transfer_timeout_ms: ", absl::FormatDuration(transfer_timeout), " must be positive"));
  }
  if (max_waiting < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill_max_waiting: ", max_waiting, " must be >= 0"));
  }
  if (node_id.empty()) return absl::InvalidArgumentError("--node_id: empty");
  return absl::OkStatus();
}

}  // namespace tandem::prefill
