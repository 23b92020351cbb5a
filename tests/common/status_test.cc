#include "common/status.h"

#include <string>

#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

absl::Status FailIf(bool fail) {
  return fail ? absl::NotFoundError("block 7") : absl::OkStatus();
}

absl::StatusOr<int> ValueOr(bool fail, int value) {
  if (fail) return absl::UnavailableError("redis down");
  return value;
}

// Counts how far it got, so the tests see that the macros return early.
absl::Status Chain(bool fail, int* reached) {
  TANDEM_RETURN_IF_ERROR(FailIf(fail));
  *reached = 1;
  return absl::OkStatus();
}

absl::StatusOr<int> Doubled(bool fail, int* reached) {
  TANDEM_ASSIGN_OR_RETURN(int v, ValueOr(fail, 21));
  *reached = 1;
  TANDEM_ASSIGN_OR_RETURN(const int w, ValueOr(false, v));  // twice in one scope compiles
  return v + w;
}

TEST(StatusMacros, ReturnIfErrorPropagates) {
  int reached = 0;
  EXPECT_THAT(Chain(true, &reached), StatusIs(absl::StatusCode::kNotFound, "block 7"));
  EXPECT_EQ(reached, 0);
  EXPECT_OK(Chain(false, &reached));
  EXPECT_EQ(reached, 1);
}

TEST(StatusMacros, AssignOrReturnUnwrapsOrPropagates) {
  int reached = 0;
  EXPECT_THAT(Doubled(true, &reached), StatusIs(absl::StatusCode::kUnavailable, "redis down"));
  EXPECT_EQ(reached, 0);
  ASSERT_OK_AND_ASSIGN(int v, Doubled(false, &reached));
  EXPECT_EQ(v, 42);
  EXPECT_EQ(reached, 1);
}

TEST(Annotate, KeepsCodeAndPayloadPrefixesMessage) {
  absl::Status s = absl::DataLossError("checksum mismatch");
  s.SetPayload("tandem/miss_reason", absl::Cord("checksum"));
  absl::Status a = Annotate(s, "while loading blocks of r-42");
  EXPECT_EQ(a.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(a.message(), "while loading blocks of r-42: checksum mismatch");
  ASSERT_TRUE(a.GetPayload("tandem/miss_reason").has_value());
  EXPECT_EQ(std::string(*a.GetPayload("tandem/miss_reason")), "checksum");
  EXPECT_OK(Annotate(absl::OkStatus(), "context"));
  EXPECT_EQ(Annotate(s, ""), s);
}

TEST(HttpStatusFromStatus, Mapping) {
  EXPECT_EQ(HttpStatusFromStatus(absl::OkStatus()), 200);
  EXPECT_EQ(HttpStatusFromStatus(absl::InvalidArgumentError("")), 400);
  EXPECT_EQ(HttpStatusFromStatus(absl::FailedPreconditionError("")), 400);
  EXPECT_EQ(HttpStatusFromStatus(absl::OutOfRangeError("")), 400);
  EXPECT_EQ(HttpStatusFromStatus(absl::NotFoundError("")), 404);
  EXPECT_EQ(HttpStatusFromStatus(absl::ResourceExhaustedError("")), 503);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnavailableError("")), 503);
  EXPECT_EQ(HttpStatusFromStatus(absl::DeadlineExceededError("")), 504);
  EXPECT_EQ(HttpStatusFromStatus(absl::CancelledError("")), 499);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnimplementedError("")), 501);
  EXPECT_EQ(HttpStatusFromStatus(absl::InternalError("")), 500);
  EXPECT_EQ(HttpStatusFromStatus(absl::DataLossError("")), 500);
  EXPECT_EQ(HttpStatusFromStatus(absl::UnknownError("")), 500);
}

TEST(IsRetryable, OnlyTransientCodes) {
  EXPECT_TRUE(IsRetryable(absl::UnavailableError("")));
  EXPECT_TRUE(IsRetryable(absl::ResourceExhaustedError("")));
  EXPECT_TRUE(IsRetryable(absl::DeadlineExceededError("")));
  EXPECT_TRUE(IsRetryable(absl::AbortedError("")));
  EXPECT_FALSE(IsRetryable(absl::OkStatus()));
  EXPECT_FALSE(IsRetryable(absl::InvalidArgumentError("")));
  EXPECT_FALSE(IsRetryable(absl::NotFoundError("")));
  EXPECT_FALSE(IsRetryable(absl::DataLossError("")));
  EXPECT_FALSE(IsRetryable(absl::InternalError("")));
  EXPECT_FALSE(IsRetryable(absl::CancelledError("")));
}

TEST(ExitCodeFromStatus, Mapping) {
  EXPECT_EQ(ExitCodeFromStatus(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFromStatus(absl::InvalidArgumentError("--v: bad")), 2);
  EXPECT_EQ(ExitCodeFromStatus(absl::InternalError("")), 1);
}

TEST(StringViewAdapters, RoundTrip) {
  std::string s = "tandem";
  EXPECT_EQ(SV(AV(s)), "tandem");
  EXPECT_EQ(AV(std::string_view(s)).size(), 6u);
}

TEST(TandemCheckDeathTest, AbortsWithMessage) {
  const int blocks = 3;
  EXPECT_DEATH(TANDEM_CHECK(blocks == 4) << "blocks=" << blocks,
               "TANDEM_CHECK failed: blocks == 4 blocks=3");
  TANDEM_CHECK(blocks == 3) << "never evaluated";
}

}  // namespace
}  // namespace tandem::testing
