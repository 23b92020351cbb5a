// Tests for router/policy/: rankings on synthetic NodeViews and a fake-free KvIndex.
#include "router/policy/routing_policy.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "router/kv_index.h"
#include "tests/support/status_matchers.h"

namespace tandem::router {
namespace {

using ::testing::ElementsAre;
using ::testing::UnorderedElementsAreArray;

NodeView Node(const std::string& id, int64_t queued, int64_t running, double kv_free = 1.0) {
  NodeView n;
  n.id = id;
  n.queued_tokens = queued;
  n.running = running;
  n.kv_free_ratio = kv_free;
  n.ready = n.compatible = n.usable = true;
  return n;
}

std::vector<BlockKey> Keys(int n) {
  KvFormat f;
  f.block_tokens = 4;
  std::vector<KvTokenId> tokens(static_cast<size_t>(4 * n));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<KvTokenId>(i + 7);
  return ChainKeys(f, tokens);
}

node_api::KvEventEntry Stored(const BlockKey& k, const std::string& tier = "memory") {
  return node_api::KvEventEntry{0, "stored", k.Hex(), tier};
}

RouteRequest Request(const std::vector<BlockKey>& keys) {
  RouteRequest r;
  r.prompt_tokens = static_cast<int64_t>(keys.size()) * 4 + 2;
  r.block_keys = keys;
  r.block_tokens = 4;
  return r;
}

TEST(KvAwarePolicy, PrefersTheNodeHoldingThePrefix) {
  auto policy = NewKvAwarePolicy(1, {});
  const std::vector<BlockKey> keys = Keys(3);
  KvIndex index;
  index.Apply("b", {Stored(keys[0]), Stored(keys[1]), Stored(keys[2])});
  index.Apply("c", {Stored(keys[0])});
  const std::vector<NodeView> nodes = {Node("a", 0, 0), Node("b", 0, 0), Node("c", 0, 0)};
  EXPECT_THAT(policy->RankPrefill(Request(keys), index, nodes), ElementsAre("b", "c", "a"));
}

TEST(KvAwarePolicy, QueueOutweighsASmallHit) {
  auto policy = NewKvAwarePolicy(1, {});
  const std::vector<BlockKey> keys = Keys(3);
  KvIndex index;
  index.Apply("b", {Stored(keys[0]), Stored(keys[1]), Stored(keys[2])});
  // b saves 12 tokens of compute but has 100 queued; a computes 14 with an empty queue.
  const std::vector<NodeView> nodes = {Node("a", 0, 0), Node("b", 100, 0)};
  EXPECT_THAT(policy->RankPrefill(Request(keys), index, nodes), ElementsAre("a", "b"));
}

TEST(KvAwarePolicy, HoleInThePrefixStopsTheHit) {
  auto policy = NewKvAwarePolicy(1, {});
  const std::vector<BlockKey> keys = Keys(3);
  KvIndex index;
  index.Apply("a", {Stored(keys[1]), Stored(keys[2])});  // no first block: nothing reusable
  index.Apply("b", {Stored(keys[0])});
  EXPECT_EQ(index.HeldPrefixTokens("a", keys, 4), 0);
  EXPECT_EQ(index.HeldPrefixTokens("b", keys, 4), 4);
  const std::vector<NodeView> nodes = {Node("a", 0, 0), Node("b", 0, 0)};
  EXPECT_THAT(policy->RankPrefill(Request(keys), index, nodes), ElementsAre("b", "a"));
}

TEST(KvAwarePolicy, TiesBreakAtRandomAndNoNodeIsLeftOut) {
  auto policy = NewKvAwarePolicy(42, {});
  KvIndex index;
  const std::vector<NodeView> nodes = {Node("a", 5, 1), Node("b", 5, 1), Node("c", 5, 1)};
  std::map<std::string, int> first;
  for (int i = 0; i < 300; ++i) {
    std::vector<NodeId> ranked = policy->RankPrefill(Request({}), index, nodes);
    ASSERT_THAT(ranked, UnorderedElementsAreArray({"a", "b", "c"}));
    ++first[ranked[0]];
  }
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_GT(first[id], 50) << id << " came first " << first[id] << " times of 300";
  }
}

TEST(LeastLoadedPolicy, RanksByQueuedTokensThenRunning) {
  auto policy = NewLeastLoadedPolicy(3);
  KvIndex index;
  const std::vector<BlockKey> keys = Keys(2);
  index.Apply("d", {Stored(keys[0]), Stored(keys[1])});  // ignored by this policy
  const std::vector<NodeView> nodes = {Node("d", 300, 0), Node("a", 10, 5), Node("b", 10, 1),
                                       Node("c", 0, 9)};
  EXPECT_THAT(policy->RankPrefill(Request(keys), index, nodes), ElementsAre("c", "b", "a", "d"));
}

TEST(DecodeRanking, FewestQueuedThenLeastBusyThenMostFreeKv) {
  for (const char* name : {"kv_aware", "least_loaded"}) {
    ASSERT_OK_AND_ASSIGN(auto policy, NewRoutingPolicy(name, 5));
    const std::vector<NodeView> nodes = {Node("full", 0, 2, 0.1), Node("free", 0, 2, 0.9),
                                         Node("busy", 0, 7, 1.0), Node("queued", 64, 0, 1.0)};
    EXPECT_THAT(policy->RankDecode(RouteRequest{}, nodes),
                ElementsAre("free", "full", "busy", "queued"))
        << name;
  }
}

TEST(RoundRobinPolicy, RotatesAndKeepsEveryNode) {
  auto policy = NewRoundRobinPolicy();
  KvIndex index;
  const std::vector<NodeView> nodes = {Node("a", 0, 0), Node("b", 999, 9), Node("c", 0, 0)};
  EXPECT_THAT(policy->RankPrefill(Request({}), index, nodes), ElementsAre("a", "b", "c"));
  EXPECT_THAT(policy->RankPrefill(Request({}), index, nodes), ElementsAre("b", "c", "a"));
  EXPECT_THAT(policy->RankPrefill(Request({}), index, nodes), ElementsAre("c", "a", "b"));
  EXPECT_THAT(policy->RankDecode(RouteRequest{}, nodes), ElementsAre("a", "b", "c"));
  EXPECT_TRUE(policy->RankDecode(RouteRequest{}, {}).empty());
}

TEST(NewRoutingPolicy, UnknownNameListsTheSupportedOnes) {
  EXPECT_THAT(NewRoutingPolicy("random_walk", 1),
              testing::StatusIs(absl::StatusCode::kInvalidArgument,
                                "kv_aware, least_loaded, round_robin"));
  for (std::string_view name : kRoutingPolicyNames) {
    ASSERT_OK_AND_ASSIGN(auto p, NewRoutingPolicy(name, 1));
    EXPECT_EQ(p->Name(), name);
  }
}

}  // namespace
}  // namespace tandem::router
