// runtime/block_io.h
//
// Moving a sequence's KV between a KvCache and KV blocks (ARCHITECTURE.md §4.5, §5.1): import the
// blocks a tier or a transfer delivered into a sequence, at any start position the sequence
// reaches, and cut a sequence's KV into chained blocks for the store and the decode node. Both
// work through KvCache::ReadTokens/WriteTokens, so they serve every layout; block tensors are host
// memory in the cache's row format, so a device cache copies.
// Stateless functions; they use the cache on the caller's thread (the engine's).
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "kernels/model/kv_cache.h"
#include "kv_store/kv_block.h"

namespace tandem::runtime {

// Writes `blocks` into `seq`: block 0 at its pos_begin(), which may be anywhere up to the
// sequence's length (positions it already holds are overwritten), the others following it without
// gaps. The sequence's length becomes max(length, end of the last block). InvalidArgument when a
// block's layers, dtype or shape differ from the cache's, blocks leave a gap, or the first block
// starts past the sequence's length, or a block is a document block (KvBlock kFlagDocument: its KV
// belongs at other positions until blending re-rotates it); ResourceExhausted when the cache is
// full.
absl::Status ImportBlocks(model::KvCache& cache, model::SeqId seq,
                          absl::Span<const kv::KvBlock> blocks);

// Builds blocks first_block, first_block + 1, ... of `tokens` (the sequence's tokens from position
// 0; block i holds positions [i * block_tokens, (i + 1) * block_tokens), the last one possibly
// partial) from the KV of `seq`, which must hold all of them, chained from `parent` (the key of
// block first_block - 1, or format.Root() when first_block is 0).
absl::StatusOr<std::vector<kv::KvBlock>> ExportBlocks(const model::KvCache& cache, model::SeqId seq,
                                                      const KvFormat& format,
                                                      absl::Span<const int32_t> tokens,
                                                      int32_t first_block, const BlockKey& parent);

}  // namespace tandem::runtime
