// runtime/document_kv.h
//
// Position-independent document KV for CacheBlend (../shared/papers.md §1, ARCHITECTURE.md §4.5):
// a retrieved document's KV is computed alone, after a fixed preamble, so the same bytes serve the
// document wherever a prompt places it. It is keyed by the document's tokens and the KvFormat
// (DocumentKeys: a chain over the document's own tokens from a root that names the preamble, never
// a prefix chain), stored as version-2 document blocks (KvBlock::BuildDocument) whose header
// records the base position (pos_begin) and that K is stored after RoPE at those positions, and
// moved to its positions in a prompt by runtime/blend.h.
//
// Stateless functions; they use the runner and the cache on the caller's thread (the engine's).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "common/model_format/model_config.h"
#include "kernels/model/kv_cache.h"
#include "kernels/model/model_runner.h"
#include "kv_store/kv_block.h"

namespace tandem::runtime {

// The tokens every document's KV is computed after, defined once: the model's BOS token
// (<|im_start|> for SmolLM2), which every ChatML prompt starts with and which takes the attention
// sink a lone document would otherwise make of its own first token. Empty when the model has no
// BOS. A document placed right after this preamble at position 0 of a prompt is an exact prefix.
std::vector<int32_t> DocumentPreamble(const format::ModelConfig& config);

// The document's KV: `tokens` forwarded after `preamble` in a scratch sequence of `cache` (removed
// again), cut into document blocks of format.block_tokens at positions preamble.size() ..., keyed
// DocumentKeys(format, preamble, tokens). InvalidArgument for an empty document or one that does
// not fit the context after the preamble; the runner's and cache's errors otherwise.
absl::StatusOr<std::vector<kv::KvBlock>> ComputeDocumentBlocks(model::ModelRunner& runner,
                                                               model::KvCache& cache,
                                                               const KvFormat& format,
                                                               absl::Span<const int32_t> preamble,
                                                               absl::Span<const int32_t> tokens);

// OK when `blocks` are exactly the document blocks of `tokens` (document flag, K after RoPE,
// positions following on from the first block's without gaps, tokens equal); InvalidArgument
// naming the first difference. Tiers already validated keys and checksums; this catches a caller
// that pairs a document with the wrong blocks.
absl::Status CheckDocumentBlocks(absl::Span<const kv::KvBlock> blocks,
                                 absl::Span<const int32_t> tokens);

}  // namespace tandem::runtime
