// prefill_node/sequence_kv.h
//
// Moving one runner sequence's KV to and from KV blocks (ARCHITECTURE.md §2 step 4, §4.5): copy
// the whole blocks a tier returned into the sequence before computing the rest, and cut the
// sequence's KV into chained §5.1 blocks afterwards for the store and the decode node. Blocks of
// a prompt are keyed from KvFormat::Root() over the whole prompt, block i holding positions
// [i * block_tokens, (i + 1) * block_tokens), the last one possibly partial.
// Stateless functions; they use the cache on the caller's thread (the runner's, which is not
// thread-safe). Block tensors are host memory in the cache's dtype, so a CUDA cache copies.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "kernels/model/kv_cache.h"
#include "kv_store/kv_block.h"

namespace tandem::prefill {

// Writes `blocks` (block i at positions i * block_tokens ..., all full) into positions
// [0, sum of their tokens) of `seq`, which must be empty, and sets its length to that. The
// blocks' dtype must be the cache's. InvalidArgument on shapes or positions that do not fit,
// ResourceExhausted when the pool is full.
absl::Status LoadBlocksIntoSequence(model::PagedKvCache& cache, model::SeqId seq,
                                    absl::Span<const kv::KvBlock> blocks);

// Builds the blocks first_block, first_block + 1, ... of `tokens` from the KV of `seq` (which
// must hold at least tokens.size() positions), chained from `parent` (the key of block
// first_block - 1, or format.Root() when first_block is 0). [tokens, n_kv_heads, head_dim] per
// layer and block, copied out with PagedKvCache::ReadTokens.
absl::StatusOr<std::vector<kv::KvBlock>> ExportSequenceBlocks(
    const model::PagedKvCache& cache, model::SeqId seq, int num_layers, const KvFormat& format,
    absl::Span<const int32_t> tokens, int32_t first_block, const BlockKey& parent);

}  // namespace tandem::prefill
