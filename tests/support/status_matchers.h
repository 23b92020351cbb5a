// tests/support/status_matchers.h
//
// GoogleTest helpers for absl::Status (Abseil 20220623 ships none): ASSERT_OK, EXPECT_OK,
// ASSERT_OK_AND_ASSIGN and the StatusIs(code) / StatusIs(code, substring) matcher.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tandem::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER_P(StatusIs, code, "") {
  const absl::Status& s = ::tandem::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

MATCHER_P2(StatusIs, code, substring, "") {
  const absl::Status& s = ::tandem::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         std::string(s.message()).find(std::string(substring)) != std::string::npos;
}

}  // namespace tandem::testing

#define TANDEM_TEST_CONCAT_INNER_(a, b) a##b
#define TANDEM_TEST_CONCAT_(a, b) TANDEM_TEST_CONCAT_INNER_(a, b)

#define EXPECT_OK(expr) EXPECT_TRUE(::tandem::testing::GetStatus(expr).ok()) \
    << ::tandem::testing::GetStatus(expr).ToString()
#define ASSERT_OK(expr)                                                     \
  do {                                                                      \
    const auto& tandem_s_ = (expr);                                         \
    ASSERT_TRUE(::tandem::testing::GetStatus(tandem_s_).ok())               \
        << ::tandem::testing::GetStatus(tandem_s_).ToString();              \
  } while (0)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(TANDEM_TEST_CONCAT_(tandem_so_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(so, lhs, expr)             \
  auto so = (expr);                                          \
  ASSERT_TRUE(so.ok()) << so.status().ToString();            \
  lhs = std::move(so).value()
