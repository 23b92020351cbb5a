// CacheBlend in the forward pass (runtime/blend.h) on the real model, documents of real-looking
// text stored once as position-independent document blocks (runtime/document_kv.h) and blended into
// prompts that place them elsewhere:
//  - recompute ratio 1 is full prefill (logits within the harness tolerance, greedy identical);
//  - ratio 0 is plain reuse: every document row of every layer is the stored KV, re-rotated, and
//    the question's logits equal a forward over KV this test re-rotates itself;
//  - a single document right after the preamble is prefix reuse, bit for bit;
//  - K stored at base position p0 and re-rotated to p1 equals K computed at p1 (rounding only);
//  - a selected token never reads a later key: its recomputed KV does not change when the
//    question after it does (a bottom-right-aligned mask would let the last selected tokens read
//    the question), and the runner refuses the bottom-right key limits outright;
//  - the same documents in another order with another question reuse their KV, recompute about
//    the ratio, and land closer to full prefill than plain reuse.
#include "runtime/blend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <vector>

#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "runtime/block_io.h"
#include "runtime/document_kv.h"
#include "tests/model/long_text.h"
#include "tests/support/nmse.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::runtime {
namespace {

using ::tandem::testing::Nmse;
using ::tandem::testing::StatusIs;

constexpr int32_t kBlockTokens = 32;  // several blocks per document

struct Prompt {
  std::vector<int32_t> tokens;
  std::vector<std::pair<int32_t, int>> docs;  // (begin, document index)
};

class BlendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto file = format::GgufFile::Open(::tandem::testing::ModelPath());
    ASSERT_TRUE(file.ok()) << file.status();
    gguf_ = new format::GgufFile(std::move(file).value());
    auto tok = format::Tokenizer::FromGguf(*gguf_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    auto backend = kernels::GetBackend("cpu");
    ASSERT_TRUE(backend.ok());
    auto runner = model::ModelRunner::Create(*gguf_, **backend, {});
    ASSERT_TRUE(runner.ok()) << runner.status();
    runner_ = std::move(runner).value().release();
    // f32 KV: the comparisons below then see the blend's own differences, not f16 rounding.
    auto cache = model::PagedKvCache::Create(**backend, runner_->config(),
                                             {.dtype = DType::kF32, .capacity_tokens = 4096});
    ASSERT_TRUE(cache.ok()) << cache.status();
    cache_ = std::move(cache).value().release();
    format_.dtype = DType::kF32;
    format_.block_tokens = kBlockTokens;
    preamble_ = new std::vector<int32_t>(DocumentPreamble(runner_->config()));
    ASSERT_EQ(preamble_->size(), 1u);
    // Three documents of 70-110 tokens of varied text, each stored once.
    docs_ = new std::vector<std::vector<int32_t>>();
    blocks_ = new std::vector<std::vector<kv::KvBlock>>();
    for (uint32_t seed : {11u, 12u, 13u}) {
      std::vector<int32_t> t = tok->Encode(::tandem::testing::LongText(400 + 60 * seed % 7, seed),
                                           /*parse_special=*/false);
      t.resize(std::min<size_t>(t.size(), 70 + 20 * (seed - 11)));
      auto blocks = ComputeDocumentBlocks(*runner_, *cache_, format_, *preamble_, t);
      ASSERT_TRUE(blocks.ok()) << blocks.status();
      docs_->push_back(t);
      blocks_->push_back(std::move(blocks).value());
    }
    question1_ = new std::vector<int32_t>(
        tok->Encode("\nQuestion: who moved to the old factory, and when? Answer:", false));
    question2_ = new std::vector<int32_t>(
        tok->Encode("\nQuestion: how many families lost power in the storm? Answer:", false));
    filler_ = new std::vector<int32_t>(
        tok->Encode("You are a helpful assistant. Read the documents and answer briefly.", false));
  }
  static void TearDownTestSuite() {
    delete cache_;
    delete runner_;
    delete gguf_;
    delete preamble_;
    delete docs_;
    delete blocks_;
    delete question1_;
    delete question2_;
    delete filler_;
  }

  // [preamble][lead][documents in `order`][question].
  static Prompt MakePrompt(const std::vector<int>& order, const std::vector<int32_t>& question,
                           const std::vector<int32_t>& lead = {}) {
    Prompt p;
    p.tokens = *preamble_;
    p.tokens.insert(p.tokens.end(), lead.begin(), lead.end());
    for (int d : order) {
      p.docs.emplace_back(static_cast<int32_t>(p.tokens.size()), d);
      p.tokens.insert(p.tokens.end(), (*docs_)[d].begin(), (*docs_)[d].end());
    }
    p.tokens.insert(p.tokens.end(), question.begin(), question.end());
    return p;
  }

  // Full prefill of the prompt into a new sequence (left for the caller): last-token logits.
  static std::vector<float> Full(const Prompt& p, model::SeqId* seq) {
    *seq = cache_->AddSequence().value();
    model::ForwardBatch batch;
    batch.Add(*seq, p.tokens, 0, true);
    auto logits = runner_->Forward(batch, *cache_);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits->ToHost(runner_->backend()).value();
  }

  // The preamble prefilled as the cached prefix, then the blend (sequence left for the caller).
  static std::vector<float> Blended(const Prompt& p, const BlendOptions& options, model::SeqId* seq,
                                    BlendStats* stats) {
    *seq = cache_->AddSequence().value();
    model::ForwardBatch batch;
    batch.Add(*seq, *preamble_, 0, false);
    EXPECT_OK(runner_->Forward(batch, *cache_).status());
    BlendInput in;
    in.seq = *seq;
    in.tokens = p.tokens;
    in.cached_prefix = static_cast<int32_t>(preamble_->size());
    for (const auto& [begin, d] : p.docs) in.documents.push_back({begin, (*blocks_)[d]});
    auto result = Blend(*runner_, *cache_, in, options);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    *stats = result->stats;
    return result->logits.ToHost(runner_->backend()).value();
  }

  // K and V of `layer` at positions [begin, begin + count) of `seq`, f32.
  static std::pair<std::vector<float>, std::vector<float>> Rows(model::SeqId seq, int layer,
                                                                int32_t begin, int32_t count) {
    const auto& shape = cache_->row_format().row_shape;
    std::vector<float> k(static_cast<size_t>(count * shape[0] * shape[1])), v(k.size());
    EXPECT_OK(cache_->ReadTokens(
        seq, layer, begin,
        TensorView::Contiguous(k.data(), DType::kF32, {count, shape[0], shape[1]}),
        TensorView::Contiguous(v.data(), DType::kF32, {count, shape[0], shape[1]})));
    return {k, v};
  }

  // Greedy continuation of `steps` tokens from a sequence holding the prompt.
  static std::vector<int32_t> Greedy(model::SeqId seq, int32_t length,
                                     const std::vector<float>& logits, int steps) {
    std::vector<int32_t> out;
    std::vector<float> row = logits;
    for (int s = 0; s < steps; ++s) {
      const int32_t next =
          static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
      out.push_back(next);
      model::ForwardBatch batch;
      batch.Add(seq, {next}, length + s, true);
      auto l = runner_->Forward(batch, *cache_);
      EXPECT_TRUE(l.ok()) << l.status();
      row = l->ToHost(runner_->backend()).value();
    }
    return out;
  }

  static int Top1(const std::vector<float>& l) {
    return static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
  }

  static format::GgufFile* gguf_;
  static model::ModelRunner* runner_;
  static model::PagedKvCache* cache_;
  static KvFormat format_;
  static std::vector<int32_t>* preamble_;
  static std::vector<std::vector<int32_t>>* docs_;
  static std::vector<std::vector<kv::KvBlock>>* blocks_;
  static std::vector<int32_t>*question1_, *question2_, *filler_;
};
format::GgufFile* BlendTest::gguf_ = nullptr;
model::ModelRunner* BlendTest::runner_ = nullptr;
model::PagedKvCache* BlendTest::cache_ = nullptr;
KvFormat BlendTest::format_;
std::vector<int32_t>* BlendTest::preamble_ = nullptr;
std::vector<std::vector<int32_t>>* BlendTest::docs_ = nullptr;
std::vector<std::vector<kv::KvBlock>>* BlendTest::blocks_ = nullptr;
std::vector<int32_t>* BlendTest::question1_ = nullptr;
std::vector<int32_t>* BlendTest::question2_ = nullptr;
std::vector<int32_t>* BlendTest::filler_ = nullptr;

TEST_F(BlendTest, DocumentBlocksAreKeyedByTheirOwnTokensAndRefusedByPrefixImport) {
  const std::vector<kv::KvBlock>& blocks = (*blocks_)[0];
  ASSERT_EQ(blocks.size(), 3u);  // 70 tokens in blocks of 32
  EXPECT_EQ(blocks[0].key(), DocumentKeys(format_, *preamble_, (*docs_)[0])[0]);
  EXPECT_EQ(blocks[0].pos_begin(), 1);
  EXPECT_EQ(blocks[2].pos_begin(), 1 + 64);
  EXPECT_TRUE(blocks[0].header().is_document());
  EXPECT_OK(CheckDocumentBlocks(blocks, (*docs_)[0]));
  EXPECT_THAT(CheckDocumentBlocks(blocks, (*docs_)[1]),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const model::SeqId seq = cache_->AddSequence().value();
  EXPECT_THAT(ImportBlocks(*cache_, seq, blocks),
              StatusIs(absl::StatusCode::kInvalidArgument, "position-independent"));
  cache_->RemoveSequence(seq);
}

TEST_F(BlendTest, SelectionTakesTheLargestDeviationsInPositionOrder) {
  const std::vector<float> dev = {0.5f, 3.0f, 0.1f, 3.0f, 2.0f, 0.0f, 9.0f, 1.0f, 1.0f, 0.2f};
  EXPECT_EQ(SelectHighDeviation(dev, 0.3), (std::vector<int32_t>{1, 3, 6}));
  EXPECT_EQ(SelectHighDeviation(dev, 0.0), std::vector<int32_t>{});
  EXPECT_EQ(SelectHighDeviation(dev, 1.0).size(), dev.size());
  EXPECT_EQ(SelectHighDeviation(dev, 0.15), (std::vector<int32_t>{6}));  // floor(1.5)
}

TEST_F(BlendTest, RatioOneIsFullPrefill) {
  const Prompt p = MakePrompt({2, 0, 1}, *question1_, *filler_);
  model::SeqId full_seq, blend_seq;
  BlendStats stats;
  const std::vector<float> full = Full(p, &full_seq);
  const std::vector<float> blend =
      Blended(p, {.recompute_ratio = 1.0, .min_blend_tokens = 0}, &blend_seq, &stats);
  const double nmse = Nmse(full, blend);
  std::printf("BLEND ratio 1: logits NMSE vs full prefill %.3g, recomputed %d of %d reused\n", nmse,
              stats.recomputed_tokens, stats.reused_tokens);
  EXPECT_TRUE(stats.blended);
  EXPECT_EQ(stats.recomputed_tokens, stats.reused_tokens);
  EXPECT_LT(nmse, 1e-6);
  const int32_t n = static_cast<int32_t>(p.tokens.size());
  EXPECT_EQ(Greedy(full_seq, n, full, 8), Greedy(blend_seq, n, blend, 8));
  cache_->RemoveSequence(full_seq);
  cache_->RemoveSequence(blend_seq);
}

TEST_F(BlendTest, RatioZeroIsPlainReuseOfTheStoredKv) {
  const Prompt p = MakePrompt({1, 2}, *question1_, *filler_);
  model::SeqId seq;
  BlendStats stats;
  const std::vector<float> blend =
      Blended(p, {.recompute_ratio = 0.0, .min_blend_tokens = 0}, &seq, &stats);
  EXPECT_EQ(stats.recomputed_tokens, 0);
  EXPECT_EQ(stats.reused_tokens, static_cast<int32_t>((*docs_)[1].size() + (*docs_)[2].size()));

  // This test's own import of the stored KV (each block's K re-rotated by its delta with the Rope
  // op, V as stored), written into a fresh sequence with the same prefix and text; the question
  // forwarded over it must give the blend's logits, and every document row of every layer must be
  // that KV. (The same backend's Rope: the fast CPU matmul quantizes activations to 8 bits, so a
  // last-bit difference in K can move logits by far more than rounding.)
  kernels::KernelBackend& ref = runner_->backend();
  const model::SeqId manual = cache_->AddSequence().value();
  model::ForwardBatch head;
  const int32_t first_doc = p.docs.front().first;
  head.Add(manual, std::vector<int32_t>(p.tokens.begin(), p.tokens.begin() + first_doc), 0, false);
  ASSERT_OK(runner_->Forward(head, *cache_).status());
  ASSERT_OK(cache_->Reserve(manual, static_cast<int32_t>(p.tokens.size())));
  int32_t end = first_doc;
  for (const auto& [begin, d] : p.docs) {
    ASSERT_EQ(begin, end);  // documents back to back here
    int32_t at = begin;
    for (const kv::KvBlock& b : (*blocks_)[d]) {
      for (int layer = 0; layer < b.num_layers(); ++layer) {
        const TensorView k0 = b.k(layer);
        std::vector<float> k(k0.as<const float>(), k0.as<const float>() + k0.numel());
        std::vector<int32_t> delta(static_cast<size_t>(b.num_tokens()), at - b.pos_begin());
        TensorView kv =
            TensorView::Contiguous(k.data(), DType::kF32, {k0.shape[0], k0.shape[1], k0.shape[2]});
        ASSERT_OK(
            model::RotateKeys(ref, runner_->config(), kv,
                              TensorView::Contiguous(delta.data(), DType::kI32, {b.num_tokens()})));
        ASSERT_OK(cache_->WriteTokens(manual, layer, at, kv, b.v(layer)));
        const auto [bk, bv] = Rows(seq, layer, at, b.num_tokens());
        const TensorView v0 = b.v(layer);
        EXPECT_EQ(bv, std::vector<float>(v0.as<const float>(), v0.as<const float>() + v0.numel()))
            << "layer " << layer;
        double worst = 0.0;
        for (size_t i = 0; i < k.size(); ++i)
          worst = std::max(worst, double{std::fabs(bk[i] - k[i])});
        EXPECT_EQ(worst, 0.0) << "layer " << layer;
      }
      at += b.num_tokens();
    }
    end = at;
  }
  cache_->SetLength(manual, end);
  model::ForwardBatch tail;
  tail.Add(manual, std::vector<int32_t>(p.tokens.begin() + end, p.tokens.end()), end, true);
  auto logits = runner_->Forward(tail, *cache_);
  ASSERT_OK(logits.status());
  const std::vector<float> expected = logits->ToHost(runner_->backend()).value();
  const double nmse = Nmse(expected, blend);
  std::printf("BLEND ratio 0 vs this test's plain reuse: logits NMSE %.3g\n", nmse);
  EXPECT_LT(nmse, 1e-9);
  EXPECT_EQ(Top1(expected), Top1(blend));
  cache_->RemoveSequence(seq);
  cache_->RemoveSequence(manual);
}

TEST_F(BlendTest, SingleDocumentAfterThePreambleIsPrefixReuseExactly) {
  const Prompt p = MakePrompt({0}, *question1_);
  model::SeqId seq;
  BlendStats stats;
  const std::vector<float> blend =
      Blended(p, {.recompute_ratio = 0.15, .min_blend_tokens = 0}, &seq, &stats);
  EXPECT_EQ(stats.exact_tokens, static_cast<int32_t>((*docs_)[0].size()));
  EXPECT_EQ(stats.recomputed_tokens, 0);
  // Prefix reuse: the preamble and document forwarded once, the question on top.
  const model::SeqId prefix = cache_->AddSequence().value();
  const int32_t q = p.docs[0].first + static_cast<int32_t>((*docs_)[0].size());
  model::ForwardBatch a, b;
  a.Add(prefix, std::vector<int32_t>(p.tokens.begin(), p.tokens.begin() + q), 0, false);
  ASSERT_OK(runner_->Forward(a, *cache_).status());
  b.Add(prefix, std::vector<int32_t>(p.tokens.begin() + q, p.tokens.end()), q, true);
  auto logits = runner_->Forward(b, *cache_);
  ASSERT_OK(logits.status());
  EXPECT_EQ(logits->ToHost(runner_->backend()).value(), blend);
  cache_->RemoveSequence(seq);
  cache_->RemoveSequence(prefix);
}

TEST_F(BlendTest, KeyStoredAtOnePositionAndReRotatedEqualsKeyComputedAtTheOther) {
  // Document 1 stored at base position 1, used at position 1 + |filler| + |doc 0|. Layer 0's K
  // depends on the token alone, so the re-rotated rows must equal a full prefill's.
  const Prompt p = MakePrompt({0, 1}, *question1_, *filler_);
  model::SeqId full_seq, blend_seq;
  BlendStats stats;
  Full(p, &full_seq);
  Blended(p, {.recompute_ratio = 0.0, .min_blend_tokens = 0}, &blend_seq, &stats);
  const int32_t p1 = p.docs[1].first;
  ASSERT_GT(p1 - (*blocks_)[1][0].pos_begin(), 50);
  const int32_t count = static_cast<int32_t>((*docs_)[1].size());
  const auto [fk, fv] = Rows(full_seq, 0, p1, count);
  const auto [bk, bv] = Rows(blend_seq, 0, p1, count);
  double worst = 0.0, scale = 0.0;
  for (size_t i = 0; i < fk.size(); ++i) {
    worst = std::max(worst, double{std::fabs(fk[i] - bk[i])});
    scale = std::max(scale, double{std::fabs(fk[i])});
  }
  std::printf("BLEND K re-rotated by %d positions: max |diff| %.3g of max |K| %.3g\n",
              p1 - (*blocks_)[1][0].pos_begin(), worst, scale);
  EXPECT_LT(worst, 1e-5 * scale);
  EXPECT_LT(Nmse(fv, bv), 1e-10);
  cache_->RemoveSequence(full_seq);
  cache_->RemoveSequence(blend_seq);
}

TEST_F(BlendTest, SelectedTokensNeverReadLaterKeys) {
  ASSERT_EQ(question1_->size(), question1_->size());
  // Two prompts that differ only after the documents: the same tokens are selected, and their
  // recomputed KV in every late layer is identical. Under a bottom-right-aligned mask the last
  // selected tokens would read question keys and differ.
  std::vector<int32_t> q2 = *question2_;
  q2.resize(question1_->size(), q2.back());
  const Prompt p1 = MakePrompt({1, 0}, *question1_);
  const Prompt p2 = MakePrompt({1, 0}, q2);
  model::SeqId s1, s2;
  BlendStats st1, st2;
  const BlendOptions options{.recompute_ratio = 0.3, .min_blend_tokens = 0};
  Blended(p1, options, &s1, &st1);
  Blended(p2, options, &s2, &st2);
  ASSERT_EQ(st1.recomputed_positions, st2.recomputed_positions);
  ASSERT_GT(st1.recomputed_positions.size(), 10u);
  const int32_t question_at = p1.docs[1].first + static_cast<int32_t>((*docs_)[0].size());
  bool questions_differ = false;
  for (int layer = options.check_layer + 1; layer < runner_->config().n_layers; ++layer) {
    for (int32_t pos : st1.recomputed_positions) {
      ASSERT_LT(pos, question_at);
      EXPECT_EQ(Rows(s1, layer, pos, 1), Rows(s2, layer, pos, 1))
          << "layer " << layer << " pos " << pos;
    }
    const int32_t last = static_cast<int32_t>(p1.tokens.size()) - 1;
    questions_differ |= Rows(s1, layer, last, 1) != Rows(s2, layer, last, 1);
  }
  EXPECT_TRUE(questions_differ);  // the comparison sees a changed context where there is one

  // The reference code's mask for the same rows: selected row i reads keys up to
  // n - |rows| + i. The runner refuses a limit past a row's own position.
  std::vector<int32_t> rows = st1.recomputed_positions;
  for (int32_t p = question_at; p < static_cast<int32_t>(p1.tokens.size()); ++p) rows.push_back(p);
  model::RowBatch bottom_right;
  const int32_t n = static_cast<int32_t>(p1.tokens.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    bottom_right.seq_ids.push_back(s1);
    bottom_right.positions.push_back(rows[i]);
    bottom_right.key_limits.push_back(n - static_cast<int32_t>(rows.size()) +
                                      static_cast<int32_t>(i) + 1);
  }
  ASSERT_OK_AND_ASSIGN(model::HiddenStates h,
                       runner_->Embed(std::vector<int32_t>(rows.size(), 100)));
  EXPECT_THAT(runner_->RunLayers(bottom_right, *cache_, 2, 3, h),
              StatusIs(absl::StatusCode::kInvalidArgument));
  cache_->RemoveSequence(s1);
  cache_->RemoveSequence(s2);
}

TEST_F(BlendTest, OtherOrderAndOtherQuestionReuseTheKvAndBeatPlainReuse) {
  for (const auto& [order, question] :
       std::vector<std::pair<std::vector<int>, const std::vector<int32_t>*>>{
           {{0, 1, 2}, question1_}, {{2, 0}, question2_}}) {
    const Prompt p = MakePrompt(order, *question, *filler_);
    model::SeqId full_seq, s15, s0;
    BlendStats st15, st0;
    const std::vector<float> full = Full(p, &full_seq);
    const std::vector<float> b15 =
        Blended(p, {.recompute_ratio = 0.15, .min_blend_tokens = 0}, &s15, &st15);
    const std::vector<float> b0 =
        Blended(p, {.recompute_ratio = 0.0, .min_blend_tokens = 0}, &s0, &st0);
    int32_t reusable = 0;
    for (int d : order) reusable += static_cast<int32_t>((*docs_)[d].size());
    EXPECT_EQ(st15.reused_tokens, reusable);
    const double fraction = static_cast<double>(st15.recomputed_tokens) / st15.reused_tokens;
    EXPECT_NEAR(fraction, 0.15, 0.02);
    EXPECT_EQ(st15.computed_tokens, static_cast<int32_t>(filler_->size() + question->size()));
    const double n15 = Nmse(full, b15), n0 = Nmse(full, b0);
    std::printf(
        "BLEND order %zu docs: recomputed %d/%d, NMSE vs full: ratio 0.15 %.3g, ratio 0 "
        "%.3g; top-1 full %d, 0.15 %d, 0 %d\n",
        order.size(), st15.recomputed_tokens, st15.reused_tokens, n15, n0, Top1(full), Top1(b15),
        Top1(b0));
    EXPECT_LT(n15, n0);
    for (model::SeqId s : {full_seq, s15, s0}) cache_->RemoveSequence(s);
  }
}

TEST_F(BlendTest, BadInputIsRefusedAndLeavesThePrefix) {
  const Prompt p = MakePrompt({0, 1}, *question1_, *filler_);
  model::SeqId seq = cache_->AddSequence().value();
  model::ForwardBatch batch;
  batch.Add(seq, *preamble_, 0, false);
  ASSERT_OK(runner_->Forward(batch, *cache_).status());
  BlendInput in;
  in.seq = seq;
  in.tokens = p.tokens;
  in.cached_prefix = 1;
  in.documents.push_back({p.docs[0].first, (*blocks_)[1]});  // another document's blocks
  EXPECT_THAT(Blend(*runner_, *cache_, in, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  in.documents = {{p.docs[1].first, (*blocks_)[1]}, {p.docs[0].first, (*blocks_)[0]}};
  EXPECT_THAT(Blend(*runner_, *cache_, in, {}), StatusIs(absl::StatusCode::kInvalidArgument));
  in.documents = {{p.docs[0].first, (*blocks_)[0]}};
  EXPECT_THAT(Blend(*runner_, *cache_, in, {.recompute_ratio = 1.5}),
              StatusIs(absl::StatusCode::kInvalidArgument, "recompute_ratio"));
  EXPECT_THAT(Blend(*runner_, *cache_, in, {.check_layer = 30}),
              StatusIs(absl::StatusCode::kInvalidArgument, "check_layer"));
  EXPECT_EQ(cache_->Length(seq), 1);
  cache_->RemoveSequence(seq);
}

}  // namespace
}  // namespace tandem::runtime
