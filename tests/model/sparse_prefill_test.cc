// Sparse prefill (SALE, PowerAttention) against dense on the real model and real-looking text
// (tests/model/long_text.h), at the lengths in TANDEM_SPARSE_LENGTHS (default "1024,4096"; add 8192
// for SmolLM2's full context, about 3 more minutes on 2 cores):
//  - per layer: the attention output of each method on dense's own inputs (q, k, v of the dense
//    forward), as NMSE against dense's output;
//  - end to end: each method's own forward pass; top-1 agreement and KL(dense || method) of the
//    next-token distributions at the last 32 positions.
// Prints every figure; asserts loose sanity bounds only (the numbers are the measurement).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "tests/model/long_text.h"
#include "tests/support/test_env.h"

namespace tandem::model {
namespace {

constexpr int kTail = 32;  // positions whose next-token distributions are compared

kernels::SparseConfig Method(kernels::SparseMethod m) {
  kernels::SparseConfig c;
  c.method = m;
  return c;
}

std::vector<int32_t> Lengths() {
  const char* env = std::getenv("TANDEM_SPARSE_LENGTHS");
  std::vector<int32_t> out;
  for (absl::string_view part : absl::StrSplit(env != nullptr ? env : "1024,4096", ',')) {
    int32_t n = 0;
    if (absl::SimpleAtoi(part, &n) && n > kTail) out.push_back(n);
  }
  return out;
}

// log-softmax of one row.
std::vector<double> LogSoftmax(const float* x, int64_t n) {
  double mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, double{x[i]});
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(x[i] - mx);
  const double lse = mx + std::log(sum);
  std::vector<double> out(n);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] - lse;
  return out;
}

struct ErrorSum {
  double num = 0.0, den = 0.0;
  double nmse() const { return den > 0.0 ? num / den : 0.0; }
};

class SparsePrefillTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = format::GgufFile::Open(::tandem::testing::ModelPath());
    ASSERT_TRUE(file.ok()) << file.status();
    gguf_ = new format::GgufFile(std::move(file).value());
    auto tok = format::Tokenizer::FromGguf(*gguf_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = new format::Tokenizer(std::move(tok).value());
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete gguf_;
  }

  std::vector<int32_t> Prompt(int32_t n) {
    std::vector<int32_t> t =
        tokenizer_->Encode(::tandem::testing::LongText(int64_t{n} * 6, 11), false);
    EXPECT_GE(static_cast<int32_t>(t.size()), n);
    t.resize(n);
    t[0] = 1;  // bos
    return t;
  }

  // Logits of the last kTail positions, [kTail, vocab], and the report.
  std::vector<float> TailLogits(RunnerOptions options, const std::vector<int32_t>& tokens,
                                PrefillAttentionReport* report) {
    auto backend = kernels::GetBackend("cpu");
    EXPECT_TRUE(backend.ok());
    options.max_batch_tokens = 1024;
    auto runner = ModelRunner::Create(*gguf_, **backend, options);
    EXPECT_TRUE(runner.ok()) << runner.status();
    auto kv = PagedKvCache::Create(**backend, (*runner)->config(), KvCacheOptions{});
    EXPECT_TRUE(kv.ok()) << kv.status();
    const SeqId seq = (*kv)->AddSequence().value();
    ForwardBatch batch;
    batch.Add(seq, tokens, 0, false);
    const int32_t n = static_cast<int32_t>(tokens.size());
    for (int32_t i = n - kTail; i < n; ++i) batch.logit_rows.push_back(i);
    auto logits = (*runner)->Forward(batch, **kv);
    EXPECT_TRUE(logits.ok()) << logits.status();
    if (!logits.ok()) return {};
    *report = logits->attention;
    return logits->ToHost(**backend).value();
  }

  static format::GgufFile* gguf_;
  static format::Tokenizer* tokenizer_;
};

format::GgufFile* SparsePrefillTest::gguf_ = nullptr;
format::Tokenizer* SparsePrefillTest::tokenizer_ = nullptr;

TEST_F(SparsePrefillTest, AccuracyAgainstDense) {
  const kernels::SparseMethod methods[] = {kernels::SparseMethod::kSale,
                                           kernels::SparseMethod::kPowerAttention};
  kernels::KernelBackend* cpu = kernels::GetBackend("cpu").value();
  for (int32_t n : Lengths()) {
    const std::vector<int32_t> tokens = Prompt(n);
    // Dense forward through AttentionPrefill; each call is replayed with the sparse methods.
    std::vector<std::vector<ErrorSum>> layer_err(2);
    std::vector<kernels::AttentionStats> method_stats(2);
    std::vector<float> scratch;
    RunnerOptions dense_opts;
    dense_opts.dense_prefill_kernel = true;
    dense_opts.prefill_attention_observer = [&](int layer,
                                                const kernels::AttentionPrefillParams& call) {
      const float* want = call.out.as<float>();
      const int64_t count = call.out.numel();
      scratch.resize(count);
      for (int m = 0; m < 2; ++m) {
        kernels::AttentionPrefillParams p = call;
        p.out = TensorView::Contiguous(scratch.data(), DType::kF32,
                                       {call.out.shape[0], call.out.shape[1], call.out.shape[2]});
        p.sparse = Method(methods[m]);
        kernels::AttentionStats stats;
        p.stats = &stats;
        ASSERT_TRUE(cpu->Run(p).ok());
        method_stats[m].causal_blocks += stats.causal_blocks;
        method_stats[m].computed_blocks += stats.computed_blocks;
        if (layer_err[m].size() <= static_cast<size_t>(layer)) layer_err[m].resize(layer + 1);
        for (int64_t i = 0; i < count; ++i) {
          const double d = double{scratch[i]} - want[i];
          layer_err[m][layer].num += d * d;
          layer_err[m][layer].den += double{want[i]} * want[i];
        }
      }
    };
    PrefillAttentionReport dense_report;
    const std::vector<float> dense = TailLogits(dense_opts, tokens, &dense_report);
    ASSERT_FALSE(dense.empty());
    EXPECT_EQ(dense_report.density(), 1.0);
    const int64_t vocab = static_cast<int64_t>(dense.size()) / kTail;

    for (int m = 0; m < 2; ++m) {
      const std::string name_str(kernels::SparseMethodName(methods[m]));
      const char* name = name_str.c_str();
      std::string per_layer;
      double worst = 0.0;
      for (size_t l = 0; l < layer_err[m].size(); ++l) {
        absl::StrAppend(&per_layer, l == 0 ? "" : " ",
                        absl::StrFormat("%.2e", layer_err[m][l].nmse()));
        worst = std::max(worst, layer_err[m][l].nmse());
      }
      std::printf(
          "SPARSE n=%d method=%s layer_attention_nmse(on dense inputs, layer 0..29)=[%s] "
          "worst=%.3g density=%.4f\n",
          n, name, per_layer.c_str(), worst, method_stats[m].density());
      EXPECT_TRUE(std::isfinite(worst));

      RunnerOptions opts;
      opts.prefill_attention = Method(methods[m]);
      PrefillAttentionReport report;
      const std::vector<float> got = TailLogits(opts, tokens, &report);
      ASSERT_EQ(got.size(), dense.size());
      int agree = 0;
      double kl_sum = 0.0, kl_max = 0.0;
      for (int r = 0; r < kTail; ++r) {
        const float* a = dense.data() + r * vocab;
        const float* b = got.data() + r * vocab;
        agree += std::max_element(a, a + vocab) - a == std::max_element(b, b + vocab) - b;
        const std::vector<double> la = LogSoftmax(a, vocab), lb = LogSoftmax(b, vocab);
        double kl = 0.0;
        for (int64_t i = 0; i < vocab; ++i) kl += std::exp(la[i]) * (la[i] - lb[i]);
        kl_sum += kl;
        kl_max = std::max(kl_max, kl);
      }
      std::printf(
          "SPARSE n=%d method=%s end_to_end top1_agreement=%d/%d kl_mean=%.4g kl_max=%.4g "
          "density=%.4f attention_s=%.3f gather_s=%.3f (dense attention_s=%.3f)\n",
          n, name, agree, kTail, kl_sum / kTail, kl_max, report.density(), report.attention_seconds,
          report.gather_seconds, dense_report.attention_seconds);
      EXPECT_TRUE(std::isfinite(kl_sum));
      // Loose bounds: a training-free static pattern (power) is allowed to drift far more than
      // SALE, whose test keeps every block carrying a relative weight above tau.
      EXPECT_LT(kl_sum / kTail, methods[m] == kernels::SparseMethod::kSale ? 0.5 : 3.0);
      if (n >= 4096) {
        EXPECT_LT(report.density(), 1.0);
      }
      EXPECT_GT(report.density(), 0.0);
    }
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace tandem::model
