// Forward pass of SmolLM2 against llama.cpp (tests/data/model_reference.json, made by
// scripts/make_model_reference.py), and the runner's own invariants: batched == sequential,
// prefill == incremental decode, cpu == cpu_ref, and clear errors for bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/model_format/gguf.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "nlohmann/json.hpp"
#include "runtime/generator.h"
#include "tests/support/nmse.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::model {
namespace {

using runtime::Generate;
using runtime::GenerateOptions;
using ::tandem::testing::ModelPath;
using ::tandem::testing::SourceDir;
using ::tandem::testing::StatusIs;

// A runner and the KV cache its calls borrow.
struct Engine {
  std::unique_ptr<ModelRunner> runner;
  std::unique_ptr<PagedKvCache> kv;
};

struct ReferenceCase {
  std::vector<int32_t> tokens;
  std::vector<std::vector<int32_t>> top_ids;
  std::vector<std::vector<float>> top_logits;
  std::vector<int32_t> greedy;
};

std::vector<ReferenceCase> LoadReference() {
  std::ifstream in(SourceDir() + "/tests/data/model_reference.json");
  EXPECT_TRUE(in.good()) << "tests/data/model_reference.json missing";
  nlohmann::json j = nlohmann::json::parse(in);
  std::vector<ReferenceCase> cases;
  for (const auto& c : j["cases"]) {
    ReferenceCase rc;
    rc.tokens = c["tokens"].get<std::vector<int32_t>>();
    rc.top_ids = c["top_ids"].get<std::vector<std::vector<int32_t>>>();
    rc.top_logits = c["top_logits"].get<std::vector<std::vector<float>>>();
    rc.greedy = c["greedy"].get<std::vector<int32_t>>();
    cases.push_back(std::move(rc));
  }
  return cases;
}

class ForwardTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = format::GgufFile::Open(ModelPath());
    ASSERT_TRUE(file.ok()) << file.status();
    gguf_ = new format::GgufFile(std::move(file).value());
  }
  static void TearDownTestSuite() {
    delete gguf_;
    gguf_ = nullptr;
  }
  Engine MakeEngine(std::string_view backend_name, RunnerOptions options = {},
                    KvCacheOptions kv_options = {}) {
    auto backend = kernels::GetBackend(backend_name);
    EXPECT_TRUE(backend.ok()) << backend.status();
    auto runner = ModelRunner::Create(*gguf_, **backend, options);
    EXPECT_TRUE(runner.ok()) << runner.status();
    auto kv = PagedKvCache::Create(**backend, (*runner)->config(), kv_options);
    EXPECT_TRUE(kv.ok()) << kv.status();
    return Engine{std::move(runner).value(), std::move(kv).value()};
  }
  // All-position logits of one prompt as a fresh sequence.
  std::vector<float> AllLogits(Engine& e, const std::vector<int32_t>& tokens) {
    SeqId seq = e.kv->AddSequence().value();
    ForwardBatch batch;
    batch.Add(seq, tokens, 0, false);
    for (size_t i = 0; i < tokens.size(); ++i) batch.logit_rows.push_back(static_cast<int32_t>(i));
    auto logits = e.runner->Forward(batch, *e.kv);
    EXPECT_TRUE(logits.ok()) << logits.status();
    std::vector<float> out = logits->ToHost(e.runner->backend()).value();
    e.kv->RemoveSequence(seq);
    return out;
  }
  static format::GgufFile* gguf_;
};
format::GgufFile* ForwardTest::gguf_ = nullptr;

using ::tandem::testing::Nmse;

int32_t Argmax(const float* row, int32_t n) {
  return static_cast<int32_t>(std::max_element(row, row + n) - row);
}

struct ReferenceScore {
  double top1_agreement = 0;       // all prompt positions
  double top1_clear_agreement = 0;  // positions where llama.cpp's top-1 leads by >= kClearMargin
  double forced_greedy_agreement = 0;  // our argmax on llama.cpp's own greedy path
  double mean_abs_err = 0;
  double max_abs_err = 0;
  int greedy_identical = 0;  // free-running: all 64 tokens identical
  int cases = 0;
};

// A position whose top-2 logits (per llama.cpp) are closer than this is a near-tie: rounding
// differences between two correct implementations decide it either way.
constexpr double kClearMargin = 0.5;

// Scores one runner against the llama.cpp reference. One forward over prompt + llama.cpp's greedy
// continuation gives the prompt logits and the teacher-forced greedy agreement; Generate() then
// runs the real decode loop free-running.
ReferenceScore ScoreAgainstReference(
    Engine& e, const std::vector<ReferenceCase>& cases,
    const std::function<std::vector<float>(const std::vector<int32_t>&)>& all_logits) {
  const int32_t vocab = e.runner->config().vocab_size;
  int64_t positions = 0, top1_equal = 0, clear = 0, clear_equal = 0, err_count = 0;
  int64_t forced = 0, forced_equal = 0;
  double sum_abs_err = 0;
  ReferenceScore score;
  score.cases = static_cast<int>(cases.size());
  for (size_t c = 0; c < cases.size(); ++c) {
    const ReferenceCase& rc = cases[c];
    std::vector<int32_t> path = rc.tokens;
    path.insert(path.end(), rc.greedy.begin(), rc.greedy.end() - 1);
    const std::vector<float> logits = all_logits(path);
    int64_t case_equal = 0;
    for (size_t t = 0; t < rc.tokens.size(); ++t) {
      const float* row = logits.data() + t * vocab;
      const bool equal = Argmax(row, vocab) == rc.top_ids[t][0];
      ++positions;
      top1_equal += equal;
      case_equal += equal;
      if (rc.top_logits[t][0] - rc.top_logits[t][1] >= kClearMargin) {
        ++clear;
        clear_equal += equal;
      }
      for (size_t k = 0; k < rc.top_ids[t].size(); ++k) {
        const double err = std::abs(double(row[rc.top_ids[t][k]]) - rc.top_logits[t][k]);
        score.max_abs_err = std::max(score.max_abs_err, err);
        sum_abs_err += err;
        ++err_count;
      }
    }
    for (size_t g = 0; g < rc.greedy.size(); ++g) {
      const float* row = logits.data() + (rc.tokens.size() - 1 + g) * vocab;
      ++forced;
      forced_equal += Argmax(row, vocab) == rc.greedy[g];
    }
    GenerateOptions options;
    options.max_tokens = static_cast<int32_t>(rc.greedy.size());
    options.ignore_eos = true;
    auto generated = Generate(*e.runner, *e.kv, rc.tokens, options);
    EXPECT_TRUE(generated.ok()) << generated.status();
    size_t same_prefix = 0;
    while (generated.ok() && same_prefix < rc.greedy.size() &&
           same_prefix < generated->tokens.size() &&
           generated->tokens[same_prefix] == rc.greedy[same_prefix]) {
      ++same_prefix;
    }
    if (same_prefix == rc.greedy.size()) ++score.greedy_identical;
    std::printf("case %2zu: %4zu tokens, top-1 %5.1f%%, free-running greedy identical for %2zu/%zu\n",
                c, rc.tokens.size(), 100.0 * case_equal / rc.tokens.size(), same_prefix,
                rc.greedy.size());
  }
  score.top1_agreement = double(top1_equal) / positions;
  score.top1_clear_agreement = clear > 0 ? double(clear_equal) / clear : 1.0;
  score.forced_greedy_agreement = double(forced_equal) / forced;
  score.mean_abs_err = sum_abs_err / err_count;
  std::printf("REFERENCE positions %lld (clear-margin %lld)\n", static_cast<long long>(positions),
              static_cast<long long>(clear));
  return score;
}

// The headline comparison with llama.cpp, which made the reference with an f32 KV cache (its most
// exact setting): the same computation as ours with kv_dtype f32.
//
// Why the bounds are what they are: this 135M model amplifies rounding. llama.cpp against itself,
// prefilling in batches of 512 vs token by token, agrees on the top-1 token at only 97.6% of
// positions (mean |logit diff| 0.12; scripts/llama_cpp_self_agreement.py), and our exact fp32
// reference backend (cpu_ref) agrees with llama.cpp at ~97%, every disagreement a near-tie. So the bounds are: >= 99% top-1 agreement wherever
// llama.cpp's top-1 leads by >= kClearMargin, >= 96% overall and on llama.cpp's own greedy path,
// and the logit error stated below.
TEST_F(ForwardTest, MatchesLlamaCpp) {
  const std::vector<ReferenceCase> cases = LoadReference();
  ASSERT_GE(cases.size(), 20u);
  Engine e = MakeEngine("cpu", {}, {.dtype = DType::kF32});
  const ReferenceScore s = ScoreAgainstReference(
      e, cases, [&](const std::vector<int32_t>& t) { return AllLogits(e, t); });
  std::printf("REFERENCE llama.cpp (f32 KV both): %d prompts, top-1 agreement %.4f (%.4f where "
              "llama.cpp's margin >= %.1f), teacher-forced greedy agreement %.4f, logit |err| at "
              "llama.cpp top-8: mean %.4f max %.4f, free-running greedy-64 identical %d/%d\n",
              s.cases, s.top1_agreement, s.top1_clear_agreement, kClearMargin,
              s.forced_greedy_agreement, s.mean_abs_err, s.max_abs_err, s.greedy_identical,
              s.cases);
  EXPECT_GE(s.top1_clear_agreement, 0.99);
  EXPECT_GE(s.top1_agreement, 0.96);
  EXPECT_GE(s.forced_greedy_agreement, 0.96);
  EXPECT_LT(s.mean_abs_err, 0.25);
  EXPECT_LT(s.max_abs_err, 3.0);
  EXPECT_GE(s.greedy_identical, s.cases / 4);
}

TEST_F(ForwardTest, CpuMatchesCpuRef) {
  const std::vector<int32_t> tokens = {504, 3575, 282, 4649, 314, 7042, 28, 253, 1102, 30};
  Engine fast = MakeEngine("cpu", {}, {.dtype = DType::kF32});
  Engine ref = MakeEngine("cpu_ref", {}, {.dtype = DType::kF32});
  const std::vector<float> a = AllLogits(fast, tokens);
  const std::vector<float> b = AllLogits(ref, tokens);
  const double nmse = Nmse(a, b);
  std::printf("cpu vs cpu_ref logits NMSE over %zu positions: %.3g\n", tokens.size(), nmse);
  // The fast path quantizes activations to 8 bits per block (as llama.cpp does); per matmul that is
  // an NMSE of ~1.5e-5, which 30 layers compound to ~2-3e-3 in the logits.
  EXPECT_LT(nmse, 1e-2);
  const int32_t vocab = fast.runner->config().vocab_size;
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_EQ(Argmax(a.data() + t * vocab, vocab), Argmax(b.data() + t * vocab, vocab)) << t;
  }
}

TEST_F(ForwardTest, PrefillEqualsIncrementalDecode) {
  const std::vector<int32_t> tokens = {1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365,
                                       2, 198, 1, 4093, 198, 19556, 30, 2, 198, 1, 520, 9531, 198};
  Engine e = MakeEngine("cpu", {.max_batch_tokens = 7});  // also crosses chunk boundaries
  ModelRunner* runner = e.runner.get();
  const int32_t vocab = runner->config().vocab_size;
  const std::vector<float> prefill = AllLogits(e, tokens);
  SeqId seq = e.kv->AddSequence().value();
  std::vector<float> incremental;
  for (size_t i = 0; i < tokens.size(); ++i) {
    ForwardBatch batch;
    batch.Add(seq, {tokens[i]}, static_cast<int32_t>(i), true);
    auto logits = runner->Forward(batch, *e.kv);
    ASSERT_TRUE(logits.ok()) << logits.status();
    std::vector<float> row = logits->ToHost(runner->backend()).value();
    incremental.insert(incremental.end(), row.begin(), row.end());
  }
  ASSERT_EQ(prefill.size(), incremental.size());
  const double nmse = Nmse(incremental, prefill);
  std::printf("prefill vs incremental decode logits NMSE: %.3g\n", nmse);
  EXPECT_LT(nmse, 1e-6);
  for (size_t t = 0; t < tokens.size(); ++t) {
    EXPECT_EQ(Argmax(prefill.data() + t * vocab, vocab), Argmax(incremental.data() + t * vocab, vocab));
  }
}

TEST_F(ForwardTest, BatchedSequencesEqualSequential) {
  const std::vector<std::vector<int32_t>> prompts = {
      {504, 3575, 282, 4649, 314}, {19556, 28, 392, 416, 722, 253, 1102}, {33, 34, 35, 28, 216}};
  Engine e = MakeEngine("cpu");
  ModelRunner* runner = e.runner.get();
  const int32_t vocab = runner->config().vocab_size;
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) {
    std::vector<float> all = AllLogits(e, p);
    alone.emplace_back(all.end() - vocab, all.end());
  }
  ForwardBatch batch;
  std::vector<SeqId> seqs;
  for (const auto& p : prompts) {
    seqs.push_back(e.kv->AddSequence().value());
    batch.Add(seqs.back(), p, 0, true);
  }
  auto logits = runner->Forward(batch, *e.kv);
  ASSERT_TRUE(logits.ok()) << logits.status();
  const std::vector<float> together = logits->ToHost(runner->backend()).value();
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<float> row(together.begin() + i * vocab, together.begin() + (i + 1) * vocab);
    EXPECT_LT(Nmse(row, alone[i]), 1e-6) << "sequence " << i;
    EXPECT_EQ(Argmax(row.data(), vocab), Argmax(alone[i].data(), vocab));
  }
}

TEST_F(ForwardTest, BadInputIsAnError) {
  Engine e = MakeEngine("cpu");
  ModelRunner* runner = e.runner.get();
  PagedKvCache& kv = *e.kv;
  SeqId seq = kv.AddSequence().value();
  ForwardBatch bad_token;
  bad_token.Add(seq, {49152}, 0, true);
  EXPECT_THAT(runner->Forward(bad_token, kv),
              StatusIs(absl::StatusCode::kInvalidArgument, "49152"));
  ForwardBatch gap;
  gap.Add(seq, {1}, 5, true);
  EXPECT_THAT(runner->Forward(gap, kv), StatusIs(absl::StatusCode::kInvalidArgument, "position 5"));
  ForwardBatch past_context;
  past_context.Add(seq, {1}, runner->config().context_length, true);
  EXPECT_THAT(runner->Forward(past_context, kv), StatusIs(absl::StatusCode::kOutOfRange));
  std::vector<int32_t> too_long(runner->config().context_length, 1);
  EXPECT_THAT(Generate(*runner, kv, too_long, GenerateOptions{}),
              StatusIs(absl::StatusCode::kOutOfRange, "context length"));
  EXPECT_THAT(Generate(*runner, kv, {}, GenerateOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ForwardTest, SeededSamplingIsReproducible) {
  Engine e = MakeEngine("cpu");
  GenerateOptions options;
  options.max_tokens = 24;
  options.sampling = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f};
  options.seed = 1234;
  options.ignore_eos = true;
  const std::vector<int32_t> prompt = {504, 3575, 282, 4649, 314};
  auto a = Generate(*e.runner, *e.kv, prompt, options);
  auto b = Generate(*e.runner, *e.kv, prompt, options);
  options.seed = 99;
  auto c = Generate(*e.runner, *e.kv, prompt, options);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

}  // namespace
}  // namespace tandem::model
