// TieredKvStore over memory + RocksDB (label unit): look-up order and promotion, miss reasons from
// lower tiers, write-behind (and its drops when full), prefetch, ContainsMany and the event log.
#include "kv_store/tiered_store.h"

#include <filesystem>

#include "kv_store/memory_tier.h"
#include "kv_store/rocksdb_tier.h"
#include "gtest/gtest.h"
#include "tests/kv_store/test_blocks.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv::testing {
namespace {

using ::tandem::testing::StatusIs;

class TieredKvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tandem-kv-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(KvStoreOptions o = KvStoreOptions()) {
    o.disk_path = dir_ + "/db";
    o.disk_bytes = 1 << 30;
    o.memory_bytes = 1 << 30;
    ASSERT_OK_AND_ASSIGN(store_, TieredKvStore::Create(o, TestFormat(), registry_));
  }
  KvTier& memory() { return *store_->tier(TierId::kMemory); }
  RocksDbTier& disk() { return *static_cast<RocksDbTier*>(store_->tier(TierId::kRocksDb)); }

  std::string dir_;
  MetricsRegistry registry_;
  std::unique_ptr<TieredKvStore> store_;
};

TEST_F(TieredKvStoreTest, PutAsyncReachesEveryTierAndGetHitsMemoryFirst) {
  Open();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  store_->PutAsync(b);
  EXPECT_EQ(store_->ContainsMany({b.key()}, Soon())[0] & TierBit(TierId::kMemory),
            TierBit(TierId::kMemory));  // memory at once
  store_->Flush();
  EXPECT_EQ(store_->ContainsMany({b.key()}, Soon())[0],
            TierBit(TierId::kMemory) | TierBit(TierId::kRocksDb));
  std::vector<Lookup> r = store_->GetMany({b.key()}, Soon());
  ASSERT_TRUE(r[0].block.has_value());
  EXPECT_EQ(r[0].tier, TierId::kMemory);
  const KvEventLog::Batch events = store_->events().Since(0);
  ASSERT_EQ(events.events.size(), 2u);
  EXPECT_EQ(events.events[0].tier, TierId::kMemory);
  EXPECT_EQ(events.events[1].tier, TierId::kRocksDb);
  EXPECT_EQ(events.next_seq, 2u);
  EXPECT_FALSE(events.truncated);
}

TEST_F(TieredKvStoreTest, PromotionIntoMemoryIsAStoredEvent) {
  Open();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK(disk().Put(b, Soon()));  // behind the store's back: no event yet
  ASSERT_TRUE(store_->events().Since(0).events.empty());
  std::vector<Lookup> r = store_->GetMany({b.key()}, Soon());
  ASSERT_TRUE(r[0].block.has_value());
  EXPECT_EQ(r[0].tier, TierId::kRocksDb);
  const KvEventLog::Batch events = store_->events().Since(0);
  ASSERT_EQ(events.events.size(), 1u);
  EXPECT_EQ(events.events[0].kind, KvEvent::Kind::kStored);
  EXPECT_EQ(events.events[0].tier, TierId::kMemory);
  EXPECT_EQ(events.events[0].key, b.key());
}

TEST_F(TieredKvStoreTest, LowerTierHitIsPromotedAndMissesCarryTheirReason) {
  Open();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK_AND_ASSIGN(KvBlock absent, MakeBlock(TestFormat(), 50, 16));
  ASSERT_OK_AND_ASSIGN(KvBlock corrupt, MakeBlock(TestFormat(), 99, 16));
  ASSERT_OK(disk().Put(b, Soon()));
  std::string bytes(reinterpret_cast<const char*>(corrupt.bytes().data()), corrupt.size());
  bytes.back() ^= 1;
  ASSERT_OK(disk().PutRawForTesting(corrupt.key(), bytes));

  std::vector<Lookup> r = store_->GetMany({b.key(), absent.key(), corrupt.key()}, Soon());
  ASSERT_TRUE(r[0].block.has_value());
  EXPECT_EQ(r[0].tier, TierId::kRocksDb);
  EXPECT_TRUE(PatternIntact(*r[0].block));
  EXPECT_FALSE(r[1].block.has_value());
  EXPECT_EQ(r[1].reason, MissReason::kNotFound);
  EXPECT_FALSE(r[2].block.has_value());
  EXPECT_EQ(r[2].reason, MissReason::kChecksum);
  EXPECT_EQ(r[2].tier, TierId::kRocksDb);
  // Promoted: the next look-up hits memory.
  r = store_->GetMany({b.key()}, Soon());
  EXPECT_EQ(r[0].tier, TierId::kMemory);
  EXPECT_EQ(Sample(registry_, "tandem_kv_hits_total{tier=\"memory\"}"), 1);
  EXPECT_EQ(Sample(registry_, "tandem_kv_hit_tokens_total{tier=\"rocksdb\"}"), 16);
}

TEST_F(TieredKvStoreTest, FullWriteBehindQueueDropsAndCounts) {
  KvStoreOptions o;
  o.write_behind_bytes = 1;  // nothing fits: every lower-tier put is dropped
  Open(o);
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  store_->PutAsync(b);
  store_->Flush();
  EXPECT_EQ(store_->ContainsMany({b.key()}, Soon())[0], TierBit(TierId::kMemory));
  EXPECT_EQ(Sample(registry_,
                   "tandem_kv_put_dropped_total{reason=\"queue_full\",tier=\"rocksdb\"}"), 1);
  // The other reasons have their series at 0 from the start (dashboards read 0, not no data).
  EXPECT_EQ(Sample(registry_,
                   "tandem_kv_put_dropped_total{reason=\"tier_unavailable\",tier=\"rocksdb\"}"),
            0);
  EXPECT_EQ(Sample(registry_, "tandem_kv_put_dropped_total{reason=\"rejected\",tier=\"memory\"}"),
            0);
}

TEST_F(TieredKvStoreTest, PrefetchReturnsAFutureOfLookups) {
  Open();
  std::vector<BlockKey> keys;
  for (int i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1000 * i, 16));
    ASSERT_OK(disk().Put(b, Soon()));
    keys.push_back(b.key());
  }
  auto f1 = store_->Prefetch({keys[0], keys[1]}, Soon());
  auto f2 = store_->Prefetch({keys[2], keys[3]}, Soon());
  for (auto* f : {&f1, &f2}) {
    for (const Lookup& l : f->get()) {
      ASSERT_TRUE(l.block.has_value());
      EXPECT_TRUE(PatternIntact(*l.block));
    }
  }
  // Prefetched blocks were promoted, so the compute path now hits memory.
  for (const Lookup& l : store_->GetMany(keys, Soon())) EXPECT_EQ(l.tier, TierId::kMemory);
}

TEST_F(TieredKvStoreTest, MemoryEvictionsAreLoggedAsEvents) {
  ASSERT_OK_AND_ASSIGN(KvBlock probe, MakeBlock(TestFormat(), 0, 16));
  KvStoreOptions o;
  o.memory_bytes = static_cast<int64_t>(probe.size()) * 2;
  std::vector<std::unique_ptr<KvTier>> tiers;
  tiers.push_back(std::make_unique<MemoryTier>(TestFormat(), o.memory_bytes, &registry_));
  store_ = TieredKvStore::FromTiers(std::move(tiers), o, TestFormat());
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 100 * i, 16));
    store_->PutAsync(b);
  }
  int evicted = 0;
  for (const KvEvent& e : store_->events().Since(0).events) {
    evicted += e.kind == KvEvent::Kind::kEvicted;
  }
  EXPECT_EQ(evicted, 1);
}

TEST(KvEventLogTest, TruncationIsReported) {
  KvEventLog log(2);
  for (int i = 0; i < 5; ++i) log.Add(KvEvent::Kind::kStored, TierId::kMemory, BlockKey());
  KvEventLog::Batch b = log.Since(0);
  EXPECT_TRUE(b.truncated);
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[0].seq, 3u);
  EXPECT_EQ(b.next_seq, 5u);
  EXPECT_TRUE(log.Since(5).events.empty());
  EXPECT_FALSE(log.Since(5).truncated);
}

TEST(KvStoreOptionsTest, ValidateNamesTheFlag) {
  KvStoreOptions o;
  o.redis_pool_size = 0;
  EXPECT_THAT(o.Validate(), StatusIs(absl::StatusCode::kInvalidArgument, "--redis_pool_size=0"));
}

}  // namespace
}  // namespace tandem::kv::testing
