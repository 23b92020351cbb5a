#include "common/flags.h"

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {

TANDEM_DECLARE_FLAG(int64_t, flags_test_other_tu_bytes);

TANDEM_FLAG(bool, flags_test_enable, false, "Test bool flag.");
TANDEM_FLAG(int32_t, flags_test_max_tokens, 128, "Test int32 flag.");
TANDEM_FLAG(double, flags_test_ratio, 0.15, "Test double flag.");
TANDEM_FLAG(std::string, flags_test_name, "prefill-0", "Test string flag.");
TANDEM_SECRET_FLAG(std::string, flags_test_token, "", "Test secret flag.");
TANDEM_SECRET_FLAG(int32_t, flags_test_pin, 0, "Test secret int flag.");

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

absl::StatusOr<ParsedCommandLine> Parse(std::vector<std::string> args,
                                        std::map<std::string, std::string> env = {}) {
  return ParseFlags(args, Env(std::move(env)));
}

class FlagsTest : public ::testing::Test {
 private:
  FlagSaver saver_;
};

TEST_F(FlagsTest, DefaultsAndRegistry) {
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 128);
  EXPECT_EQ(GetFlag(FLAGS_flags_test_name), "prefill-0");
  EXPECT_EQ(GetFlag(FLAGS_flags_test_other_tu_bytes), int64_t{1} << 30);
  FlagBase* flag = FindFlag("flags_test_other_tu_bytes");
  ASSERT_NE(flag, nullptr);
  EXPECT_EQ(flag->type(), FlagType::kInt64);
  EXPECT_THAT(std::string(flag->file()), HasSubstr("flags_test_other_tu.cc"));
  EXPECT_EQ(flag->EnvVar(), "TANDEM_FLAGS_TEST_OTHER_TU_BYTES");
  EXPECT_EQ(FindFlag("no_such_flag"), nullptr);
  std::vector<FlagBase*> flags = ListFlags();
  for (size_t i = 1; i < flags.size(); ++i) EXPECT_LT(flags[i - 1]->name(), flags[i]->name());
}

TEST_F(FlagsTest, ParsesAllFormsAndReturnsPositional) {
  ASSERT_OK_AND_ASSIGN(
      ParsedCommandLine parsed,
      Parse({"serve", "--flags_test_max_tokens=7", "--flags_test_name", "decode-1",
             "--flags_test_enable", "--flags_test_ratio=0.5", "model.gguf", "--", "--not_a_flag"}));
  EXPECT_THAT(parsed.positional, ElementsAre("serve", "model.gguf", "--not_a_flag"));
  EXPECT_FALSE(parsed.help);
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 7);
  EXPECT_EQ(GetFlag(FLAGS_flags_test_name), "decode-1");
  EXPECT_TRUE(GetFlag(FLAGS_flags_test_enable));
  EXPECT_DOUBLE_EQ(GetFlag(FLAGS_flags_test_ratio), 0.5);
  EXPECT_EQ(FindFlag("flags_test_name")->source(), FlagSource::kCommandLine);

  ASSERT_OK(Parse({"--noflags_test_enable"}));
  EXPECT_FALSE(GetFlag(FLAGS_flags_test_enable));
  ASSERT_OK(Parse({"--flags_test_enable=true"}));
  EXPECT_TRUE(GetFlag(FLAGS_flags_test_enable));
  ASSERT_OK(Parse({"--flags_test_enable=false"}));
  EXPECT_FALSE(GetFlag(FLAGS_flags_test_enable));
}

TEST_F(FlagsTest, PrecedenceDefaultEnvCommandLine) {
  ASSERT_OK(Parse({}, {{"TANDEM_FLAGS_TEST_MAX_TOKENS", "64"}}));
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 64);
  EXPECT_EQ(FindFlag("flags_test_max_tokens")->source(), FlagSource::kEnv);
  EXPECT_EQ(GetFlag(FLAGS_flags_test_name), "prefill-0");  // untouched: still the default
  EXPECT_EQ(FindFlag("flags_test_name")->source(), FlagSource::kDefault);

  ASSERT_OK(Parse({"--flags_test_max_tokens=32"}, {{"TANDEM_FLAGS_TEST_MAX_TOKENS", "64"}}));
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 32);
  EXPECT_EQ(FindFlag("flags_test_max_tokens")->source(), FlagSource::kCommandLine);
}

TEST_F(FlagsTest, StrictErrorsNameTheFlag) {
  EXPECT_THAT(Parse({"--foo=1"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag --foo"));
  EXPECT_THAT(Parse({"-flags_test_enable"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag -flags_test_enable"));
  EXPECT_THAT(Parse({"--flags_test_max_tokens=abc"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--flags_test_max_tokens: 'abc' is not an int32"));
  EXPECT_THAT(Parse({"--flags_test_max_tokens=12x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "'12x' is not an int32"));
  EXPECT_THAT(Parse({"--flags_test_max_tokens=3000000000"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "is not an int32"));
  EXPECT_THAT(Parse({"--flags_test_max_tokens"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "--flags_test_max_tokens: missing"));
  EXPECT_THAT(Parse({"--flags_test_enable=maybe"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "is not a bool"));
  EXPECT_THAT(Parse({"--flags_test_ratio=0.1.2"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "is not a double"));
  EXPECT_THAT(Parse({"--noflags_test_max_tokens"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "unknown flag --noflags_test_max_tokens"));
  EXPECT_THAT(Parse({}, {{"TANDEM_FLAGS_TEST_OTHER_TU_BYTES", "lots"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "TANDEM_FLAGS_TEST_OTHER_TU_BYTES: --flags_test_other_tu_bytes: 'lots' is "
                       "not an int64"));
  // A rejected value leaves the old one in place.
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 128);
}

TEST_F(FlagsTest, Flagfile) {
  const std::string path = ::testing::TempDir() + "/flags_test.flags";
  {
    std::ofstream out(path);
    out << "# comment line\n\n  --flags_test_max_tokens=9\n--flags_test_name=from-file\n";
  }
  ASSERT_OK(Parse({"--flagfile=" + path, "--flags_test_name=later-wins"}));
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 9);
  EXPECT_EQ(GetFlag(FLAGS_flags_test_name), "later-wins");

  {
    std::ofstream out(path);
    out << "--flags_test_max_tokens=nine\n";
  }
  EXPECT_THAT(Parse({"--flagfile", path}),
              StatusIs(absl::StatusCode::kInvalidArgument, "'nine' is not an int32"));
  EXPECT_THAT(Parse({"--flagfile=/nonexistent/x.flags"}),
              StatusIs(absl::StatusCode::kInvalidArgument, "/nonexistent/x.flags"));
  std::remove(path.c_str());
}

TEST_F(FlagsTest, HelpListsFlagsWithDefaultsAndEnv) {
  ASSERT_OK_AND_ASSIGN(ParsedCommandLine parsed, Parse({"--help"}));
  EXPECT_TRUE(parsed.help);
  EXPECT_THAT(parsed.positional, IsEmpty());
  const std::string help = HelpText("Usage: flags_test [flags]");
  EXPECT_THAT(help, HasSubstr("Usage: flags_test [flags]"));
  EXPECT_THAT(help, HasSubstr("--flags_test_ratio=<double>  Test double flag."));
  EXPECT_THAT(help, HasSubstr("default: 0.15  env: TANDEM_FLAGS_TEST_RATIO"));
  EXPECT_THAT(help, HasSubstr("default: 1073741824  env: TANDEM_FLAGS_TEST_OTHER_TU_BYTES"));
  EXPECT_THAT(help, HasSubstr("default: \"prefill-0\""));
  EXPECT_THAT(help, HasSubstr("\n  from tests/common/flags_test_other_tu.cc:\n"));
}

TEST_F(FlagsTest, EffectiveFlagsAndSaver) {
  {
    FlagSaver inner;
    SetFlag(&FLAGS_flags_test_name, "changed");
    EXPECT_THAT(EffectiveFlags(), HasSubstr("flags_test_name=changed (command line)"));
  }
  EXPECT_EQ(GetFlag(FLAGS_flags_test_name), "prefill-0");
  EXPECT_THAT(EffectiveFlags(), HasSubstr("flags_test_name=prefill-0 (default)"));
}

// Secret flags never print their value: not in the effective configuration, --help or a parse
// error; ScrubSecretArgs blanks them in argv (what /proc/<pid>/cmdline shows).
TEST_F(FlagsTest, SecretFlagsAreRedactedEverywhere) {
  ASSERT_OK(Parse({"--flags_test_token=hunter2-secret"}, {}));
  EXPECT_EQ(GetFlag(FLAGS_flags_test_token), "hunter2-secret");
  EXPECT_THAT(EffectiveFlags(), HasSubstr("flags_test_token=<redacted> (command line)"));
  EXPECT_THAT(EffectiveFlags(), Not(HasSubstr("hunter2")));
  EXPECT_THAT(HelpText("Usage"), Not(HasSubstr("hunter2")));
  absl::Status bad = Parse({"--flags_test_pin=hunter2"}, {}).status();
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument, "--flags_test_pin"));
  EXPECT_THAT(std::string(bad.message()), Not(HasSubstr("hunter2")));

  std::string a0 = "prog", a1 = "--flags_test_token=hunter2-secret", a2 = "--flags_test_token",
              a3 = "hunter3", a4 = "--flags_test_name=visible";
  char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), a4.data()};
  ScrubSecretArgs(5, argv);
  EXPECT_EQ(std::string(argv[1]), "--flags_test_token=xxxxxxxxxxxxxx");
  EXPECT_EQ(std::string(argv[3]), "xxxxxxx");
  EXPECT_EQ(std::string(argv[4]), "--flags_test_name=visible");
}

TEST_F(FlagsTest, ParseFlagsOrExitExitCodes) {
  const char* bad[] = {"prog", "--flags_test_bogus=1"};
  EXPECT_EXIT(ParseFlagsOrExit(2, bad, "Usage: prog"), ::testing::ExitedWithCode(2),
              "unknown flag --flags_test_bogus");
  const char* help[] = {"prog", "--help"};
  EXPECT_EXIT(ParseFlagsOrExit(2, help, "Usage: prog"), ::testing::ExitedWithCode(0), "");
  const char* good[] = {"prog", "serve", "--flags_test_max_tokens=5"};
  EXPECT_THAT(ParseFlagsOrExit(3, good, "Usage: prog"), ElementsAre("serve"));
  EXPECT_EQ(GetFlag(FLAGS_flags_test_max_tokens), 5);
}

}  // namespace
}  // namespace tandem::testing
