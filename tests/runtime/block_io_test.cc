// Blocks in and out of a sequence (runtime/block_io.h) on the real model: blocks exported from one
// sequence and imported at a non-zero start into another sequence that already holds the tokens
// before them continue exactly as if that sequence had computed them, and imports that would
// leave a gap or mix formats are refused.
#include "runtime/block_io.h"

#include <cstdio>
#include <memory>
#include <vector>

#include "common/model_format/gguf.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/model/model_runner.h"
#include "kernels/model/paged_kv_cache.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::runtime {
namespace {

using ::tandem::testing::StatusIs;

constexpr int32_t kBlockTokens = 16;

class BlockIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(format::GgufFile file,
                         format::GgufFile::Open(::tandem::testing::ModelPath()));
    gguf_ = std::make_unique<format::GgufFile>(std::move(file));
    ASSERT_OK_AND_ASSIGN(kernels::KernelBackend * backend, kernels::GetBackend("cpu"));
    ASSERT_OK_AND_ASSIGN(runner_, model::ModelRunner::Create(*gguf_, *backend, {}));
    ASSERT_OK_AND_ASSIGN(kv_, model::PagedKvCache::Create(*backend, runner_->config(), {}));
    format_.dtype = kv_->options().dtype;
    format_.block_tokens = kBlockTokens;
    // 3 full blocks and a 7-token tail.
    for (int32_t i = 0; i < 3 * kBlockTokens + 7; ++i) tokens_.push_back(200 + (i * 37) % 3000);
  }

  // Forwards tokens [begin, end) of the prompt into `seq` and returns the last row's logits.
  std::vector<float> Forward(model::SeqId seq, int32_t begin, int32_t end) {
    model::ForwardBatch batch;
    batch.Add(seq, std::vector<int32_t>(tokens_.begin() + begin, tokens_.begin() + end), begin,
              /*want_last_logits=*/true);
    auto logits = runner_->Forward(batch, *kv_);
    EXPECT_TRUE(logits.ok()) << logits.status();
    return logits.ok() ? logits->ToHost(runner_->backend()).value() : std::vector<float>{};
  }

  std::unique_ptr<format::GgufFile> gguf_;
  std::unique_ptr<model::ModelRunner> runner_;
  std::unique_ptr<model::PagedKvCache> kv_;
  KvFormat format_;
  std::vector<int32_t> tokens_;
};

TEST_F(BlockIoTest, ImportAtANonZeroStartContinuesLikeComputing) {
  const int32_t n = static_cast<int32_t>(tokens_.size());
  const model::SeqId source = kv_->AddSequence().value();
  const std::vector<float> expected = Forward(source, 0, n);
  ASSERT_OK_AND_ASSIGN(std::vector<kv::KvBlock> blocks,
                       ExportBlocks(*kv_, source, format_, tokens_, 0, format_.Root()));
  ASSERT_EQ(blocks.size(), 4u);
  EXPECT_EQ(blocks[3].num_tokens(), 7);

  // The target computes block 0 itself, imports blocks 1 and 2 at position 16, computes the rest.
  const model::SeqId target = kv_->AddSequence().value();
  Forward(target, 0, kBlockTokens);
  ASSERT_EQ(kv_->Length(target), kBlockTokens);
  ASSERT_OK(ImportBlocks(*kv_, target, absl::MakeConstSpan(blocks).subspan(1, 2)));
  EXPECT_EQ(kv_->Length(target), 3 * kBlockTokens);
  const std::vector<float> got = Forward(target, 3 * kBlockTokens, n);
  EXPECT_EQ(got, expected) << "logits after the imported blocks differ from computing them";

  // Exported again, the target's KV is the source's, byte for byte (the same keys, too).
  ASSERT_OK_AND_ASSIGN(std::vector<kv::KvBlock> again,
                       ExportBlocks(*kv_, target, format_, tokens_, 0, format_.Root()));
  ASSERT_EQ(again.size(), blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    EXPECT_EQ(again[b].key(), blocks[b].key()) << b;
    EXPECT_TRUE(std::equal(again[b].bytes().begin(), again[b].bytes().end(),
                           blocks[b].bytes().begin(), blocks[b].bytes().end()))
        << "block " << b;
  }
  std::printf(
      "IMPORT blocks 1-2 at position %d into a sequence holding %d tokens: last logits "
      "bit-identical, %zu blocks re-exported identical\n",
      kBlockTokens, kBlockTokens, again.size());

  // Importing over positions the sequence holds rewrites them and keeps its length.
  ASSERT_OK(ImportBlocks(*kv_, target, absl::MakeConstSpan(blocks).subspan(0, 1)));
  EXPECT_EQ(kv_->Length(target), n);
}

TEST_F(BlockIoTest, ImportsThatDoNotFitAreRefused) {
  const int32_t n = static_cast<int32_t>(tokens_.size());
  const model::SeqId source = kv_->AddSequence().value();
  Forward(source, 0, n);
  ASSERT_OK_AND_ASSIGN(std::vector<kv::KvBlock> blocks,
                       ExportBlocks(*kv_, source, format_, tokens_, 0, format_.Root()));
  const model::SeqId target = kv_->AddSequence().value();
  // Block 1 starts at 16; the empty sequence would have a gap at [0, 16).
  EXPECT_THAT(ImportBlocks(*kv_, target, absl::MakeConstSpan(blocks).subspan(1, 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, "gap"));
  // Blocks 0 and 2 leave positions [16, 32) out.
  const std::vector<kv::KvBlock> holey = {blocks[0], blocks[2]};
  EXPECT_THAT(ImportBlocks(*kv_, target, holey),
              StatusIs(absl::StatusCode::kInvalidArgument, "expected 16"));
  EXPECT_EQ(kv_->Length(target), 0);
  // f32 blocks do not go into an f16 cache.
  KvFormat f32 = format_;
  f32.dtype = DType::kF32;
  model::KvRowFormat rows = kv_->row_format();
  std::vector<float> zeros(static_cast<size_t>(kBlockTokens) * rows.row_shape[0] *
                           rows.row_shape[1]);
  std::vector<TensorView> k(
      static_cast<size_t>(rows.layers),
      TensorView::Contiguous(zeros.data(), DType::kF32,
                             {kBlockTokens, rows.row_shape[0], rows.row_shape[1]}));
  ASSERT_OK_AND_ASSIGN(
      kv::KvBlock f32_block,
      kv::KvBlock::Build(f32, f32.Root(), absl::MakeConstSpan(tokens_).subspan(0, kBlockTokens), 0,
                         k, k));
  EXPECT_THAT(ImportBlocks(*kv_, target, {f32_block}),
              StatusIs(absl::StatusCode::kInvalidArgument, "layers of"));
  // Rows of another shape (2 heads of 96 instead of 3 of 64) are refused before any write, even
  // over positions the sequence holds.
  const model::SeqId held = kv_->AddSequence().value();
  Forward(held, 0, kBlockTokens);
  const auto held_tokens = absl::MakeConstSpan(tokens_).subspan(0, kBlockTokens);
  ASSERT_OK_AND_ASSIGN(std::vector<kv::KvBlock> mine,
                       ExportBlocks(*kv_, held, format_, held_tokens, 0, format_.Root()));
  std::vector<uint16_t> halves(static_cast<size_t>(kBlockTokens) * 2 * 96);
  std::vector<TensorView> odd(
      static_cast<size_t>(rows.layers),
      TensorView::Contiguous(halves.data(), DType::kF16, {kBlockTokens, 2, 96}));
  ASSERT_OK_AND_ASSIGN(
      kv::KvBlock odd_block,
      kv::KvBlock::Build(format_, blocks[0].key(),
                         absl::MakeConstSpan(tokens_).subspan(kBlockTokens, kBlockTokens),
                         kBlockTokens, odd, odd));
  // Zeros over the positions the sequence holds, then 16..31: the positions fit, only the second
  // block's rows differ, and had the first been written before the check, the held KV would be
  // zeros now.
  std::vector<uint16_t> zero_halves(static_cast<size_t>(kBlockTokens) * rows.row_shape[0] *
                                    rows.row_shape[1]);
  std::vector<TensorView> zero(
      static_cast<size_t>(rows.layers),
      TensorView::Contiguous(zero_halves.data(), DType::kF16,
                             {kBlockTokens, rows.row_shape[0], rows.row_shape[1]}));
  ASSERT_OK_AND_ASSIGN(kv::KvBlock zero_block,
                       kv::KvBlock::Build(format_, format_.Root(), held_tokens, 0, zero, zero));
  EXPECT_THAT(ImportBlocks(*kv_, held, {zero_block, odd_block}),
              StatusIs(absl::StatusCode::kInvalidArgument, "block 1 holds f16[16, 2, 96] rows"));
  ASSERT_OK_AND_ASSIGN(std::vector<kv::KvBlock> after,
                       ExportBlocks(*kv_, held, format_, held_tokens, 0, format_.Root()));
  ASSERT_EQ(after.size(), mine.size());
  EXPECT_TRUE(std::equal(after[0].bytes().begin(), after[0].bytes().end(), mine[0].bytes().begin(),
                         mine[0].bytes().end()))
      << "a refused import changed the KV the sequence held";
  // Export of more tokens than the sequence holds.
  EXPECT_THAT(ExportBlocks(*kv_, target, format_, tokens_, 0, format_.Root()),
              StatusIs(absl::StatusCode::kInvalidArgument, "holds 0"));
}

}  // namespace
}  // namespace tandem::runtime
