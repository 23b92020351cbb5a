// kernels/model/weights.h
//
// LlamaWeights holds TensorViews of every weight the Llama forward pass reads, on the runner's
// backend. On a CPU backend the views point straight into the GgufFile's mmap (no copy, so the
// GgufFile must outlive the weights); on a device backend the tensors are copied once into device
// buffers owned here. Immutable after Load; thread-safe to read.
#pragma once

#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"

namespace tandem::model {

struct LayerWeights {
  TensorView attn_norm;  // [d] f32
  TensorView wq;         // [n_heads * head_dim, d]
  TensorView wk;         // [n_kv_heads * head_dim, d]
  TensorView wv;         // [n_kv_heads * head_dim, d]
  TensorView wo;         // [d, n_heads * head_dim]
  TensorView ffn_norm;   // [d] f32
  TensorView w_gate;     // [d_ffn, d]
  TensorView w_up;       // [d_ffn, d]
  TensorView w_down;     // [d, d_ffn]
};

struct LlamaWeights {
  TensorView token_embd;   // [vocab, d]
  TensorView output_norm;  // [d] f32
  TensorView lm_head;      // [vocab, d]: output.weight, or token_embd when tied
  std::vector<LayerWeights> layers;
  std::vector<kernels::DeviceBuffer> owned;  // device copies (empty on CPU backends)

  // Bytes of weight data read per decoded token (every matrix once, one embedding row).
  int64_t BytesPerToken() const;

  static absl::StatusOr<LlamaWeights> Load(const format::GgufFile& file,
                                           const format::ModelConfig& config,
                                           kernels::KernelBackend& backend);
};

}  // namespace tandem::model
