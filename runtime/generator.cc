#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "runtime/request_checks.h"
#include "runtime/sampling.h"

namespace tandem::runtime {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(model::ModelRunner& runner, model::KvCache& kv,
                                        const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token) {
  const format::ModelConfig& config = runner.config();
  TANDEM_RETURN_IF_ERROR(CheckPrompt(prompt, options.max_tokens, config, "generate"));
  TANDEM_ASSIGN_OR_RETURN(model::SeqId seq, kv.AddSequence());
  absl::Cleanup release = [&kv, seq] { kv.RemoveSequence(seq); };

  GenerateResult result;
  result.prompt_tokens = static_cast<int32_t>(prompt.size());
  result.finish_reason = FinishReason::kLength;
  uint64_t rng = options.seed;
  const std::vector<int32_t>& eog = config.eog_token_ids;

  auto start = std::chrono::steady_clock::now();
  model::ForwardBatch batch;
  batch.Add(seq, prompt, 0, /*want_last_logits=*/true);
  batch.prefill_attention = options.prefill_attention;
  int32_t position = static_cast<int32_t>(prompt.size());
  for (int32_t step = 0; step < options.max_tokens; ++step) {
    TANDEM_ASSIGN_OR_RETURN(model::Logits logits, runner.Forward(batch, kv));
    TANDEM_ASSIGN_OR_RETURN(int32_t token,
                            SampleRow(runner.backend(), logits.values, 0, options.sampling, rng));
    if (step == 0) {
      result.prefill_seconds = SecondsSince(start);
      result.prefill_attention = logits.attention;
      start = std::chrono::steady_clock::now();
    }
    if (!options.ignore_eos && std::find(eog.begin(), eog.end(), token) != eog.end()) {
      result.finish_reason = FinishReason::kStop;
      break;
    }
    result.tokens.push_back(token);
    if (on_token && !on_token(token)) {
      result.finish_reason = FinishReason::kCancelled;
      break;
    }
    batch = model::ForwardBatch{};
    batch.Add(seq, {token}, position++, /*want_last_logits=*/true);
  }
  if (!result.tokens.empty() || result.finish_reason != FinishReason::kLength) {
    result.decode_seconds = SecondsSince(start);
  }
  return result;
}

}  // namespace tandem::runtime
