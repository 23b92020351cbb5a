// router/stop_matcher.cc
#include "router/stop_matcher.h"

#include <algorithm>
#include <utility>

namespace tandem::router {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
  for (std::string& s : stops) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

StopMatcher::Result StopMatcher::Feed(std::string_view delta) {
  Result r;
  if (stopped_) {
    r.stopped = true;
    return r;
  }
  pending_.append(delta);
  // Everything before pending_ was checked already and holds no stop string and no stop prefix
  // that could still complete, so a match can only start inside pending_.
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    size_t pos = pending_.find(s);
    if (pos != std::string::npos) first = std::min(first, pos);
  }
  if (first != std::string::npos) {
    // The earliest-starting complete match: its prefix is the visible text.
    r.emit = pending_.substr(0, first);
    r.stopped = stopped_ = true;
    pending_.clear();
    return r;
  }
  // Hold the longest suffix of pending_ that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    size_t max_len = std::min(s.size() - 1, pending_.size());
    for (size_t len = max_len; len > hold; --len) {
      if (std::string_view(pending_).substr(pending_.size() - len) ==
          std::string_view(s).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  r.emit = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return r;
}

std::string StopMatcher::Flush() {
  if (stopped_) return "";
  return std::exchange(pending_, std::string());
}

}  // namespace tandem::router
