// The request checks every entry point shares (runtime/request_checks.h): each failure names the
// field the way its caller spells it, and the context-length error carries its code.
#include "runtime/request_checks.h"

#include <cmath>
#include <cstdint>

#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::runtime {
namespace {

using ::tandem::testing::StatusIs;

format::ModelConfig Config() {
  format::ModelConfig c;
  c.vocab_size = 100;
  c.context_length = 64;
  return c;
}

TEST(RequestChecksTest, PromptIdsAndContextLength) {
  BadField bad;
  EXPECT_OK(CheckPrompt({1, 2, 3}, 61, Config(), "tokens", &bad));
  EXPECT_THAT(CheckPrompt({}, 1, Config(), "tokens", &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, "tokens: the prompt has no tokens"));
  EXPECT_THAT(CheckPrompt({1, 100}, 1, Config(), "--prompt", &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, "--prompt: token 1 is id 100"));
  EXPECT_EQ(bad.param, "--prompt");
  EXPECT_EQ(bad.code, "");
  EXPECT_THAT(CheckPrompt({1, 2, 3}, 62, Config(), "tokens", &bad),
              StatusIs(absl::StatusCode::kOutOfRange, "context length of 64"));
  EXPECT_EQ(bad.code, "context_length_exceeded");
  // A huge max_new_tokens cannot wrap the sum into range.
  EXPECT_THAT(CheckPrompt({1}, INT64_MAX, Config(), "tokens"),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(CheckPrompt({1}, -1, Config(), "tokens"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(RequestChecksTest, SamplingFieldsCarryTheCallersPrefix) {
  BadField bad;
  node_api::Sampling s;
  EXPECT_OK(CheckSampling(s, Config(), "sampling."));
  s.top_k = 101;  // beyond the vocabulary: the decode node used to let this through
  EXPECT_THAT(CheckSampling(s, Config(), "sampling.", &bad),
              StatusIs(absl::StatusCode::kInvalidArgument, "sampling.top_k: 101"));
  EXPECT_EQ(bad.param, "sampling.top_k");
  s.top_k = 100;
  EXPECT_OK(CheckSampling(s, Config(), "sampling."));
  s.top_p = 0;
  EXPECT_THAT(CheckSampling(s, Config(), "--"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--top_p"));
  s.top_p = 1;
  s.temperature = -0.5;
  EXPECT_THAT(CheckSampling(s, Config(), "--"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--temperature"));
  s.temperature = std::nan("");
  EXPECT_THAT(CheckSampling(s, Config(), "--"),
              StatusIs(absl::StatusCode::kInvalidArgument, "--temperature"));
}

TEST(RequestChecksTest, TokenIds) {
  EXPECT_OK(CheckTokenId(99, Config(), "first_token"));
  EXPECT_THAT(CheckTokenId(100, Config(), "first_token"),
              StatusIs(absl::StatusCode::kInvalidArgument, "first_token: 100"));
  EXPECT_THAT(CheckTokenId(-1, Config(), "first_token"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace tandem::runtime
