#include "kernels/model/kv_cache.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<PagedKvCache>> PagedKvCache::Create(
    kernels::KernelBackend& backend, const format::ModelConfig& config,
    const KvCacheOptions& options) {
  if (options.dtype != DType::kF16 && options.dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv cache dtype ", AV(DTypeName(options.dtype)), " unsupported; use f16 or f32"));
  }
  if (options.num_pages <= 0 || options.page_tokens <= 0 || options.max_seqs <= 0 ||
      options.max_seq_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kv cache: num_pages=", options.num_pages, " page_tokens=", options.page_tokens,
        " max_seqs=", options.max_seqs, " max_seq_tokens=", options.max_seq_tokens,
        " must all be positive"));
  }
  auto cache = std::unique_ptr<PagedKvCache>(new PagedKvCache());
  cache->options_ = options;
  cache->pages_per_seq_ = (options.max_seq_tokens + options.page_tokens - 1) / options.page_tokens;
  const int64_t elem = DTypeBlockBytes(options.dtype);
  const int64_t pool_bytes = int64_t{options.num_pages} * options.page_tokens *
                             config.n_kv_heads * config.head_dim * elem;
  TANDEM_ASSIGN_OR_RETURN(cache->buffer_, kernels::DeviceBuffer::Create(
                                              backend, pool_bytes * 2 * config.n_layers));
  char* base = static_cast<char*>(cache->buffer_.data());
  for (int l = 0; l < config.n_layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      TensorView pool = TensorView::Contiguous(
          base + (2 * l + kv) * pool_bytes, options.dtype,
          {options.num_pages, options.page_tokens, config.n_kv_heads, config.head_dim},
          backend.device());
      (kv == 0 ? cache->k_pools_ : cache->v_pools_).push_back(pool);
    }
  }
  cache->seqs_.resize(options.max_seqs);
  for (int32_t p = options.num_pages - 1; p >= 0; --p) cache->free_pages_.push_back(p);
  return cache;
}

absl::StatusOr<SeqId> PagedKvCache::AddSequence() {
  for (SeqId s = 0; s < static_cast<SeqId>(seqs_.size()); ++s) {
    if (!seqs_[s].live) {
      seqs_[s] = Sequence{.live = true, .length = 0, .pages = {}};
      return s;
    }
  }
  return absl::ResourceExhaustedError(
      absl::StrCat("kv cache: all ", seqs_.size(), " sequence slots are in use"));
}

void PagedKvCache::RemoveSequence(SeqId seq) {
  if (!IsLive(seq)) return;
  for (int32_t page : seqs_[seq].pages) free_pages_.push_back(page);
  seqs_[seq] = Sequence{};
}

bool PagedKvCache::IsLive(SeqId seq) const {
  return seq >= 0 && seq < static_cast<SeqId>(seqs_.size()) && seqs_[seq].live;
}

absl::Status PagedKvCache::Reserve(SeqId seq, int32_t tokens) {
  if (!IsLive(seq)) return absl::InvalidArgumentError(absl::StrCat("kv cache: no sequence ", seq));
  if (tokens > options_.max_seq_tokens) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: ", tokens, " tokens exceed the limit of ",
                                              options_.max_seq_tokens, " per sequence"));
  }
  const int32_t need = (tokens + options_.page_tokens - 1) / options_.page_tokens;
  std::vector<int32_t>& pages = seqs_[seq].pages;
  if (need - static_cast<int32_t>(pages.size()) > static_cast<int32_t>(free_pages_.size())) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "kv cache full: ", tokens, " tokens need ", need - pages.size(), " more pages, ",
        free_pages_.size(), " free of ", options_.num_pages));
  }
  while (static_cast<int32_t>(pages.size()) < need) {
    pages.push_back(free_pages_.back());
    free_pages_.pop_back();
  }
  return absl::OkStatus();
}

int32_t PagedKvCache::Slot(SeqId seq, int32_t pos) const {
  const std::vector<int32_t>& pages = seqs_[seq].pages;
  TANDEM_DCHECK(pos / options_.page_tokens < static_cast<int32_t>(pages.size())) << "pos " << pos;
  return pages[pos / options_.page_tokens] * options_.page_tokens + pos % options_.page_tokens;
}

int64_t PagedKvCache::bytes() const { return buffer_.bytes(); }

}  // namespace tandem::model
