// Documents tokenized on their own and joined as ids (router/segmenter.h), on the real tokenizer
// and chat template: every span holds exactly Encode(document), the text around the documents
// encodes as the template would, a request without documents encodes as before, and bad documents
// are 400s naming the field.
#include "router/segmenter.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "router/served_model.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::router {
namespace {

using ::tandem::testing::StatusIs;

class SegmenterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto model = ServedModel::Load(::tandem::testing::ModelPath());
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::move(model).value().release();
  }
  static void TearDownTestSuite() { delete model_; }
  static absl::StatusOr<SegmentedPrompt> Segment(const CompletionRequest& r, int64_t ctx = 8192) {
    return SegmentPrompt(r, model_->tokenizer(), model_->chat_template(), ctx);
  }
  static std::vector<int32_t> Encode(const std::string& s) {
    return model_->tokenizer().Encode(s, false);
  }
  static std::vector<int32_t> Span(const SegmentedPrompt& p, size_t i) {
    return std::vector<int32_t>(p.tokens.begin() + p.documents[i].begin,
                                p.tokens.begin() + p.documents[i].end);
  }
  static ServedModel* model_;
};
ServedModel* SegmenterTest::model_ = nullptr;

const char kDocA[] = "The lighthouse on Merrow Point was built in 1871 by Ada Quill.";
const char kDocB[] = " Its lamp burns whale oil and can be seen for nineteen miles.";

TEST_F(SegmenterTest, CompletionDocumentsPrecedeThePromptAsTheirOwnIds) {
  CompletionRequest r;
  r.endpoint = Endpoint::kCompletions;
  r.prompt = "Q: who built the lighthouse? A:";
  r.documents = {{"a", kDocA}, {"", kDocB}};
  ASSERT_OK_AND_ASSIGN(SegmentedPrompt p, Segment(r));
  ASSERT_EQ(p.documents.size(), 2u);
  EXPECT_EQ(p.documents[0].begin, 0);
  EXPECT_EQ(Span(p, 0), Encode(kDocA));
  EXPECT_EQ(Span(p, 1), Encode(kDocB));
  EXPECT_EQ(p.documents[1].begin, p.documents[0].end);
  std::vector<int32_t> joined = Encode(kDocA);
  for (int32_t t : Encode(kDocB)) joined.push_back(t);
  for (int32_t t : Encode(r.prompt)) joined.push_back(t);
  EXPECT_EQ(p.tokens, joined);
}

TEST_F(SegmenterTest, ChatDocumentsOpenTheirMessageInsideTheTemplate) {
  CompletionRequest r;
  r.endpoint = Endpoint::kChatCompletions;
  r.documents = {{"a", kDocA}};
  r.messages = {{"system", {{ContentPart::Type::kText, "Answer briefly.", ""}}},
                {"user",
                 {{ContentPart::Type::kText, "Who built it?", ""},
                  {ContentPart::Type::kDocument, kDocB, "b"}}}};
  ASSERT_OK_AND_ASSIGN(SegmentedPrompt p, Segment(r));
  ASSERT_EQ(p.documents.size(), 2u);
  EXPECT_EQ(Span(p, 0), Encode(kDocA));
  EXPECT_EQ(Span(p, 1), Encode(kDocB));
  // Before the documents: the template's rendering up to the user turn's header.
  const std::vector<format::ChatMessage> empty_user = {{"system", "Answer briefly."}, {"user", ""}};
  const std::vector<int32_t> chat =
      model_->chat_template().EncodeChat(model_->tokenizer(), empty_user, true);
  ASSERT_GE(chat.size(), static_cast<size_t>(p.documents[0].begin));
  EXPECT_EQ(std::vector<int32_t>(p.tokens.begin(), p.tokens.begin() + p.documents[0].begin),
            std::vector<int32_t>(chat.begin(), chat.begin() + p.documents[0].begin));
  // After them: the message's text, its end marker and the generation prompt.
  const std::vector<int32_t> text = Encode("Who built it?");
  EXPECT_EQ(std::vector<int32_t>(p.tokens.begin() + p.documents[1].end,
                                 p.tokens.begin() + p.documents[1].end + text.size()),
            text);
  EXPECT_EQ(p.tokens.size(), chat.size() + Span(p, 0).size() + Span(p, 1).size() + text.size());
}

TEST_F(SegmenterTest, NoDocumentsEncodesAsTheTemplateDoes) {
  CompletionRequest r;
  r.messages = {{"user", {{ContentPart::Type::kText, "Hello there", ""}}}};
  ASSERT_OK_AND_ASSIGN(SegmentedPrompt p, Segment(r));
  EXPECT_TRUE(p.documents.empty());
  EXPECT_EQ(p.tokens, model_->chat_template().EncodeChat(model_->tokenizer(),
                                                         {{"user", "Hello there"}}, true));
}

TEST_F(SegmenterTest, BadDocumentsAreRefusedByName) {
  CompletionRequest r;
  r.endpoint = Endpoint::kCompletions;
  r.prompt = "x";
  r.documents = {{"a", kDocA}, {"b", ""}};
  EXPECT_THAT(Segment(r), StatusIs(absl::StatusCode::kInvalidArgument, "documents[1].text"));
  r.documents = {{"a", kDocA}};
  auto too_long = Segment(r, 8);
  EXPECT_THAT(too_long, StatusIs(absl::StatusCode::kInvalidArgument, "documents[0].text"));
  EXPECT_EQ(ApiErrorFromStatus(too_long.status()).code, "context_length_exceeded");
  EXPECT_EQ(ApiErrorFromStatus(too_long.status()).param, "documents[0].text");
  r.documents.assign(kMaxDocuments + 1, Document{"", "d"});
  EXPECT_THAT(Segment(r), StatusIs(absl::StatusCode::kInvalidArgument, "documents"));
  CompletionRequest chat;
  chat.messages = {{"user", {{ContentPart::Type::kDocument, "", ""}}}};
  EXPECT_THAT(Segment(chat),
              StatusIs(absl::StatusCode::kInvalidArgument, "messages[0].content[0].text"));
}

}  // namespace
}  // namespace tandem::router
