// sample cases: tokens and advanced rng states must be EQUAL across backends.
#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/consistency/cases.h"

namespace tandem::kernels::testing {
namespace {

class SampleCase : public OpCase {
 public:
  SampleCase(SampleKind kind, int64_t vocab) : kind_(kind), vocab_(vocab) {
    if (kind_ == SampleKind::kGreedy) {
      configs_ = {{}, {}, {-1.0f, 40, 0.9f}, {}};
    } else {
      configs_ = {{0.8f, 40, 0.95f}, {1.0f, 0, 1.0f}, {0.7f, 0, 0.9f}, {1.5f, 5, 1.0f},
                  {1.0f, 1, 1.0f},   {0.0f, 0, 1.0f}, {2.0f, 0, 0.5f}, {0.9f, 100, 0.0f}};
    }
  }

  std::string Op() const override { return std::string(SampleParams::kName); }
  std::string Vars() const override {
    return absl::StrCat("kind=", kind_ == SampleKind::kGreedy ? "greedy" : "topk_topp",
                        ",rows=", configs_.size(), ",vocab=", vocab_);
  }

  void MakeInputs(std::mt19937& rng) override {
    const int64_t n = static_cast<int64_t>(configs_.size());
    CaseTensor& logits = Add("logits", DType::kF32, {n, vocab_}, Role::kIn);
    std::normal_distribution<float> dist(0.0f, 3.0f);
    for (int64_t i = 0; i < logits.numel(); ++i) logits.f32()[i] = dist(rng);
    for (int64_t r = 0; r < n; ++r) {
      float* row = logits.f32() + r * vocab_;
      const float mx = *std::max_element(row, row + vocab_);
      // A tie for the maximum: the lower id must win (greedy; and first in top-k/top-p order).
      row[(r * 977 + 4000) % vocab_] = mx + 1.0f;
      row[(r * 977 + 123) % vocab_] = mx + 1.0f;
    }
    std::uniform_int_distribution<uint64_t> seed;
    initial_rng_.resize(configs_.size());
    for (uint64_t& s : initial_rng_) s = seed(rng);
  }
  OpCall MakeCall(const std::vector<TensorView>& v) override {
    rng_ = initial_rng_;
    tokens_.assign(configs_.size(), -1);
    return SampleParams{.logits = v[0],
                        .configs = configs_,
                        .rng_states = absl::MakeSpan(rng_),
                        .out_tokens = absl::MakeSpan(tokens_)};
  }
  std::vector<int64_t> HostResults() const override {
    std::vector<int64_t> out(tokens_.begin(), tokens_.end());
    for (uint64_t s : rng_) out.push_back(static_cast<int64_t>(s));
    return out;
  }

 private:
  SampleKind kind_;
  int64_t vocab_;
  std::vector<SamplingConfig> configs_;
  std::vector<uint64_t> initial_rng_, rng_;
  std::vector<int32_t> tokens_;
};

}  // namespace

std::unique_ptr<OpCase> MakeSampleCase(SampleKind kind, int64_t vocab) {
  return std::make_unique<SampleCase>(kind, vocab);
}

}  // namespace tandem::kernels::testing
