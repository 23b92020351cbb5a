#include "runtime/sampling.h"

#include "common/status.h"

namespace tandem::runtime {

kernels::SamplingConfig ToSamplingConfig(const node_api::Sampling& sampling) {
  return kernels::SamplingConfig{.temperature = static_cast<float>(sampling.temperature),
                                 .top_k = static_cast<int32_t>(sampling.top_k),
                                 .top_p = static_cast<float>(sampling.top_p)};
}

absl::Status SampleRows(kernels::KernelBackend& backend, const TensorView& logits,
                        absl::Span<const kernels::SamplingConfig> configs,
                        absl::Span<uint64_t> rng_states, absl::Span<int32_t> out) {
  TANDEM_RETURN_IF_ERROR(backend.Run(kernels::SampleParams{
      .logits = logits, .configs = configs, .rng_states = rng_states, .out_tokens = out}));
  return backend.Synchronize();
}

absl::StatusOr<int32_t> SampleRow(kernels::KernelBackend& backend, const TensorView& logits,
                                  int64_t row, const kernels::SamplingConfig& config,
                                  uint64_t& rng_state) {
  int32_t token = -1;
  TANDEM_RETURN_IF_ERROR(SampleRows(backend, logits.Rows(row, row + 1),
                                    absl::MakeConstSpan(&config, 1), absl::MakeSpan(&rng_state, 1),
                                    absl::MakeSpan(&token, 1)));
  return token;
}

}  // namespace tandem::runtime
