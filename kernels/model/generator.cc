#include "kernels/model/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::StatusOr<int32_t> SampleOne(ModelRunner& runner, const Logits& logits,
                                  const kernels::SamplingConfig& config, uint64_t& rng) {
  int32_t token = -1;
  TANDEM_RETURN_IF_ERROR(runner.backend().Run(kernels::SampleParams{
      .logits = logits.values.Rows(0, 1),
      .configs = absl::MakeConstSpan(&config, 1),
      .rng_states = absl::MakeSpan(&rng, 1),
      .out_tokens = absl::MakeSpan(&token, 1)}));
  TANDEM_RETURN_IF_ERROR(runner.backend().Synchronize());
  return token;
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(ModelRunner& runner, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options,
                                        const TokenCallback& on_token) {
  const format::ModelConfig& config = runner.config();
  if (prompt.empty()) return absl::InvalidArgumentError("generate: the prompt has no tokens");
  if (options.max_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("generate: max_tokens ", options.max_tokens));
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (static_cast<int64_t>(prompt.size()) >= config.context_length || total > config.context_length) {
    return absl::OutOfRangeError(absl::StrCat(
        "generate: prompt of ", prompt.size(), " tokens plus max_tokens ", options.max_tokens,
        " exceeds the model's context length of ", config.context_length, " tokens"));
  }
  TANDEM_ASSIGN_OR_RETURN(SeqId seq, runner.kv_cache().AddSequence());
  absl::Cleanup release = [&runner, seq] { runner.kv_cache().RemoveSequence(seq); };

  GenerateResult result;
  result.prompt_tokens = static_cast<int32_t>(prompt.size());
  result.finish_reason = FinishReason::kLength;
  uint64_t rng = options.seed;
  const std::vector<int32_t>& eog = config.eog_token_ids;

  auto start = std::chrono::steady_clock::now();
  ForwardBatch batch;
  batch.Add(seq, prompt, 0, /*want_last_logits=*/true);
  int32_t position = static_cast<int32_t>(prompt.size());
  for (int32_t step = 0; step < options.max_tokens; ++step) {
    TANDEM_ASSIGN_OR_RETURN(Logits logits, runner.Forward(batch));
    TANDEM_ASSIGN_OR_RETURN(int32_t token, SampleOne(runner, logits, options.sampling, rng));
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
    batch = ForwardBatch{};
    batch.Add(seq, {token}, position++, /*want_last_logits=*/true);
  }
  if (!result.tokens.empty() || result.finish_reason != FinishReason::kLength) {
    result.decode_seconds = SecondsSince(start);
  }
  return result;
}

}  // namespace tandem::model
