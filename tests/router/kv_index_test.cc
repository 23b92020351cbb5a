// Tests for router/kv_index.h: events per tier, prefix queries, truncation/epoch resets, staleness.
#include "router/kv_index.h"

#include <vector>

#include "gtest/gtest.h"

namespace tandem::router {
namespace {

std::vector<BlockKey> Keys(int n) {
  KvFormat f;
  f.block_tokens = 2;
  std::vector<KvTokenId> tokens(static_cast<size_t>(2 * n));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<KvTokenId>(100 + i);
  return ChainKeys(f, tokens);
}

node_api::KvEventEntry Event(const char* op, const BlockKey& k, const char* tier) {
  return node_api::KvEventEntry{0, op, k.Hex(), tier};
}

TEST(KvIndex, CountsLeadingBlocksHeld) {
  const std::vector<BlockKey> k = Keys(4);
  KvIndex index;
  EXPECT_EQ(index.HeldPrefixTokens("p", k, 2), 0);
  index.Apply("p", {Event("stored", k[0], "memory"), Event("stored", k[1], "memory"),
                    Event("stored", k[3], "memory")});
  EXPECT_EQ(index.HeldPrefixTokens("p", k, 2), 4);  // k[2] missing: k[3] cannot be used
  EXPECT_EQ(index.NumKeys("p"), 3u);
  EXPECT_EQ(index.HeldPrefixTokens("other", k, 2), 0);
}

TEST(KvIndex, KeyStaysHeldWhileAnyTierHasIt) {
  const std::vector<BlockKey> k = Keys(1);
  KvIndex index;
  index.Apply("p", {Event("stored", k[0], "memory"), Event("stored", k[0], "rocksdb")});
  index.Apply("p", {Event("evicted", k[0], "memory")});
  EXPECT_EQ(index.HeldPrefixTokens("p", k, 2), 2);
  index.Apply("p", {Event("evicted", k[0], "rocksdb")});
  EXPECT_EQ(index.HeldPrefixTokens("p", k, 2), 0);
  EXPECT_EQ(index.NumKeys("p"), 0u);
  // An eviction without a tier drops the key from every tier.
  index.Apply("p", {Event("stored", k[0], "memory"), Event("stored", k[0], "redis")});
  index.Apply("p", {Event("evicted", k[0], "")});
  EXPECT_EQ(index.NumKeys("p"), 0u);
}

TEST(KvIndex, BadEventsAreSkippedNotFatal) {
  const std::vector<BlockKey> k = Keys(2);
  KvIndex index;
  const int skipped = index.Apply(
      "p", {Event("stored", k[0], "memory"), node_api::KvEventEntry{0, "stored", "zz", "memory"},
            node_api::KvEventEntry{0, "renamed", k[1].Hex(), "memory"},
            Event("stored", k[1], "memory")});
  EXPECT_EQ(skipped, 2);
  EXPECT_EQ(index.HeldPrefixTokens("p", k, 2), 4);
}

TEST(KvIndex, ResetForgetsOnlyThatNode) {
  const std::vector<BlockKey> k = Keys(1);
  KvIndex index;
  index.Apply("a", {Event("stored", k[0], "memory")});
  index.Apply("b", {Event("stored", k[0], "memory")});
  index.ResetNode("a");
  EXPECT_EQ(index.HeldPrefixTokens("a", k, 2), 0);
  EXPECT_EQ(index.HeldPrefixTokens("b", k, 2), 2);
}

TEST(KvIndex, StaleNodeIsIgnoredUntilItAnswersAgain) {
  const std::vector<BlockKey> k = Keys(1);
  KvIndex index;
  index.Apply("a", {Event("stored", k[0], "memory")});
  index.SetStale("a", true);
  EXPECT_EQ(index.HeldPrefixTokens("a", k, 2), 0);
  index.SetStale("a", false);
  EXPECT_EQ(index.HeldPrefixTokens("a", k, 2), 2);
}

}  // namespace
}  // namespace tandem::router
