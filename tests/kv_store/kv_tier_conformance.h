// tests/kv_store/kv_tier_conformance.h
//
// One typed conformance suite for every KvTier (ARCHITECTURE.md §11, kv_tier_test): Get/Put/
// Contains/Erase, eviction under a budget, a byte corrupted directly in the backend (checksum miss,
// erased, counted), a truncated value (header), a block of a foreign KvFormat (format_mismatch),
// metrics, and eight threads putting and getting under a budget that forces eviction.
// Instantiated by kv_tier_local_test.cc (memory, rocksdb: unit) and kv_tier_redis_test.cc (redis:
// cluster). An Env type provides: static SkipReason() ("" when the backend is installed, else why
// the suite skips), Init(), Open(format, capacity, registry), SupportsRaw(), PutRaw(tier, key,
// bytes), HasBudget().
#pragma once

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kv_store/kv_tier.h"
#include "tests/kv_store/test_blocks.h"
#include "tests/support/status_matchers.h"

namespace tandem::kv::testing {

using ::tandem::testing::StatusIs;

template <typename Env>
class KvTierConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    // Only a backend that is not installed skips; one that is installed but fails to start fails.
    if (const std::string why = Env::SkipReason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_OK(env_.Init());
  }
  std::unique_ptr<KvTier> Open(int64_t capacity = 1 << 30, const KvFormat& f = TestFormat()) {
    return env_.Open(f, capacity, &registry_);
  }
  std::string Series(const KvTier& t, std::string_view name, std::string_view reason = "") {
    const std::string tier(t.Name());
    if (reason.empty()) return std::string(name) + "{tier=\"" + tier + "\"}";
    return std::string(name) + "{reason=\"" + std::string(reason) + "\",tier=\"" + tier + "\"}";
  }

  Env env_;
  MetricsRegistry registry_;
};

TYPED_TEST_SUITE_P(KvTierConformance);

TYPED_TEST_P(KvTierConformance, PutGetContainsErase) {
  auto tier = this->Open();
  ASSERT_OK_AND_ASSIGN(KvBlock a, MakeBlock(TestFormat(), 1, 16));
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 100, 7));
  EXPECT_THAT(tier->Get(a.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(tier->Put(a, Soon()));
  ASSERT_OK(tier->Put(b, Soon()));
  ASSERT_OK_AND_ASSIGN(KvBlock got, tier->Get(a.key(), Soon()));
  EXPECT_EQ(got.key(), a.key());
  EXPECT_TRUE(PatternIntact(got));
  EXPECT_TRUE(std::equal(got.bytes().begin(), got.bytes().end(), a.bytes().begin()));
  ASSERT_OK_AND_ASSIGN(KvBlock c, MakeBlock(TestFormat(), 500, 3));
  ASSERT_OK_AND_ASSIGN(std::vector<bool> has, tier->Contains({a.key(), c.key(), b.key()}, Soon()));
  EXPECT_EQ(has, (std::vector<bool>{true, false, true}));
  ASSERT_OK(tier->Erase(a.key()));
  EXPECT_THAT(tier->Get(a.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
  int listed = 0;
  ASSERT_OK(tier->ForEachKey([&](const BlockKey& k, int64_t size) {
    EXPECT_EQ(k, b.key());
    EXPECT_EQ(size, static_cast<int64_t>(b.size()));
    ++listed;
  }));
  EXPECT_EQ(listed, 1);
  ASSERT_OK(tier->Clear());
  EXPECT_THAT(tier->Get(b.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Sample(this->registry_, this->Series(*tier, "tandem_kv_hits_total")), 1);
  EXPECT_EQ(Sample(this->registry_,
                   this->Series(*tier, "tandem_kv_misses_total", "not_found")), 3);
}

TYPED_TEST_P(KvTierConformance, RefusesAForeignBlockOnPut) {
  auto tier = this->Open();
  KvFormat other = TestFormat();
  other.dtype = DType::kBF16;
  std::vector<uint16_t> d(2 * 8);
  TensorView t = TensorView::Contiguous(d.data(), DType::kBF16, {1, 2, 8});
  std::vector<KvTokenId> tokens = {1};
  ASSERT_OK_AND_ASSIGN(KvBlock b, KvBlock::Build(other, other.Root(), tokens, 0, {t}, {t}));
  EXPECT_THAT(tier->Put(b, Soon()), StatusIs(absl::StatusCode::kInvalidArgument, "dtype"));
}

TYPED_TEST_P(KvTierConformance, EvictsToStayWithinBudget) {
  if (!this->env_.HasBudget()) GTEST_SKIP() << "capacity is managed by the server";
  ASSERT_OK_AND_ASSIGN(KvBlock probe, MakeBlock(TestFormat(), 0, 16));
  const int64_t capacity = static_cast<int64_t>(probe.size()) * 3;
  auto tier = this->Open(capacity);
  std::vector<BlockKey> evicted;
  tier->SetEvictionListener([&](const BlockKey& k) { evicted.push_back(k); });
  std::vector<KvBlock> blocks;
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1000 * i, 16));
    ASSERT_OK(tier->Put(b, Soon()));
    EXPECT_LE(tier->Stats().used_bytes, capacity);
    blocks.push_back(b);
    if (i == 1 || i == 3) ASSERT_OK(tier->Get(blocks[0].key(), Soon()).status());  // keep 0 hot
  }
  EXPECT_EQ(tier->Stats().entries, 3);
  EXPECT_EQ(tier->Stats().evictions, 2);
  ASSERT_EQ(evicted.size(), 2u);
  EXPECT_EQ(evicted[0], blocks[1].key());  // least recently used first
  EXPECT_EQ(evicted[1], blocks[2].key());
  EXPECT_OK(tier->Get(blocks[0].key(), Soon()));
  EXPECT_EQ(Sample(this->registry_, this->Series(*tier, "tandem_kv_evictions_total")), 2);
  EXPECT_EQ(Sample(this->registry_, this->Series(*tier, "tandem_kv_tier_capacity_bytes")),
            capacity);
}

TYPED_TEST_P(KvTierConformance, CorruptByteIsACountedErasedMiss) {
  if (!this->env_.SupportsRaw()) GTEST_SKIP() << "blocks live as validated objects";
  auto tier = this->Open();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  std::string bytes(reinterpret_cast<const char*>(b.bytes().data()), b.size());
  bytes[bytes.size() / 2] ^= 0x10;
  ASSERT_OK(this->env_.PutRaw(tier.get(), b.key(), bytes));
  absl::StatusOr<KvBlock> r = tier->Get(b.key(), Soon());
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_EQ(MissReasonOf(r.status()), MissReason::kChecksum);
  // Erased: the next look-up is a plain miss, and the corruption was counted once.
  EXPECT_THAT(tier->Get(b.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(Sample(this->registry_, this->Series(*tier, "tandem_kv_misses_total", "checksum")), 1);
}

TYPED_TEST_P(KvTierConformance, TruncatedValueIsAHeaderMiss) {
  if (!this->env_.SupportsRaw()) GTEST_SKIP() << "blocks live as validated objects";
  auto tier = this->Open();
  ASSERT_OK_AND_ASSIGN(KvBlock b, MakeBlock(TestFormat(), 1, 16));
  std::string bytes(reinterpret_cast<const char*>(b.bytes().data()), b.size() - 100);
  ASSERT_OK(this->env_.PutRaw(tier.get(), b.key(), bytes));
  absl::StatusOr<KvBlock> r = tier->Get(b.key(), Soon());
  EXPECT_EQ(MissReasonOf(r.status()), MissReason::kHeader);
  EXPECT_THAT(tier->Get(b.key(), Soon()), StatusIs(absl::StatusCode::kNotFound));
}

TYPED_TEST_P(KvTierConformance, ForeignFormatIsAnIncompatibleMiss) {
  if (!this->env_.SupportsRaw()) GTEST_SKIP() << "blocks live as validated objects";
  auto tier = this->Open();
  KvFormat other = TestFormat();
  other.model = Sha256("a-fine-tune");
  ASSERT_OK_AND_ASSIGN(KvBlock foreign, MakeBlock(other, 1, 16));
  std::string bytes(reinterpret_cast<const char*>(foreign.bytes().data()), foreign.size());
  ASSERT_OK(this->env_.PutRaw(tier.get(), foreign.key(), bytes));
  absl::StatusOr<KvBlock> r = tier->Get(foreign.key(), Soon());
  EXPECT_EQ(MissReasonOf(r.status()), MissReason::kFormatMismatch);
  EXPECT_THAT(r.status().message(), ::testing::HasSubstr("model fingerprint"));
  EXPECT_EQ(Sample(this->registry_,
                   this->Series(*tier, "tandem_kv_misses_total", "format_mismatch")), 1);
}

TYPED_TEST_P(KvTierConformance, EightThreadsUnderEvictionNothingTornNothingLost) {
  ASSERT_OK_AND_ASSIGN(KvBlock probe, MakeBlock(TestFormat(), 0, 16));
  const int64_t capacity = static_cast<int64_t>(probe.size()) * 12;
  auto tier = this->Open(capacity);
  absl::Mutex mu;
  std::set<BlockKey> evicted;
  tier->SetEvictionListener([&](const BlockKey& k) {
    absl::MutexLock l(&mu);
    evicted.insert(k);
  });
  constexpr int kThreads = 8, kPerThread = 30;
  std::vector<std::vector<BlockKey>> put(kThreads);
  std::atomic<int> torn{0}, over_budget{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < kPerThread; ++i) {
        absl::StatusOr<KvBlock> b = MakeBlock(TestFormat(), 100000 * t + 100 * i, 1 + i % 16);
        if (!b.ok() || !tier->Put(*b, Soon()).ok()) ++errors;
        put[t].push_back(b->key());
        if (this->env_.HasBudget() && tier->Stats().used_bytes > capacity) ++over_budget;
        const BlockKey& k = put[t][rng() % put[t].size()];
        absl::StatusOr<KvBlock> got = tier->Get(k, Soon());
        if (got.ok() && (got->key() != k || !PatternIntact(*got))) ++torn;
        if (!got.ok() && !absl::IsNotFound(got.status())) ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(torn, 0);
  EXPECT_EQ(over_budget, 0);
  EXPECT_EQ(errors, 0);
  if (this->env_.HasBudget()) {
    EXPECT_LE(tier->Stats().used_bytes, capacity);
    EXPECT_GT(tier->Stats().evictions, 0);
  }
  int kept = 0;
  for (const auto& keys : put) {
    for (const BlockKey& k : keys) {
      absl::StatusOr<KvBlock> got = tier->Get(k, Soon());
      if (got.ok()) {
        ++kept;
        EXPECT_TRUE(PatternIntact(*got));
      } else {
        absl::MutexLock l(&mu);
        EXPECT_TRUE(evicted.contains(k)) << "lost without eviction: " << k.Hex();
      }
    }
  }
  EXPECT_GT(kept, 0);
}

REGISTER_TYPED_TEST_SUITE_P(KvTierConformance, PutGetContainsErase, RefusesAForeignBlockOnPut,
                            EvictsToStayWithinBudget, CorruptByteIsACountedErasedMiss,
                            TruncatedValueIsAHeaderMiss, ForeignFormatIsAnIncompatibleMiss,
                            EightThreadsUnderEvictionNothingTornNothingLost);

}  // namespace tandem::kv::testing
