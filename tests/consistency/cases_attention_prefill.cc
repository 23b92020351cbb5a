// attention_prefill cases: dense, SALE and PowerAttention prefill attention over contiguous K/V, at
// SmolLM2's head shape (9/3 heads of 64) and a Llama-style one (8/2 heads of 128), for whole
// prefills and for a chunk whose queries sit at the end of a longer context.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {
namespace {

class AttentionPrefillCase : public OpCase {
 public:
  AttentionPrefillCase(const SparseConfig& sparse, const PrefillShape& shape, const char* label)
      : sparse_(sparse), s_(shape), label_(label) {}

  std::string Op() const override { return std::string(AttentionPrefillParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("method=", AV(SparseMethodName(sparse_.method)), ",", label_,
                        ",n_q=", s_.n_q, ",n_kv=", s_.n_kv, ",heads=", s_.heads, "/", s_.kv_heads,
                        ",hd=", s_.head_dim);
  }
  double MaxNmse() const override { return sparse_.method == SparseMethod::kSale ? 1e-5 : 1e-7; }
  std::string MaxNmseReason() const override {
    return sparse_.method == SparseMethod::kSale
               ? "SALE compares estimated logits with m + ln(tau * l), which backends accumulate "
                 "in different precision: a block at the threshold may flip, and it carries a "
                 "relative weight of about tau"
               : "";
  }
  double Flops() const override {
    double f = 0.0;
    for (int64_t t = 0; t < s_.n_q; ++t)
      f += 4.0 * s_.heads * s_.head_dim * (s_.n_kv - s_.n_q + t + 1);
    return f;
  }
  // Block counts must agree exactly for the static patterns; SALE's may flip at the threshold.
  std::vector<int64_t> HostResults() const override {
    if (sparse_.method == SparseMethod::kSale) return {};
    return {stats_.causal_blocks, stats_.computed_blocks};
  }

  void MakeInputs(std::mt19937& rng) override {
    CaseTensor& q = Add("q", DType::kF32, {s_.n_q, s_.heads, s_.head_dim}, Role::kIn);
    FillUniform(q, rng, -3, 3);
    CaseTensor& k = Add("k", DType::kF32, {s_.n_kv, s_.kv_heads, s_.head_dim}, Role::kIn);
    FillUniform(k, rng, -1, 1);
    // Attention sinks, as trained models have: the first 32 keys share a direction with every
    // query, so that SALE's test keeps some blocks and drops others.
    for (int64_t r = 0; r < s_.n_q * s_.heads; ++r) q.f32()[r * s_.head_dim] += 5.0f;
    for (int64_t r = 0; r < std::min<int64_t>(32, s_.n_kv) * s_.kv_heads; ++r) {
      k.f32()[r * s_.head_dim] += 10.0f;
    }
    FillUniform(Add("v", DType::kF32, {s_.n_kv, s_.kv_heads, s_.head_dim}, Role::kIn), rng, -1, 1);
    FillUniform(Add("out", DType::kF32, {s_.n_q, s_.heads, s_.head_dim}, Role::kOut), rng, -1, 1);
    std::vector<int32_t> q_pos(static_cast<size_t>(s_.n_q)), kv_pos(static_cast<size_t>(s_.n_kv));
    std::iota(q_pos.begin(), q_pos.end(), static_cast<int32_t>(s_.n_kv - s_.n_q));
    std::iota(kv_pos.begin(), kv_pos.end(), 0);
    SetI32(Add("q_pos", DType::kI32, {s_.n_q}, Role::kIn), q_pos);
    SetI32(Add("kv_pos", DType::kI32, {s_.n_kv}, Role::kIn), kv_pos);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    stats_ = AttentionStats{};
    return AttentionPrefillParams{.q = v[0],
                                  .k = v[1],
                                  .v = v[2],
                                  .out = v[3],
                                  .q_pos = v[4],
                                  .kv_pos = v[5],
                                  .scale = 1.0f / std::sqrt(static_cast<float>(s_.head_dim)),
                                  .sparse = sparse_,
                                  .stats = &stats_};
  }

 private:
  SparseConfig sparse_;
  PrefillShape s_;
  const char* label_;
  AttentionStats stats_;
};

}  // namespace

std::unique_ptr<OpCase> MakeAttentionPrefillCase(const SparseConfig& sparse,
                                                 const PrefillShape& shape, const char* label) {
  return std::make_unique<AttentionPrefillCase>(sparse, shape, label);
}

void AddAttentionPrefillCases(std::vector<std::unique_ptr<OpCase>>& cases) {
  const PrefillShape smol[] = {{5, 5, 9, 3, 64},   {7, 14, 9, 3, 64},   {200, 200, 9, 3, 64},
                               {1, 333, 9, 3, 64}, {96, 700, 9, 3, 64}, {700, 700, 9, 3, 64}};
  const PrefillShape llama[] = {{160, 160, 8, 2, 128}, {128, 640, 8, 2, 128}};
  SparseConfig dense;
  SparseConfig sale;
  sale.method = SparseMethod::kSale;
  sale.sale_min_tokens = 0;  // sparse even at these small lengths
  SparseConfig power;
  power.method = SparseMethod::kPowerAttention;
  SparseConfig power_small = power;  // many blocks even at a few hundred tokens
  power_small.power_block = 16;
  power_small.power_sink_blocks = 2;
  power_small.power_window_blocks = 3;
  for (const PrefillShape& s : smol) {
    cases.push_back(MakeAttentionPrefillCase(dense, s, "default"));
    cases.push_back(MakeAttentionPrefillCase(sale, s, "min_tokens=0"));
    cases.push_back(MakeAttentionPrefillCase(power, s, "default"));
    cases.push_back(MakeAttentionPrefillCase(power_small, s, "block=16,sink=2,window=3"));
  }
  for (const PrefillShape& s : llama) {
    cases.push_back(MakeAttentionPrefillCase(dense, s, "default"));
    cases.push_back(MakeAttentionPrefillCase(sale, s, "min_tokens=0"));
    cases.push_back(MakeAttentionPrefillCase(power_small, s, "block=16,sink=2,window=3"));
  }
}

}  // namespace tandem::kernels::testing
