// kernels/model/paged_kv_cache.h
//
// PagedKvCache: the "paged" KV layout (vLLM's PagedAttention). For every layer a K pool and a V
// pool of [num_pages, page_tokens, n_kv_heads, head_dim] (f16 by default) on the backend's device,
// and per sequence a page table mapping position p to page table[p / page_tokens]. Pages are handed
// out on demand and returned when a sequence is removed, so many sequences of different lengths
// share one pool. Keys are stored rotated (RoPE at their position).
//
// Attention: every chunk runs PagedAttention, except a chunk of several causal rows of one sequence
// whose call asked for SALE or PowerAttention (or dense through the prefill kernel): that chunk
// gathers the sequence's K/V with KvGather and runs AttentionPrefill over them.
//
// Owns its device memory and its index buffers; borrows the backend. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"
#include "kernels/model/kv_cache.h"

namespace tandem::model {

class PagedKvCache final : public KvCache {
 public:
  static constexpr std::string_view kLayoutName = "paged";

  // InvalidArgument for bad options; ResourceExhausted when the device memory cannot be had.
  static absl::StatusOr<std::unique_ptr<PagedKvCache>> Create(kernels::KernelBackend& backend,
                                                              const format::ModelConfig& config,
                                                              const KvCacheOptions& options);

  // KvCache.
  std::string_view layout() const override { return kLayoutName; }
  void DescribeFormat(KvFormat& format) const override;
  absl::StatusOr<SeqId> AddSequence() override;
  void RemoveSequence(SeqId seq) override;
  bool IsLive(SeqId seq) const override;
  int32_t Length(SeqId seq) const override { return seqs_[seq].length; }
  void SetLength(SeqId seq, int32_t length) override { seqs_[seq].length = length; }
  absl::Status Reserve(SeqId seq, int32_t tokens) override;
  KvRowFormat row_format() const override;
  absl::Status ReadTokens(SeqId seq, int layer, int32_t begin, TensorView k_out,
                          TensorView v_out) const override;
  absl::Status WriteTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                           const TensorView& v) override;
  int32_t allocation_tokens() const override { return page_tokens_; }
  int64_t capacity_tokens() const override { return int64_t{num_pages_} * page_tokens_; }
  int64_t bytes() const override { return buffer_.bytes(); }

  // KvAccess.
  absl::Status Prepare(const RowBatch& rows) override;
  absl::Status BeginChunk(const KvChunk& chunk) override;
  absl::Status Store(int layer, const TensorView& k, const TensorView& v) override;
  absl::Status Attend(int layer, const TensorView& q, const TensorView& out,
                      AttentionContext& ctx) override;
  void Commit(const RowBatch& rows) override;

  // The paged layout itself, for tests and kernels that read pools directly.
  // Pool slot (page * page_tokens + offset) of position `pos` of `seq`; Reserve() first.
  int32_t Slot(SeqId seq, int32_t pos) const;
  const std::vector<int32_t>& PageTable(SeqId seq) const { return seqs_[seq].pages; }
  TensorView k_pool(int layer) const { return k_pools_[layer]; }
  TensorView v_pool(int layer) const { return v_pools_[layer]; }
  const KvCacheOptions& options() const { return options_; }
  int32_t num_pages() const { return num_pages_; }
  int32_t pages_per_seq() const { return pages_per_seq_; }
  int32_t free_pages() const { return static_cast<int32_t>(free_pages_.size()); }

 private:
  struct Sequence {
    bool live = false;
    int32_t length = 0;
    std::vector<int32_t> pages;
  };
  PagedKvCache(kernels::KernelBackend& backend, const format::ModelConfig& config)
      : backend_(backend), config_(config) {}

  absl::Status CheckHostTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                               const TensorView& v) const;
  // The chunk runs AttentionPrefill over the gathered sequence rather than PagedAttention.
  bool UsesPrefillOp(const AttentionContext& ctx) const;
  absl::Status EnsureGatherBuffers();
  absl::Status UploadGatherSlots();
  absl::Status AttendPrefill(int layer, const TensorView& q, const TensorView& out,
                             AttentionContext& ctx);

  kernels::KernelBackend& backend_;
  const format::ModelConfig config_;
  KvCacheOptions options_;
  int32_t page_tokens_ = 0;
  int32_t num_pages_ = 0;
  int32_t pages_per_seq_ = 0;  // pages of the longest sequence (the model's context length)
  int64_t row_bytes_ = 0;      // one token of one layer's K (or V): n_kv_heads * head_dim elements
  kernels::DeviceBuffer buffer_;
  std::vector<TensorView> k_pools_;
  std::vector<TensorView> v_pools_;
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_pages_;  // stack; used pages = num_pages_ - free_pages_.size()

  // The current chunk: its rows, and on the device
  //   slots [n] | key_limits - 1 [n] | q_seq [n] | page_table [chunk sequences, pages_per_seq].
  // PagedAttention's q_pos bounds the keys a query reads, so it receives key_limit - 1.
  KvChunk chunk_;
  int32_t chunk_seqs_ = 0;
  bool chunk_prefill_shape_ = false;  // one sequence, several causal rows
  int32_t chunk_key_end_ = 0;         // one past the largest key position the chunk reads
  std::vector<int32_t> host_index_;
  kernels::DeviceBuffer index_;
  TensorView slots_, last_keys_, q_seq_, page_table_;

  // AttentionPrefill over a paged sequence: its K/V gathered per layer (by KvGather from the pool
  // slots of positions 0..chunk_key_end_-1, slots uploaded once per chunk that needs them) and
  // positions 0..context-1. Made on the first chunk that needs them.
  kernels::DeviceBuffer seq_k_, seq_v_, kv_pos_, gather_slots_;
  std::vector<int32_t> host_gather_slots_;
  bool gather_slots_ready_ = false;  // gather_slots_ holds the current chunk's slots
};

}  // namespace tandem::model
