// router/openai_render.h
//
// Renders the router's OpenAI responses (ARCHITECTURE.md §5.2): non-streaming chat.completion and
// text_completion bodies, streaming chunks (chat.completion.chunk, text_completion), the SSE
// framing `data: {json}\n\n` / `data: [DONE]\n\n`, the SSE error event sent when a stream fails
// after its 200 header, and the /v1/models list. Output is compact JSON with OpenAI's field order.
//
// Free functions over plain values: thread-safe. Invalid UTF-8 in generated text (a token cut in
// the middle of a character) is replaced with U+FFFD rather than failing the response.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "router/openai_api.h"

namespace tandem::router {

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t cached_tokens = -1;  // >= 0 adds prompt_tokens_details.cached_tokens
};

// What every response and chunk of one request shares.
struct ResponseHeader {
  std::string id;       // "chatcmpl-..." or "cmpl-..."
  int64_t created = 0;  // unix seconds
  std::string model;
};

// One finished completion. `finish_reason`: "stop", "length" or "error". `tandem_json`, when not
// empty, is a JSON object added as the "tandem" extension field.
struct Completion {
  std::string text;
  std::string finish_reason;
  Usage usage;
  std::string tandem_json;
};

// {"id","object":"chat.completion","created","model","choices":[{"index":0,"message":
// {"role":"assistant","content"},"logprobs":null,"finish_reason"}],"usage":{...}}
std::string RenderChatCompletion(const ResponseHeader& header, const Completion& completion);
// {"id","object":"text_completion","created","model","choices":[{"text","index":0,
// "logprobs":null,"finish_reason"}],"usage":{...}}
std::string RenderTextCompletion(const ResponseHeader& header, const Completion& completion);
// Either of the above, by endpoint.
std::string RenderCompletion(Endpoint endpoint, const ResponseHeader& header,
                             const Completion& completion);

// One streaming chunk. A chat chunk's delta holds `role` when set (the first chunk) and `content`
// when set; finish_reason is null until the last content chunk. The usage-only chunk that
// stream_options.include_usage asks for has empty choices and `usage` set.
struct Chunk {
  std::optional<std::string> role;
  std::optional<std::string> content;
  std::optional<std::string> finish_reason;
  std::optional<Usage> usage;
  bool usage_only = false;  // "choices": [] (the final include_usage chunk)
  std::string tandem_json;
};
std::string RenderChunk(Endpoint endpoint, const ResponseHeader& header, const Chunk& chunk);

// SSE framing: "data: " + json + "\n\n", and the terminator "data: [DONE]\n\n".
std::string SseData(std::string_view json);
std::string_view SseDone();
// A stream that fails after its 200 header ends with the error in OpenAI's shape as a data event
// (what the openai client raises as APIError), then [DONE]: `data: {"error":{...}}\n\n`.
std::string SseError(const ApiError& error);

// {"object":"list","data":[{"id","object":"model","created","owned_by"}]}
std::string RenderModels(const std::vector<std::string>& model_ids, int64_t created,
                         std::string_view owned_by = "tandem");

}  // namespace tandem::router
