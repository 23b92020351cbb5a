// kernels/model/generator.h
//
// Generate() runs one prompt to completion on a ModelRunner: prefill of the prompt (in the runner's
// chunks), then one decode step per token, sampling with the backend's Sample op, stopping at an
// end-of-generation id, at max_tokens, or when the callback says so. It takes a sequence slot of the
// runner's KV cache for the duration of the call and gives it back. Blocks; not thread-safe (the
// runner is not).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/model/model_runner.h"
#include "kernels/op.h"

namespace tandem::model {

struct GenerateOptions {
  int32_t max_tokens = 128;
  kernels::SamplingConfig sampling;  // temperature 0 = greedy
  uint64_t seed = 0;
  bool ignore_eos = false;           // keep going past end-of-generation ids (benchmarks)
};

enum class FinishReason { kStop, kLength, kCancelled };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, stop id excluded
  FinishReason finish_reason = FinishReason::kLength;
  int32_t prompt_tokens = 0;
  double prefill_seconds = 0;   // prompt forward + first sample
  double decode_seconds = 0;    // the remaining tokens
  PrefillAttentionReport prefill_attention;  // the prompt forward's attention method, density, time
};

// Called with each generated token (stop ids are not passed); return false to stop early.
using TokenCallback = std::function<bool(int32_t token)>;

// InvalidArgument on an empty prompt; OutOfRange when prompt + max_tokens exceed the context.
absl::StatusOr<GenerateResult> Generate(ModelRunner& runner, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token = nullptr);

}  // namespace tandem::model
