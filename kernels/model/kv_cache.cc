#include "kernels/model/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {

absl::Status KvCacheOptions::Validate() const {
  bool known = false;
  for (std::string_view name : KvLayoutNames()) known = known || name == layout;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv layout '", layout, "' is not one of ", KvLayoutNamesText()));
  }
  if (dtype != DType::kF16 && dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv dtype ", AV(DTypeName(dtype)), " unsupported; use f16 or f32"));
  }
  if (page_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv page_tokens ", page_tokens, " must be > 0"));
  }
  if (capacity_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv capacity_tokens ", capacity_tokens, " must be >= 0"));
  }
  if (max_seqs <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv max_seqs ", max_seqs, " must be > 0"));
  }
  return absl::OkStatus();
}

int64_t KvRowFormat::row_bytes() const {
  int64_t elements = 1;
  for (int64_t d : row_shape) elements *= d;
  return DTypeRowBytes(dtype, elements);
}

absl::Status RotateKeys(kernels::KernelBackend& backend, const format::ModelConfig& config,
                        const TensorView& k, const TensorView& positions) {
  return backend.Run(kernels::RopeParams{
      .x = k, .positions = positions, .freq_base = config.rope_freq_base, .n_rot = config.n_rot});
}

}  // namespace tandem::model
