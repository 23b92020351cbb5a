// router/detokenizer.h
//
// IncrementalDetokenizer turns the completion's token ids, as they arrive from the decode stream,
// into text that is always whole UTF-8: a token that ends inside a character emits nothing until
// the token completing it arrives, so an SSE chunk never carries half a character. End-of-
// generation ids produce no text (the node stops on them; the router never shows them).
// One per request; not thread-safe. Borrows the model, which must outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "common/model_format/tokenizer.h"
#include "router/served_model.h"

namespace tandem::router {

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const ServedModel& model)
      : model_(model), decoder_(model.tokenizer().NewStreamDecoder()) {}

  // The text that became complete with `token` (possibly empty).
  std::string Push(int32_t token) {
    if (model_.IsEndOfGeneration(token)) return "";
    return decoder_.Push(token);
  }
  // At the end of the completion: bytes of an unfinished character, as U+FFFD.
  std::string Flush() { return decoder_.Flush(); }

 private:
  const ServedModel& model_;
  format::StreamDecoder decoder_;
};

}  // namespace tandem::router
