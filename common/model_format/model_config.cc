#include "common/model_format/model_config.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tandem::format {
namespace {

// Token texts that end a turn or a document in the vocabularies we serve; any present in
// tokenizer.ggml.tokens join eos as end-of-generation ids.
constexpr std::string_view kEogTexts[] = {"<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end|>"};

class ConfigReader {
 public:
  explicit ConfigReader(const GgufFile& file) : file_(file) {}

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_.path(), ": ", AV(what)));
  }

  // A positive int32 hyper-parameter; absent keys take `fallback` when given.
  absl::StatusOr<int32_t> PositiveInt(const std::string& key,
                                      std::optional<int64_t> fallback = std::nullopt) const {
    absl::StatusOr<int64_t> v = file_.GetInt(key);
    if (absl::IsNotFound(v.status()) && fallback.has_value()) {
      return static_cast<int32_t>(*fallback);
    }
    if (absl::IsNotFound(v.status())) {
      return Error(absl::StrCat("required metadata key '", key, "' is missing"));
    }
    if (!v.ok()) return v.status();
    if (*v <= 0 || *v > std::numeric_limits<int32_t>::max()) {
      return Error(absl::StrCat("metadata key '", key, "' = ", *v, " is out of range"));
    }
    return static_cast<int32_t>(*v);
  }

  // A token id in [0, vocab), or -1 when the key is absent.
  absl::StatusOr<int32_t> TokenId(const std::string& key, int32_t vocab) const {
    absl::StatusOr<int64_t> v = file_.GetInt(key);
    if (absl::IsNotFound(v.status())) return -1;
    if (!v.ok()) return v.status();
    if (*v < 0 || *v >= vocab) {
      return Error(absl::StrCat("metadata key '", key, "' = ", *v, " is not a token id below the ",
                                "vocabulary size ", vocab));
    }
    return static_cast<int32_t>(*v);
  }

  // The tensor with GGML dims exactly `dims` (ne0 first).
  absl::Status ExpectTensor(const std::string& name, const std::vector<int64_t>& dims) const {
    absl::StatusOr<const TensorInfo*> t = file_.FindTensor(name);
    if (!t.ok()) {
      return Error(absl::StrCat("tensor '", name, "' required by the forward pass is missing"));
    }
    if ((*t)->dims != dims) {
      return Error(absl::StrCat("tensor '", name, "' has dims [", absl::StrJoin((*t)->dims, ", "),
                                "], expected [", absl::StrJoin(dims, ", "), "]"));
    }
    return absl::OkStatus();
  }

 private:
  const GgufFile& file_;
};

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file) {
  ConfigReader r(file);
  ModelConfig c;
  absl::StatusOr<std::string_view> arch = file.GetString("general.architecture");
  if (!arch.ok()) {
    return r.Error("metadata key 'general.architecture' is missing or not a string");
  }
  if (*arch != "llama") {
    return r.Error(absl::StrCat("architecture '", AV(*arch),
                                "' is not supported (supported: llama)"));
  }
  c.architecture = std::string(*arch);
  if (absl::StatusOr<std::string_view> name = file.GetString("general.name"); name.ok()) {
    c.name = std::string(*name);
  } else {
    const std::string& path = file.path();
    c.name = path.substr(path.find_last_of('/') == std::string::npos ? 0
                                                                      : path.find_last_of('/') + 1);
  }

  TANDEM_ASSIGN_OR_RETURN(c.n_layers, r.PositiveInt("llama.block_count"));
  TANDEM_ASSIGN_OR_RETURN(c.d_model, r.PositiveInt("llama.embedding_length"));
  TANDEM_ASSIGN_OR_RETURN(c.d_ffn, r.PositiveInt("llama.feed_forward_length"));
  TANDEM_ASSIGN_OR_RETURN(c.n_heads, r.PositiveInt("llama.attention.head_count"));
  TANDEM_ASSIGN_OR_RETURN(c.n_kv_heads, r.PositiveInt("llama.attention.head_count_kv", c.n_heads));
  TANDEM_ASSIGN_OR_RETURN(c.context_length, r.PositiveInt("llama.context_length"));
  if (c.n_heads % c.n_kv_heads != 0) {
    return r.Error(absl::StrCat("head_count ", c.n_heads, " is not a multiple of head_count_kv ",
                                c.n_kv_heads));
  }
  if (!file.Has("llama.attention.key_length") && c.d_model % c.n_heads != 0) {
    return r.Error(absl::StrCat("embedding_length ", c.d_model,
                                " is not a multiple of head_count ", c.n_heads));
  }
  TANDEM_ASSIGN_OR_RETURN(c.head_dim,
                          r.PositiveInt("llama.attention.key_length", c.d_model / c.n_heads));
  TANDEM_ASSIGN_OR_RETURN(int32_t v_dim, r.PositiveInt("llama.attention.value_length", c.head_dim));
  if (v_dim != c.head_dim) {
    return r.Error(absl::StrCat("attention.value_length ", v_dim, " differs from key_length ",
                                c.head_dim, " (unsupported)"));
  }
  TANDEM_ASSIGN_OR_RETURN(c.n_rot, r.PositiveInt("llama.rope.dimension_count", c.head_dim));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    return r.Error(absl::StrCat("rope.dimension_count ", c.n_rot,
                                " must be even and at most head_dim ", c.head_dim));
  }
  if (absl::StatusOr<double> base = file.GetFloat("llama.rope.freq_base"); base.ok()) {
    c.rope_freq_base = static_cast<float>(*base);
  } else if (!absl::IsNotFound(base.status())) {
    return base.status();
  }
  if (!(c.rope_freq_base > 0.0f)) {
    return r.Error(absl::StrCat("rope.freq_base ", c.rope_freq_base, " must be positive"));
  }
  absl::StatusOr<double> eps = file.GetFloat("llama.attention.layer_norm_rms_epsilon");
  if (!eps.ok()) {
    return absl::IsNotFound(eps.status())
               ? r.Error("required metadata key 'llama.attention.layer_norm_rms_epsilon' is "
                         "missing")
               : eps.status();
  }
  c.rms_norm_eps = static_cast<float>(*eps);
  if (!(c.rms_norm_eps > 0.0f) || c.rms_norm_eps >= 1.0f) {
    return r.Error(absl::StrCat("layer_norm_rms_epsilon ", *eps, " is out of range"));
  }

  // Vocabulary size: the explicit key, else the token list, else the embedding's row count.
  const GgufArray* tokens = nullptr;
  if (absl::StatusOr<const GgufArray*> t = file.GetArray("tokenizer.ggml.tokens"); t.ok()) {
    if ((*t)->element_type != GgufValueType::kString) {
      return r.Error("tokenizer.ggml.tokens is not an array of strings");
    }
    tokens = *t;
  }
  if (file.Has("llama.vocab_size")) {
    TANDEM_ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt("llama.vocab_size"));
  } else if (tokens != nullptr && tokens->count > 0) {
    if (tokens->count > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
      return r.Error("tokenizer.ggml.tokens has too many entries");
    }
    c.vocab_size = static_cast<int32_t>(tokens->count);
  } else {
    absl::StatusOr<const TensorInfo*> embd = file.FindTensor("token_embd.weight");
    if (!embd.ok() || (*embd)->dims.size() != 2 ||
        (*embd)->dims[1] > std::numeric_limits<int32_t>::max()) {
      return r.Error("cannot determine the vocabulary size (no llama.vocab_size, no "
                     "tokenizer.ggml.tokens, no 2-D token_embd.weight)");
    }
    c.vocab_size = static_cast<int32_t>((*embd)->dims[1]);
  }
  if (tokens != nullptr && tokens->count > static_cast<uint64_t>(c.vocab_size)) {
    return r.Error(absl::StrCat("tokenizer.ggml.tokens has ", tokens->count,
                                " entries, more than the vocabulary size ", c.vocab_size));
  }
  TANDEM_ASSIGN_OR_RETURN(c.bos_token_id, r.TokenId("tokenizer.ggml.bos_token_id", c.vocab_size));
  TANDEM_ASSIGN_OR_RETURN(c.eos_token_id, r.TokenId("tokenizer.ggml.eos_token_id", c.vocab_size));
  if (c.eos_token_id >= 0) c.eog_token_ids.push_back(c.eos_token_id);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    TANDEM_ASSIGN_OR_RETURN(int32_t id, r.TokenId(key, c.vocab_size));
    if (id >= 0) c.eog_token_ids.push_back(id);
  }
  if (tokens != nullptr) {
    for (uint64_t i = 0; i < tokens->count; ++i) {
      const std::string_view text = tokens->strings[i];
      if (std::find(std::begin(kEogTexts), std::end(kEogTexts), text) != std::end(kEogTexts)) {
        c.eog_token_ids.push_back(static_cast<int32_t>(i));
      }
    }
  }
  // Keep eos first (callers may treat it as "the" stop token); drop duplicates after it.
  std::vector<int32_t> eog;
  for (int32_t id : c.eog_token_ids) {
    if (std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
  }
  c.eog_token_ids = std::move(eog);

  // Every tensor of the forward pass, with the shapes the hyper-parameters imply (GGML order).
  const int64_t d = c.d_model, q_dim = int64_t{c.n_heads} * c.head_dim, kv = c.kv_dim();
  TANDEM_RETURN_IF_ERROR(r.ExpectTensor("token_embd.weight", {d, c.vocab_size}));
  TANDEM_RETURN_IF_ERROR(r.ExpectTensor("output_norm.weight", {d}));
  c.tied_embeddings = !file.FindTensor("output.weight").ok();
  if (!c.tied_embeddings) {
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor("output.weight", {d, c.vocab_size}));
  }
  for (int32_t l = 0; l < c.n_layers; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "attn_norm.weight", {d}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "attn_q.weight", {d, q_dim}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "attn_k.weight", {d, kv}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "attn_v.weight", {d, kv}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "attn_output.weight", {q_dim, d}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "ffn_norm.weight", {d}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "ffn_gate.weight", {d, c.d_ffn}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "ffn_up.weight", {d, c.d_ffn}));
    TANDEM_RETURN_IF_ERROR(r.ExpectTensor(p + "ffn_down.weight", {c.d_ffn, d}));
  }
  return c;
}

}  // namespace tandem::format
