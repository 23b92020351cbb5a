#include "cli/generate.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/model_format/chat_template.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "common/node_api.h"
#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/model/flags.h"
#include "nlohmann/json.hpp"
#include "runtime/flags.h"
#include "runtime/generator.h"
#include "runtime/loaded_model.h"
#include "runtime/request_checks.h"
#include "runtime/sampling.h"

namespace tandem::cli {

TANDEM_FLAG(std::string, prompt, "", "Raw prompt text (no chat template). Or pass it as an operand.");
TANDEM_FLAG(std::string, chat, "",
            "A user message, rendered with the model's chat template (ChatML for SmolLM2).");
TANDEM_FLAG(std::string, messages, "",
            "Chat messages as JSON: [{\"role\": \"user\", \"content\": \"Hi\"}, ...], or @file.");
TANDEM_FLAG(std::string, system, "", "System message for --chat (default: the template's own).");
TANDEM_FLAG(int32_t, max_tokens, runtime::GenerateOptions{}.max_tokens,
            "Tokens to generate at most.");
TANDEM_FLAG(double, temperature, 0.0, "Sampling temperature; 0 = greedy.");
TANDEM_FLAG(int32_t, top_k, 0, "Keep the k most likely tokens; 0 = all.");
TANDEM_FLAG(double, top_p, 1.0, "Nucleus sampling: smallest set with this probability mass.");
TANDEM_FLAG(int64_t, seed, 0, "Sampling seed: the same seed gives the same tokens.");
TANDEM_FLAG(bool, ignore_eos, false, "Keep generating past end-of-generation tokens.");
TANDEM_FLAG(bool, stats, true, "Print token counts and tokens/s to stderr at the end.");

namespace {

absl::StatusOr<std::vector<format::ChatMessage>> ParseMessages(std::string text) {
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    if (!in) return absl::NotFoundError(absl::StrCat("--messages: cannot read '", text.substr(1), "'"));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_array() || j.empty()) {
    return absl::InvalidArgumentError(
        "--messages: expected a non-empty JSON array of {\"role\", \"content\"} objects");
  }
  std::vector<format::ChatMessage> messages;
  for (const auto& m : j) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() ||
        !m.contains("content") || !m["content"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--messages: message ", messages.size(), " needs string fields \"role\" and \"content\""));
    }
    messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return messages;
}

// The sampling flags, checked by the same rules as a node's request (named by their flags).
absl::StatusOr<node_api::Sampling> SamplingFromFlags(const format::ModelConfig& config) {
  node_api::Sampling s;
  s.temperature = GetFlag(FLAGS_temperature);
  s.top_p = GetFlag(FLAGS_top_p);
  s.top_k = GetFlag(FLAGS_top_k);
  s.rng_state = static_cast<uint64_t>(GetFlag(FLAGS_seed));
  TANDEM_RETURN_IF_ERROR(runtime::CheckSampling(s, config, "--"));
  return s;
}

// The prompt's token ids from exactly one of --prompt (or an operand), --chat, --messages.
absl::StatusOr<std::vector<int32_t>> PromptTokens(const std::vector<std::string>& args,
                                                  const format::GgufFile& gguf,
                                                  const format::Tokenizer& tokenizer) {
  std::string raw = GetFlag(FLAGS_prompt);
  if (!args.empty()) {
    if (!raw.empty()) {
      return absl::InvalidArgumentError("give the prompt either as --prompt or as an operand");
    }
    raw = absl::StrJoin(args, " ");
  }
  const std::string chat = GetFlag(FLAGS_chat);
  const std::string messages_json = GetFlag(FLAGS_messages);
  const int given = !raw.empty() + !chat.empty() + !messages_json.empty();
  if (given != 1) {
    return absl::InvalidArgumentError(
        given == 0 ? "no prompt: pass --prompt TEXT, --chat MESSAGE or --messages JSON"
                   : "pass only one of --prompt, --chat and --messages");
  }
  if (!raw.empty()) return tokenizer.Encode(raw, /*parse_special=*/false);
  TANDEM_ASSIGN_OR_RETURN(format::ChatTemplate chat_template, format::ChatTemplate::FromGguf(gguf));
  std::vector<format::ChatMessage> messages;
  if (!chat.empty()) {
    if (!GetFlag(FLAGS_system).empty()) messages.push_back({"system", GetFlag(FLAGS_system)});
    messages.push_back({"user", chat});
  } else {
    TANDEM_ASSIGN_OR_RETURN(messages, ParseMessages(messages_json));
  }
  return chat_template.EncodeChat(tokenizer, messages, /*add_generation_prompt=*/true);
}

}  // namespace

absl::Status RunGenerate(const std::vector<std::string>& args) {
  if (GetFlag(FLAGS_max_tokens) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_tokens: ", GetFlag(FLAGS_max_tokens), " must be >= 0"));
  }
  TANDEM_ASSIGN_OR_RETURN(runtime::ModelOptions model_options, runtime::ModelOptionsFromFlags());
  model_options.kv.max_seqs = 1;  // one prompt
  kernels::SetCpuThreads(GetFlag(model::FLAGS_threads));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<runtime::LoadedModel> model,
                          runtime::LoadedModel::Load(model_options));
  TANDEM_ASSIGN_OR_RETURN(node_api::Sampling sampling, SamplingFromFlags(model->config()));
  TANDEM_ASSIGN_OR_RETURN(format::Tokenizer tokenizer, format::Tokenizer::FromGguf(model->gguf()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> prompt,
                          PromptTokens(args, model->gguf(), tokenizer));

  runtime::GenerateOptions options;
  options.max_tokens = GetFlag(FLAGS_max_tokens);
  options.sampling = runtime::ToSamplingConfig(sampling);
  options.seed = sampling.rng_state;
  options.ignore_eos = GetFlag(FLAGS_ignore_eos);

  format::StreamDecoder decoder = tokenizer.NewStreamDecoder();
  auto on_token = [&decoder](int32_t token) {
    const std::string text = decoder.Push(token);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
  TANDEM_ASSIGN_OR_RETURN(
      runtime::GenerateResult result,
      runtime::Generate(model->runner(), model->kv_cache(), prompt, options, on_token));
  const std::string rest = decoder.Flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (GetFlag(FLAGS_stats)) {
    const int32_t generated = static_cast<int32_t>(result.tokens.size());
    const double decode_tps =
        generated > 1 && result.decode_seconds > 0 ? (generated - 1) / result.decode_seconds : 0;
    std::fprintf(stderr,
                 "prompt: %d tokens, prefill %.1f tokens/s | generated: %d tokens, decode %.1f "
                 "tokens/s | finish: %s | backend %s\n",
                 result.prompt_tokens,
                 result.prompt_tokens / std::max(result.prefill_seconds, 1e-9), generated,
                 decode_tps,
                 result.finish_reason == runtime::FinishReason::kStop ? "stop" : "length",
                 std::string(model->backend().Name()).c_str());
  }
  return absl::OkStatus();
}

}  // namespace tandem::cli
