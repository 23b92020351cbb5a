// sample: one token per logits row, exactly as SamplingConfig's comment in op.h specifies (greedy,
// or temperature -> top-k -> softmax -> top-p -> one NextUniform draw). Probabilities are computed
// in double so that the reference is the exact distribution; ties are broken by the lower token id
// everywhere. Greedy rows do not advance their rng state (only sampled rows draw).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kernels/cpu_ref/ref_ops.h"

namespace tandem::kernels::cpu_ref {
namespace {

int32_t Greedy(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;  // strict: the lowest id wins ties
  }
  return static_cast<int32_t>(best);
}

int32_t Sample(const float* logits, int64_t vocab, const SamplingConfig& cfg, uint64_t& rng) {
  struct Cand {
    int32_t id;
    double v;  // scaled logit, then probability
  };
  std::vector<Cand> c(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) {
    c[i] = {static_cast<int32_t>(i), static_cast<double>(logits[i]) / cfg.temperature};
  }
  const auto by_value_then_id = [](const Cand& a, const Cand& b) {
    return a.v != b.v ? a.v > b.v : a.id < b.id;
  };
  std::stable_sort(c.begin(), c.end(), by_value_then_id);
  if (cfg.top_k > 0 && cfg.top_k < vocab) c.resize(static_cast<size_t>(cfg.top_k));
  const double mx = c.front().v;
  double sum = 0.0;
  for (Cand& x : c) {
    x.v = std::exp(x.v - mx);
    sum += x.v;
  }
  for (Cand& x : c) x.v /= sum;
  std::stable_sort(c.begin(), c.end(), by_value_then_id);
  size_t keep = 0;
  double cum = 0.0;
  while (keep < c.size()) {
    cum += c[keep].v;
    ++keep;
    if (cum >= static_cast<double>(cfg.top_p)) break;
  }
  const double u = NextUniform(rng);
  double run = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    run += c[i].v;
    if (run / cum > u) return c[i].id;
  }
  return c[keep - 1].id;  // rounding left the total just under u
}

}  // namespace

absl::Status CheckSample(const SampleParams& p) {
  constexpr std::string_view kOp = "sample";
  TANDEM_RETURN_IF_ERROR(CheckTensor(kOp, "logits", p.logits, 2, {DType::kF32}));
  const int64_t n = p.logits.shape[0];
  if (p.logits.shape[1] <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample: logits.shape[1]=", p.logits.shape[1], " (vocab) must be > 0"));
  }
  if (static_cast<int64_t>(p.configs.size()) != n ||
      static_cast<int64_t>(p.rng_states.size()) != n ||
      static_cast<int64_t>(p.out_tokens.size()) != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sample: configs.size()=", p.configs.size(), ", rng_states.size()=", p.rng_states.size(),
        ", out_tokens.size()=", p.out_tokens.size(), " must all equal logits.shape[0]=", n));
  }
  for (size_t i = 0; i < p.configs.size(); ++i) {
    const SamplingConfig& c = p.configs[i];
    if (std::isnan(c.temperature) || std::isnan(c.top_p)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sample: configs[", i, "] has temperature=", c.temperature, ", top_p=", c.top_p));
    }
  }
  return absl::OkStatus();
}

absl::Status RunSample(const SampleParams& p) {
  TANDEM_RETURN_IF_ERROR(CheckSample(p));
  const int64_t vocab = p.logits.shape[1];
  for (int64_t i = 0; i < p.logits.shape[0]; ++i) {
    const float* row = At<const float>(p.logits, i);
    const SamplingConfig& cfg = p.configs[i];
    p.out_tokens[i] =
        cfg.temperature <= 0.0f ? Greedy(row, vocab) : Sample(row, vocab, cfg, p.rng_states[i]);
  }
  return absl::OkStatus();
}

}  // namespace tandem::kernels::cpu_ref
