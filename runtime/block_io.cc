#include "runtime/block_io.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::runtime {

absl::Status ImportBlocks(model::KvCache& cache, model::SeqId seq,
                          absl::Span<const kv::KvBlock> blocks) {
  if (blocks.empty()) return absl::OkStatus();
  if (!cache.IsLive(seq)) {
    return absl::InvalidArgumentError(absl::StrCat("import blocks: no sequence ", seq));
  }
  const model::KvRowFormat rows = cache.row_format();
  KvFormat layout;
  cache.DescribeFormat(layout);
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b].header().is_document()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "import blocks: block ", b, " (", blocks[b].key().Hex(),
          ") holds a document's position-independent KV; only blending (runtime/blend.h) moves "
          "it to the positions it is used at"));
    }
  }
  const int32_t start = blocks.front().pos_begin();
  if (start < 0 || start > cache.Length(seq)) {
    return absl::InvalidArgumentError(
        absl::StrCat("import blocks: the first block starts at position ", start, " but sequence ",
                     seq, " holds ", cache.Length(seq), " tokens; blocks may not leave a gap"));
  }
  int32_t end = start;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const kv::KvBlock& block = blocks[b];
    if (block.pos_begin() != end) {
      return absl::InvalidArgumentError(absl::StrCat("import blocks: block ", b, " (",
                                                     block.key().Hex(), ") starts at position ",
                                                     block.pos_begin(), ", expected ", end));
    }
    const std::optional<DType> dtype = DTypeFromKvCode(block.header().dtype);
    if (block.num_layers() != rows.layers || dtype != rows.dtype) {
      return absl::InvalidArgumentError(
          absl::StrCat("import blocks: block ", b, " holds ", block.num_layers(),
                       " layers of dtype code ", block.header().dtype, ", the cache ", rows.layers,
                       " layers of ", AV(DTypeName(rows.dtype))));
    }
    // Every check before the first write: a block refused half way would leave positions the
    // sequence held overwritten.
    const TensorView k0 = block.k(0);
    bool same_rows = block.header().layout == static_cast<uint8_t>(layout.layout) &&
                     k0.ndim == 1 + static_cast<int>(rows.row_shape.size());
    for (size_t d = 0; same_rows && d < rows.row_shape.size(); ++d) {
      same_rows = k0.shape[d + 1] == rows.row_shape[d];
    }
    if (!same_rows) {
      return absl::InvalidArgumentError(
          absl::StrCat("import blocks: block ", b, " holds ", AV(k0.DebugString()),
                       " rows of layout code ", block.header().layout, ", the cache ",
                       AV(KvLayoutName(layout.layout)), " rows of ", rows.row_bytes(), " bytes"));
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
  cache.SetLength(seq, std::max(cache.Length(seq), end));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<kv::KvBlock>> ExportBlocks(const model::KvCache& cache, model::SeqId seq,
                                                      const KvFormat& format,
                                                      absl::Span<const int32_t> tokens,
                                                      int32_t first_block, const BlockKey& parent) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  const int32_t bt = format.block_tokens;
  if (!cache.IsLive(seq) || cache.Length(seq) < n) {
    return absl::InvalidArgumentError(absl::StrCat("export blocks: sequence ", seq, " holds ",
                                                   cache.IsLive(seq) ? cache.Length(seq) : 0,
                                                   " of ", n, " tokens"));
  }
  const model::KvRowFormat rows = cache.row_format();
  const int64_t row_bytes = rows.row_bytes();
  // One host buffer per layer for K and for V, reused by every block: Build copies out of them.
  std::vector<std::vector<uint8_t>> k_bytes(rows.layers), v_bytes(rows.layers);
  for (int l = 0; l < rows.layers; ++l) {
    k_bytes[l].resize(static_cast<size_t>(row_bytes * bt));
    v_bytes[l].resize(static_cast<size_t>(row_bytes * bt));
  }
  std::vector<kv::KvBlock> out;
  BlockKey prev = parent;
  for (int32_t begin = first_block * bt; begin < n; begin += bt) {
    const int32_t count = std::min(bt, n - begin);
    std::vector<int64_t> shape = {count};
    shape.insert(shape.end(), rows.row_shape.begin(), rows.row_shape.end());
    std::vector<TensorView> k(rows.layers), v(rows.layers);
    for (int l = 0; l < rows.layers; ++l) {
      k[l] = TensorView::Contiguous(k_bytes[l].data(), rows.dtype, shape);
      v[l] = TensorView::Contiguous(v_bytes[l].data(), rows.dtype, shape);
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

}  // namespace tandem::runtime
