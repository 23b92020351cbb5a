// kernels/model/kv_cache.h
//
// KvCache: a KV layout that holds many sequences and is what engines own. It is a KvAccess (what a
// runner call reads and writes) plus what an engine does between calls: add and remove sequences,
// reserve room, and move a sequence's KV to and from host tensors in the layout of a KV block
// (§5.1 payload rows), which is how blocks are imported and exported. Layouts register in
// kv_layouts.cc by name; CreateKvCache builds one from KvCacheOptions::layout, so a new layout is
// one file plus one line there, with no edit to the runner or the engines. KvCacheOptions holds
// what every layout reads; a layout with settings of its own (an eviction budget, a latent sidecar,
// a TPLA rank) adds them as a field of KvCacheOptions, still without touching runner or engines.
//
// Ownership: a cache owns its device memory and borrows the backend, which must outlive it. Not
// thread-safe: one thread (the engine's) uses a cache and the runner it is lent to.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dtype.h"
#include "common/kv_key.h"
#include "common/model_format/model_config.h"
#include "kernels/backend.h"
#include "kernels/model/kv_access.h"

namespace tandem::model {

struct KvCacheOptions {
  // The layout, by its registered name (kv_layouts.cc). Default: "paged". Flag: --kv_layout
  std::string layout = "paged";
  // KV element type. f16 halves memory and bandwidth; f32 is exact. Also the KvFormat dtype, so a
  // tier hit is bit-identical to recomputing. Default: f16. Flag: --kv_dtype
  DType dtype = DType::kF16;
  // Tokens per page of the paged layout (memory layout only, never part of a key). Default: 16.
  // Flag: --kv_page_tokens
  int32_t page_tokens = 16;
  // Tokens held across all sequences. Default 0: one full context of the model.
  int32_t capacity_tokens = 0;
  // Concurrent sequences. Default: 8.
  int32_t max_seqs = 8;
  // InvalidArgument naming the field: an unknown layout or dtype, non-positive sizes.
  absl::Status Validate() const;
};

// The layers, element type and per-token shape of K (and V) rows as a KV block carries them: host
// tensors passed to ReadTokens/WriteTokens are [tokens, row_shape...] of `dtype`, one per layer.
struct KvRowFormat {
  int32_t layers = 0;
  DType dtype = DType::kF16;
  std::vector<int64_t> row_shape;  // e.g. {n_kv_heads, head_dim}
  int64_t row_bytes() const;
};

class KvCache : public KvAccess {
 public:
  // The layout's name and what it contributes to the cluster's KvFormat (layout, dtype, latent
  // fields); the model fingerprint, block size and namespace are the caller's.
  virtual std::string_view layout() const = 0;
  virtual void DescribeFormat(KvFormat& format) const = 0;

  // ResourceExhausted when every sequence slot is taken.
  virtual absl::StatusOr<SeqId> AddSequence() = 0;
  // Frees the sequence's room. Unknown ids are ignored.
  virtual void RemoveSequence(SeqId seq) = 0;
  virtual bool IsLive(SeqId seq) const = 0;
  // Positions [0, Length) of the sequence hold KV. Runner calls only grow it (Commit); SetLength
  // after WriteTokens records imported KV, and a shorter length forgets the tail.
  virtual int32_t Length(SeqId seq) const = 0;
  virtual void SetLength(SeqId seq, int32_t length) = 0;
  // Makes positions [0, tokens) of `seq` writable: ResourceExhausted when the cache is full,
  // OutOfRange past the longest sequence.
  virtual absl::Status Reserve(SeqId seq, int32_t tokens) = 0;

  // Host tensors of [tokens, row_format().row_shape...] for positions [begin, begin + tokens) of
  // `seq` in `layer`, out of the cache and into it. InvalidArgument for shapes, dtypes or
  // positions that do not fit; WriteTokens needs Reserve() first and does not change Length().
  virtual KvRowFormat row_format() const = 0;
  virtual absl::Status ReadTokens(SeqId seq, int layer, int32_t begin, TensorView k_out,
                                  TensorView v_out) const = 0;
  virtual absl::Status WriteTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                                   const TensorView& v) = 0;

  // Room is handed out in units of this many tokens (a page); a sequence of t tokens takes
  // ceil(t / allocation_tokens) units. Admission control counts the same units.
  virtual int32_t allocation_tokens() const = 0;
  // Tokens the cache holds across all sequences, in whole units.
  virtual int64_t capacity_tokens() const = 0;
  // Device bytes owned.
  virtual int64_t bytes() const = 0;
};

// Rotates k [n, n_kv_heads, head_dim] f32 in place by `positions` [n] i32 with the model's RoPE:
// what a layout that keeps rotated keys calls in Store.
absl::Status RotateKeys(kernels::KernelBackend& backend, const format::ModelConfig& config,
                        const TensorView& k, const TensorView& positions);

// The layout named by options.layout (kv_layouts.cc), on `backend` for a model of `config`.
// InvalidArgument naming the registered layouts for an unknown name.
absl::StatusOr<std::unique_ptr<KvCache>> CreateKvCache(kernels::KernelBackend& backend,
                                                       const format::ModelConfig& config,
                                                       const KvCacheOptions& options);
// The registered layout names, and the same joined by '|' for messages.
std::vector<std::string_view> KvLayoutNames();
std::string KvLayoutNamesText();

}  // namespace tandem::model
