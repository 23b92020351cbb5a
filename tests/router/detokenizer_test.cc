// Tests for router/detokenizer.h with the real SmolLM2 tokenizer: text split across tokens in the
// middle of a UTF-8 character is held until the character is complete.
#include "router/detokenizer.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::router {
namespace {

// True when `s` is whole, valid UTF-8 (no sequence cut at either end).
bool IsWholeUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + static_cast<size_t>(k)]) >> 6) != 2) return false;
    }
    i += static_cast<size_t>(len);
  }
  return true;
}

class DetokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = ServedModel::Load(testing::ModelPath());
    ASSERT_OK(model.status());
    model_ = model->release();
  }
  static void TearDownTestSuite() { delete model_; }
  static ServedModel* model_;
};
ServedModel* DetokenizerTest::model_ = nullptr;

TEST_F(DetokenizerTest, SplitCharactersWaitForTheirLastByte) {
  const std::string text = "Café 😀 日本語 naïve — 🇫🇷 ok";
  const std::vector<int32_t> ids = model_->tokenizer().Encode(text, /*parse_special=*/false);
  IncrementalDetokenizer detok(*model_);
  std::string joined;
  int held = 0;
  for (int32_t id : ids) {
    const std::string piece = detok.Push(id);
    EXPECT_TRUE(IsWholeUtf8(piece)) << "token " << id << " emitted a cut character";
    if (piece.empty()) ++held;
    joined += piece;
  }
  joined += detok.Flush();
  EXPECT_EQ(joined, text);
  // Byte-level BPE spells the emoji and CJK characters with tokens that end mid-character.
  EXPECT_GT(held, 0) << "no token split a character; the test text no longer covers the case";
  std::printf("%zu tokens, %d emitted nothing while a character was incomplete\n", ids.size(),
              held);
}

TEST_F(DetokenizerTest, EndOfGenerationIdsProduceNoText) {
  IncrementalDetokenizer detok(*model_);
  const std::vector<int32_t> im_end = model_->tokenizer().Encode("<|im_end|>", true);
  ASSERT_EQ(im_end.size(), 1u);
  ASSERT_TRUE(model_->IsEndOfGeneration(im_end[0]));
  EXPECT_EQ(detok.Push(im_end[0]), "");
  EXPECT_EQ(detok.Flush(), "");
}

TEST_F(DetokenizerTest, UnfinishedCharacterAtTheEndBecomesReplacement) {
  const std::vector<int32_t> ids = model_->tokenizer().Encode("😀", false);
  ASSERT_GT(ids.size(), 1u) << "the emoji is one token; pick another character";
  IncrementalDetokenizer detok(*model_);
  EXPECT_EQ(detok.Push(ids[0]), "");
  EXPECT_EQ(detok.Flush(), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace tandem::router
