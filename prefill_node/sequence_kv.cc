#include "prefill_node/sequence_kv.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::prefill {

absl::Status LoadBlocksIntoSequence(model::PagedKvCache& cache, model::SeqId seq,
                                    absl::Span<const kv::KvBlock> blocks) {
  if (blocks.empty()) return absl::OkStatus();
  if (cache.Length(seq) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("load blocks: sequence ", seq, " already holds ",
                                                   cache.Length(seq), " tokens"));
  }
  int32_t end = 0;
  for (const kv::KvBlock& block : blocks) {
    if (block.pos_begin() != end) {
      return absl::InvalidArgumentError(absl::StrCat("load blocks: block ", block.key().Hex(),
                                                     " starts at position ", block.pos_begin(),
                                                     ", expected ", end));
    }
    end += block.num_tokens();
  }
  TANDEM_RETURN_IF_ERROR(cache.Reserve(seq, end));
  for (const kv::KvBlock& block : blocks) {
    for (int layer = 0; layer < block.num_layers(); ++layer) {
      TANDEM_RETURN_IF_ERROR(
          cache.WriteTokens(seq, layer, block.pos_begin(), block.k(layer), block.v(layer)));
    }
  }
  cache.SetLength(seq, end);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<kv::KvBlock>> ExportSequenceBlocks(
    const model::PagedKvCache& cache, model::SeqId seq, int num_layers, const KvFormat& format,
    absl::Span<const int32_t> tokens, int32_t first_block, const BlockKey& parent) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  const int32_t bt = format.block_tokens;
  if (cache.Length(seq) < n) {
    return absl::InvalidArgumentError(absl::StrCat("export blocks: sequence ", seq, " holds ",
                                                   cache.Length(seq), " of ", n, " tokens"));
  }
  const TensorView pool = cache.k_pool(0);  // [pages, page_tokens, n_kv_heads, head_dim]
  const int64_t heads = pool.shape[2];
  const int64_t head_dim = pool.shape[3];
  const DType dtype = cache.options().dtype;
  const int64_t row_bytes = DTypeRowBytes(dtype, heads * head_dim);
  // One host buffer per layer for K and for V, reused by every block: Build copies out of them.
  std::vector<std::vector<uint8_t>> k_bytes(num_layers), v_bytes(num_layers);
  for (int l = 0; l < num_layers; ++l) {
    k_bytes[l].resize(static_cast<size_t>(row_bytes * bt));
    v_bytes[l].resize(static_cast<size_t>(row_bytes * bt));
  }
  std::vector<kv::KvBlock> out;
  BlockKey prev = parent;
  for (int32_t begin = first_block * bt; begin < n; begin += bt) {
    const int32_t count = std::min(bt, n - begin);
    std::vector<TensorView> k(num_layers), v(num_layers);
    for (int l = 0; l < num_layers; ++l) {
      k[l] = TensorView::Contiguous(k_bytes[l].data(), dtype, {count, heads, head_dim});
      v[l] = TensorView::Contiguous(v_bytes[l].data(), dtype, {count, heads, head_dim});
      TANDEM_RETURN_IF_ERROR(cache.ReadTokens(seq, l, begin, k[l], v[l]));
    }
    TANDEM_ASSIGN_OR_RETURN(
        kv::KvBlock block,
        kv::KvBlock::Build(format, prev, tokens.subspan(begin, count), begin, k, v));
    prev = block.key();
    out.push_back(std::move(block));
  }
  return out;
}

}  // namespace tandem::prefill
