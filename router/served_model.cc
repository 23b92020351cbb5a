// router/served_model.cc
#include "router/served_model.h"

#include <algorithm>

#include "common/model_format/fingerprint.h"
#include "common/model_format/model_config.h"
#include "common/status.h"

namespace tandem::router {

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Load(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(format::GgufFile gguf, format::GgufFile::Open(path));
  TANDEM_ASSIGN_OR_RETURN(format::ModelConfig config, format::ModelConfigFromGguf(gguf));
  TANDEM_ASSIGN_OR_RETURN(format::Tokenizer tokenizer, format::Tokenizer::FromGguf(gguf));
  TANDEM_ASSIGN_OR_RETURN(format::ChatTemplate chat, format::ChatTemplate::FromGguf(gguf));
  TANDEM_ASSIGN_OR_RETURN(std::string vocab_hex, format::VocabFingerprintHex(gguf));
  const format::Fingerprint model_fingerprint = format::ModelFingerprint(gguf);
  std::unique_ptr<ServedModel> m(
      new ServedModel(std::move(gguf), std::move(tokenizer), std::move(chat)));
  m->context_length_ = config.context_length;
  m->eog_token_ids_ = config.eog_token_ids;
  m->name_ = config.name;
  m->identity_.model_fingerprint = model_fingerprint.bytes;
  m->identity_.vocab_fingerprints = {vocab_hex, m->tokenizer_.VocabFingerprint()};
  return m;
}

bool ServedModel::IsEndOfGeneration(int32_t token) const {
  return std::find(eog_token_ids_.begin(), eog_token_ids_.end(), token) != eog_token_ids_.end();
}

}  // namespace tandem::router
