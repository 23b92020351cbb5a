// router/stop_matcher.h
//
// StopMatcher applies a request's stop sequences to streamed text. Fed each text delta, it returns
// the text that is safe to send now and holds back a tail that could still become a stop string
// (at most the longest stop's length minus one bytes), so a stop string split across tokens is
// never sent. When a stop string completes, the text before it is released, the stop string and
// everything after it are dropped, and the finish_reason is "stop". The first stop string to
// complete wins. At the end of generation, Flush() releases what is held.
//
// Matching is on bytes, so a stop string is found even when a token splits it mid-character. One
// matcher per request; not thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem::router {

class StopMatcher {
 public:
  struct Result {
    std::string emit;      // text to send now (may be empty)
    bool stopped = false;  // a stop string completed; send `emit`, then finish with "stop"
  };

  // Empty stop strings are ignored (the parser rejects them already).
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends `delta`. After a stop, further deltas are ignored and return {"", true}.
  Result Feed(std::string_view delta);
  // Releases the held tail when generation ends without a stop; empty after a stop.
  std::string Flush();

  bool stopped() const { return stopped_; }
  // Bytes currently held back.
  size_t held() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace tandem::router
