#include "kernels/model/kv_cache.h"

#include <algorithm>

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
  cache->backend_ = &backend;
  cache->row_bytes_ = DTypeRowBytes(options.dtype, int64_t{config.n_kv_heads} * config.head_dim);
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

absl::Status PagedKvCache::CheckHostTokens(SeqId seq, int layer, int32_t begin,
                                           const TensorView& k, const TensorView& v) const {
  if (!IsLive(seq)) return absl::InvalidArgumentError(absl::StrCat("kv cache: no sequence ", seq));
  if (layer < 0 || layer >= static_cast<int>(k_pools_.size())) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: no layer ", layer));
  }
  const TensorView& pool = k_pools_[layer];
  for (const TensorView* t : {&k, &v}) {
    if (t->dtype != options_.dtype || t->ndim != 3 || t->shape[1] != pool.shape[2] ||
        t->shape[2] != pool.shape[3] || !t->is_contiguous() || t->device.kind != DeviceKind::kCpu) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kv cache: host KV must be contiguous ", AV(DTypeName(options_.dtype)), " [tokens, ",
          pool.shape[2], ", ", pool.shape[3], "] in CPU memory, got ", AV(t->DebugString())));
    }
  }
  if (k.shape[0] != v.shape[0]) {
    return absl::InvalidArgumentError("kv cache: K and V hold different token counts");
  }
  const int64_t end = int64_t{begin} + k.shape[0];
  const int64_t reserved = int64_t{options_.page_tokens} * seqs_[seq].pages.size();
  if (begin < 0 || end > reserved) {
    return absl::InvalidArgumentError(absl::StrCat("kv cache: positions [", begin, ", ", end,
                                                   ") outside the ", reserved,
                                                   " reserved positions of sequence ", seq));
  }
  return absl::OkStatus();
}

absl::Status PagedKvCache::ReadTokens(SeqId seq, int layer, int32_t begin, TensorView k_out,
                                      TensorView v_out) const {
  TANDEM_RETURN_IF_ERROR(CheckHostTokens(seq, layer, begin, k_out, v_out));
  const int32_t n = static_cast<int32_t>(k_out.shape[0]);
  const int32_t pt = options_.page_tokens;
  for (int32_t i = 0; i < n;) {
    const int32_t pos = begin + i;
    const int32_t run = std::min(n - i, pt - pos % pt);  // positions left in this page
    const int64_t offset = int64_t{Slot(seq, pos)} * row_bytes_;
    for (int kv = 0; kv < 2; ++kv) {
      const char* src = static_cast<const char*>((kv == 0 ? k_pools_ : v_pools_)[layer].data);
      char* dst = static_cast<char*>((kv == 0 ? k_out : v_out).data) + int64_t{i} * row_bytes_;
      TANDEM_RETURN_IF_ERROR(backend_->CopyToHost(dst, src + offset, run * row_bytes_));
    }
    i += run;
  }
  return absl::OkStatus();
}

absl::Status PagedKvCache::WriteTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                                       const TensorView& v) {
  TANDEM_RETURN_IF_ERROR(CheckHostTokens(seq, layer, begin, k, v));
  const int32_t n = static_cast<int32_t>(k.shape[0]);
  const int32_t pt = options_.page_tokens;
  for (int32_t i = 0; i < n;) {
    const int32_t pos = begin + i;
    const int32_t run = std::min(n - i, pt - pos % pt);
    const int64_t offset = int64_t{Slot(seq, pos)} * row_bytes_;
    for (int kv = 0; kv < 2; ++kv) {
      char* dst = static_cast<char*>((kv == 0 ? k_pools_ : v_pools_)[layer].data);
      const char* src = static_cast<const char*>((kv == 0 ? k : v).data) + int64_t{i} * row_bytes_;
      TANDEM_RETURN_IF_ERROR(backend_->CopyToDevice(dst + offset, src, run * row_bytes_));
    }
    i += run;
  }
  return absl::OkStatus();
}

}  // namespace tandem::model
