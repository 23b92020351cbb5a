// router/served_model.h
//
// ServedModel: what the router needs from the GGUF it serves (ARCHITECTURE.md §2, §8): the
// tokenizer and chat template (to tokenize exactly like `tandem generate`), the context length
// and end-of-generation ids, and the identity every node is compared with. The weights are never
// read beyond the one pass of the model fingerprint.
// Immutable after Load; thread-safe. Load blocks for the file read (about a second).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/chat_template.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "router/node_registry.h"

namespace tandem::router {

class ServedModel {
 public:
  // InvalidArgument/NotFound from the GGUF reader when the file is missing or malformed, or its
  // chat template is not one the router can render.
  static absl::StatusOr<std::unique_ptr<ServedModel>> Load(const std::string& path);

  const format::Tokenizer& tokenizer() const { return tokenizer_; }
  const format::ChatTemplate& chat_template() const { return chat_template_; }
  int64_t context_length() const { return context_length_; }
  bool IsEndOfGeneration(int32_t token) const;
  const ClusterIdentity& identity() const { return identity_; }
  const std::string& name() const { return name_; }  // general.name

 private:
  ServedModel(format::GgufFile gguf, format::Tokenizer tokenizer, format::ChatTemplate chat)
      : gguf_(std::move(gguf)), tokenizer_(std::move(tokenizer)), chat_template_(std::move(chat)) {}

  format::GgufFile gguf_;  // mmapped; kept because the tokenizer was built from it
  format::Tokenizer tokenizer_;
  format::ChatTemplate chat_template_;
  int64_t context_length_ = 0;
  std::vector<int32_t> eog_token_ids_;
  ClusterIdentity identity_;
  std::string name_;
};

}  // namespace tandem::router
