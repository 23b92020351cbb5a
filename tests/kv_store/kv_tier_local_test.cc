// The KvTier conformance suite over MemoryTier and RocksDbTier (label unit), plus what is specific
// to RocksDB: restart, the _tandem/format record, an unwritable directory; and Redis URL parsing.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <fstream>

#include "kv_store/memory_tier.h"
#include "kv_store/redis_tier.h"
#include "kv_store/rocksdb_tier.h"
#include "tests/kv_store/kv_tier_conformance.h"

namespace tandem::kv::testing {
namespace {

std::string MakeTempDir() {
  char tmpl[] = "/tmp/tandem-kv-test-XXXXXX";
  return ::mkdtemp(tmpl) ? std::string(tmpl) : std::string();
}

struct MemoryEnv {
  static std::string SkipReason() { return ""; }
  absl::Status Init() { return absl::OkStatus(); }
  std::unique_ptr<KvTier> Open(const KvFormat& f, int64_t capacity, MetricsRegistry* r) {
    return std::make_unique<MemoryTier>(f, capacity, r);
  }
  bool SupportsRaw() const { return false; }
  bool HasBudget() const { return true; }
  absl::Status PutRaw(KvTier*, const BlockKey&, std::string_view) {
    return absl::UnimplementedError("memory");
  }
};

struct RocksDbEnv {
  ~RocksDbEnv() {
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }
  static std::string SkipReason() { return ""; }
  absl::Status Init() {
    dir = MakeTempDir();
    return dir.empty() ? absl::InternalError("mkdtemp") : absl::OkStatus();
  }
  std::unique_ptr<KvTier> Open(const KvFormat& f, int64_t capacity, MetricsRegistry* r) {
    auto t = RocksDbTier::Open({dir + "/db", capacity}, f, r);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  bool SupportsRaw() const { return true; }
  bool HasBudget() const { return true; }
  absl::Status PutRaw(KvTier* t, const BlockKey& k, std::string_view bytes) {
    return static_cast<RocksDbTier*>(t)->PutRawForTesting(k, bytes);
  }
  std::string dir;
};

using LocalTiers = ::testing::Types<MemoryEnv, RocksDbEnv>;
INSTANTIATE_TYPED_TEST_SUITE_P(Local, KvTierConformance, LocalTiers);

class RocksDbTierTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(RocksDbTierTest, SurvivesRestart) {
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  {
    ASSERT_OK_AND_ASSIGN(auto tier, RocksDbTier::Open({dir_, 1 << 30}, TestFormat(), nullptr));
    ASSERT_OK(tier->Put(b, Soon()));
  }
  ASSERT_OK_AND_ASSIGN(auto tier, RocksDbTier::Open({dir_, 1 << 30}, TestFormat(), nullptr));
  EXPECT_EQ(tier->Stats().entries, 1);
  EXPECT_EQ(tier->Stats().used_bytes, static_cast<int64_t>(b.size()));
  ASSERT_OK_AND_ASSIGN(KvBlock got, tier->Get(b.key(), Soon()));
  EXPECT_TRUE(PatternIntact(got));
}

TEST_F(RocksDbTierTest, AnotherFormatAtOpenNamesTheField) {
  { ASSERT_OK(RocksDbTier::Open({dir_, 1 << 30}, TestFormat(16), nullptr).status()); }
  EXPECT_THAT(RocksDbTier::Open({dir_, 1 << 30}, TestFormat(32), nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, "block_tokens 16, expected 32"));
  ASSERT_OK_AND_ASSIGN(auto any, RocksDbTier::OpenExisting({dir_, 1 << 30}, nullptr));
  EXPECT_EQ(any->format(), TestFormat(16));
}

TEST_F(RocksDbTierTest, UnwritableDirectoryIsAClearErrorNamingThePath) {
  // A path below a regular file can never be created, even by root.
  const std::string file = dir_ + "/plain-file";
  std::ofstream(file) << "x";
  const std::string bad = file + "/kv";
  EXPECT_THAT(RocksDbTier::Open({bad, 1 << 30}, TestFormat(), nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, "kv_disk_path '" + bad + "'"));
  if (::geteuid() != 0) {  // permissions do not stop root
    const std::string ro = dir_ + "/ro";
    std::filesystem::create_directory(ro);
    ::chmod(ro.c_str(), 0500);
    EXPECT_THAT(RocksDbTier::Open({ro, 1 << 30}, TestFormat(), nullptr),
                StatusIs(absl::StatusCode::kFailedPrecondition, "not writable"));
  }
}

TEST_F(RocksDbTierTest, GetRacingAPutNeverUnindexesTheBlock) {
  // Readers hammer each key while it is being put. A Get that reaches the DB between the put's
  // index insert and its write used to drop the index entry: the block then landed unindexed.
  constexpr int kBlocks = 64;
  std::vector<KvBlock> blocks;
  int64_t total = 0;
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 100 * i, 16));
    total += static_cast<int64_t>(b.size());
    blocks.push_back(std::move(b));
  }
  ASSERT_OK_AND_ASSIGN(auto tier, RocksDbTier::Open({dir_, 1 << 30}, TestFormat(), nullptr));
  std::atomic<int> current{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!done) (void)tier->Get(blocks[current.load() % kBlocks].key(), Soon());
    });
  }
  for (int i = 0; i < kBlocks; ++i) {
    current = i;
    ASSERT_OK(tier->Put(blocks[i], Soon()));
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(tier->Stats().entries, kBlocks);
  EXPECT_EQ(tier->Stats().used_bytes, total);
}

// A block larger than the whole tier is refused and evicts nothing.
TEST(MemoryTierTest, BlockLargerThanTheTierEvictsNothing) {
  ASSERT_OK_AND_ASSIGN(KvBlock small, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK_AND_ASSIGN(KvBlock big, MakeBlock(TestFormat(), 200, 16, BlockDims{.layers = 4}));
  ASSERT_GT(big.size(), small.size());
  MemoryTier tier(TestFormat(), static_cast<int64_t>(big.size()) - 1, nullptr);
  ASSERT_OK(tier.Put(small, Soon()));
  EXPECT_THAT(tier.Put(big, Soon()), StatusIs(absl::StatusCode::kResourceExhausted, "exceeds"));
  EXPECT_OK(tier.Get(small.key(), Soon()));
  EXPECT_EQ(tier.Stats().evictions, 0);
}

// A block a reader holds stays valid after the tier evicted it: its bytes are shared.
TEST(MemoryTierTest, EvictionKeepsBlocksReadersHold) {
  ASSERT_OK_AND_ASSIGN(KvBlock a, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 100, 16));
  MemoryTier tier(TestFormat(), static_cast<int64_t>(a.size()), nullptr);
  ASSERT_OK(tier.Put(a, Soon()));
  ASSERT_OK_AND_ASSIGN(KvBlock held, tier.Get(a.key(), Soon()));
  const std::vector<uint8_t> before(held.bytes().begin(), held.bytes().end());
  ASSERT_OK(tier.Put(b, Soon()));
  EXPECT_THAT(tier.Get(a.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(std::vector<uint8_t>(held.bytes().begin(), held.bytes().end()), before);
  EXPECT_EQ(tier.Stats().evictions, 1);
}

TEST(RedisUrlTest, Parses) {
  ASSERT_OK_AND_ASSIGN(RedisAddress a, ParseRedisUrl("redis://:s3cret@10.0.0.1:7000/2"));
  EXPECT_EQ(a.host, "10.0.0.1");
  EXPECT_EQ(a.port, 7000);
  EXPECT_EQ(a.password, "s3cret");
  EXPECT_EQ(a.db, 2);
  ASSERT_OK_AND_ASSIGN(a, ParseRedisUrl("redis://u:p@h"));
  EXPECT_EQ(a.user, "u");
  EXPECT_EQ(a.port, 6379);
  EXPECT_THAT(ParseRedisUrl("http://h:1"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    "--redis_url 'http://h:1'"));
  EXPECT_FALSE(ParseRedisUrl("redis://h:99999").ok());
}

}  // namespace
}  // namespace tandem::kv::testing
