// router/openai_stream.cc
#include "router/openai_stream.h"

#include <utility>

namespace tandem::router {

CompletionStream::CompletionStream(Endpoint endpoint, ResponseHeader header,
                                   std::vector<std::string> stops, bool include_usage)
    : endpoint_(endpoint),
      header_(std::move(header)),
      stop_(std::move(stops)),
      include_usage_(include_usage) {}

std::string CompletionStream::Content(std::string text) {
  std::string out;
  // OpenAI's first chat chunk carries the role with empty content, before any text.
  if (endpoint_ == Endpoint::kChatCompletions && !role_sent_) {
    Chunk first;
    first.role = "assistant";
    first.content = "";
    out += SseData(RenderChunk(endpoint_, header_, first));
    role_sent_ = true;
  }
  if (!text.empty()) {
    Chunk chunk;
    chunk.content = std::move(text);
    out += SseData(RenderChunk(endpoint_, header_, chunk));
  }
  return out;
}

std::string CompletionStream::OnText(std::string_view delta) {
  if (closed_ || stop_.stopped()) return "";
  StopMatcher::Result r = stop_.Feed(delta);
  if (r.emit.empty() && role_sent_) return "";
  return Content(std::move(r.emit));
}

std::string CompletionStream::Finish(std::string_view finish_reason, const Usage& usage,
                                     std::string_view tandem_json) {
  if (closed_) return "";
  closed_ = true;
  std::string out = Content(stop_.Flush());
  Chunk last;
  last.finish_reason = std::string(stop_.stopped() ? "stop" : finish_reason);
  if (!include_usage_) last.tandem_json = std::string(tandem_json);
  out += SseData(RenderChunk(endpoint_, header_, last));
  if (include_usage_) {
    Chunk u;
    u.usage_only = true;
    u.usage = usage;
    u.tandem_json = std::string(tandem_json);
    out += SseData(RenderChunk(endpoint_, header_, u));
  }
  out += SseDone();
  return out;
}

std::string CompletionStream::Fail(const ApiError& error) {
  if (closed_) return "";
  closed_ = true;
  // Held-back text stays held: it may be the start of a stop string, and the answer is cut anyway.
  Chunk last;
  last.finish_reason = "error";
  std::string out = Content("");
  out += SseData(RenderChunk(endpoint_, header_, last));
  out += SseError(error);
  out += SseDone();
  return out;
}

}  // namespace tandem::router
