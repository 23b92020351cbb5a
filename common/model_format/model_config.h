// common/model_format/model_config.h
//
// ModelConfig is the hyper-parameters of a Llama-architecture model as read from a GGUF file (never
// hard-coded): sizes, RoPE, norm epsilon, context length and the special token ids. Validated at
// construction: every tensor the forward pass needs is present with the expected shape. Plain data.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/gguf.h"

namespace tandem::format {

struct ModelConfig {
  std::string architecture;  // "llama"
  std::string name;          // general.name, or the file's base name
  int32_t n_layers = 0;
  int32_t d_model = 0;       // embedding_length
  int32_t d_ffn = 0;         // feed_forward_length
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t n_rot = 0;         // rope.dimension_count
  int32_t vocab_size = 0;
  int32_t context_length = 0;
  float rope_freq_base = 10000.0f;
  float rms_norm_eps = 1e-5f;
  bool tied_embeddings = true;  // no output.weight: the LM head reuses token_embd.weight
  int32_t bos_token_id = -1;
  int32_t eos_token_id = -1;
  std::vector<int32_t> eog_token_ids;  // ids that end generation (eos, <|endoftext|>, <|im_end|>, ...)

  int32_t kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the config; InvalidArgument naming the key or tensor on any mismatch.
absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& file);

}  // namespace tandem::format
