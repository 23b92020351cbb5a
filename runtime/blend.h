// runtime/blend.h
//
// CacheBlend in the forward pass (../shared/papers.md §1.3-1.4): a prompt whose retrieved documents
// have stored, position-independent KV (runtime/document_kv.h) is prefilled by reusing that KV at
// the documents' positions and recomputing only the tokens whose KV deviates most. Through the
// runner's public seam only (RunLayers over explicit rows and positions, SelectRows,
// ComputeLogits), into an ordinary sequence of a KvCache:
//
//   1. Each document's stored KV is written at its positions in the prompt, K re-rotated by the
//      position delta with the Rope op (R(p1) = R(p1 - p0) R(p0), exact up to rounding).
//   2. Layers 0..check_layer run over every token of the prompt after the cached prefix (fresh
//      K/V replace the stored ones in those layers).
//   3. At check_layer, each document token's fresh K (or V) is compared with the stored one
//      (RowDistance op); the recompute_ratio fraction of document tokens with the largest
//      deviation is selected, plus every token that is not in a document (the question and any
//      text between documents) and the last token.
//   4. Layers check_layer+1.. run over the selected rows only, each with the exact causal mask
//      (keys [0, own position]), writing their fresh K/V over the stored rows; the other
//      document tokens keep the stored KV in those layers.
//
// The sequence then holds the blended KV for positions [0, n), ready to export or to decode from,
// and the call returns the last token's logits. recompute_ratio 1 is full prefill; 0 is plain
// reuse of the stored KV (no document token is computed in any layer, papers.md §1.10 (b)).
// Stateless; uses the runner and the cache on the caller's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/model_format/model_config.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"
#include "kv_store/kv_block.h"

namespace tandem::runtime {

// Which stored tensor measures a token's deviation at the check layer.
enum class BlendDeviation : uint8_t {
  kValue,  // sum over heads and dims of (V_fresh - V_stored)^2: the paper's reference code
  kKey,    // the same on K after RoPE: LMCache's blender
};
std::string_view BlendDeviationName(BlendDeviation d);  // "value" | "key"
std::optional<BlendDeviation> ParseBlendDeviation(std::string_view name);

struct BlendOptions {
  // Fraction of the reused document tokens recomputed in the layers after check_layer, in [0, 1].
  // Default: 0.15 (LMCache's default; the paper's code uses 0.16). Flag: --blend_recompute_ratio
  double recompute_ratio = 0.15;
  // The layer whose deviation picks the recomputed tokens; layers 0..check_layer run over every
  // token. In [0, n_layers). Default: 1. Flag: --blend_check_layer
  int32_t check_layer = 1;
  // Default: value. Flag: --blend_deviation
  BlendDeviation deviation = BlendDeviation::kValue;
  // Prompts with fewer reused document tokens than this are prefilled in full: blending short
  // documents saves little and costs the import. Default: 256 (LMCache's blend_min_tokens).
  // Flag: --blend_min_tokens
  int32_t min_blend_tokens = 256;
  // InvalidArgument naming the field (check_layer against the model's layers).
  absl::Status Validate(const format::ModelConfig& config) const;
};

// One document of the prompt: tokens [begin, begin + its blocks' tokens) are the document whose
// stored blocks these are (CheckDocumentBlocks holds).
struct BlendDocument {
  int32_t begin = 0;
  std::vector<kv::KvBlock> blocks;
  int32_t size() const;
};

struct BlendInput {
  model::SeqId seq = 0;
  absl::Span<const int32_t> tokens;  // the whole prompt
  // Positions [0, cached_prefix) of seq already hold the prompt's exact KV (prefix reuse); the
  // call computes [cached_prefix, n). Documents lie within [cached_prefix, n), in order, disjoint.
  int32_t cached_prefix = 0;
  std::vector<BlendDocument> documents;
};

struct BlendStats {
  bool blended = false;           // false: fewer than min_blend_tokens, prefilled in full
  int32_t reused_tokens = 0;      // document tokens whose stored KV was used
  int32_t exact_tokens = 0;       // of those, a first document reused as an exact prefix
  int32_t recomputed_tokens = 0;  // of those, recomputed after the check layer
  int32_t computed_tokens = 0;    // other tokens after the cached prefix, computed in full
  std::vector<int32_t> recomputed_positions;  // prompt positions of the recomputed tokens
  double import_seconds = 0.0;                // writing and re-rotating the stored KV
  double compute_seconds = 0.0;               // the layers, deviation and selection
};

struct BlendResult {
  model::Logits logits;  // one row: the last prompt token's; valid until the runner's next call
  BlendStats stats;
};

// Blends `input` into input.seq of `cache` (which must hold exactly [0, cached_prefix)).
// InvalidArgument for documents outside [cached_prefix, n), overlapping or out of order, blocks
// that are not the document's, a non-GQA layout (its K is not kept rotated), or bad options;
// the runner's and the cache's errors otherwise. On error the sequence's tail is forgotten.
absl::StatusOr<BlendResult> Blend(model::ModelRunner& runner, model::KvCache& cache,
                                  const BlendInput& input, const BlendOptions& options);

// The document tokens Blend recomputes for `deviation` (one value per document token, in prompt
// order) at `ratio`: the floor(ratio * n) largest, ties to the earlier token, returned as indices
// in increasing order. Exposed for tests.
std::vector<int32_t> SelectHighDeviation(absl::Span<const float> deviation, double ratio);

}  // namespace tandem::runtime
