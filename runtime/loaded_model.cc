#include "runtime/loaded_model.h"

#include <sys/stat.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/model_format/fingerprint.h"
#include "common/status.h"

namespace tandem::runtime {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

absl::Status ModelOptions::Validate() const {
  if (model_path.empty()) return absl::InvalidArgumentError("--model: no model file given");
  if (backend.empty()) return absl::InvalidArgumentError("--backend: empty");
  TANDEM_RETURN_IF_ERROR(Annotate(runner.Validate(), "runner options"));
  TANDEM_RETURN_IF_ERROR(Annotate(kv.Validate(), "kv cache options"));
  if (kv_block_tokens < 1 || kv_block_tokens > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_block_tokens: ", kv_block_tokens, " is outside 1..65535"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadedModel::Load(const ModelOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  if (!FileExists(options.model_path)) {
    return absl::NotFoundError(absl::StrCat("--model: no such file '", options.model_path,
                                            "' (run scripts/setup.sh, or pass --model PATH)"));
  }
  std::unique_ptr<LoadedModel> m(new LoadedModel());
  m->options_ = options;
  TANDEM_ASSIGN_OR_RETURN(format::GgufFile gguf, format::GgufFile::Open(options.model_path));
  m->gguf_ = std::make_unique<format::GgufFile>(std::move(gguf));
  TANDEM_ASSIGN_OR_RETURN(m->backend_, kernels::GetBackend(options.backend));
  TANDEM_ASSIGN_OR_RETURN(m->runner_,
                          model::ModelRunner::Create(*m->gguf_, *m->backend_, options.runner));
  TANDEM_ASSIGN_OR_RETURN(m->kv_cache_,
                          model::CreateKvCache(*m->backend_, m->runner_->config(), options.kv));
  return m;
}

absl::Status LoadedModel::Identify() {
  if (identified_) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(vocab_fingerprint_hex_, format::VocabFingerprintHex(*gguf_));
  KvFormat& f = kv_format_;
  f.model = format::ModelFingerprint(*gguf_).bytes;
  kv_cache_->DescribeFormat(f);
  f.block_tokens = options_.kv_block_tokens;
  f.ns = options_.kv_namespace;
  TANDEM_RETURN_IF_ERROR(f.Validate());
  const std::string encoded = f.Encode();
  kv_format_hex_ = HexEncode(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()));
  identified_ = true;
  return absl::OkStatus();
}

const KvFormat& LoadedModel::kv_format() const {
  TANDEM_CHECK(identified_) << "LoadedModel::kv_format() before Identify()";
  return kv_format_;
}

const std::string& LoadedModel::kv_format_hex() const {
  TANDEM_CHECK(identified_) << "LoadedModel::kv_format_hex() before Identify()";
  return kv_format_hex_;
}

const std::string& LoadedModel::vocab_fingerprint_hex() const {
  TANDEM_CHECK(identified_) << "LoadedModel::vocab_fingerprint_hex() before Identify()";
  return vocab_fingerprint_hex_;
}

}  // namespace tandem::runtime
