// runtime/generator.h
//
// Generate() runs one prompt to completion in-process: prefill of the prompt (in the runner's
// chunks), then one decode step per token, sampling with the backend's Sample op, stopping at an
// end-of-generation id, at max_tokens, or when the callback says so. It takes a sequence of the
// given KV cache for the duration of the call and gives it back. What `tandem generate` and the
// benchmarks run, and the reference the nodes' tests compare with. Blocks; not thread-safe (the
// runner and the cache are not).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"
#include "kernels/op.h"

namespace tandem::runtime {

struct GenerateOptions {
  int32_t max_tokens = 128;
  kernels::SamplingConfig sampling;  // temperature 0 = greedy
  uint64_t seed = 0;
  bool ignore_eos = false;  // keep going past end-of-generation ids (benchmarks)
  // Attention of the prompt's prefill; the runner's default when unset.
  std::optional<kernels::SparseConfig> prefill_attention;
};

enum class FinishReason { kStop, kLength, kCancelled };

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids, stop id excluded
  FinishReason finish_reason = FinishReason::kLength;
  int32_t prompt_tokens = 0;
  double prefill_seconds = 0;                       // prompt forward + first sample
  double decode_seconds = 0;                        // the remaining tokens
  model::PrefillAttentionReport prefill_attention;  // the prompt forward's method, density, time
};

// Called with each generated token (stop ids are not passed); return false to stop early.
using TokenCallback = std::function<bool(int32_t token)>;

// InvalidArgument on an empty prompt or a bad id; OutOfRange when prompt + max_tokens exceed the
// context; ResourceExhausted when the cache has no free sequence or room.
absl::StatusOr<GenerateResult> Generate(model::ModelRunner& runner, model::KvCache& kv,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token = nullptr);

}  // namespace tandem::runtime
