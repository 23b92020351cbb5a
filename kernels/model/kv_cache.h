// kernels/model/kv_cache.h
//
// PagedKvCache is the KV memory of a ModelRunner: for every layer a K pool and a V pool of
// [num_pages, page_tokens, n_kv_heads, head_dim] (f16 by default) on the runner's device, and per
// sequence a page table mapping position p to page table[p / page_tokens]. Pages are handed out on
// demand and returned when a sequence is removed, so many sequences of different lengths share one
// pool (vLLM's PagedAttention). Owns its device memory. Not thread-safe: the runner's thread uses it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"

namespace tandem::model {

using SeqId = int32_t;

struct KvCacheOptions {
  int32_t num_pages = 0;          // pool size; tokens held = num_pages * page_tokens
  int32_t page_tokens = 16;       // memory layout only, never part of a key
  int32_t max_seqs = 8;           // sequence slots
  int32_t max_seq_tokens = 8192;  // longest sequence (the model's context length)
  DType dtype = DType::kF16;      // f16 | f32
};

class PagedKvCache {
 public:
  static absl::StatusOr<std::unique_ptr<PagedKvCache>> Create(kernels::KernelBackend& backend,
                                                              const format::ModelConfig& config,
                                                              const KvCacheOptions& options);

  // ResourceExhausted when every slot is taken.
  absl::StatusOr<SeqId> AddSequence();
  // Returns the sequence's pages to the pool. Unknown ids are ignored.
  void RemoveSequence(SeqId seq);
  // Makes positions [0, tokens) of `seq` addressable; ResourceExhausted when the pool is full,
  // OutOfRange beyond max_seq_tokens.
  absl::Status Reserve(SeqId seq, int32_t tokens);
  bool IsLive(SeqId seq) const;
  // Tokens whose KV is written (positions 0 .. length-1).
  int32_t Length(SeqId seq) const { return seqs_[seq].length; }
  void SetLength(SeqId seq, int32_t length) { seqs_[seq].length = length; }
  // Pool slot (page * page_tokens + offset) of position `pos` of `seq`; Reserve() first.
  int32_t Slot(SeqId seq, int32_t pos) const;
  const std::vector<int32_t>& PageTable(SeqId seq) const { return seqs_[seq].pages; }

  // Copies the KV of positions [begin, begin + k_out.shape[0]) of `seq` in `layer` into host
  // tensors of [tokens, n_kv_heads, head_dim] in the cache's dtype (a KV block's layout), and
  // back. How a prefill node exports a request's KV and a decode node imports it. InvalidArgument
  // for shapes, dtypes or positions that do not fit; WriteTokens needs Reserve() first and does
  // not change Length().
  absl::Status ReadTokens(SeqId seq, int layer, int32_t begin, TensorView k_out,
                          TensorView v_out) const;
  absl::Status WriteTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                           const TensorView& v);

  TensorView k_pool(int layer) const { return k_pools_[layer]; }
  TensorView v_pool(int layer) const { return v_pools_[layer]; }
  const KvCacheOptions& options() const { return options_; }
  int32_t pages_per_seq() const { return pages_per_seq_; }
  int32_t free_pages() const { return static_cast<int32_t>(free_pages_.size()); }
  int64_t bytes() const;

 private:
  struct Sequence {
    bool live = false;
    int32_t length = 0;
    std::vector<int32_t> pages;
  };
  PagedKvCache() = default;

  absl::Status CheckHostTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                               const TensorView& v) const;

  kernels::KernelBackend* backend_ = nullptr;
  int64_t row_bytes_ = 0;  // one token of one layer's K (or V): n_kv_heads * head_dim elements
  KvCacheOptions options_;
  int32_t pages_per_seq_ = 0;
  kernels::DeviceBuffer buffer_;
  std::vector<TensorView> k_pools_;
  std::vector<TensorView> v_pools_;
  std::vector<Sequence> seqs_;
  std::vector<int32_t> free_pages_;  // stack; used pages = num_pages - free_pages_.size()
};

}  // namespace tandem::model
