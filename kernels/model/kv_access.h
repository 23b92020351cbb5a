// kernels/model/kv_access.h
//
// KvAccess: where one ModelRunner call keeps and reads K/V. The runner owns no KV: every call
// borrows a KvAccess and, per layer, hands it the new K/V of the call's rows (Store) and asks it
// for the rows' attention output (Attend). The layout behind it (the paged pool of
// paged_kv_cache.h, a dense cache in a test, later a latent cache, an evicting budgeted cache or
// one TPLA shard) decides how K/V are kept and how attention reads them; the runner never looks
// inside.
//
// One call is: Prepare(rows) once, then per chunk of at most max_batch_tokens rows BeginChunk,
// then for every layer Store and Attend, and Commit(rows) once all layers ran. A call stopped by an
// error never commits. Implementations are used by one thread at a time (the runner's).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tensor_view.h"
#include "kernels/op.h"

namespace tandem::model {

using SeqId = int32_t;

// Which tokens a runner call computes and where their KV goes. Row i is a token of sequence
// seq_ids[i] at position positions[i] (its RoPE angle); it attends the keys its sequence holds at
// positions [0, key_limits[i]) (key_limits empty: positions[i] + 1, i.e. causal). Rows of one
// sequence come in increasing position order and need not be consecutive; each row's own K/V are
// stored at its position before its attention runs. The runner checks these rules for every
// layout (key limits within [1, position + 1]); which keys a sequence holds is the layout's.
struct RowBatch {
  std::vector<SeqId> seq_ids;
  std::vector<int32_t> positions;
  std::vector<int32_t> key_limits;
  // Per-call override of RunnerOptions::prefill_attention.
  std::optional<kernels::SparseConfig> prefill_attention;
  // Fills PrefillAttentionReport::layer_seconds; synchronises a device backend after every layer,
  // so it is off unless asked for.
  bool time_layers = false;

  int32_t size() const { return static_cast<int32_t>(positions.size()); }
  // Appends `count` rows of `seq` at positions start, start + 1, ... (causal).
  void Add(SeqId seq, int32_t start, int32_t count) {
    for (int32_t i = 0; i < count; ++i) {
      seq_ids.push_back(seq);
      positions.push_back(start + i);
    }
  }
  int32_t KeyLimit(int32_t row) const {
    return key_limits.empty() ? positions[row] + 1 : key_limits[row];
  }
};

// What attention cost in one call: returned with its logits.
struct PrefillAttentionReport {
  kernels::SparseMethod method = kernels::SparseMethod::kDense;
  int32_t prefill_calls = 0;  // AttentionPrefill calls (layers x prefill chunks)
  int64_t causal_blocks = 0;  // summed AttentionStats over those calls
  int64_t computed_blocks = 0;
  // Wall time of attention (prefill and paged, summed over layers and chunks) and of copying K/V
  // out of a layout for AttentionPrefill. Measured on host backends always and on a device only
  // when the call asked for time_layers (it needs a synchronisation per layer); `timed` says which.
  bool timed = false;
  double attention_seconds = 0.0;
  double gather_seconds = 0.0;
  std::vector<double> layer_seconds;  // per layer of the call, when time_layers
  double density() const {
    return causal_blocks > 0 ? static_cast<double>(computed_blocks) / causal_blocks : 1.0;
  }
};

// Called after every AttentionPrefill call with the call (its tensors are valid during the call
// only): how tests measure each layer's attention against another method on the same inputs.
using PrefillAttentionObserver =
    std::function<void(int layer, const kernels::AttentionPrefillParams& call)>;

// The per-call attention settings a layout's Attend reads, and the report it adds to. Owned by the
// runner's call; valid for the call only.
struct AttentionContext {
  float scale = 0.125f;               // softmax scale, 1/sqrt(head_dim) for Llama
  kernels::SparseConfig sparse;       // the call's prefill attention method and knobs
  bool dense_prefill_kernel = false;  // RunnerOptions::dense_prefill_kernel
  bool timed = false;                 // time gathers (the runner times Attend itself)
  const PrefillAttentionObserver* observer = nullptr;  // may be null
  double observer_seconds = 0.0;  // time spent in the observer, not counted as attention
  PrefillAttentionReport* report = nullptr;
};

// The rows of one chunk of a call, valid from BeginChunk to the next BeginChunk or Commit.
struct KvChunk {
  const RowBatch* rows = nullptr;  // the whole call
  int32_t begin = 0;               // this chunk is rows [begin, end)
  int32_t end = 0;
  TensorView positions;  // [end - begin] i32 on the runner's device
  int32_t size() const { return end - begin; }
};

class KvAccess {
 public:
  virtual ~KvAccess() = default;

  // Checks the whole call against what the layout holds and makes room for it (writes no KV; the
  // room stays with its sequences if the call fails later). The rows already satisfy the
  // RowBatch rules. InvalidArgument for unknown sequences or keys a row would read that are
  // neither held nor written by the call (CheckKeysHeld); OutOfRange past a sequence's longest
  // length; ResourceExhausted when the layout is full.
  virtual absl::Status Prepare(const RowBatch& rows) = 0;
  // The next chunk of the prepared call; uploads whatever index arrays the layout's kernels need.
  virtual absl::Status BeginChunk(const KvChunk& chunk) = 0;
  // Keeps the chunk's K and V of `layer`, [n, n_kv_heads, head_dim] f32 on the device. `k` is
  // before RoPE: a layout that keeps rotated keys rotates it in place (RotateKeys), one that keeps
  // them unrotated (latent) does not.
  virtual absl::Status Store(int layer, const TensorView& k, const TensorView& v) = 0;
  // out[n, n_heads, head_dim] = attention of the chunk's q [n, n_heads, head_dim] (after RoPE)
  // over the keys each row may read (RowBatch::KeyLimit), by the context's method where the layout
  // supports it. Adds to ctx.report.
  virtual absl::Status Attend(int layer, const TensorView& q, const TensorView& out,
                              AttentionContext& ctx) = 0;
  // Every layer of the call ran: the rows' positions now hold KV.
  virtual void Commit(const RowBatch& rows) = 0;
};

// For layouts whose sequences hold positions [0, length): checks that every row reads only keys
// its sequence holds or that the call writes before the row's attention (rows in order), and
// returns, per sequence, one past the largest position the call writes (the room to reserve).
// `length` gives a sequence's current length, or InvalidArgument for an unknown sequence.
absl::StatusOr<absl::flat_hash_map<SeqId, int32_t>> CheckKeysHeld(
    const RowBatch& rows, absl::FunctionRef<absl::StatusOr<int32_t>(SeqId)> length);

// The length of a sequence of `length` after rows at `positions` (in order) wrote their KV: it
// grows over positions that extend it without a gap, and never shrinks.
int32_t LengthAfter(int32_t length, absl::Span<const int32_t> positions);

}  // namespace tandem::model
