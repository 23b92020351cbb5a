// runtime/request_checks.h
//
// The checks every entry point applies to what a request asks of the model, written once: the
// prefill node's request, the decode node's continuation, and `tandem generate`'s flags. Each
// failure is InvalidArgument (or OutOfRange for the context length) whose message starts with the
// field's name as the caller spells it (`prefix` + field: "sampling.top_k", "--top_k"), and fills
// BadField for callers that report the field separately (HTTP error bodies). Pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/model_format/model_config.h"
#include "common/node_api.h"

namespace tandem::runtime {

// Which request field a validation error is about, for the HTTP error body's `param` and `code`.
struct BadField {
  std::string param;  // "tokens", "sampling.temperature", ...
  std::string code;   // "context_length_exceeded" or empty
};

// A prompt of `tokens` that will be followed by up to `max_new_tokens` generated tokens: not
// empty, every id inside the vocabulary, and prompt + max_new_tokens within the context length
// (OutOfRange with code context_length_exceeded). `param` names the field ("tokens", "--prompt").
absl::Status CheckPrompt(absl::Span<const int32_t> tokens, int64_t max_new_tokens,
                         const format::ModelConfig& config, std::string_view param,
                         BadField* bad = nullptr);

// One token id inside the vocabulary.
absl::Status CheckTokenId(int64_t token, const format::ModelConfig& config, std::string_view param,
                          BadField* bad = nullptr);

// temperature >= 0, top_p in (0, 1], top_k in [0, vocab]. Fields are named prefix + "temperature",
// prefix + "top_p", prefix + "top_k".
absl::Status CheckSampling(const node_api::Sampling& sampling, const format::ModelConfig& config,
                           std::string_view prefix, BadField* bad = nullptr);

}  // namespace tandem::runtime
