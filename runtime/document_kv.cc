#include "runtime/document_kv.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::runtime {

std::vector<int32_t> DocumentPreamble(const format::ModelConfig& config) {
  if (config.bos_token_id < 0) return {};
  return {config.bos_token_id};
}

absl::StatusOr<std::vector<kv::KvBlock>> ComputeDocumentBlocks(model::ModelRunner& runner,
                                                               model::KvCache& cache,
                                                               const KvFormat& format,
                                                               absl::Span<const int32_t> preamble,
                                                               absl::Span<const int32_t> tokens) {
  const int32_t base = static_cast<int32_t>(preamble.size());
  const int64_t total = int64_t{base} + static_cast<int64_t>(tokens.size());
  if (tokens.empty()) return absl::InvalidArgumentError("document kv: the document is empty");
  if (total > runner.config().context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("document kv: ", tokens.size(), " tokens after a ", base,
                     "-token preamble exceed the context of ", runner.config().context_length));
  }
  if (cache.row_format().layers != runner.config().n_layers) {
    return absl::InvalidArgumentError("document kv: the cache holds another model's layers");
  }
  TANDEM_ASSIGN_OR_RETURN(const model::SeqId seq, cache.AddSequence());
  // The scratch sequence goes whatever happens below.
  struct Remove {
    model::KvCache& cache;
    model::SeqId seq;
    ~Remove() { cache.RemoveSequence(seq); }
  } remove{cache, seq};

  model::ForwardBatch batch;
  std::vector<int32_t> all(preamble.begin(), preamble.end());
  all.insert(all.end(), tokens.begin(), tokens.end());
  batch.Add(seq, all, 0, /*want_last_logits=*/false);
  TANDEM_RETURN_IF_ERROR(runner.Forward(batch, cache).status());

  const model::KvRowFormat rows = cache.row_format();
  const int32_t bt = format.block_tokens;
  const int32_t n = static_cast<int32_t>(tokens.size());
  std::vector<std::vector<uint8_t>> k_bytes(rows.layers), v_bytes(rows.layers);
  for (int l = 0; l < rows.layers; ++l) {
    k_bytes[l].resize(static_cast<size_t>(rows.row_bytes() * bt));
    v_bytes[l].resize(static_cast<size_t>(rows.row_bytes() * bt));
  }
  std::vector<kv::KvBlock> out;
  BlockKey parent = DocumentRoot(format, preamble);
  for (int32_t begin = 0; begin < n; begin += bt) {
    const int32_t count = std::min(bt, n - begin);
    std::vector<int64_t> shape = {count};
    shape.insert(shape.end(), rows.row_shape.begin(), rows.row_shape.end());
    std::vector<TensorView> k(rows.layers), v(rows.layers);
    for (int l = 0; l < rows.layers; ++l) {
      k[l] = TensorView::Contiguous(k_bytes[l].data(), rows.dtype, shape);
      v[l] = TensorView::Contiguous(v_bytes[l].data(), rows.dtype, shape);
      TANDEM_RETURN_IF_ERROR(cache.ReadTokens(seq, l, base + begin, k[l], v[l]));
    }
    TANDEM_ASSIGN_OR_RETURN(kv::KvBlock block,
                            kv::KvBlock::BuildDocument(format, parent, tokens.subspan(begin, count),
                                                       base + begin, k, v, kv::KRope::kRotated));
    parent = block.key();
    out.push_back(std::move(block));
  }
  return out;
}

absl::Status CheckDocumentBlocks(absl::Span<const kv::KvBlock> blocks,
                                 absl::Span<const int32_t> tokens) {
  if (blocks.empty()) return absl::InvalidArgumentError("document blocks: none");
  size_t offset = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const kv::KvBlock& block = blocks[b];
    if (!block.header().is_document() || block.header().k_rope != kv::KRope::kRotated) {
      return absl::InvalidArgumentError(
          absl::StrCat("document blocks: block ", b, " (", block.key().Hex(),
                       ") is not a document block with K rotated at its positions"));
    }
    if (block.pos_begin() != blocks.front().pos_begin() + static_cast<int32_t>(offset)) {
      return absl::InvalidArgumentError(absl::StrCat("document blocks: block ", b, " starts at ",
                                                     block.pos_begin(), ", expected ",
                                                     blocks.front().pos_begin() + offset));
    }
    const absl::Span<const KvTokenId> held = block.tokens();
    if (offset + held.size() > tokens.size() ||
        !std::equal(held.begin(), held.end(), tokens.begin() + static_cast<int64_t>(offset))) {
      return absl::InvalidArgumentError(
          absl::StrCat("document blocks: block ", b,
                       " holds other tokens than the document at offset ", offset));
    }
    offset += held.size();
  }
  if (offset != tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("document blocks: hold ", offset, " of ", tokens.size(), " document tokens"));
  }
  return absl::OkStatus();
}

}  // namespace tandem::runtime
