// kernels/model/model_runner.h
//
// ModelRunner runs the Llama forward pass (../shared/model.md §4) of a GGUF model on one
// KernelBackend, for rows of several sequences at different positions: prefill chunks and decode
// steps go through the same Forward(). It owns the weights' device copies and scratch activation
// buffers, and no KV: every call borrows a KvAccess (kv_access.h) that keeps and reads the K/V.
// The GgufFile must outlive the runner (CPU backends read weights straight from its mmap).
//
// Besides Forward (tokens in, logits out), the layers can be driven piecewise: Embed tokens into
// hidden states, RunLayers [first, last) over any rows (non-consecutive positions, rows that never
// had a token of their own in this call), then ComputeLogits. CacheBlend runs the early layers over
// every token and the late ones over a recomputed subset this way; EpiCache scores a cache with a
// prompt whose K/V go to a KvAccess of their own (an overlay that keeps them out of the cache).
//
// Per-call state (the attention method, its report, chunk views) lives in the call; members are
// weights and scratch. Not thread-safe: one thread drives a runner.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"
#include "kernels/model/kv_access.h"
#include "kernels/model/weights.h"

namespace tandem::model {

struct RunnerOptions {
  // Tokens per forward chunk; bounds activation memory. Longer calls run in chunks. Default: 256.
  // Flag: --max_batch_tokens
  int32_t max_batch_tokens = 256;
  // Attention of a chunk that prefills one sequence (several causal rows of one sequence): SALE or
  // PowerAttention through AttentionPrefill where the KV layout supports it, with the methods'
  // knobs at their papers' defaults. Dense, and every other chunk (decode, mixed batches), uses
  // the layout's paged attention. Default: dense. Flags: --prefill_attention, --sale_threshold, ...
  kernels::SparseConfig prefill_attention{};
  // Runs dense single-sequence prefill chunks through AttentionPrefill too (the same kernel as the
  // sparse methods, with q-block tiling); logits then differ from token-by-token decode by
  // rounding. Default: false.
  bool dense_prefill_kernel = false;
  // Called after every AttentionPrefill call (see PrefillAttentionObserver). Default: none.
  PrefillAttentionObserver prefill_attention_observer{};
  absl::Status Validate() const;
};

// One Forward() call: the rows (RowBatch) with their token ids, and which rows' next-token logits
// are returned (logit_rows, in order).
struct ForwardBatch : RowBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> logit_rows;

  // Appends `tokens` for `seq` at positions start, start+1, ...; optionally asks for the last logits.
  void Add(SeqId seq, const std::vector<int32_t>& toks, int32_t start, bool want_last_logits);
};

// Hidden states of a call's rows, [rows, d_model] f32 on the runner's device. Owns its memory.
class HiddenStates {
 public:
  HiddenStates() = default;
  int32_t rows() const { return rows_; }
  TensorView view() const;
  absl::StatusOr<std::vector<float>> ToHost(kernels::KernelBackend& backend) const;

 private:
  friend class ModelRunner;
  kernels::DeviceBuffer buffer_;
  int32_t rows_ = 0;
  int32_t width_ = 0;
};

// Next-token logits of the requested rows, [rows, vocab] f32 on the runner's device; valid until
// the runner's next Forward() or ComputeLogits().
struct Logits {
  TensorView values;
  PrefillAttentionReport attention;  // what attention computed and cost in this call
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
  kernels::KernelBackend& backend() { return backend_; }
  const RunnerOptions& options() const { return options_; }

  // All layers over the batch's tokens, K/V kept by `kv`. A call only writes KV: a sequence's
  // length grows over the positions it extends and never shrinks (KvCache::SetLength forgets a
  // tail). InvalidArgument for bad ids, positions or rows (the KvAccess adds its own checks),
  // OutOfRange past the context length, ResourceExhausted when the KV is full.
  absl::StatusOr<Logits> Forward(const ForwardBatch& batch, KvAccess& kv);

  // The token embeddings, [tokens.size(), d_model]. InvalidArgument for an id outside the vocab.
  absl::StatusOr<HiddenStates> Embed(absl::Span<const int32_t> tokens);
  // Layers [first, last) over `rows`, hidden[i] being row i's state: read, then overwritten with
  // the state after layer last - 1. Errors as Forward; InvalidArgument when hidden has a different
  // row count or the layer range is not within [0, n_layers]. `report` (optional) is added to.
  absl::Status RunLayers(const RowBatch& rows, KvAccess& kv, int first, int last,
                         HiddenStates& hidden, PrefillAttentionReport* report = nullptr);
  // Rows `rows` of `hidden` (indices, in the order given) as new hidden states: how a caller
  // narrows a call to a subset of its rows between RunLayers calls (CacheBlend's recompute set).
  // Copies through host memory. InvalidArgument for an index outside hidden.
  absl::StatusOr<HiddenStates> SelectRows(const HiddenStates& hidden,
                                          absl::Span<const int32_t> rows);
  // Final norm and LM head of hidden rows `rows` (indices into hidden, in order).
  absl::StatusOr<Logits> ComputeLogits(const HiddenStates& hidden, absl::Span<const int32_t> rows);

 private:
  struct Call;  // per-call state, model_runner.cc

  ModelRunner(const format::ModelConfig& config, kernels::KernelBackend& backend,
              const RunnerOptions& options)
      : config_(config), backend_(backend), options_(options) {}
  // Gives the hidden states of a call's rows [begin, end) before the chunk's first layer...
  using ChunkInput = absl::FunctionRef<absl::StatusOr<TensorView>(int32_t begin, int32_t end)>;
  // ... and takes them after its last.
  using ChunkOutput =
      absl::FunctionRef<absl::Status(const TensorView& x, int32_t begin, int32_t end)>;

  absl::Status CheckRows(const RowBatch& rows) const;
  absl::Status CheckTokens(absl::Span<const int32_t> tokens) const;
  absl::Status EnsureHidden(HiddenStates& hidden, int32_t rows);
  absl::Status EmbedInto(absl::Span<const int32_t> tokens, const TensorView& out);
  absl::Status UploadPositions(const RowBatch& rows);
  absl::Status RunChunks(const RowBatch& rows, KvAccess& kv, int first, int last, Call& call,
                         ChunkInput input, ChunkOutput output);
  absl::Status RunLayer(int layer, const TensorView& x, KvAccess& kv, Call& call);
  absl::Status EnsureLogits(int64_t rows);
  // Logits of the requested `rows` that fall in [begin, end), from `hidden` (rows begin..end-1).
  absl::Status LogitsInto(const TensorView& hidden, int32_t begin, int32_t end,
                          absl::Span<const int32_t> rows);

  format::ModelConfig config_;
  kernels::KernelBackend& backend_;
  RunnerOptions options_;
  LlamaWeights weights_;

  // Scratch: activations for max_batch_tokens rows (x_ holds Forward's hidden states, a chunk at a
  // time); the call's ids and positions on the device (grown on demand); the logits of the last
  // call.
  kernels::DeviceBuffer x_, h_, q_, k_, v_, attn_, gate_, up_;
  kernels::DeviceBuffer ids_, positions_;
  kernels::DeviceBuffer logits_;
  int64_t logits_rows_ = 0;
};

}  // namespace tandem::model
