#include "router/segmenter.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::router {
namespace {

struct EncodedDocument {
  std::vector<int32_t> tokens;
};

// A message as the segmenter sees it: its role, its text parts joined, its documents' ids.
struct Piece {
  std::string role;
  std::string text;
  std::vector<EncodedDocument> documents;
};

absl::StatusOr<EncodedDocument> EncodeDocument(const std::string& text, const std::string& param,
                                               const format::Tokenizer& tokenizer,
                                               int64_t context_length) {
  EncodedDocument d;
  d.tokens = tokenizer.Encode(text, /*parse_special=*/false);
  if (d.tokens.empty()) {
    return InvalidParamError(param, absl::StrCat("'", param, "' is empty: a document needs text"));
  }
  if (context_length > 0 && static_cast<int64_t>(d.tokens.size()) >= context_length) {
    return InvalidParamError(
        param,
        absl::StrCat("'", param, "' encodes to ", d.tokens.size(),
                     " tokens; this model's maximum context length is ", context_length, " tokens"),
        "context_length_exceeded");
  }
  return d;
}

void Append(SegmentedPrompt& out, const std::vector<int32_t>& ids) {
  out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
}

void AppendDocument(SegmentedPrompt& out, const EncodedDocument& d) {
  node_api::DocumentSpan span;
  span.begin = static_cast<int32_t>(out.tokens.size());
  Append(out, d.tokens);
  span.end = static_cast<int32_t>(out.tokens.size());
  out.documents.push_back(span);
}

}  // namespace

absl::StatusOr<SegmentedPrompt> SegmentPrompt(const CompletionRequest& r,
                                              const format::Tokenizer& tokenizer,
                                              const format::ChatTemplate& chat_template,
                                              int64_t context_length) {
  int documents = static_cast<int>(r.documents.size());
  for (const Message& m : r.messages) {
    for (const ContentPart& p : m.content) documents += p.type == ContentPart::Type::kDocument;
  }
  if (documents > kMaxDocuments) {
    return InvalidParamError("documents",
                             absl::StrCat("the request carries ", documents, " documents; at most ",
                                          kMaxDocuments, " are allowed"));
  }
  std::vector<EncodedDocument> top;
  for (size_t i = 0; i < r.documents.size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(
        EncodedDocument d,
        EncodeDocument(r.documents[i].text, absl::StrCat("documents[", i, "].text"), tokenizer,
                       context_length));
    top.push_back(std::move(d));
  }

  SegmentedPrompt out;
  if (r.endpoint == Endpoint::kCompletions) {
    for (const EncodedDocument& d : top) AppendDocument(out, d);
    Append(out, tokenizer.Encode(r.prompt, /*parse_special=*/false));
    return out;
  }

  std::vector<Piece> pieces;
  bool any_documents = !top.empty();
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const Message& m = r.messages[i];
    Piece piece{m.role, "", {}};
    for (size_t j = 0; j < m.content.size(); ++j) {
      const ContentPart& p = m.content[j];
      if (p.type == ContentPart::Type::kText) {
        piece.text += p.text;
        continue;
      }
      TANDEM_ASSIGN_OR_RETURN(
          EncodedDocument d,
          EncodeDocument(p.text, absl::StrCat("messages[", i, "].content[", j, "].text"), tokenizer,
                         context_length));
      piece.documents.push_back(std::move(d));
      any_documents = true;
    }
    pieces.push_back(std::move(piece));
  }
  if (!top.empty()) {
    auto user =
        std::find_if(pieces.begin(), pieces.end(), [](const Piece& p) { return p.role == "user"; });
    if (user == pieces.end()) user = pieces.insert(pieces.begin(), Piece{"user", "", {}});
    user->documents.insert(user->documents.begin(), std::make_move_iterator(top.begin()),
                           std::make_move_iterator(top.end()));
  }

  // The chat as the template encodes it, with every message that holds documents rendered empty;
  // then each such message's documents and text go in front of its end marker. EncodeChat of the
  // first k messages is a prefix of the whole (only the first message's role decides the default
  // system prompt), so the marker of message k is the last end marker of that prefix.
  std::vector<format::ChatMessage> messages;
  for (const Piece& p : pieces) {
    messages.push_back({p.role, p.documents.empty() ? p.text : std::string()});
  }
  const std::vector<int32_t> chat =
      chat_template.EncodeChat(tokenizer, messages, /*add_generation_prompt=*/true);
  if (!any_documents) {
    out.tokens = chat;
    return out;
  }
  const std::vector<int32_t> im_end = tokenizer.Encode("<|im_end|>", /*parse_special=*/true);
  if (im_end.size() != 1) return absl::InternalError("segmenter: <|im_end|> is not one token");
  size_t copied = 0;
  for (size_t k = 0; k < pieces.size(); ++k) {
    if (pieces[k].documents.empty()) continue;
    const std::vector<format::ChatMessage> head(messages.begin(), messages.begin() + k + 1);
    const size_t prefix =
        chat_template.EncodeChat(tokenizer, head, /*add_generation_prompt=*/false).size();
    if (prefix > chat.size()) {
      return absl::InternalError("segmenter: a message prefix encodes longer than the whole chat");
    }
    size_t marker = prefix;
    while (marker > copied && chat[marker - 1] != im_end[0]) --marker;
    if (marker == copied) return absl::InternalError("segmenter: no end marker for a message");
    --marker;  // the end marker itself
    out.tokens.insert(out.tokens.end(), chat.begin() + static_cast<int64_t>(copied),
                      chat.begin() + static_cast<int64_t>(marker));
    for (const EncodedDocument& d : pieces[k].documents) AppendDocument(out, d);
    Append(out, tokenizer.Encode(pieces[k].text, /*parse_special=*/false));
    copied = marker;
  }
  out.tokens.insert(out.tokens.end(), chat.begin() + static_cast<int64_t>(copied), chat.end());
  return out;
}

}  // namespace tandem::router
