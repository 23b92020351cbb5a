#include "common/log.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  return out;
}

std::vector<nlohmann::json> ParseJsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    out.push_back(nlohmann::json::parse(std::string(line)));  // throws (fails) on a bad line
  }
  return out;
}

EnvLookup NoEnv() {
  return [](const std::string&) { return std::optional<std::string>(); };
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { InitLogging("log_test", LogOptions{}); }  // back to text on stderr

 private:
  FlagSaver saver_;
};

TEST_F(LogTest, JsonRoutesByMessageSeverity) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  LogOptions options;
  options.min_severity = google::GLOG_WARNING;
  options.format = LogFormat::kJson;
  options.out = out;
  InitLogging("log_test", options);
  LOG(WARNING) << "req=r-1 warning-line";
  LOG(INFO) << "req=r-1 info-line";
  LOG(ERROR) << "req=r-1 error-line \"quoted\"";
  const std::string text = ReadAll(out);
  std::fclose(out);

  std::vector<nlohmann::json> lines = ParseJsonLines(text);
  ASSERT_EQ(lines.size(), 2u) << text;
  EXPECT_EQ(lines[0]["severity"], "WARNING");
  EXPECT_EQ(lines[0]["msg"], "req=r-1 warning-line");
  EXPECT_EQ(lines[0]["file"], "log_test.cc");
  EXPECT_TRUE(lines[0]["line"].is_number_integer());
  EXPECT_THAT(lines[0]["time"].get<std::string>(), HasSubstr("T"));
  EXPECT_EQ(lines[1]["severity"], "ERROR");
  EXPECT_EQ(lines[1]["msg"], "req=r-1 error-line \"quoted\"");
  EXPECT_THAT(text, Not(HasSubstr("info-line")));
}

TEST_F(LogTest, TextOnStderrRoutesByMessageSeverity) {
  LogOptions options;
  options.min_severity = google::GLOG_WARNING;
  InitLogging("log_test", options);
  ::testing::internal::CaptureStderr();
  LOG(WARNING) << "warning-text";
  LOG(INFO) << "info-text";
  const std::string text = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(text, HasSubstr("warning-text"));
  EXPECT_EQ(text.front(), 'W') << text;  // glog's prefix carries the message's own severity
  EXPECT_THAT(text, Not(HasSubstr("info-text")));
  EXPECT_THAT(text, Not(HasSubstr("{")));
}

TEST_F(LogTest, VerbosityControlsVlog) {
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  LogOptions options;
  options.verbosity = 1;
  options.format = LogFormat::kText;
  options.out = out;
  InitLogging("log_test", options);
  VLOG(1) << "vlog-one";
  VLOG(2) << "vlog-two";
  LOG(INFO) << "plain-info";
  const std::string text = ReadAll(out);
  std::fclose(out);
  EXPECT_THAT(text, HasSubstr("vlog-one"));
  EXPECT_THAT(text, HasSubstr("plain-info"));
  EXPECT_THAT(text, Not(HasSubstr("vlog-two")));
}

TEST_F(LogTest, OptionsFromFlags) {
  ASSERT_OK_AND_ASSIGN(LogOptions defaults, LogOptionsFromFlags());
  EXPECT_EQ(defaults.min_severity, google::GLOG_INFO);
  EXPECT_EQ(defaults.format, LogFormat::kText);

  ASSERT_OK(ParseFlags({"--log_level=Warning", "--log_format=json", "--v=2"}, NoEnv()));
  ASSERT_OK_AND_ASSIGN(LogOptions options, LogOptionsFromFlags());
  EXPECT_EQ(options.min_severity, google::GLOG_WARNING);
  EXPECT_EQ(options.format, LogFormat::kJson);
  EXPECT_EQ(options.verbosity, 2);

  ASSERT_OK(ParseFlags({"--log_level=loud"}, NoEnv()));
  EXPECT_THAT(LogOptionsFromFlags(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--log_level: 'loud' is not one of info|warning|error"));
  ASSERT_OK(ParseFlags({"--log_level=error", "--log_format=yaml"}, NoEnv()));
  EXPECT_THAT(LogOptionsFromFlags(),
              StatusIs(absl::StatusCode::kInvalidArgument, "--log_format: 'yaml'"));
}

TEST(FormatJsonLogLine, EscapesAndAlwaysParses) {
  const std::string line = FormatJsonLogLine(google::GLOG_ERROR, "x.cc", 12, /*unix_seconds=*/0,
                                             /*micros=*/42, "a \"b\"\nc \xff end");
  nlohmann::json j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "1970-01-01T00:00:00.000042Z");
  EXPECT_EQ(j["severity"], "ERROR");
  EXPECT_EQ(j["file"], "x.cc");
  EXPECT_EQ(j["line"], 12);
  EXPECT_THAT(j["msg"].get<std::string>(), HasSubstr("a \"b\"\nc "));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace tandem::testing
