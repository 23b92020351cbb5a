// `tandem generate` as a user runs it: real binary, real model. Output, exit codes and the one
// error line for bad input (missing or corrupt model, unknown flag, over-long prompt).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace {

using ::tandem::testing::ModelPath;

struct RunResult {
  int exit_code = -1;
  std::string out;  // stdout and stderr, in that order
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

RunResult RunTandem(const std::string& args) {
  const std::string dir = ::testing::TempDir();
  const std::string out_path = dir + "/cli_stdout.txt";
  const std::string err_path = dir + "/cli_stderr.txt";
  const std::string cmd = std::string(TANDEM_BINARY) + " " + args + " >" + out_path + " 2>" +
                          err_path + " </dev/null";
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path) + ReadFile(err_path);
  return r;
}

std::string ModelFlag() { return "--model=" + ModelPath(); }

TEST(GenerateCli, GreedyCompletionKnowsParis) {
  RunResult r = RunTandem("generate " + ModelFlag() +
                          " --prompt 'The capital of France is' --max_tokens 4");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(" Paris"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tokens/s"), std::string::npos) << r.out;
}

TEST(GenerateCli, ChatUsesTheTemplateAndStops) {
  RunResult r = RunTandem("generate " + ModelFlag() +
                          " --chat 'What is the capital of France? Answer in one word.' "
                          "--max_tokens 32");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("<|im_end|>"), std::string::npos) << r.out;
}

TEST(GenerateCli, MissingModelNamesTheFile) {
  RunResult r = RunTandem("generate --model=/nonexistent/model.gguf --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("/nonexistent/model.gguf"), std::string::npos) << r.out;
}

TEST(GenerateCli, CorruptModelIsAnErrorNotACrash) {
  const std::string path = ::testing::TempDir() + "/truncated.gguf";
  {
    std::ifstream in(ModelPath(), std::ios::binary);
    std::string head(1 << 20, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(path, std::ios::binary) << head;
  }
  RunResult r = RunTandem("generate --model=" + path + " --prompt hi");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("truncated.gguf"), std::string::npos) << r.out;
  const std::string garbage = ::testing::TempDir() + "/garbage.gguf";
  std::ofstream(garbage, std::ios::binary) << "this is not a gguf file at all";
  r = RunTandem("generate --model=" + garbage + " --prompt hi");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("garbage.gguf"), std::string::npos) << r.out;
}

TEST(GenerateCli, UnknownFlagIsNamed) {
  RunResult r = RunTandem("generate --no_such_flag=1 --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("no_such_flag"), std::string::npos) << r.out;
  r = RunTandem("generate " + ModelFlag() + " --max_tokens=abc --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("max_tokens"), std::string::npos) << r.out;
}

TEST(GenerateCli, PromptLongerThanContextIsRejected) {
  const std::string path = ::testing::TempDir() + "/long_prompt.json";
  {
    std::string text;
    for (int i = 0; i < 9000; ++i) text += "word ";
    std::ofstream(path) << "[{\"role\": \"user\", \"content\": \"" << text << "\"}]";
  }
  RunResult r = RunTandem("generate " + ModelFlag() + " --messages @" + path);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("context length"), std::string::npos) << r.out;
}

TEST(GenerateCli, NoPromptAndBadMessagesAreUsageErrors) {
  RunResult r = RunTandem("generate " + ModelFlag());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--prompt"), std::string::npos) << r.out;
  r = RunTandem("generate " + ModelFlag() + " --messages '{not json'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--messages"), std::string::npos) << r.out;
  r = RunTandem("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("unknown command"), std::string::npos) << r.out;
}

}  // namespace
