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
  // Every field the format checks was checked above (options, the layout's dtype, the block size):
  // what it could refuse is a bug, and Identify() CHECKs it.
  KvFormat probe;
  m->kv_cache_->DescribeFormat(probe);
  probe.block_tokens = options.kv_block_tokens;
  probe.ns = options.kv_namespace;
  TANDEM_RETURN_IF_ERROR(probe.Validate());
  // The vocabulary fingerprint is cheap and can fail on a GGUF without a vocabulary: at load.
  TANDEM_ASSIGN_OR_RETURN(m->vocab_fingerprint_hex_, format::VocabFingerprintHex(*m->gguf_));
  return m;
}

void LoadedModel::Identify() const {
  absl::call_once(identified_, [this] {
    KvFormat& f = kv_format_;
    f.model = format::ModelFingerprint(*gguf_).bytes;
    kv_cache_->DescribeFormat(f);
    f.block_tokens = options_.kv_block_tokens;
    f.ns = options_.kv_namespace;
    const absl::Status valid = f.Validate();
    TANDEM_CHECK(valid.ok()) << "kv format checked at load is now invalid: " << valid;
    const std::string encoded = f.Encode();
    kv_format_hex_ = HexEncode(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size()));
  });
}

const KvFormat& LoadedModel::kv_format() const {
  Identify();
  return kv_format_;
}

const std::string& LoadedModel::kv_format_hex() const {
  Identify();
  return kv_format_hex_;
}

const std::string& LoadedModel::vocab_fingerprint_hex() const { return vocab_fingerprint_hex_; }

}  // namespace tandem::runtime
