#include "runtime/blend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "runtime/document_kv.h"

namespace tandem::runtime {
namespace {

double Since(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

// Host rows of a KV dtype (f32, f16, bf16), contiguous, to f32 and back.
void ToF32(const void* src, DType dtype, int64_t count, float* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, src, static_cast<size_t>(count) * 4);
    return;
  }
  const auto* h = static_cast<const uint16_t*>(src);
  for (int64_t i = 0; i < count; ++i) {
    out[i] = dtype == DType::kF16 ? HalfToFloat(h[i]) : BF16ToFloat(h[i]);
  }
}
void FromF32(const float* src, DType dtype, int64_t count, void* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, src, static_cast<size_t>(count) * 4);
    return;
  }
  auto* h = static_cast<uint16_t*>(out);
  for (int64_t i = 0; i < count; ++i) {
    h[i] = dtype == DType::kF16 ? FloatToHalf(src[i]) : FloatToBF16(src[i]);
  }
}

// The prompt positions of the call [cached_prefix, n) that lie in no document.
std::vector<int32_t> OutsideDocuments(const BlendInput& in) {
  std::vector<int32_t> out;
  int32_t next = in.cached_prefix;
  for (const BlendDocument& d : in.documents) {
    for (int32_t p = next; p < d.begin; ++p) out.push_back(p);
    next = d.begin + d.size();
  }
  for (int32_t p = next; p < static_cast<int32_t>(in.tokens.size()); ++p) out.push_back(p);
  return out;
}

absl::Status CheckInput(const model::ModelRunner& runner, model::KvCache& cache,
                        const BlendInput& in) {
  const int32_t n = static_cast<int32_t>(in.tokens.size());
  if (!cache.IsLive(in.seq)) return absl::InvalidArgumentError("blend: unknown sequence");
  if (in.cached_prefix < 0 || in.cached_prefix >= n) {
    return absl::InvalidArgumentError(absl::StrCat("blend: cached prefix ", in.cached_prefix,
                                                   " leaves nothing of a ", n, "-token prompt"));
  }
  if (cache.Length(in.seq) != in.cached_prefix) {
    return absl::InvalidArgumentError(absl::StrCat("blend: the sequence holds ",
                                                   cache.Length(in.seq),
                                                   " tokens, the cached "
                                                   "prefix is ",
                                                   in.cached_prefix));
  }
  KvFormat layout;
  cache.DescribeFormat(layout);
  const model::KvRowFormat rows = cache.row_format();
  if (layout.layout != KvLayout::kGqa || rows.layers != runner.config().n_layers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blend: the ", AV(cache.layout()), " layout keeps ", AV(KvLayoutName(layout.layout)),
        " rows; blending re-rotates K and needs the gqa rows of this model"));
  }
  int32_t next = in.cached_prefix;
  for (size_t i = 0; i < in.documents.size(); ++i) {
    const BlendDocument& d = in.documents[i];
    if (d.blocks.empty() || d.begin < next || d.begin + d.size() > n) {
      return absl::InvalidArgumentError(
          absl::StrCat("blend: document ", i, " at [", d.begin, ", ", d.begin + d.size(),
                       ") is empty, overlaps the previous one or the cached prefix, or ends past "
                       "the prompt's ",
                       n, " tokens"));
    }
    TANDEM_RETURN_IF_ERROR(CheckDocumentBlocks(
        d.blocks, in.tokens.subspan(static_cast<size_t>(d.begin), static_cast<size_t>(d.size()))));
    for (const kv::KvBlock& b : d.blocks) {
      if (b.num_layers() != rows.layers || DTypeFromKvCode(b.header().dtype) != rows.dtype ||
          b.k(0).ndim != 3 || b.k(0).shape[1] != rows.row_shape[0] ||
          b.k(0).shape[2] != rows.row_shape[1]) {
        return absl::InvalidArgumentError(absl::StrCat("blend: document ", i, " block ",
                                                       b.key().Hex(),
                                                       " holds rows of another shape or dtype "
                                                       "than the cache"));
      }
    }
    next = d.begin + d.size();
  }
  return absl::OkStatus();
}

// Writes every document's stored KV at its prompt positions, K re-rotated by the position delta on
// the runner's backend. Keeps, for the deviation check, the stored rows of `check_layer` (K after
// re-rotation, or V) as f32 in document-token order.
absl::Status ImportDocuments(model::ModelRunner& runner, model::KvCache& cache,
                             const BlendInput& in, int check_layer, BlendDeviation deviation,
                             std::vector<float>* stored_check) {
  kernels::KernelBackend& backend = runner.backend();
  const model::KvRowFormat rows = cache.row_format();
  const int64_t row = rows.row_shape[0] * rows.row_shape[1];
  int32_t max_rows = 0;
  for (const BlendDocument& d : in.documents) {
    for (const kv::KvBlock& b : d.blocks) max_rows = std::max(max_rows, b.num_tokens());
  }
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer k_dev,
                          kernels::DeviceBuffer::Create(backend, int64_t{max_rows} * row * 4));
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer delta_dev,
                          kernels::DeviceBuffer::Create(backend, int64_t{max_rows} * 4));
  std::vector<float> k_f32(static_cast<size_t>(int64_t{max_rows} * row));
  std::vector<uint8_t> k_rotated(static_cast<size_t>(rows.row_bytes() * max_rows));
  std::vector<int32_t> deltas(static_cast<size_t>(max_rows));
  for (const BlendDocument& d : in.documents) {
    int32_t at = d.begin;
    for (const kv::KvBlock& b : d.blocks) {
      const int32_t count = b.num_tokens();
      const int32_t delta = at - b.pos_begin();
      const int64_t values = int64_t{count} * row;
      if (delta != 0) {
        std::fill(deltas.begin(), deltas.begin() + count, delta);
        TANDEM_RETURN_IF_ERROR(
            backend.CopyToDevice(delta_dev.data(), deltas.data(), int64_t{count} * 4));
      }
      for (int layer = 0; layer < rows.layers; ++layer) {
        TensorView k = b.k(layer);
        if (delta != 0) {
          ToF32(k.data, rows.dtype, values, k_f32.data());
          TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(k_dev.data(), k_f32.data(), values * 4));
          TANDEM_RETURN_IF_ERROR(model::RotateKeys(
              backend, runner.config(),
              k_dev.View(DType::kF32, {count, rows.row_shape[0], rows.row_shape[1]}),
              delta_dev.View(DType::kI32, {count})));
          TANDEM_RETURN_IF_ERROR(backend.CopyToHost(k_f32.data(), k_dev.data(), values * 4));
          FromF32(k_f32.data(), rows.dtype, values, k_rotated.data());
          k = TensorView::Contiguous(k_rotated.data(), rows.dtype,
                                     {count, rows.row_shape[0], rows.row_shape[1]});
        }
        TANDEM_RETURN_IF_ERROR(cache.WriteTokens(in.seq, layer, at, k, b.v(layer)));
        if (layer == check_layer && stored_check != nullptr) {
          const size_t old = stored_check->size();
          stored_check->resize(old + static_cast<size_t>(values));
          ToF32(deviation == BlendDeviation::kKey ? k.data : b.v(layer).data, rows.dtype, values,
                stored_check->data() + old);
        }
      }
      at += count;
    }
  }
  return absl::OkStatus();
}

// Per document token, the squared distance between the fresh rows of `layer` (now in the cache)
// and the stored ones, on the runner's backend (RowDistance op).
absl::StatusOr<std::vector<float>> Deviation(model::ModelRunner& runner, model::KvCache& cache,
                                             const BlendInput& in, int layer,
                                             BlendDeviation deviation,
                                             const std::vector<float>& stored) {
  kernels::KernelBackend& backend = runner.backend();
  const model::KvRowFormat rows = cache.row_format();
  const int64_t row = rows.row_shape[0] * rows.row_shape[1];
  const int64_t n = static_cast<int64_t>(stored.size()) / row;
  std::vector<float> fresh(stored.size());
  int64_t offset = 0;
  for (const BlendDocument& d : in.documents) {
    const int64_t count = d.size();
    std::vector<uint8_t> k(static_cast<size_t>(rows.row_bytes() * count));
    std::vector<uint8_t> v(k.size());
    const std::vector<int64_t> shape = {count, rows.row_shape[0], rows.row_shape[1]};
    TANDEM_RETURN_IF_ERROR(cache.ReadTokens(in.seq, layer, d.begin,
                                            TensorView::Contiguous(k.data(), rows.dtype, shape),
                                            TensorView::Contiguous(v.data(), rows.dtype, shape)));
    ToF32(deviation == BlendDeviation::kKey ? k.data() : v.data(), rows.dtype, count * row,
          fresh.data() + offset * row);
    offset += count;
  }
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer a,
                          kernels::DeviceBuffer::Create(backend, n * row * 4));
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer b,
                          kernels::DeviceBuffer::Create(backend, n * row * 4));
  TANDEM_ASSIGN_OR_RETURN(kernels::DeviceBuffer out, kernels::DeviceBuffer::Create(backend, n * 4));
  TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(a.data(), fresh.data(), n * row * 4));
  TANDEM_RETURN_IF_ERROR(backend.CopyToDevice(b.data(), stored.data(), n * row * 4));
  TANDEM_RETURN_IF_ERROR(
      backend.Run(kernels::RowDistanceParams{.a = a.View(DType::kF32, {n, row}),
                                             .b = b.View(DType::kF32, {n, row}),
                                             .out = out.View(DType::kF32, {n})}));
  std::vector<float> dev(static_cast<size_t>(n));
  TANDEM_RETURN_IF_ERROR(backend.CopyToHost(dev.data(), out.data(), n * 4));
  TANDEM_RETURN_IF_ERROR(backend.Synchronize());
  return dev;
}

// Layers [first, n_layers) over the rows at `positions` (increasing) of the prompt, from the
// embeddings, and the last row's logits.
absl::StatusOr<model::Logits> ComputeRows(model::ModelRunner& runner, model::KvCache& cache,
                                          const BlendInput& in,
                                          const std::vector<int32_t>& positions) {
  std::vector<int32_t> ids;
  model::RowBatch batch;
  for (int32_t p : positions) {
    ids.push_back(in.tokens[static_cast<size_t>(p)]);
    batch.seq_ids.push_back(in.seq);
    batch.positions.push_back(p);
  }
  TANDEM_ASSIGN_OR_RETURN(model::HiddenStates hidden, runner.Embed(ids));
  TANDEM_RETURN_IF_ERROR(runner.RunLayers(batch, cache, 0, runner.config().n_layers, hidden));
  return runner.ComputeLogits(hidden, {hidden.rows() - 1});
}

}  // namespace

std::string_view BlendDeviationName(BlendDeviation d) {
  return d == BlendDeviation::kKey ? "key" : "value";
}

std::optional<BlendDeviation> ParseBlendDeviation(std::string_view name) {
  if (name == "value") return BlendDeviation::kValue;
  if (name == "key") return BlendDeviation::kKey;
  return std::nullopt;
}

absl::Status BlendOptions::Validate(const format::ModelConfig& config) const {
  if (!(recompute_ratio >= 0.0 && recompute_ratio <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("recompute_ratio ", recompute_ratio, " is outside [0, 1]"));
  }
  if (check_layer < 0 || check_layer >= config.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("check_layer ", check_layer, " is outside [0, ", config.n_layers, ")"));
  }
  if (min_blend_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_blend_tokens ", min_blend_tokens, " is negative"));
  }
  return absl::OkStatus();
}

int32_t BlendDocument::size() const {
  int32_t n = 0;
  for (const kv::KvBlock& b : blocks) n += b.num_tokens();
  return n;
}

std::vector<int32_t> SelectHighDeviation(absl::Span<const float> deviation, double ratio) {
  const int64_t n = static_cast<int64_t>(deviation.size());
  const int64_t count = std::clamp<int64_t>(
      static_cast<int64_t>(std::floor(ratio * static_cast<double>(n) + 1e-9)), 0, n);
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int32_t a, int32_t b) {
    return deviation[a] != deviation[b] ? deviation[a] > deviation[b] : a < b;
  });
  order.resize(static_cast<size_t>(count));
  std::sort(order.begin(), order.end());
  return order;
}

absl::StatusOr<BlendResult> Blend(model::ModelRunner& runner, model::KvCache& cache,
                                  const BlendInput& input, const BlendOptions& options) {
  TANDEM_RETURN_IF_ERROR(options.Validate(runner.config()));
  TANDEM_RETURN_IF_ERROR(CheckInput(runner, cache, input));
  const absl::Time start = absl::Now();
  const int32_t n = static_cast<int32_t>(input.tokens.size());
  // Whatever fails below, the sequence is left holding only its cached prefix.
  struct Forget {
    model::KvCache& cache;
    model::SeqId seq;
    int32_t prefix;
    bool done = false;
    ~Forget() {
      if (!done) cache.SetLength(seq, prefix);
    }
  } forget{cache, input.seq, input.cached_prefix};
  TANDEM_RETURN_IF_ERROR(cache.Reserve(input.seq, n));

  BlendResult result;
  BlendStats& stats = result.stats;
  // A first document that follows exactly the preamble it was computed after, at the positions it
  // was computed at, holds exact KV: it extends the prefix (a single document right after the
  // preamble is prefix reuse, bit for bit). Its last token stays a row of the call when the prompt
  // ends with it, for the logits.
  BlendInput in = input;
  const std::vector<int32_t> preamble = DocumentPreamble(runner.config());
  if (!in.documents.empty()) {
    const BlendDocument& d = in.documents.front();
    const int32_t p = static_cast<int32_t>(preamble.size());
    if (d.begin == in.cached_prefix && d.begin == p && d.blocks.front().pos_begin() == p &&
        std::equal(preamble.begin(), preamble.end(), in.tokens.begin())) {
      int32_t at = d.begin;
      for (const kv::KvBlock& b : d.blocks) {
        for (int layer = 0; layer < b.num_layers(); ++layer) {
          TANDEM_RETURN_IF_ERROR(cache.WriteTokens(in.seq, layer, at, b.k(layer), b.v(layer)));
        }
        at += b.num_tokens();
      }
      stats.exact_tokens = d.size();
      in.cached_prefix = std::min(at, n - 1);
      cache.SetLength(in.seq, in.cached_prefix);
      in.documents.erase(in.documents.begin());
    }
  }
  const int32_t prefix = in.cached_prefix;
  std::vector<int32_t> outside = OutsideDocuments(in);
  int32_t doc_tokens = 0;
  for (const BlendDocument& d : in.documents) doc_tokens += d.size();

  stats.reused_tokens = stats.exact_tokens;
  if (doc_tokens == 0 || doc_tokens < options.min_blend_tokens) {
    // Too little to reuse: an ordinary prefill of everything after the prefix.
    std::vector<int32_t> all(static_cast<size_t>(n - prefix));
    std::iota(all.begin(), all.end(), prefix);
    TANDEM_ASSIGN_OR_RETURN(result.logits, ComputeRows(runner, cache, in, all));
    stats.computed_tokens = n - prefix - (stats.exact_tokens > 0 && prefix == n - 1 ? 1 : 0);
    stats.compute_seconds = Since(start);
    forget.done = true;
    return result;
  }
  stats.blended = true;
  stats.reused_tokens += doc_tokens;
  // The last token's logits are the call's answer: it is always computed in every layer.
  const bool last_in_document = outside.empty() || outside.back() != n - 1;
  if (last_in_document) outside.push_back(n - 1);

  const int check = options.check_layer;
  std::vector<float> stored_check;
  TANDEM_RETURN_IF_ERROR(ImportDocuments(runner, cache, in, check, options.deviation,
                                         options.recompute_ratio > 0.0 ? &stored_check : nullptr));
  stats.import_seconds = Since(start);
  const absl::Time compute_start = absl::Now();

  if (options.recompute_ratio == 0.0) {
    // Plain reuse: the stored KV in every layer; only the tokens outside documents are computed.
    // The documents' positions count as held (their KV was written above); the gaps between them
    // are rows of this call, written before any later row reads them.
    cache.SetLength(in.seq, n);
    TANDEM_ASSIGN_OR_RETURN(result.logits, ComputeRows(runner, cache, in, outside));
    stats.recomputed_tokens = last_in_document ? 1 : 0;
    if (last_in_document) stats.recomputed_positions.push_back(n - 1);
    stats.computed_tokens = static_cast<int32_t>(outside.size()) - stats.recomputed_tokens;
    stats.compute_seconds = Since(compute_start);
    forget.done = true;
    return result;
  }

  // Layers 0..check over every token after the prefix.
  model::RowBatch all_rows;
  all_rows.Add(in.seq, prefix, n - prefix);
  TANDEM_ASSIGN_OR_RETURN(model::HiddenStates hidden,
                          runner.Embed(in.tokens.subspan(static_cast<size_t>(prefix),
                                                         static_cast<size_t>(n - prefix))));
  TANDEM_RETURN_IF_ERROR(runner.RunLayers(all_rows, cache, 0, check + 1, hidden));

  // The tokens whose KV deviates most at the check layer, plus everything outside documents.
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> deviation,
                          Deviation(runner, cache, in, check, options.deviation, stored_check));
  std::vector<int32_t> doc_positions;
  for (const BlendDocument& d : in.documents) {
    for (int32_t p = d.begin; p < d.begin + d.size(); ++p) doc_positions.push_back(p);
  }
  std::vector<int32_t> selected;
  for (int32_t i : SelectHighDeviation(deviation, options.recompute_ratio)) {
    selected.push_back(doc_positions[static_cast<size_t>(i)]);
  }
  stats.recomputed_positions = selected;
  std::vector<int32_t> rows;
  std::merge(selected.begin(), selected.end(), outside.begin(), outside.end(),
             std::back_inserter(rows));
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  stats.recomputed_tokens = static_cast<int32_t>(rows.size() - outside.size());
  if (last_in_document) {
    // n - 1 is a document token computed in full whether or not it was selected.
    if (!std::binary_search(selected.begin(), selected.end(), n - 1)) {
      stats.recomputed_positions.push_back(n - 1);
    }
    ++stats.recomputed_tokens;
  }
  stats.computed_tokens = static_cast<int32_t>(rows.size()) - stats.recomputed_tokens;

  // Layers check+1.. over the selected rows, each attending keys [0, own position] only: the
  // exact causal mask (RowBatch's default), never the reference code's bottom-right alignment.
  std::vector<int32_t> indices;
  model::RowBatch late;
  for (int32_t p : rows) {
    indices.push_back(p - prefix);
    late.seq_ids.push_back(in.seq);
    late.positions.push_back(p);
  }
  TANDEM_ASSIGN_OR_RETURN(model::HiddenStates narrowed, runner.SelectRows(hidden, indices));
  TANDEM_RETURN_IF_ERROR(
      runner.RunLayers(late, cache, check + 1, runner.config().n_layers, narrowed));
  TANDEM_ASSIGN_OR_RETURN(result.logits, runner.ComputeLogits(narrowed, {narrowed.rows() - 1}));
  stats.compute_seconds = Since(compute_start);
  forget.done = true;
  return result;
}

}  // namespace tandem::runtime
