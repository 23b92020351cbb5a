#include "kernels/model/paged_kv_cache.h"

#include <algorithm>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"

namespace tandem::model {

absl::StatusOr<std::unique_ptr<PagedKvCache>> PagedKvCache::Create(
    kernels::KernelBackend& backend, const format::ModelConfig& config,
    const KvCacheOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  auto cache = std::unique_ptr<PagedKvCache>(new PagedKvCache(backend, config));
  cache->options_ = options;
  cache->page_tokens_ = options.page_tokens;
  const int64_t capacity =
      options.capacity_tokens > 0 ? options.capacity_tokens : config.context_length;
  cache->num_pages_ =
      static_cast<int32_t>((capacity + options.page_tokens - 1) / options.page_tokens);
  cache->pages_per_seq_ = (config.context_length + options.page_tokens - 1) / options.page_tokens;
  cache->row_bytes_ = DTypeRowBytes(options.dtype, int64_t{config.n_kv_heads} * config.head_dim);
  const int64_t pool_bytes = int64_t{cache->num_pages_} * options.page_tokens * cache->row_bytes_;
  TANDEM_ASSIGN_OR_RETURN(cache->buffer_,
                          kernels::DeviceBuffer::Create(backend, pool_bytes * 2 * config.n_layers));
  char* base = static_cast<char*>(cache->buffer_.data());
  for (int l = 0; l < config.n_layers; ++l) {
    for (int kv = 0; kv < 2; ++kv) {
      TensorView pool = TensorView::Contiguous(
          base + (2 * l + kv) * pool_bytes, options.dtype,
          {cache->num_pages_, options.page_tokens, config.n_kv_heads, config.head_dim},
          backend.device());
      (kv == 0 ? cache->k_pools_ : cache->v_pools_).push_back(pool);
    }
  }
  cache->seqs_.resize(options.max_seqs);
  for (int32_t p = cache->num_pages_ - 1; p >= 0; --p) cache->free_pages_.push_back(p);
  return cache;
}

void PagedKvCache::DescribeFormat(KvFormat& format) const {
  format.layout = KvLayout::kGqa;
  format.latent_rank = 0;
  format.projection = {};
  format.dtype = options_.dtype;
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
  if (tokens > config_.context_length) {
    return absl::OutOfRangeError(absl::StrCat("kv cache: ", tokens, " tokens exceed the limit of ",
                                              config_.context_length, " per sequence"));
  }
  const int32_t need = (tokens + page_tokens_ - 1) / page_tokens_;
  std::vector<int32_t>& pages = seqs_[seq].pages;
  if (need - static_cast<int32_t>(pages.size()) > static_cast<int32_t>(free_pages_.size())) {
    return absl::ResourceExhaustedError(absl::StrCat("kv cache full: ", tokens, " tokens need ",
                                                     need - pages.size(), " more pages, ",
                                                     free_pages_.size(), " free of ", num_pages_));
  }
  while (static_cast<int32_t>(pages.size()) < need) {
    pages.push_back(free_pages_.back());
    free_pages_.pop_back();
  }
  return absl::OkStatus();
}

int32_t PagedKvCache::Slot(SeqId seq, int32_t pos) const {
  const std::vector<int32_t>& pages = seqs_[seq].pages;
  TANDEM_DCHECK(pos / page_tokens_ < static_cast<int32_t>(pages.size())) << "pos " << pos;
  return pages[pos / page_tokens_] * page_tokens_ + pos % page_tokens_;
}

KvRowFormat PagedKvCache::row_format() const {
  return KvRowFormat{config_.n_layers, options_.dtype, {config_.n_kv_heads, config_.head_dim}};
}

absl::Status PagedKvCache::CheckHostTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                                           const TensorView& v) const {
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
  const int64_t reserved = int64_t{page_tokens_} * seqs_[seq].pages.size();
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
  for (int32_t i = 0; i < n;) {
    const int32_t pos = begin + i;
    const int32_t run = std::min(n - i, page_tokens_ - pos % page_tokens_);  // left in this page
    const int64_t offset = int64_t{Slot(seq, pos)} * row_bytes_;
    for (int kv = 0; kv < 2; ++kv) {
      const char* src = static_cast<const char*>((kv == 0 ? k_pools_ : v_pools_)[layer].data);
      char* dst = static_cast<char*>((kv == 0 ? k_out : v_out).data) + int64_t{i} * row_bytes_;
      TANDEM_RETURN_IF_ERROR(backend_.CopyToHost(dst, src + offset, run * row_bytes_));
    }
    i += run;
  }
  return absl::OkStatus();
}

absl::Status PagedKvCache::WriteTokens(SeqId seq, int layer, int32_t begin, const TensorView& k,
                                       const TensorView& v) {
  TANDEM_RETURN_IF_ERROR(CheckHostTokens(seq, layer, begin, k, v));
  const int32_t n = static_cast<int32_t>(k.shape[0]);
  for (int32_t i = 0; i < n;) {
    const int32_t pos = begin + i;
    const int32_t run = std::min(n - i, page_tokens_ - pos % page_tokens_);
    const int64_t offset = int64_t{Slot(seq, pos)} * row_bytes_;
    for (int kv = 0; kv < 2; ++kv) {
      char* dst = static_cast<char*>((kv == 0 ? k_pools_ : v_pools_)[layer].data);
      const char* src = static_cast<const char*>((kv == 0 ? k : v).data) + int64_t{i} * row_bytes_;
      TANDEM_RETURN_IF_ERROR(backend_.CopyToDevice(dst + offset, src, run * row_bytes_));
    }
    i += run;
  }
  return absl::OkStatus();
}

absl::Status PagedKvCache::Prepare(const RowBatch& rows) {
  TANDEM_ASSIGN_OR_RETURN(
      const auto ends, CheckKeysHeld(rows, [this](SeqId seq) -> absl::StatusOr<int32_t> {
        if (!IsLive(seq)) {
          return absl::InvalidArgumentError(absl::StrCat("forward: unknown sequence ", seq));
        }
        return Length(seq);
      }));
  for (const auto& [seq, end] : ends) TANDEM_RETURN_IF_ERROR(Reserve(seq, end));
  return absl::OkStatus();
}

void PagedKvCache::Commit(const RowBatch& rows) {
  for (int32_t i = 0; i < rows.size(); ++i) {
    Sequence& s = seqs_[rows.seq_ids[i]];
    s.length = LengthAfter(s.length, {rows.positions[i]});
  }
}

absl::Status PagedKvCache::BeginChunk(const KvChunk& chunk) {
  chunk_ = chunk;
  const RowBatch& rows = *chunk.rows;
  const int32_t n = chunk.size();
  absl::flat_hash_map<SeqId, int32_t> table_row;
  for (int32_t t = chunk.begin; t < chunk.end; ++t) {
    table_row.try_emplace(rows.seq_ids[t], static_cast<int32_t>(table_row.size()));
  }
  chunk_seqs_ = static_cast<int32_t>(table_row.size());
  const int64_t ints = 3 * int64_t{n} + int64_t{chunk_seqs_} * pages_per_seq_;
  if (static_cast<int64_t>(host_index_.size()) < ints) {
    host_index_.resize(ints);
    TANDEM_ASSIGN_OR_RETURN(
        index_, kernels::DeviceBuffer::Create(backend_, ints * int64_t{sizeof(int32_t)}));
  }
  int32_t* slots = host_index_.data();
  int32_t* last_keys = slots + n;
  int32_t* q_seq = last_keys + n;
  int32_t* table = q_seq + n;
  bool causal = true;
  chunk_key_end_ = 0;
  for (const auto& [seq, row_index] : table_row) {
    const std::vector<int32_t>& pages = seqs_[seq].pages;
    int32_t* row = table + int64_t{row_index} * pages_per_seq_;
    std::fill(row, row + pages_per_seq_, 0);
    std::copy(pages.begin(), pages.end(), row);
  }
  for (int32_t i = 0; i < n; ++i) {
    const int32_t t = chunk.begin + i;
    const int32_t limit = rows.KeyLimit(t);
    slots[i] = Slot(rows.seq_ids[t], rows.positions[t]);
    last_keys[i] = limit - 1;
    q_seq[i] = table_row[rows.seq_ids[t]];
    causal = causal && limit == rows.positions[t] + 1;
    chunk_key_end_ = std::max(chunk_key_end_, limit);
  }
  chunk_prefill_shape_ = chunk_seqs_ == 1 && n > 1 && causal;
  TANDEM_RETURN_IF_ERROR(
      backend_.CopyToDevice(index_.data(), host_index_.data(), ints * int64_t{sizeof(int32_t)}));
  int32_t* dev = static_cast<int32_t*>(index_.data());
  const Device device = backend_.device();
  slots_ = TensorView::Contiguous(dev, DType::kI32, {n}, device);
  last_keys_ = TensorView::Contiguous(dev + n, DType::kI32, {n}, device);
  q_seq_ = TensorView::Contiguous(dev + 2 * n, DType::kI32, {n}, device);
  page_table_ =
      TensorView::Contiguous(dev + 3 * n, DType::kI32, {chunk_seqs_, pages_per_seq_}, device);
  gather_slots_ready_ = false;
  return absl::OkStatus();
}

absl::Status PagedKvCache::Store(int layer, const TensorView& k, const TensorView& v) {
  TANDEM_RETURN_IF_ERROR(RotateKeys(backend_, config_, k, chunk_.positions));
  return backend_.Run(kernels::KvWriteParams{
      .k = k, .v = v, .k_pool = k_pools_[layer], .v_pool = v_pools_[layer], .slots = slots_});
}

bool PagedKvCache::UsesPrefillOp(const AttentionContext& ctx) const {
  // Dense stays on PagedAttention by default, which keeps prefill logits bitwise equal to decoding
  // token by token: the fast matmul rounds activations to 8 bits, so even 1e-7 attention
  // differences flip roundings and grow to ~1e-3.
  return chunk_prefill_shape_ &&
         (ctx.sparse.method != kernels::SparseMethod::kDense || ctx.dense_prefill_kernel);
}

absl::Status PagedKvCache::Attend(int layer, const TensorView& q, const TensorView& out,
                                  AttentionContext& ctx) {
  if (UsesPrefillOp(ctx)) return AttendPrefill(layer, q, out, ctx);
  return backend_.Run(kernels::PagedAttentionParams{.q = q,
                                                    .k_pool = k_pools_[layer],
                                                    .v_pool = v_pools_[layer],
                                                    .out = out,
                                                    .q_seq = q_seq_,
                                                    .q_pos = last_keys_,
                                                    .page_table = page_table_,
                                                    .scale = ctx.scale});
}

// A dense-only cache never needs these (2 x context x kv_dim floats: 12 MB for SmolLM2, 1 GiB for
// an 8B model at 128K), so they are made on the first chunk that prefills through the op.
absl::Status PagedKvCache::EnsureGatherBuffers() {
  if (seq_k_.data() != nullptr) return absl::OkStatus();
  const int64_t ctx = config_.context_length;
  const int64_t floats = ctx * config_.kv_dim() * int64_t{sizeof(float)};
  TANDEM_ASSIGN_OR_RETURN(seq_k_, kernels::DeviceBuffer::Create(backend_, floats));
  TANDEM_ASSIGN_OR_RETURN(seq_v_, kernels::DeviceBuffer::Create(backend_, floats));
  TANDEM_ASSIGN_OR_RETURN(kv_pos_,
                          kernels::DeviceBuffer::Create(backend_, ctx * int64_t{sizeof(int32_t)}));
  TANDEM_ASSIGN_OR_RETURN(gather_slots_,
                          kernels::DeviceBuffer::Create(backend_, ctx * int64_t{sizeof(int32_t)}));
  std::vector<int32_t> positions(static_cast<size_t>(ctx));
  std::iota(positions.begin(), positions.end(), 0);
  TANDEM_RETURN_IF_ERROR(
      backend_.CopyToDevice(kv_pos_.data(), positions.data(), ctx * int64_t{sizeof(int32_t)}));
  host_gather_slots_.resize(static_cast<size_t>(ctx));
  return absl::OkStatus();
}

// The pool slots of positions 0..chunk_key_end_-1, once per chunk that prefills through the op
// (a dense chunk on PagedAttention never pays for them).
absl::Status PagedKvCache::UploadGatherSlots() {
  if (gather_slots_ready_) return absl::OkStatus();
  const SeqId seq = chunk_.rows->seq_ids[chunk_.begin];
  for (int32_t p = 0; p < chunk_key_end_; ++p) host_gather_slots_[p] = Slot(seq, p);
  TANDEM_RETURN_IF_ERROR(backend_.CopyToDevice(gather_slots_.data(), host_gather_slots_.data(),
                                               int64_t{chunk_key_end_} * int64_t{sizeof(int32_t)}));
  gather_slots_ready_ = true;
  return absl::OkStatus();
}

absl::Status PagedKvCache::AttendPrefill(int layer, const TensorView& q, const TensorView& out,
                                         AttentionContext& ctx) {
  TANDEM_RETURN_IF_ERROR(EnsureGatherBuffers());
  TANDEM_RETURN_IF_ERROR(UploadGatherSlots());
  // The pools hold what PagedAttention would read (f16-rounded by default), so dense prefill
  // through this path matches it; the copy is O(context) per layer and chunk.
  const int64_t end = chunk_key_end_;
  const TensorView seq_k = seq_k_.View(DType::kF32, {end, config_.n_kv_heads, config_.head_dim});
  const TensorView seq_v = seq_v_.View(DType::kF32, {end, config_.n_kv_heads, config_.head_dim});
  const bool device = backend_.device().kind != DeviceKind::kCpu;
  if (ctx.timed && device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
  const absl::Time start = absl::Now();
  TANDEM_RETURN_IF_ERROR(
      backend_.Run(kernels::KvGatherParams{.k_pool = k_pools_[layer],
                                           .v_pool = v_pools_[layer],
                                           .slots = gather_slots_.View(DType::kI32, {end}),
                                           .k = seq_k,
                                           .v = seq_v}));
  if (ctx.timed) {
    if (device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
    ctx.report->gather_seconds += absl::ToDoubleSeconds(absl::Now() - start);
  }
  kernels::AttentionStats stats;
  const kernels::AttentionPrefillParams call{.q = q,
                                             .k = seq_k,
                                             .v = seq_v,
                                             .out = out,
                                             .q_pos = chunk_.positions,
                                             .kv_pos = kv_pos_.View(DType::kI32, {end}),
                                             .scale = ctx.scale,
                                             .sparse = ctx.sparse,
                                             .stats = &stats};
  TANDEM_RETURN_IF_ERROR(backend_.Run(call));
  if (ctx.observer != nullptr && *ctx.observer) {
    const absl::Time observed = absl::Now();
    (*ctx.observer)(layer, call);
    ctx.observer_seconds += absl::ToDoubleSeconds(absl::Now() - observed);
  }
  ++ctx.report->prefill_calls;
  ctx.report->causal_blocks += stats.causal_blocks;
  ctx.report->computed_blocks += stats.computed_blocks;
  return absl::OkStatus();
}

}  // namespace tandem::model
