#include "kernels/model/model_runner.h"

#include <algorithm>
#include <cmath>

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

// Copies `values` into `buffer` on the device, growing it when too small.
absl::Status UploadInts(KernelBackend& backend, absl::Span<const int32_t> values,
                        DeviceBuffer& buffer) {
  const int64_t bytes = static_cast<int64_t>(values.size()) * int64_t{sizeof(int32_t)};
  if (buffer.bytes() < bytes) {
    TANDEM_ASSIGN_OR_RETURN(buffer, DeviceBuffer::Create(backend, bytes));
  }
  return backend.CopyToDevice(buffer.data(), values.data(), bytes);
}

}  // namespace

// One Forward/RunLayers call: its attention settings and report, and the current chunk.
struct ModelRunner::Call {
  AttentionContext attention;
  PrefillAttentionReport report;
  bool device = false;  // the backend is not the host: timing needs synchronisation
  bool time_layers = false;
  KvChunk chunk;
};

absl::Status RunnerOptions::Validate() const {
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

TensorView HiddenStates::view() const { return buffer_.View(DType::kF32, {rows_, width_}); }

absl::StatusOr<std::vector<float>> HiddenStates::ToHost(KernelBackend& backend) const {
  std::vector<float> out(static_cast<size_t>(rows_) * width_);
  if (!out.empty()) {
    TANDEM_RETURN_IF_ERROR(backend.CopyToHost(out.data(), buffer_.data(),
                                              static_cast<int64_t>(out.size() * sizeof(float))));
  }
  return out;
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
  return runner;
}

ModelRunner::~ModelRunner() = default;

absl::Status ModelRunner::CheckRows(const RowBatch& rows) const {
  const size_t n = rows.positions.size();
  if (n == 0) return absl::InvalidArgumentError("forward: empty batch");
  if (rows.seq_ids.size() != n || (!rows.key_limits.empty() && rows.key_limits.size() != n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("forward: ", n, " positions but ", rows.seq_ids.size(), " sequence ids and ",
                     rows.key_limits.size(), " key limits (0 or one per row)"));
  }
  absl::flat_hash_map<SeqId, int32_t> last;  // the previous row's position, per sequence
  for (int32_t i = 0; i < rows.size(); ++i) {
    const int32_t pos = rows.positions[i];
    if (pos < 0) return absl::InvalidArgumentError(absl::StrCat("forward: position ", pos, " < 0"));
    if (pos >= config_.context_length) {
      return absl::OutOfRangeError(absl::StrCat("forward: position ", pos,
                                                " exceeds the model's context length of ",
                                                config_.context_length, " tokens"));
    }
    auto [it, first] = last.try_emplace(rows.seq_ids[i], pos);
    if (!first) {
      if (pos <= it->second) {
        return absl::InvalidArgumentError(
            absl::StrCat("forward: sequence ", rows.seq_ids[i], " position ", pos, " follows ",
                         it->second, "; a sequence's rows must come in increasing position order"));
      }
      it->second = pos;
    }
    const int32_t limit = rows.KeyLimit(i);
    if (limit < 1 || limit > pos + 1) {
      return absl::InvalidArgumentError(absl::StrCat("forward: key limit ", limit,
                                                     " of the row at position ", pos,
                                                     " is outside [1, ", pos + 1, "]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::EnsureHidden(HiddenStates& hidden, int32_t rows) {
  const int64_t bytes = int64_t{rows} * config_.d_model * int64_t{sizeof(float)};
  if (hidden.buffer_.bytes() < bytes) {
    TANDEM_ASSIGN_OR_RETURN(hidden.buffer_, DeviceBuffer::Create(backend_, bytes));
  }
  hidden.rows_ = rows;
  hidden.width_ = config_.d_model;
  return absl::OkStatus();
}

absl::Status ModelRunner::CheckTokens(absl::Span<const int32_t> tokens) const {
  for (const int32_t tok : tokens) {
    if (tok < 0 || tok >= config_.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "forward: token id ", tok, " outside the vocabulary [0, ", config_.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::EmbedInto(absl::Span<const int32_t> tokens, const TensorView& out) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  TANDEM_RETURN_IF_ERROR(UploadInts(backend_, tokens, ids_));
  return backend_.Run(kernels::EmbeddingParams{
      .table = weights_.token_embd, .ids = ids_.View(DType::kI32, {n}), .out = out});
}

absl::StatusOr<HiddenStates> ModelRunner::Embed(absl::Span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("embed: no tokens");
  TANDEM_RETURN_IF_ERROR(CheckTokens(tokens));
  HiddenStates hidden;
  TANDEM_RETURN_IF_ERROR(EnsureHidden(hidden, static_cast<int32_t>(tokens.size())));
  TANDEM_RETURN_IF_ERROR(EmbedInto(tokens, hidden.view()));
  return hidden;
}

absl::Status ModelRunner::UploadPositions(const RowBatch& rows) {
  return UploadInts(backend_, rows.positions, positions_);
}

absl::StatusOr<Logits> ModelRunner::Forward(const ForwardBatch& batch, KvAccess& kv) {
  TANDEM_RETURN_IF_ERROR(CheckRows(batch));
  const int32_t n = batch.size();
  if (batch.tokens.size() != batch.positions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("forward: ", batch.tokens.size(), " tokens but ", n, " positions"));
  }
  for (int32_t row : batch.logit_rows) {
    if (row < 0 || row >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("forward: logit row ", row, " outside [0, ", n, ")"));
    }
  }
  TANDEM_RETURN_IF_ERROR(CheckTokens(batch.tokens));
  TANDEM_RETURN_IF_ERROR(EnsureLogits(static_cast<int64_t>(batch.logit_rows.size())));
  TANDEM_RETURN_IF_ERROR(kv.Prepare(batch));
  // Chunk by chunk, activation memory stays at max_batch_tokens rows: embed the chunk into the
  // scratch rows, run every layer, and take the logits of the chunk's requested rows before the
  // next chunk reuses the scratch.
  Call call;
  const auto embed = [&](int32_t begin, int32_t end) -> absl::StatusOr<TensorView> {
    const TensorView x = F32(x_, end - begin, config_.d_model);
    TANDEM_RETURN_IF_ERROR(
        EmbedInto(absl::MakeConstSpan(batch.tokens).subspan(begin, end - begin), x));
    return x;
  };
  const auto logits = [&](const TensorView& x, int32_t begin, int32_t end) {
    return LogitsInto(x, begin, end, batch.logit_rows);
  };
  TANDEM_RETURN_IF_ERROR(RunChunks(batch, kv, 0, config_.n_layers, call, embed, logits));
  kv.Commit(batch);
  Logits out;
  out.values = logits_.View(DType::kF32,
                            {static_cast<int64_t>(batch.logit_rows.size()), config_.vocab_size});
  out.attention = std::move(call.report);
  return out;
}

absl::Status ModelRunner::RunLayers(const RowBatch& rows, KvAccess& kv, int first, int last,
                                    HiddenStates& hidden, PrefillAttentionReport* report) {
  TANDEM_RETURN_IF_ERROR(CheckRows(rows));
  if (first < 0 || last > config_.n_layers || first > last) {
    return absl::InvalidArgumentError(absl::StrCat("run layers: [", first, ", ", last,
                                                   ") is not within [0, ", config_.n_layers, "]"));
  }
  if (hidden.rows() != rows.size() || hidden.width_ != config_.d_model) {
    return absl::InvalidArgumentError(absl::StrCat(
        "run layers: ", rows.size(), " rows but hidden states of ", hidden.rows(), " rows"));
  }
  if (first == last) return absl::OkStatus();
  TANDEM_RETURN_IF_ERROR(kv.Prepare(rows));
  Call call;
  const TensorView all = hidden.view();
  const auto rows_of = [&](int32_t begin, int32_t end) -> absl::StatusOr<TensorView> {
    return all.Rows(begin, end);
  };
  const auto nothing = [](const TensorView&, int32_t, int32_t) { return absl::OkStatus(); };
  TANDEM_RETURN_IF_ERROR(RunChunks(rows, kv, first, last, call, rows_of, nothing));
  kv.Commit(rows);
  if (report != nullptr) {
    report->method = call.report.method;
    report->prefill_calls += call.report.prefill_calls;
    report->causal_blocks += call.report.causal_blocks;
    report->computed_blocks += call.report.computed_blocks;
    report->timed = call.report.timed;
    report->attention_seconds += call.report.attention_seconds;
    report->gather_seconds += call.report.gather_seconds;
    report->layer_seconds.resize(
        std::max(report->layer_seconds.size(), call.report.layer_seconds.size()));
    for (size_t l = 0; l < call.report.layer_seconds.size(); ++l) {
      report->layer_seconds[l] += call.report.layer_seconds[l];
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<HiddenStates> ModelRunner::SelectRows(const HiddenStates& hidden,
                                                     absl::Span<const int32_t> rows) {
  if (rows.empty()) return absl::InvalidArgumentError("select rows: no rows");
  for (int32_t row : rows) {
    if (row < 0 || row >= hidden.rows()) {
      return absl::InvalidArgumentError(
          absl::StrCat("select rows: row ", row, " outside [0, ", hidden.rows(), ")"));
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> all, hidden.ToHost(backend_));
  const int64_t width = config_.d_model;
  std::vector<float> picked(rows.size() * width);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(all.begin() + rows[i] * width, width, picked.begin() + i * width);
  }
  HiddenStates out;
  TANDEM_RETURN_IF_ERROR(EnsureHidden(out, static_cast<int32_t>(rows.size())));
  TANDEM_RETURN_IF_ERROR(backend_.CopyToDevice(
      out.buffer_.data(), picked.data(), static_cast<int64_t>(picked.size() * sizeof(float))));
  return out;
}

absl::StatusOr<Logits> ModelRunner::ComputeLogits(const HiddenStates& hidden,
                                                  absl::Span<const int32_t> rows) {
  for (int32_t row : rows) {
    if (row < 0 || row >= hidden.rows()) {
      return absl::InvalidArgumentError(
          absl::StrCat("logits: row ", row, " outside [0, ", hidden.rows(), ")"));
    }
  }
  TANDEM_RETURN_IF_ERROR(EnsureLogits(static_cast<int64_t>(rows.size())));
  TANDEM_RETURN_IF_ERROR(LogitsInto(hidden.view(), 0, hidden.rows(), rows));
  Logits out;
  out.values = logits_.View(DType::kF32, {static_cast<int64_t>(rows.size()), config_.vocab_size});
  return out;
}

absl::Status ModelRunner::RunChunks(const RowBatch& rows, KvAccess& kv, int first, int last,
                                    Call& call, ChunkInput input, ChunkOutput output) {
  call.device = backend_.device().kind != DeviceKind::kCpu;
  call.time_layers = rows.time_layers;
  call.attention.scale = 1.0f / std::sqrt(static_cast<float>(config_.head_dim));
  call.attention.sparse = rows.prefill_attention.value_or(options_.prefill_attention);
  call.attention.dense_prefill_kernel = options_.dense_prefill_kernel;
  call.attention.timed = !call.device || rows.time_layers;
  call.attention.observer =
      options_.prefill_attention_observer ? &options_.prefill_attention_observer : nullptr;
  call.attention.report = &call.report;
  call.report.method = call.attention.sparse.method;
  call.report.timed = call.attention.timed;
  if (rows.time_layers) call.report.layer_seconds.assign(config_.n_layers, 0.0);

  TANDEM_RETURN_IF_ERROR(UploadPositions(rows));
  const int32_t n = rows.size();
  int32_t* positions = static_cast<int32_t*>(positions_.data());
  for (int32_t begin = 0; begin < n; begin += options_.max_batch_tokens) {
    const int32_t end = std::min(n, begin + options_.max_batch_tokens);
    call.chunk = KvChunk{.rows = &rows,
                         .begin = begin,
                         .end = end,
                         .positions = TensorView::Contiguous(positions + begin, DType::kI32,
                                                             {end - begin}, backend_.device())};
    TANDEM_RETURN_IF_ERROR(kv.BeginChunk(call.chunk));
    TANDEM_ASSIGN_OR_RETURN(const TensorView x, input(begin, end));
    // Layer times start from a drained device, so the first layer does not pay for queued work.
    if (call.time_layers && call.device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
    for (int layer = first; layer < last; ++layer) {
      const absl::Time start = call.time_layers ? absl::Now() : absl::InfinitePast();
      TANDEM_RETURN_IF_ERROR(RunLayer(layer, x, kv, call));
      if (call.time_layers) {
        if (call.device) TANDEM_RETURN_IF_ERROR(backend_.Synchronize());
        call.report.layer_seconds[layer] += absl::ToDoubleSeconds(absl::Now() - start);
      }
    }
    TANDEM_RETURN_IF_ERROR(output(x, begin, end));
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::RunLayer(int layer, const TensorView& x, KvAccess& kv, Call& call) {
  const LayerWeights& w = weights_.layers[layer];
  const format::ModelConfig& c = config_;
  const int64_t n = x.shape[0];
  const int64_t q_dim = int64_t{c.n_heads} * c.head_dim;
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
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RopeParams{.x = q3,
                                                   .positions = call.chunk.positions,
                                                   .freq_base = c.rope_freq_base,
                                                   .n_rot = c.n_rot}));
  TANDEM_RETURN_IF_ERROR(
      kv.Store(layer, F32(k_, n, c.n_kv_heads, c.head_dim), F32(v_, n, c.n_kv_heads, c.head_dim)));

  // Attention time excludes what the layout spends gathering K/V and in the test observer.
  AttentionContext& ctx = call.attention;
  if (ctx.timed && call.device) TANDEM_RETURN_IF_ERROR(b.Synchronize());
  const absl::Time start = ctx.timed ? absl::Now() : absl::InfinitePast();
  const double excluded_before = call.report.gather_seconds + ctx.observer_seconds;
  TANDEM_RETURN_IF_ERROR(kv.Attend(layer, q3, F32(attn_, n, c.n_heads, c.head_dim), ctx));
  if (ctx.timed) {
    if (call.device) TANDEM_RETURN_IF_ERROR(b.Synchronize());
    const double excluded = call.report.gather_seconds + ctx.observer_seconds - excluded_before;
    call.report.attention_seconds += absl::ToDoubleSeconds(absl::Now() - start) - excluded;
  }

  TANDEM_RETURN_IF_ERROR(
      b.Run(kernels::MatMulParams{.w = w.wo, .x = attn, .y = x, .accumulate = true}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::RmsNormParams{
      .x = x, .weight = w.ffn_norm, .out = h, .eps = c.rms_norm_eps}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.w_gate, .x = h, .y = gate}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::MatMulParams{.w = w.w_up, .x = h, .y = up}));
  TANDEM_RETURN_IF_ERROR(b.Run(kernels::SwiGluParams{.gate = gate, .up = up, .out = gate}));
  return b.Run(kernels::MatMulParams{.w = w.w_down, .x = gate, .y = x, .accumulate = true});
}

absl::Status ModelRunner::EnsureLogits(int64_t rows) {
  const int64_t count = std::max<int64_t>(rows, 1);
  if (count <= logits_rows_) return absl::OkStatus();
  TANDEM_ASSIGN_OR_RETURN(logits_, F32Buffer(backend_, count, config_.vocab_size));
  logits_rows_ = count;
  return absl::OkStatus();
}

absl::Status ModelRunner::LogitsInto(const TensorView& hidden, int32_t begin, int32_t end,
                                     absl::Span<const int32_t> rows) {
  const TensorView logits = logits_.View(DType::kF32, {logits_rows_, config_.vocab_size});
  // Output row r is hidden row rows[r] - begin, for the requested rows inside [begin, end); one
  // norm + LM head call per run of consecutive rows, at most max_batch_tokens at a time (the
  // scratch h_ holds that many).
  const int32_t total = static_cast<int32_t>(rows.size());
  for (int32_t r = 0; r < total;) {
    const int32_t t = rows[r];
    if (t < begin || t >= end) {
      ++r;
      continue;
    }
    int32_t run = 1;
    while (r + run < total && rows[r + run] == t + run && t + run < end &&
           run < options_.max_batch_tokens) {
      ++run;
    }
    const TensorView hs = F32(h_, run, config_.d_model);
    TANDEM_RETURN_IF_ERROR(
        backend_.Run(kernels::RmsNormParams{.x = hidden.Rows(t - begin, t - begin + run),
                                            .weight = weights_.output_norm,
                                            .out = hs,
                                            .eps = config_.rms_norm_eps}));
    TANDEM_RETURN_IF_ERROR(backend_.Run(
        kernels::MatMulParams{.w = weights_.lm_head, .x = hs, .y = logits.Rows(r, r + run)}));
    r += run;
  }
  return absl::OkStatus();
}

}  // namespace tandem::model
