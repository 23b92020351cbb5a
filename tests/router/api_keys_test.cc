// API keys from a file and the per-key limits: names and keys are checked (errors never show a
// key), a token matches only its own key, one key at its concurrency or token-rate limit is refused
// with a wait while the other keys are not.
#include "router/api_keys.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::router {
namespace {

using ::tandem::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ApiKeys, ParsesNamesAndKeysAndRefusesBadLines) {
  ASSERT_OK_AND_ASSIGN(
      std::vector<ApiKey> keys,
      ParseApiKeys("# tenants\nalice: alice-key-0123456789\n\nbob:bob-key-0123456789ab\n",
                   "keys.txt"));
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0].name, "alice");
  EXPECT_EQ(keys[0].key, "alice-key-0123456789");
  EXPECT_EQ(MatchApiKey(keys, "bob-key-0123456789ab"), &keys[1]);
  EXPECT_EQ(MatchApiKey(keys, "bob-key-0123456789a"), nullptr);
  EXPECT_EQ(MatchApiKey(keys, ""), nullptr);

  for (const char* bad : {"no-colon-here-0123456789", "bad name:0123456789abcdef", "alice:tiny7",
                          "a:0123456789abcdef\na:fedcba9876543210",
                          "a:0123456789abcdef\nb:0123456789abcdef", "# nothing\n"}) {
    absl::StatusOr<std::vector<ApiKey>> r = ParseApiKeys(bad, "keys.txt");
    EXPECT_THAT(r.status(), StatusIs(absl::StatusCode::kInvalidArgument, "keys.txt")) << bad;
    EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("0123456789abcdef")));
    EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr("tiny7")));
  }
}

TEST(KeyLimiter, ConcurrencyIsPerKey) {
  KeyLimiter limiter(KeyLimits{.max_concurrent = 2, .tokens_per_minute = 0});
  ASSERT_OK_AND_ASSIGN(auto a1, limiter.Acquire("alice"));
  ASSERT_OK_AND_ASSIGN(auto a2, limiter.Acquire("alice"));
  EXPECT_THAT(limiter.Acquire("alice").status(),
              StatusIs(absl::StatusCode::kResourceExhausted, "alice"));
  ASSERT_OK(limiter.Acquire("bob").status());  // bob is not affected
  a1.reset();
  ASSERT_OK(limiter.Acquire("alice").status());  // a slot came back
}

TEST(KeyLimiter, TokenRateRefillsPerMinute) {
  KeyLimiter limiter(KeyLimits{.max_concurrent = 0, .tokens_per_minute = 600});
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_FALSE(limiter.Charge("alice", 500, t0).has_value());
  std::optional<absl::Duration> wait = limiter.Charge("alice", 200, t0);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(*wait, absl::Seconds(10));  // 100 tokens short at 10 tokens/s
  EXPECT_FALSE(limiter.Charge("bob", 600, t0).has_value());
  EXPECT_FALSE(limiter.Charge("alice", 200, t0 + absl::Seconds(10)).has_value());
  // A request larger than a minute's budget waits for a full bucket, not forever.
  wait = limiter.Charge("alice", 10'000, t0 + absl::Seconds(10));
  ASSERT_TRUE(wait.has_value());
  EXPECT_LE(*wait, absl::Minutes(1));
}

}  // namespace
}  // namespace tandem::router
