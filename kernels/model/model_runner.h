// kernels/model/model_runner.h
//
// ModelRunner runs the Llama forward pass (../shared/model.md §4) of a GGUF model on one
// KernelBackend, over a PagedKvCache, for a batch of tokens from several sequences at different
// positions: prefill chunks and decode steps go through the same Forward(). It owns the weights'
// device copies, the KV cache and the activation buffers; the GgufFile must outlive it (CPU backends
// read weights straight from its mmap). Not thread-safe: one thread drives a runner.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/prefill_attention.h"
#include "kernels/model/weights.h"

namespace tandem::model {

struct RunnerOptions {
  // KV element type. f16 halves KV memory and bandwidth; f32 is exact. Default: f16.
  DType kv_dtype = DType::kF16;
  // Tokens per KV page. Default: 16.
  int32_t page_tokens = 16;
  // Tokens the KV pool holds across all sequences. Default 0: one full context.
  int32_t kv_capacity_tokens = 0;
  // Concurrent sequences. Default: 8.
  int32_t max_seqs = 8;
  // Tokens per forward chunk; bounds activation memory. Longer batches run in chunks. Default: 256.
  int32_t max_batch_tokens = 256;
  // Attention of a forward chunk that prefills one sequence (several tokens, one sequence, host
  // backend): SALE or PowerAttention through AttentionPrefill, with the methods' knobs at their
  // papers' defaults. Dense, and every other chunk (decode, mixed batches, CUDA), uses
  // PagedAttention. Default: dense.
  kernels::SparseConfig prefill_attention{};
  // Runs dense single-sequence prefill chunks through AttentionPrefill too (the same kernel as the
  // sparse methods, with q-block tiling); logits then differ from token-by-token decode by
  // rounding. Default: false.
  bool dense_prefill_kernel = false;
  // Called after every AttentionPrefill call with the call (its tensors are valid during the call
  // only): how tests measure each layer's attention against another method on the same inputs.
  std::function<void(int layer, const kernels::AttentionPrefillParams& call)>
      prefill_attention_observer{};
  absl::Status Validate() const;
};

// One Forward() call: token i of sequence seq_ids[i] at position positions[i]. Within a sequence,
// positions must be consecutive and start at or before the sequence's current length (starting
// earlier rewinds it). logit_rows lists the tokens whose next-token logits are returned, in order.
struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<SeqId> seq_ids;
  std::vector<int32_t> logit_rows;
  // Per-request override of RunnerOptions::prefill_attention.
  std::optional<kernels::SparseConfig> prefill_attention;

  // Appends `tokens` for `seq` at positions start, start+1, ...; optionally asks for the last logits.
  void Add(SeqId seq, const std::vector<int32_t>& toks, int32_t start, bool want_last_logits);
};

// Next-token logits of the requested rows, [rows, vocab] f32 on the runner's device; valid until the
// next Forward().
struct Logits {
  TensorView values;
  PrefillAttentionReport attention;  // what attention computed and cost in this Forward()
  absl::StatusOr<std::vector<float>> ToHost(kernels::KernelBackend& backend) const;
};

class ModelRunner {
 public:
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const format::GgufFile& gguf,
                                                             kernels::KernelBackend& backend,
                                                             const RunnerOptions& options);
  ~ModelRunner();

  const format::ModelConfig& config() const { return config_; }
  const LlamaWeights& weights() const { return weights_; }
  PagedKvCache& kv_cache() { return *kv_; }
  kernels::KernelBackend& backend() { return backend_; }

  // InvalidArgument for bad ids or positions, OutOfRange past the context length,
  // ResourceExhausted when the KV pool is full.
  absl::StatusOr<Logits> Forward(const ForwardBatch& batch);

 private:
  ModelRunner(const format::ModelConfig& config, kernels::KernelBackend& backend,
              const RunnerOptions& options)
      : config_(config), backend_(backend), options_(options) {}
  absl::Status Validate(const ForwardBatch& batch);
  absl::Status EnsureLogitCapacity(int64_t rows);
  absl::Status ForwardChunk(const ForwardBatch& batch, int32_t begin, int32_t end);
  absl::Status RunLayer(int layer, int32_t n);
  absl::Status EnsurePrefillBuffers();
  absl::Status RunAttention(int layer, int32_t n);

  format::ModelConfig config_;
  kernels::KernelBackend& backend_;
  RunnerOptions options_;
  LlamaWeights weights_;
  std::unique_ptr<PagedKvCache> kv_;

  // Activations for max_batch_tokens rows, and the index arrays copied to the device per chunk.
  kernels::DeviceBuffer x_, h_, q_, k_, v_, attn_, gate_, up_;
  kernels::DeviceBuffer index_;
  kernels::DeviceBuffer logits_;
  int64_t logits_rows_ = 0;
  std::vector<int32_t> host_index_;
  TensorView ids_, pos_, slots_, q_seq_, page_table_;

  // Single-sequence prefill through AttentionPrefill: the sequence's K/V gathered per layer (by
  // KvGather from the pool slots of positions 0..prefill_end_-1, uploaded once per chunk), the
  // positions 0..context-1, and the current Forward()'s method and report.
  kernels::DeviceBuffer seq_k_, seq_v_, kv_pos_, gather_slots_;
  std::vector<int32_t> host_gather_slots_;
  const kernels::SparseConfig* sparse_ = nullptr;
  SeqId prefill_seq_ = -1;  // >= 0 when the current chunk prefills this sequence
  int32_t prefill_end_ = 0;  // one past the chunk's last position
  PrefillAttentionReport report_;
};

}  // namespace tandem::model
