// router/openai_render.cc: OpenAI response bodies and SSE framing.
#include "router/openai_render.h"

#include <utility>

#include "nlohmann/json.hpp"

namespace tandem::router {
namespace {

using OJson = nlohmann::ordered_json;

std::string Dump(const OJson& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

OJson UsageJson(const Usage& u) {
  OJson j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["completion_tokens"] = u.completion_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  if (u.cached_tokens >= 0) j["prompt_tokens_details"]["cached_tokens"] = u.cached_tokens;
  return j;
}

OJson Head(const ResponseHeader& h, const char* object) {
  OJson j;
  j["id"] = h.id;
  j["object"] = object;
  j["created"] = h.created;
  j["model"] = h.model;
  return j;
}

OJson NullOr(const std::optional<std::string>& s) { return s ? OJson(*s) : OJson(); }

// The caller's extension object; text that is not a JSON object is left out rather than sent
// half-formed.
void AddTandem(OJson& j, const std::string& tandem_json) {
  if (tandem_json.empty()) return;
  OJson t = OJson::parse(tandem_json, nullptr, /*allow_exceptions=*/false);
  if (!t.is_discarded() && t.is_object()) j["tandem"] = std::move(t);
}

}  // namespace

std::string RenderChatCompletion(const ResponseHeader& header, const Completion& c) {
  OJson j = Head(header, "chat.completion");
  OJson choice;
  choice["index"] = 0;
  choice["message"]["role"] = "assistant";
  choice["message"]["content"] = c.text;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = c.finish_reason;
  j["choices"] = OJson::array({std::move(choice)});
  j["usage"] = UsageJson(c.usage);
  AddTandem(j, c.tandem_json);
  return Dump(j);
}

std::string RenderTextCompletion(const ResponseHeader& header, const Completion& c) {
  OJson j = Head(header, "text_completion");
  OJson choice;
  choice["text"] = c.text;
  choice["index"] = 0;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = c.finish_reason;
  j["choices"] = OJson::array({std::move(choice)});
  j["usage"] = UsageJson(c.usage);
  AddTandem(j, c.tandem_json);
  return Dump(j);
}

std::string RenderCompletion(Endpoint endpoint, const ResponseHeader& header,
                             const Completion& completion) {
  return endpoint == Endpoint::kChatCompletions ? RenderChatCompletion(header, completion)
                                                : RenderTextCompletion(header, completion);
}

std::string RenderChunk(Endpoint endpoint, const ResponseHeader& header, const Chunk& chunk) {
  const bool chat = endpoint == Endpoint::kChatCompletions;
  OJson j = Head(header, chat ? "chat.completion.chunk" : "text_completion");
  j["choices"] = OJson::array();
  if (!chunk.usage_only) {
    OJson choice;
    if (chat) {
      choice["index"] = 0;
      choice["delta"] = OJson::object();
      if (chunk.role) choice["delta"]["role"] = *chunk.role;
      if (chunk.content) choice["delta"]["content"] = *chunk.content;
    } else {
      choice["text"] = chunk.content.value_or("");
      choice["index"] = 0;
    }
    choice["logprobs"] = nullptr;
    choice["finish_reason"] = NullOr(chunk.finish_reason);
    j["choices"].push_back(std::move(choice));
  }
  // The usage-only chunk always has the field (null when the caller has no counts); other chunks
  // carry it only when given, which the openai client reads the same as null.
  if (chunk.usage)
    j["usage"] = UsageJson(*chunk.usage);
  else if (chunk.usage_only)
    j["usage"] = nullptr;
  AddTandem(j, chunk.tandem_json);
  return Dump(j);
}

std::string SseData(std::string_view json) {
  std::string out;
  out.reserve(json.size() + 8);
  out.append("data: ").append(json).append("\n\n");
  return out;
}

std::string_view SseDone() { return "data: [DONE]\n\n"; }

std::string SseError(const ApiError& error) { return SseData(error.Body()); }

std::string RenderModels(const std::vector<std::string>& model_ids, int64_t created,
                         std::string_view owned_by) {
  OJson j;
  j["object"] = "list";
  j["data"] = OJson::array();
  for (const std::string& id : model_ids) {
    OJson m;
    m["id"] = id;
    m["object"] = "model";
    m["created"] = created;
    m["owned_by"] = std::string(owned_by);
    j["data"].push_back(std::move(m));
  }
  return Dump(j);
}

}  // namespace tandem::router
