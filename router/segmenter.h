// router/segmenter.h
//
// Turning a request into prompt token ids with its retrieved documents as spans (ARCHITECTURE.md
// §4.4): each document (the `documents` field, or a {"type": "document"} content part) is
// tokenized on its own and its ids are joined into the prompt, because tokenize(a + b) differs
// from tokenize(a) + tokenize(b) and a document's stored KV is keyed by its own ids. Top-level
// documents open the first user message (completions: the prompt); a message's document parts
// come before its text parts. A request without documents encodes exactly as before (the chat
// template's EncodeChat, or the raw prompt). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/chat_template.h"
#include "common/model_format/tokenizer.h"
#include "common/node_api.h"
#include "router/openai_api.h"

namespace tandem::router {

// Documents one request may carry (top-level and content parts together).
inline constexpr int kMaxDocuments = 64;

struct SegmentedPrompt {
  std::vector<int32_t> tokens;
  std::vector<node_api::DocumentSpan> documents;  // in prompt order
};

// The prompt of `r`. InvalidParamError naming the field ("documents[2].text",
// "messages[0].content[1].text") for a document that encodes to no tokens or to at least
// `context_length` tokens (code context_length_exceeded; <= 0 disables that check), and
// ("documents") for more than kMaxDocuments documents.
absl::StatusOr<SegmentedPrompt> SegmentPrompt(const CompletionRequest& r,
                                              const format::Tokenizer& tokenizer,
                                              const format::ChatTemplate& chat_template,
                                              int64_t context_length);

}  // namespace tandem::router
