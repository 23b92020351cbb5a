#include "kernels/model/flags.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::model {

TANDEM_FLAG(int32_t, threads, 0, "Threads of the cpu backend; 0 = every hardware thread.");
namespace {
// The registered layouts, named in --kv_layout's help (a new layout needs no edit here).
const char* KvLayoutHelp() {
  static const std::string* help = new std::string(
      absl::StrCat("KV cache layout (kernels/model/kv_layouts.cc): ", KvLayoutNamesText(), "."));
  return help->c_str();
}
}  // namespace

TANDEM_FLAG(std::string, kv_layout, KvCacheOptions{}.layout, KvLayoutHelp());
TANDEM_FLAG(std::string, kv_dtype, std::string(DTypeName(KvCacheOptions{}.dtype)),
            "KV cache element type: f16 or f32 (exact, 2x memory).");
TANDEM_FLAG(int32_t, kv_page_tokens, KvCacheOptions{}.page_tokens,
            "Tokens per KV cache page (memory layout only).");
TANDEM_FLAG(int32_t, max_batch_tokens, RunnerOptions{}.max_batch_tokens,
            "Tokens per forward chunk; bounds activation memory during prefill.");

TANDEM_FLAG(std::string, prefill_attention,
            std::string(kernels::SparseMethodName(kernels::SparseConfig{}.method)),
            "Attention of single-sequence prefill: dense, sale (SALE) or power (PowerAttention).");
TANDEM_FLAG(double, sale_threshold, kernels::kSaleThresholdPaper,
            "SALE's relative-attention-score threshold tau (0 = dense; paper default 0.008).");
TANDEM_FLAG(int32_t, power_window_blocks, kernels::SparseConfig{}.power_window_blocks,
            "PowerAttention local window, in 64-token blocks.");
TANDEM_FLAG(int32_t, power_sink_blocks, kernels::SparseConfig{}.power_sink_blocks,
            "PowerAttention sink, in 64-token blocks.");

absl::StatusOr<kernels::SparseConfig> SparseConfigFromFlags() {
  kernels::SparseConfig c;
  const std::string method = GetFlag(FLAGS_prefill_attention);
  const std::optional<kernels::SparseMethod> parsed = kernels::ParseSparseMethod(method);
  if (!parsed.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill_attention: '", method, "' is not one of dense|sale|power"));
  }
  c.method = *parsed;
  c.sale_threshold = static_cast<float>(GetFlag(FLAGS_sale_threshold));
  if (!(c.sale_threshold >= 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sale_threshold: ", GetFlag(FLAGS_sale_threshold), " must be >= 0"));
  }
  c.power_window_blocks = GetFlag(FLAGS_power_window_blocks);
  c.power_sink_blocks = GetFlag(FLAGS_power_sink_blocks);
  if (c.power_window_blocks < 0 || c.power_sink_blocks < 0) {
    return absl::InvalidArgumentError("--power_window_blocks and --power_sink_blocks must be >= 0");
  }
  return c;
}

absl::StatusOr<RunnerOptions> RunnerOptionsFromFlags() {
  RunnerOptions o;
  o.max_batch_tokens = GetFlag(FLAGS_max_batch_tokens);
  if (o.max_batch_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_batch_tokens: ", o.max_batch_tokens, " must be positive"));
  }
  if (GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads: ", GetFlag(FLAGS_threads), " must be >= 0"));
  }
  TANDEM_ASSIGN_OR_RETURN(o.prefill_attention, SparseConfigFromFlags());
  return o;
}

absl::StatusOr<KvCacheOptions> KvCacheOptionsFromFlags() {
  KvCacheOptions o;
  o.layout = GetFlag(FLAGS_kv_layout);
  const std::string kv = GetFlag(FLAGS_kv_dtype);
  if (kv == "f16") {
    o.dtype = DType::kF16;
  } else if (kv == "f32") {
    o.dtype = DType::kF32;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_dtype: '", kv, "' is not one of f16|f32"));
  }
  o.page_tokens = GetFlag(FLAGS_kv_page_tokens);
  if (o.page_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv_page_tokens: ", o.page_tokens, " must be positive"));
  }
  if (absl::Status s = o.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--kv_layout: ", s.message()));
  }
  return o;
}

}  // namespace tandem::model
