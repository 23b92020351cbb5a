#include "kernels/model/model_runner.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"

namespace tandem::model {
namespace {

using kernels::DeviceBuffer;
using kernels::KernelBackend;

absl::StatusOr<DeviceBuffer> F32Buffer(KernelBackend& backend, int64_t rows, int64_t cols) {
  return DeviceBuffer::Create(backend, rows * cols * static_cast<int64_t>(sizeof(float)));
}

TensorView F32(const DeviceBuffer& b, int64_t rows, int64_t cols) {
  return b.View(DType::kF32, {rows, cols});
}
TensorView F32(const DeviceBuffer& b, int64_t rows, int64_t heads, int64_t dim) {
  return b.View(DType::kF32, {rows, heads, dim});
}

}  // namespace

absl::Status RunnerOptions::Validate() const {
  if (kv_dtype != DType::kF16 && kv_dtype != DType::kF32) {
    return absl::InvalidArgumentError(
        absl::StrCat("kv_dtype ", AV(DTypeName(kv_dtype)), " unsupported; use f16 or f32"));
  }
  if (page_tokens <= 0) return absl::InvalidArgumentError(absl::StrCat("page_tokens ", page_tokens));
  if (kv_capacity_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("kv_capacity_tokens ", kv_capacity_tokens));
  }
  if (max_seqs <= 0) return absl::InvalidArgumentError(absl::StrCat("max_seqs ", max_seqs));
  if (max_batch_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_batch_tokens ", max_batch_tokens));
  }
  return absl::OkStatus();
}

void ForwardBatch::Add(SeqId seq, const std::vector<int32_t>& toks, int32_t start,
                       bool want_last_logits) {
  for (size_t i = 0; i < toks.size(); ++i) {
    tokens.push_back(toks[i]);
    positions.push_back(start + static_cast<int32_t>(i));
    seq_ids.push_back(seq);
  }
  if (want_last_logits && !toks.empty()) logit_rows.push_back(static_cast<int32_t>(tokens.size()) - 1);
}

absl::StatusOr<std::vector<float>> Logits::ToHost(KernelBackend& backend) const {
  std::vector<float> out(values.numel());
  if (!out.empty()) {
    TANDEM_RETURN_IF_ERROR(backend.CopyToHost(out.data(), values.data, values.nbytes()));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const format::GgufFile& gguf,
                                                                  KernelBackend& backend,
                                                                  const RunnerOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate());
  TANDEM_ASSIGN_OR_RETURN(format::ModelConfig config, format::ModelConfigFromGguf(gguf));
  auto runner = std::unique_ptr<ModelRunner>(new ModelRunner(config, backend, options));
  TANDEM_ASSIGN_OR_RETURN(runner->weights_, LlamaWeights::Load(gguf, config, backend));

  KvCacheOptions kv;
  kv.page_tokens = options.page_tokens;
  kv.max_seqs = options.max_seqs;
  kv.max_seq_tokens = config.context_length;
  kv.dtype = options.kv_dtype;
  const int32_t capacity =
      options.kv_capacity_tokens > 0 ? options.kv_capacity_tokens : config.context_length;
  kv.num_pages = (capacity + options.page_tokens - 1) / options.page_tokens;
  TANDEM_ASSIGN_OR_RETURN(runner->kv_, PagedKvCache::Create(backend, config, kv));

  const int64_t n = options.max_batch_tokens;
  const int64_t q_dim = int64_t{config.n_heads} * config.head_dim;
  TANDEM_ASSIGN_OR_RETURN(runner->x_, F32Buffer(backend, n, config.d_model));
  TANDEM_ASSIGN_OR_RETURN(runner->h_, F32Buffer(backend, n, config.d_model));
  TANDEM_ASSIGN_OR_RETURN(runner->q_, F32Buffer(backend, n, q_dim));
  TANDEM_ASSIGN_OR_RETURN(runner->k_, F32Buffer(backend, n, config.kv_dim()));
  TANDEM_ASSIGN_OR_RETURN(runner->v_, F32Buffer(backend, n, config.kv_dim()));
  TANDEM_ASSIGN_OR_RETURN(runner->attn_, F32Buffer(backend, n, q_dim));
  TANDEM_ASSIGN_OR_RETURN(runner->gate_, F32Buffer(backend, n, config.d_ffn));
  TANDEM_ASSIGN_OR_RETURN(runner->up_, F32Buffer(backend, n, config.d_ffn));
  const int64_t index_ints = 4 * n + int64_t{options.max_seqs} * runner->kv_->pages_per_seq();
  TANDEM_ASSIGN_OR_RETURN(runner->index_,
                          DeviceBuffer::Create(backend, index_ints * int64_t{sizeof(int32_t)}));
  runner->host_index_.resize(index_ints);
  return runner;
}

ModelRunner::~ModelRunner() = default;

// A dense-only runner never needs these (2 x context x kv_dim floats: 12 MB for SmolLM2, 1 GiB for
// an 8B model at 128K), so they are made on the first chunk that prefills through the op.
absl::Status ModelRunner::EnsurePrefillBuffers() {
  if (seq_k_.data() != nullptr) return absl::OkStatus();
  const int64_t ctx = config_.context_length;
  TANDEM_ASSIGN_OR_RETURN(seq_k_, F32Buffer(backend_, ctx, config_.kv_dim()));
  TANDEM_ASSIGN_OR_RETURN(seq_v_, F32Buffer(backend_, ctx, config_.kv_dim()));
  TANDEM_ASSIGN_OR_RETURN(kv_pos_, DeviceBuffer::Create(backend_, ctx * int64_t{sizeof(int32_t)}));
  TANDEM_ASSIGN_OR_RETURN(gather_slots_,
                          DeviceBuffer::Create(backend_, ctx * int64_t{sizeof(int32_t)}));
  std::vector<int32_t> positions(static_cast<size_t>(ctx));
  std::iota(positions.begin(), positions.end(), 0);
  TANDEM_RETURN_IF_ERROR(
      backend_.CopyToDevice(kv_pos_.data(), positions.data(), ctx * int64_t{sizeof(int32_t)}));
  host_gather_slots_.resize(static_cast<size_t>(ctx));
  return absl::OkStatus();
}

absl::Status ModelRunner::Validate(const ForwardBatch& batch) {
  const size_t n = batch.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("forward: empty batch");
  if (batch.positions.size() != n || batch.seq_ids.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("forward: ", n, " tokens but ",
                                                   batch.positions.size(), " positions and ",
                                                   batch.seq_ids.size(), " sequence ids"));
  }
  absl::flat_hash_map<SeqId, int32_t> next_pos;  // expected position of the next token per seq
  for (size_t i = 0; i < n; ++i) {
    const int32_t tok = batch.tokens[i];
    const int32_t pos = batch.positions[i];
    const SeqId seq = batch.seq_ids[i];
    if (tok < 0 || tok >= config_.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: token id ", tok, " outside the vocabulary [0, ",
                       config_.vocab_size, ")"));
    }
    if (!kv_->IsLive(seq)) {
      return absl::InvalidArgumentError(absl::StrCat("forward: unknown sequence ", seq));
    }
    if (pos >= config_.context_length) {
      return absl::OutOfRangeError(absl::StrCat("forward: position ", pos,
                                                " exceeds the model's context length of ",
                                                config_.context_length, " tokens"));
    }
    auto it = next_pos.find(seq);
    if (it == next_pos.end()) {
      if (pos < 0 || pos > kv_->Length(seq)) {
        return absl::InvalidArgumentError(absl::StrCat("forward: sequence ", seq, " holds ",
                                                       kv_->Length(seq),
                                                       " tokens; cannot start at position ", pos));
      }
      next_pos[seq] = pos + 1;
    } else {
      if (pos != it->second) {
        return absl::InvalidArgumentError(absl::StrCat("forward: sequence ", seq, " position ",
                                                       pos, " follows ", it->second - 1,
                                                       "; positions must be consecutive"));
      }
      it->second = pos + 1;
    }
  }
  for (int32_t row : batch.logit_rows) {
    if (row < 0 || row >= static_cast<int32_t>(n)) {
      return absl::InvalidArgumentError(absl::StrCat("forward: logit row ", row, " outside [0, ",
                                                     n, ")"));
    }
  }
  for (const auto& [seq, end] : next_pos) TANDEM_RETURN_IF_ERROR(kv_->Reserve(seq, end));
  return absl::OkStatus();
}

absl::Status ModelRunner::EnsureLogitCapacity(int64_t rows) {
  if (rows <= logits_rows_) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(logits_, F32Buffer(backend_, rows, config_.vocab_size));
  logits_rows_ = rows;
  return absl::OkStatus();
}

absl::StatusOr<Logits> ModelRunner::Forward(const ForwardBatch& batch) {
  TANDEM_RETURN_IF_ERROR(Validate(batch));
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  TANDEM_RETURN_IF_ERROR(EnsureLogitCapacity(std::max<int64_t>(rows, 1)));
  const int32_t n = static_cast<int32_t>(batch.tokens.size());
  sparse_ = batch.prefill_attention.has_value() ? &*batch.prefill_attention
                                                : &options_.prefill_attention;
  report_ = PrefillAttentionReport{};
  report_.method = sparse_->method;
  for (int32_t begin = 0; begin < n; begin += options_.max_batch_tokens) {
    const int32_t end = std::min(n, begin + options_.max_batch_tokens);
    TANDEM_RETURN_IF_ERROR(ForwardChunk(batch, begin, end));
  }
  for (int32_t i = 0; i < n; ++i) {
    kv_->SetLength(batch.seq_ids[i], batch.positions[i] + 1);
  }
  Logits out;
  out.values = logits_.View(DType::kF32, {rows, config_.vocab_size});
  out.attention = report_;
  return out;
}

absl::Status ModelRunner::ForwardChunk(const ForwardBatch& batch, int32_t begin, int32_t end) {
  const int32_t n = end - begin;
  // Index arrays: ids | positions | slots | q_seq | page_table[rows of the chunk's sequences].
  int32_t* ids = host_index_.data();
  int32_t* pos = ids + n;
  int32_t* slots = pos + n;
  int32_t* q_seq = slots + n;
  int32_t* table = q_seq + n;
  const int32_t pages_per_seq = kv_->pages_per_seq();
  absl::flat_hash_map<SeqId, int32_t> table_row;
  for (int32_t i = 0; i < n; ++i) {
    const int32_t t = begin + i;
    const SeqId seq = batch.seq_ids[t];
    ids[i] = batch.tokens[t];
    pos[i] = batch.positions[t];
    slots[i] = kv_->Slot(seq, pos[i]);
    auto [it, inserted] = table_row.try_emplace(seq, static_cast<int32_t>(table_row.size()));
    if (inserted) {
      const std::vector<int32_t>& pages = kv_->PageTable(seq);
      int32_t* row = table + int64_t{it->second} * pages_per_seq;
      std::fill(row, row + pages_per_seq, 0);
      std::copy(pages.begin(), pages.end(), row);
    }
    q_seq[i] = it->second;
  }
  const int64_t n_seqs = static_cast<int64_t>(table_row.size());
  const int64_t used = 4 * int64_t{n} + n_seqs * pages_per_seq;
  TANDEM_RETURN_IF_ERROR(
      backend_.CopyToDevice(index_.data(), host_index_.data(), used * int64_t{sizeof(int32_t)}));
  int32_t* dev = static_cast<int32_t*>(index_.data());
  const Device device = backend_.device();
  ids_ = TensorView::Contiguous(dev, DType::kI32, {n}, device);
  pos_ = TensorView::Contiguous(dev + n, DType::kI32, {n}, device);
  slots_ = TensorView::Contiguous(dev + 2 * n, DType::kI32, {n}, device);
  q_seq_ = TensorView::Contiguous(dev + 3 * n, DType::kI32, {n}, device);
  page_table_ = TensorView::Contiguous(dev + 4 * n, DType::kI32, {n_seqs, pages_per_seq}, device);
  // A chunk of several tokens of one sequence is a prefill: AttentionPrefill over the gathered K/V
  // for the sparse methods (dense too when asked). Dense stays on PagedAttention by default, which
  // keeps prefill logits bitwise equal to decoding token by token: the fast matmul rounds
  // activations to 8 bits, so even 1e-7 attention differences flip roundings and grow to ~1e-3.
  prefill_seq_ = -1;
  const bool use_prefill_op =
      sparse_->method != kernels::SparseMethod::kDense || options_.dense_prefill_kernel;
  if (use_prefill_op && n_seqs == 1 && n > 1) {
    TANDEM_RETURN_IF_ERROR(EnsurePrefillBuffers());
    prefill_seq_ = batch.seq_ids[begin];
    prefill_end_ = pos[n - 1] + 1;
    for (int32_t p = 0; p < prefill_end_; ++p) host_gather_slots_[p] = kv_->Slot(prefill_seq_, p);
    TANDEM_RETURN_IF_ERROR(backend_.CopyToDevice(gather_slots_.data(), host_gather_slots_.data(),
                                                 int64_t{prefill_end_} * int64_t{sizeof(int32_t)}));
  }

  const TensorView x = F32(x_, n, config_.d_model);
  TANDEM_RETURN_IF_ERROR(backend_.Run(
      kernels::EmbeddingParams{.table = weights_.token_embd, .ids = ids_, .out = x}));
  for (int layer = 0; layer < config_.n_layers; ++layer) {
    TANDEM_RETURN_IF_ERROR(RunLayer(layer, n));
  }

  // Final norm and LM head for the requested rows inside this chunk, one call per consecutive run.
  const int32_t rows = static_cast<int32_t>(batch.logit_rows.size());
  for (int32_t r = 0; r < rows;) {
    const int32_t t = batch.logit_rows[r];
    if (t < begin || t >= end) {
      ++r;
      continue;
    }
    int32_t run = 1;
    while (r + run < rows && batch.logit_rows[r + run] == t + run && t + run < end) ++run;
    const TensorView xs = x.Rows(t - begin, t - begin + run);
    const TensorView hs = F32(h_, n, config_.d_model).Rows(0, run);
    TANDEM_RETURN_IF_ERROR(backend_.Run(kernels::RmsNormParams{
        .x = xs, .weight = weights_.output_norm, .out = hs, .eps = config_.rms_norm_eps}));
    const TensorView out = logits_.View(DType::kF32, {logits_rows_, config_.vocab_size}).Rows(r, r + run);
    TANDEM_RETURN_IF_ERROR(
        backend_.Run(kernels::MatMulParams{.w = weights_.lm_head, .x = hs, .y = out}));
    r += run;
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::RunLayer(int layer, int32_t n) {
  const LayerWeights& w = weights_.layers[layer];
  const format::ModelConfig& c = config_;
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
  const TensorView x = F32(x_, n, c.d_model);
  const TensorView h = F32(h_, n, c.d_model);
  const TensorView q = F32(q_, n, q_dim);
  const TensorView k = F32(k_, n, c.kv_dim());
  const TensorView v = F32(v_, n, c.kv_dim());
  const TensorView attn = F32(attn_, n, q_dim);
  const TensorView gate = F32(gate_, n, c.d_ffn);
  const TensorView up = F32(up_, n, c.d_ffn);
  KernelBackend& b = backend_;

  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RmsNormParams{
      .x = x, .weight = w.attn_norm, .out = h, .eps = c.rms_norm_eps}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.wq, .x = h, .y = q}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.wk, .x = h, .y = k}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.wv, .x = h, .y = v}));
  const TensorView q3 = F32(q_, n, c.n_heads, c.head_dim);
  const TensorView k3 = F32(k_, n, c.n_kv_heads, c.head_dim);
  const TensorView v3 = F32(v_, n, c.n_kv_heads, c.head_dim);
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RopeParams{
      .x = q3, .positions = pos_, .freq_base = c.rope_freq_base, .n_rot = c.n_rot}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RopeParams{
      .x = k3, .positions = pos_, .freq_base = c.rope_freq_base, .n_rot = c.n_rot}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::KvWriteParams{.k = k3,
                                                      .v = v3,
                                                      .k_pool = kv_->k_pool(layer),
                                                      .v_pool = kv_->v_pool(layer),
                                                      .slots = slots_}));
  TANDEM_RETURN_IF_ERROR(RunAttention(layer, n));
  TANDEM_RETURN_IF_ERROR(
      b.Run(kernels::MatMulParams{.w = w.wo, .x = attn, .y = x, .accumulate = true}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RmsNormParams{
      .x = x, .weight = w.ffn_norm, .out = h, .eps = c.rms_norm_eps}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.w_gate, .x = h, .y = gate}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.w_up, .x = h, .y = up}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::SwiGluParams{.gate = gate, .up = up, .out = gate}));
  TANDEM_RETURN_IF_ERROR(
      b.Run(kernels::MatMulParams{.w = w.w_down, .x = gate, .y = x, .accumulate = true}));
  return absl::OkStatus();
}

absl::Status ModelRunner::RunAttention(int layer, int32_t n) {
  const format::ModelConfig& c = config_;
  const TensorView q3 = F32(q_, n, c.n_heads, c.head_dim);
  const TensorView out = F32(attn_, n, c.n_heads, c.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  const bool device = backend_.device().kind != DeviceKind::kCpu;
  if (device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
  absl::Time start = absl::Now();
  if (prefill_seq_ < 0) {
    TANDEM_RETURN_IF_ERROR(backend_.Run(kernels::PagedAttentionParams{
        .q = q3,
        .k_pool = kv_->k_pool(layer),
        .v_pool = kv_->v_pool(layer),
        .out = out,
        .q_seq = q_seq_,
        .q_pos = pos_,
        .page_table = page_table_,
        .scale = scale}));
  } else {
    // The pools hold what PagedAttention would read (f16-rounded by default), so dense prefill
    // through this path matches it; the copy is O(context) per layer and chunk.
    const int64_t end = prefill_end_;
    const TensorView seq_k = seq_k_.View(DType::kF32, {end, c.n_kv_heads, c.head_dim});
    const TensorView seq_v = seq_v_.View(DType::kF32, {end, c.n_kv_heads, c.head_dim});
    TANDEM_RETURN_IF_ERROR(backend_.Run(
        kernels::KvGatherParams{.k_pool = kv_->k_pool(layer),
                                .v_pool = kv_->v_pool(layer),
                                .slots = gather_slots_.View(DType::kI32, {end}),
                                .k = seq_k,
                                .v = seq_v}));
    if (device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
    const absl::Time gathered = absl::Now();
    report_.gather_seconds += absl::ToDoubleSeconds(gathered - start);
    start = gathered;
    kernels::AttentionStats stats;
    const kernels::AttentionPrefillParams call{
        .q = q3,
        .k = seq_k,
        .v = seq_v,
        .out = out,
        .q_pos = pos_,
        .kv_pos = kv_pos_.View(DType::kI32, {end}),
        .scale = scale,
        .sparse = *sparse_,
        .stats = &stats};
    TANDEM_RETURN_IF_ERROR(backend_.Run(call));
    if (options_.prefill_attention_observer) {
      const absl::Time observed = absl::Now();
      options_.prefill_attention_observer(layer, call);
      start += absl::Now() - observed;  // not attention time of this request
    }
    ++report_.prefill_calls;
    report_.causal_blocks += stats.causal_blocks;
    report_.computed_blocks += stats.computed_blocks;
  }
  if (device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
  report_.attention_seconds += absl::ToDoubleSeconds(absl::Now() - start);
  return absl::OkStatus();
}

}  // namespace tandem::model
