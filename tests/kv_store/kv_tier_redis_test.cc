// The KvTier conformance suite over RedisTier against a real redis-server (label cluster), and the
// Redis failure cases: the server killed while requests run and then restarted, and a password.
#include <hiredis/hiredis.h>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "kv_store/kv_seal.h"
#include "kv_store/redis_tier.h"
#include "tests/kv_store/kv_tier_conformance.h"
#include "tests/support/redis_server.h"

namespace tandem::kv::testing {
namespace {

using ::tandem::testing::RedisServer;

RedisTierOptions FastOptions(const std::string& url) {
  RedisTierOptions o;
  o.url = url;
  o.timeout = absl::Milliseconds(500);  // generous: the test machine is shared
  o.breaker_base = absl::Milliseconds(50);
  o.breaker_max = absl::Milliseconds(400);
  return o;
}

struct RedisEnv {
  static std::string SkipReason() {
    return RedisServer::Available() ? "" : "no /usr/bin/redis-server";
  }
  absl::Status Init() { return server.Start(); }
  std::unique_ptr<KvTier> Open(const KvFormat& f, int64_t, MetricsRegistry* r) {
    auto t = RedisTier::Create(FastOptions(server.Url()), f, r);
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }
  bool SupportsRaw() const { return true; }
  bool HasBudget() const { return false; }
  absl::Status PutRaw(KvTier* t, const BlockKey& k, std::string_view bytes) {
    return static_cast<RedisTier*>(t)->PutRawForTesting(k, bytes);
  }
  RedisServer server{"tandem-test-password"};  // every conformance test also covers AUTH
};

using RedisTiers = ::testing::Types<RedisEnv>;
INSTANTIATE_TYPED_TEST_SUITE_P(Redis, KvTierConformance, RedisTiers);

class RedisTierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::Available()) GTEST_SKIP() << "no /usr/bin/redis-server";
    ASSERT_OK(server_.Start());
  }
  RedisServer server_;
  MetricsRegistry registry_;
};

TEST_F(RedisTierTest, FlippedByteInRedisIsDetectedDeletedAndCounted) {
  ASSERT_OK_AND_ASSIGN(auto tier, RedisTier::Create(FastOptions(server_.Url()), TestFormat(),
                                                    &registry_));
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK(tier->Put(b, Soon()));
  redisContext* c = server_.Connect();
  ASSERT_TRUE(c != nullptr && c->err == 0);
  const std::string rk = tier->RedisKey(b.key());
  const std::string offset = std::to_string(b.size() - 10);
  // SETRANGE in place: the value is still there, one byte different.
  auto* r = static_cast<redisReply*>(redisCommand(c, "SETRANGE %s %s %b", rk.c_str(),
                                                  offset.c_str(), "\x5a", size_t{1}));
  ASSERT_NE(r, nullptr);
  freeReplyObject(r);
  absl::StatusOr<KvBlock> got = tier->Get(b.key(), Soon());
  EXPECT_EQ(MissReasonOf(got.status()), MissReason::kChecksum);
  r = static_cast<redisReply*>(redisCommand(c, "EXISTS %s", rk.c_str()));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->integer, 0) << "the corrupt block must be deleted";
  freeReplyObject(r);
  redisFree(c);
  EXPECT_EQ(Sample(registry_, "tandem_kv_misses_total{reason=\"checksum\",tier=\"redis\"}"), 1);
}

std::string RedisGet(redisContext* c, const std::string& key) {
  auto* r = static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size()));
  std::string out = r != nullptr && r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len)
                                                                    : "<none>";
  if (r != nullptr) freeReplyObject(r);
  return out;
}

// A tier with the cluster secret stores sealed blocks and reads them back; a block planted under
// a real key by a writer without the secret (valid §5.1 bytes, valid XXH3) is a miss `auth`,
// erased and counted, and never returned.
TEST_F(RedisTierTest, PlantedUnsealedBlockIsRefusedErasedAndCounted) {
  RedisTierOptions sealed_options = FastOptions(server_.Url());
  sealed_options.seal_secret = *ClusterSecret::FromBytes(std::string(40, 's'));
  ASSERT_OK_AND_ASSIGN(auto tier, RedisTier::Create(sealed_options, TestFormat(), &registry_));
  ASSERT_OK_AND_ASSIGN(KvBlock real, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK(tier->Put(real, Soon()));
  ASSERT_OK_AND_ASSIGN(auto stored, tier->GetRaw(real.key(), Soon()));
  EXPECT_EQ(stored->data()[4], kSealedFormatVersion);
  ASSERT_OK_AND_ASSIGN(KvBlock back, tier->Get(real.key(), Soon()));
  EXPECT_TRUE(PatternIntact(back));

  // The attacker's block: same key, its own (valid) contents. Here: the same tokens with other KV.
  ASSERT_OK_AND_ASSIGN(KvBlock planted, MakeBlock(TestFormat(), 1, 16, BlockDims()));
  std::string forged(reinterpret_cast<const char*>(planted.bytes().data()), planted.size());
  forged[planted.size() - 3] ^= 0x11;
  {  // fix the payload and header XXH3, as anyone can
    uint8_t* p = reinterpret_cast<uint8_t*>(forged.data());
    const uint64_t payload = Xxh3_64(p + kHeaderBytes, forged.size() - kHeaderBytes);
    for (int i = 0; i < 8; ++i) p[184 + i] = static_cast<uint8_t>(payload >> (8 * i));
    const uint64_t header = Xxh3_64(p, 248);
    for (int i = 0; i < 8; ++i) p[248 + i] = static_cast<uint8_t>(header >> (8 * i));
  }
  // The planted block is valid apart from the MAC.
  ASSERT_OK(KvBlock::Parse(Bytes::Copy(forged), TestFormat(), real.key()).status());
  ASSERT_OK(tier->PutRawForTesting(real.key(), forged));
  absl::StatusOr<KvBlock> got = tier->Get(real.key(), Soon());
  EXPECT_EQ(MissReasonOf(got.status()), MissReason::kAuth) << got.status();
  ASSERT_OK_AND_ASSIGN(std::vector<bool> there, tier->Contains({real.key()}, Soon()));
  EXPECT_FALSE(there[0]) << "the planted block must be erased";
  EXPECT_EQ(Sample(registry_, "tandem_kv_misses_total{reason=\"auth\",tier=\"redis\"}"), 1);

  // A tier of another cluster (other secret) cannot read this cluster's blocks either.
  ASSERT_OK(tier->Put(real, Soon()));
  RedisTierOptions foreign_options = FastOptions(server_.Url());
  foreign_options.seal_secret = *ClusterSecret::FromBytes(std::string(40, 'f'));
  ASSERT_OK_AND_ASSIGN(auto foreign, RedisTier::Create(foreign_options, TestFormat(), nullptr));
  EXPECT_EQ(MissReasonOf(foreign->Get(real.key(), Soon()).status()), MissReason::kAuth);
  // And a reader without the seal (an old build) rejects a sealed block as an unknown version.
  ASSERT_OK(tier->Put(real, Soon()));
  ASSERT_OK_AND_ASSIGN(auto plain,
                       RedisTier::Create(FastOptions(server_.Url()), TestFormat(), nullptr));
  EXPECT_EQ(MissReasonOf(plain->Get(real.key(), Soon()).status()), MissReason::kVersion);
}

TEST_F(RedisTierTest, FormatRecordIsWrittenAndChecked) {
  ASSERT_OK_AND_ASSIGN(auto tier, RedisTier::Create(FastOptions(server_.Url()), TestFormat(),
                                                    &registry_));
  EXPECT_EQ(tier->FormatKey(), "tandem::format:" + TestFormat().Root().Hex());
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK(tier->Put(b, Soon()));
  redisContext* c = server_.Connect();
  ASSERT_TRUE(c != nullptr && c->err == 0);
  EXPECT_EQ(RedisGet(c, tier->FormatKey()), TestFormat().Encode());
  // A record that holds another format: a fresh tier refuses to write next to it.
  const std::string other = TestFormat(32).Encode();
  auto* r = static_cast<redisReply*>(redisCommand(c, "SET %b %b", tier->FormatKey().data(),
                                                  tier->FormatKey().size(), other.data(),
                                                  other.size()));
  ASSERT_NE(r, nullptr);
  freeReplyObject(r);
  redisFree(c);
  ASSERT_OK_AND_ASSIGN(auto fresh, RedisTier::Create(FastOptions(server_.Url()), TestFormat(),
                                                     nullptr));
  EXPECT_THAT(fresh->Put(b, Soon()),
              StatusIs(absl::StatusCode::kFailedPrecondition, "block_tokens 32, expected 16"));
}

TEST_F(RedisTierTest, NamespaceIsMatchedLiterallyAndStatsCountOnlyIt) {
  KvFormat glob = TestFormat();
  glob.ns = "a*";
  KvFormat plain = TestFormat();
  plain.ns = "ab";
  ASSERT_OK_AND_ASSIGN(auto glob_tier,
                       RedisTier::Create(FastOptions(server_.Url()), glob, nullptr));
  ASSERT_OK_AND_ASSIGN(auto plain_tier,
                       RedisTier::Create(FastOptions(server_.Url()), plain, nullptr));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(plain, 100 * i, 16));
    ASSERT_OK(plain_tier->Put(b, Soon()));
  }
  ASSERT_OK_AND_ASSIGN(KvBlock g, MakeBlock(glob, 7, 16));
  ASSERT_OK(glob_tier->Put(g, Soon()));
  int listed = 0;
  ASSERT_OK(glob_tier->ForEachKey([&](const BlockKey& k, int64_t) {
    EXPECT_EQ(k, g.key());
    ++listed;
  }));
  EXPECT_EQ(listed, 1);
  EXPECT_EQ(glob_tier->Stats().entries, 1);  // not DBSIZE (3 blocks + 2 format records more)
  EXPECT_EQ(plain_tier->Stats().entries, 3);
  ASSERT_OK(glob_tier->Clear());
  EXPECT_EQ(plain_tier->Stats().entries, 3);
}

TEST_F(RedisTierTest, WrongPasswordIsUnavailableNotAHang) {
  RedisServer secured("right");
  ASSERT_OK(secured.Start());
  const std::string url = absl::StrCat("redis://:wrong@127.0.0.1:", secured.port());
  ASSERT_OK_AND_ASSIGN(auto tier, RedisTier::Create(FastOptions(url), TestFormat(), nullptr));
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  EXPECT_THAT(tier->Get(b.key(), Soon()), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(RedisTierTest, KilledMidRequestsThenRestartedRecoversByItself) {
  RedisTierOptions o = FastOptions(server_.Url());
  o.timeout = absl::Milliseconds(200);
  ASSERT_OK_AND_ASSIGN(auto tier, RedisTier::Create(o, TestFormat(), &registry_));
  const std::string circuit_open = "tandem_kv_tier_circuit_open{tier=\"redis\"}";
  EXPECT_EQ(Sample(registry_, circuit_open), 0);  // a series from the start
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK(tier->Put(b, Soon()));

  // Four threads keep looking up while the server is killed.
  std::atomic<bool> stop{false};
  std::atomic<int> unavailable{0}, hits{0}, other{0};
  std::atomic<int64_t> slowest_ms{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&] {
      while (!stop) {
        const absl::Time start = absl::Now();
        absl::StatusOr<KvBlock> r = tier->Get(b.key(), start + absl::Seconds(1));
        const int64_t ms = absl::ToInt64Milliseconds(absl::Now() - start);
        int64_t prev = slowest_ms.load();
        while (ms > prev && !slowest_ms.compare_exchange_weak(prev, ms)) {
        }
        if (r.ok()) {
          ++hits;
        } else if (auto reason = MissReasonOf(r.status());
                   reason == MissReason::kTierUnavailable || reason == MissReason::kTimeout) {
          ++unavailable;
        } else if (!absl::IsNotFound(r.status())) {  // not_found: restarted empty
          ++other;
        }
      }
    });
  }
  auto wait_for = [](const std::function<bool()>& cond, absl::Duration d) {
    const absl::Time deadline = absl::Now() + d;
    while (!cond()) {
      if (absl::Now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  };
  ASSERT_TRUE(wait_for([&] { return hits > 0; }, absl::Seconds(10)));
  server_.Kill();
  EXPECT_TRUE(wait_for([&] { return unavailable > 0; }, absl::Seconds(5)));
  EXPECT_TRUE(wait_for([&] { return tier->BreakerOpen(); }, absl::Seconds(5)));
  EXPECT_EQ(Sample(registry_, circuit_open), 1);  // open until a call succeeds: Redis is down
  ASSERT_OK(server_.Restart());  // empty again: no persistence
  ASSERT_TRUE(wait_for([&] { return tier->Put(b, Soon()).ok(); }, absl::Seconds(10)))
      << "the tier did not come back by itself";
  const int hits_before = hits;
  EXPECT_TRUE(wait_for([&] { return hits > hits_before; }, absl::Seconds(10)));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(other, 0);
  EXPECT_FALSE(tier->BreakerOpen());
  EXPECT_EQ(Sample(registry_, circuit_open), 0);
  // Each look-up ended within its deadline (1 s) plus scheduling slack: nothing hung.
  EXPECT_LT(slowest_ms, 3000);
  EXPECT_GT(Sample(registry_, "tandem_kv_misses_total{reason=\"tier_unavailable\",tier=\"redis\"}"),
            0);
}

}  // namespace
}  // namespace tandem::kv::testing
