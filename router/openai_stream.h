// router/openai_stream.h
//
// CompletionStream turns one request's generated text into the exact SSE bytes the client gets:
// for chat a first chunk with the assistant role, content chunks with stop sequences applied
// (StopMatcher), a last chunk with the finish_reason, the usage chunk when
// stream_options.include_usage asked for it, and `data: [DONE]`. A stream that fails after its
// 200 header ends with a last chunk whose finish_reason is "error", then an error event and
// [DONE] (ARCHITECTURE.md §9): a client never takes a truncated answer for a complete one, and
// the openai client raises APIError on the error event.
//
// One per request, used by the one thread that writes its response; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "router/openai_api.h"
#include "router/openai_render.h"
#include "router/stop_matcher.h"

namespace tandem::router {

class CompletionStream {
 public:
  CompletionStream(Endpoint endpoint, ResponseHeader header, std::vector<std::string> stops,
                   bool include_usage);

  // The SSE bytes for one text delta (empty when everything is held back or after a stop).
  // Once stopped() the caller should stop generation and call Finish.
  std::string OnText(std::string_view delta);
  bool stopped() const { return stop_.stopped(); }

  // Releases held text, then the last chunk (finish_reason "stop" when a stop string matched,
  // else `finish_reason`), the usage chunk if asked for, and [DONE]. `tandem_json` (a JSON object,
  // or empty for none) rides on the final chunk before [DONE]: the usage chunk when there is one,
  // else the finish_reason chunk. Further calls return "".
  std::string Finish(std::string_view finish_reason, const Usage& usage,
                     std::string_view tandem_json = "");
  // For a failure after the stream started: a chunk with finish_reason "error" (no usage), the
  // error event and [DONE]. Text still held back for a possible stop string is dropped. Further
  // calls return "".
  std::string Fail(const ApiError& error);

 private:
  std::string Content(std::string text);

  Endpoint endpoint_;
  ResponseHeader header_;
  StopMatcher stop_;
  bool include_usage_;
  bool role_sent_ = false;
  bool closed_ = false;
};

}  // namespace tandem::router
