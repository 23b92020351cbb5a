// `tandem kv` as an operator runs it, on a RocksDB tier written by the store itself: stats, list,
// lookup, verify (which must find a corrupted block and exit non-zero) and clear.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "kv_store/rocksdb_tier.h"
#include "tests/kv_store/test_blocks.h"

namespace tandem::kv {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out;
};

RunResult RunTandem(const std::string& args) {
  const std::string out_path = ::testing::TempDir() + "/kv_cli_out.txt";
  const std::string cmd = std::string(TANDEM_BINARY) + " " + args + " >" + out_path + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream in(out_path);
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return r;
}

TEST(KvCli, StatsListLookupVerifyClear) {
  const std::string dir = ::testing::TempDir() + "/kv_cli_db";
  std::filesystem::remove_all(dir);
  const KvFormat format = testing::TestFormat();
  std::string first_key;
  {
    MetricsRegistry metrics;
    auto tier = RocksDbTier::Open({.path = dir}, format, &metrics);
    ASSERT_TRUE(tier.ok()) << tier.status();
    for (int b = 0; b < 3; ++b) {
      auto block = testing::MakeBlock(format, 100 * b, 16);
      ASSERT_TRUE(block.ok()) << block.status();
      ASSERT_TRUE((*tier)->Put(*block, testing::Soon()).ok());
      if (b == 0) first_key = block->key().Hex();
    }
  }
  const std::string flags = "--kv_disk_path=" + dir;
  RunResult r = RunTandem("kv stats " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("rocksdb"), std::string::npos) << r.out;
  r = RunTandem("kv list " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(first_key), std::string::npos) << r.out;
  r = RunTandem("kv lookup " + first_key + " " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("rocksdb"), std::string::npos) << r.out;
  r = RunTandem("kv verify " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;

  {  // Flip one payload byte of the first block behind the store's back.
    MetricsRegistry metrics;
    auto tier = RocksDbTier::Open({.path = dir}, format, &metrics);
    ASSERT_TRUE(tier.ok()) << tier.status();
    auto block = testing::MakeBlock(format, 0, 16);
    ASSERT_TRUE(block.ok());
    std::string bytes(reinterpret_cast<const char*>(block->bytes().data()), block->bytes().size());
    bytes[bytes.size() - 3] ^= 0x20;
    ASSERT_TRUE((*tier)->PutRawForTesting(block->key(), bytes).ok());
  }
  r = RunTandem("kv verify " + flags);
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find(first_key), std::string::npos) << r.out;

  r = RunTandem("kv clear " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = RunTandem("kv list " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find(first_key), std::string::npos) << r.out;
}

TEST(KvCli, ClearIsTheRemedyForAFormatMismatch) {
  const std::string dir = ::testing::TempDir() + "/kv_cli_db_format";
  std::filesystem::remove_all(dir);
  {
    auto tier = RocksDbTier::Open({.path = dir}, testing::TestFormat(16), nullptr);
    ASSERT_TRUE(tier.ok()) << tier.status();
  }
  auto other = RocksDbTier::Open({.path = dir}, testing::TestFormat(32), nullptr);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(std::string(other.status().message()).find("tandem kv clear"), std::string::npos)
      << other.status();
  RunResult r = RunTandem("kv clear --kv_disk_path=" + dir);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = RunTandem("kv stats --kv_disk_path=" + dir);  // a cleared directory is still readable
  EXPECT_EQ(r.exit_code, 0) << r.out;
  other = RocksDbTier::Open({.path = dir}, testing::TestFormat(32), nullptr);
  EXPECT_TRUE(other.ok()) << other.status();
}

TEST(KvCli, BadInvocationsAreNamed) {
  RunResult r = RunTandem("kv stats");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--kv_disk_path"), std::string::npos) << r.out;
  r = RunTandem("kv frobnicate --kv_disk_path=" + ::testing::TempDir() + "/kv_cli_db2");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  r = RunTandem("kv lookup nothex --kv_disk_path=" + ::testing::TempDir() + "/kv_cli_db2");
  EXPECT_EQ(r.exit_code, 2) << r.out;
}

}  // namespace
}  // namespace tandem::kv
