#include "runtime/request_checks.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::runtime {
namespace {

absl::Status Bad(BadField* bad, std::string param, std::string_view message,
                 absl::StatusCode code = absl::StatusCode::kInvalidArgument,
                 std::string error_code = "") {
  std::string text = absl::StrCat(param, ": ", AV(message));
  if (bad != nullptr) *bad = BadField{std::move(param), std::move(error_code)};
  return absl::Status(code, text);
}

}  // namespace

absl::Status CheckPrompt(absl::Span<const int32_t> tokens, int64_t max_new_tokens,
                         const format::ModelConfig& config, std::string_view param, BadField* bad) {
  if (tokens.empty()) return Bad(bad, std::string(param), "the prompt has no tokens");
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= config.vocab_size) {
      return Bad(bad, std::string(param),
                 absl::StrCat("token ", i, " is id ", t, ", outside the vocabulary [0, ",
                              config.vocab_size, ")"));
    }
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (max_new_tokens < 0) {
    return Bad(bad, std::string(param), absl::StrCat("max_new_tokens ", max_new_tokens, " < 0"));
  }
  // Each alone first, so a huge max_new_tokens cannot wrap the sum.
  if (n >= config.context_length || max_new_tokens > config.context_length ||
      n + max_new_tokens > config.context_length) {
    return Bad(bad, std::string(param),
               absl::StrCat("the prompt of ", n, " tokens plus ", max_new_tokens,
                            " tokens to generate exceeds the model's context length of ",
                            config.context_length, " tokens"),
               absl::StatusCode::kOutOfRange, "context_length_exceeded");
  }
  return absl::OkStatus();
}

absl::Status CheckTokenId(int64_t token, const format::ModelConfig& config, std::string_view param,
                          BadField* bad) {
  if (token < 0 || token >= config.vocab_size) {
    return Bad(bad, std::string(param),
               absl::StrCat(token, " is outside the vocabulary [0, ", config.vocab_size, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckSampling(const node_api::Sampling& s, const format::ModelConfig& config,
                           std::string_view prefix, BadField* bad) {
  if (!(s.temperature >= 0)) {
    return Bad(bad, absl::StrCat(AV(prefix), "temperature"),
               absl::StrCat(s.temperature, " must be >= 0"));
  }
  if (!(s.top_p > 0 && s.top_p <= 1)) {
    return Bad(bad, absl::StrCat(AV(prefix), "top_p"), absl::StrCat(s.top_p, " must be in (0, 1]"));
  }
  if (s.top_k < 0 || s.top_k > config.vocab_size) {
    return Bad(bad, absl::StrCat(AV(prefix), "top_k"),
               absl::StrCat(s.top_k, " must be in [0, ", config.vocab_size, "]"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::runtime
