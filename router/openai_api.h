// router/openai_api.h
//
// The router's OpenAI request layer (ARCHITECTURE.md §5.2, §9 "Bad input"): parses and validates
// /v1/chat/completions and /v1/completions bodies into a plain CompletionRequest. Unknown fields
// are ignored; a known field with a bad value is rejected by name. Errors are absl::Status values
// whose payloads carry OpenAI's `param` and `code`; ApiErrorFromStatus turns any Status into the
// {http_status, message, type, param, code} the HTTP edge writes with common/http's one error body.
//
// Plain values and free functions: thread-safe. ParseCompletionRequest never throws (the JSON is
// parsed with exceptions disabled) and never crashes on any input.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tandem::router {

enum class Endpoint { kChatCompletions, kCompletions };

// One part of a message's content. A plain string content becomes a single kText part.
struct ContentPart {
  enum class Type { kText, kDocument };
  Type type = Type::kText;
  std::string text;
  std::string id;  // documents only; optional
};

struct Message {
  std::string role;  // system | developer | user | assistant | tool
  std::vector<ContentPart> content;
  // The parts' texts concatenated: what a chat template renders for this message.
  std::string Text() const;
};

// The optional top-level "documents": texts whose KV may be reused across requests.
struct Document {
  std::string id;
  std::string text;
};

// The "tandem" extension object; absent fields keep the node's defaults.
struct TandemOptions {
  std::optional<std::string> blend;           // auto | on | off
  std::optional<double> recompute_ratio;      // [0, 1]
  std::optional<int64_t> check_layer;         // >= 0 (the prefill node checks the model's layers)
  std::optional<std::string> blend_deviation;  // value | key
  std::optional<std::string> sparse_prefill;  // dense | sale | power
  std::optional<bool> store_kv;
};

struct CompletionRequest {
  Endpoint endpoint = Endpoint::kChatCompletions;
  std::string model;
  std::vector<Message> messages;  // chat only
  std::string prompt;             // completions only
  // As given (max_tokens, or max_completion_tokens for chat); absent means the default
  // (GenerationDefaults::max_tokens, or up to the context).
  std::optional<int64_t> max_tokens;
  double temperature = 1.0;
  double top_p = 1.0;
  int64_t top_k = 0;  // extension; 0 (or -1 as sent by vLLM clients) disables it
  std::optional<int64_t> seed;
  std::vector<std::string> stop;  // at most 4, none empty
  bool stream = false;
  // vLLM's extension: keep generating past end-of-generation ids up to max_tokens (benchmarks).
  bool ignore_eos = false;
  bool include_usage = false;  // stream_options.include_usage
  std::vector<Document> documents;
  TandemOptions tandem;
  // Filled when ParseOptions::count_prompt_tokens is set: the prompt's tokens and the completion
  // budget the request may use (max_tokens, else the default capped by the rest of the context).
  int64_t prompt_tokens = -1;
  int64_t effective_max_tokens = -1;
};

// What a request gets for a sampling field it does not send (vLLM's generation config). The
// values here are the OpenAI API's own (temperature 1, no top-p/top-k, up to the context); the
// router fills them from --default_temperature and friends (router/options.h), whose defaults
// suit the served model.
struct GenerationDefaults {
  double temperature = 1.0;  // [0, 2]
  double top_p = 1.0;        // (0, 1]
  int64_t top_k = 0;         // 0 = off
  int64_t max_tokens = 0;    // 0 = the rest of the context
};

struct ParseOptions {
  // The served model's name; a request naming another model is 404 model_not_found.
  std::string model_name;
  // The model's context length (GGUF llama.context_length); <= 0 disables the length checks.
  int64_t context_length = 0;
  GenerationDefaults defaults;
  // Counts the prompt's tokens as the router will encode them (chat template included). Unset:
  // the prompt-length check is skipped. An error it returns is passed through unchanged.
  std::function<absl::StatusOr<int64_t>(const CompletionRequest&)> count_prompt_tokens;
};

// Parses and validates `body` for `endpoint`. Errors (InvalidArgument unless said otherwise):
// malformed JSON; a field of the wrong type or out of range (param = its name, e.g. "temperature",
// "messages[1].content[0].type"); a missing required field; n != 1 (param "n"); an unknown model
// (NotFound, code "model_not_found"); a prompt that does not fit the context (code
// "context_length_exceeded").
absl::StatusOr<CompletionRequest> ParseCompletionRequest(Endpoint endpoint, std::string_view body,
                                                         const ParseOptions& options);

// An InvalidArgument naming `param` (may be empty) with an optional machine-readable `code`.
absl::Status InvalidParamError(std::string_view param, std::string_view message,
                               std::string_view code = "");
// Attaches OpenAI's param/code to any status (payloads; the code and message are kept).
absl::Status WithErrorDetail(absl::Status status, std::string_view param, std::string_view code);

// An error as the HTTP edge sends it. `type` follows common/http's ErrorTypeForHttpStatus.
struct ApiError {
  int http_status = 500;
  std::string message;
  std::string type;
  std::string param;  // empty renders as null
  std::string code;   // empty renders as null
  // {"error": {"message", "type", "param", "code"}}, byte-identical to common/http's ErrorBody.
  std::string Body() const;
};

// Makes the client see `http_status` instead of the code's usual mapping: the router answers 502
// for a node's failure that is not the client's fault (ARCHITECTURE.md §9), a status that no
// absl code maps to.
absl::Status WithHttpStatus(absl::Status status, int http_status);

// Reads the payloads WithErrorDetail and WithHttpStatus attached; `status` must not be ok.
ApiError ApiErrorFromStatus(const absl::Status& status);

}  // namespace tandem::router
