// router/policy/ranking.h
//
// What the policies share: sort nodes by a cost tuple with ties broken at random, and the decode
// ranking every policy but round_robin uses. Tie-breaking is random rather than by position so
// that equal nodes share the load instead of the first one taking it all.
// Ranker is thread-safe (its random source is locked); the free functions are pure.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "router/policy/routing_policy.h"

namespace tandem::router::internal {

// Lexicographic cost: lower is better.
using Cost = std::array<double, 3>;

class Ranker {
 public:
  explicit Ranker(uint64_t seed) : rng_(seed) {}

  // Ids of `nodes` by ascending cost(node); equal costs in random order.
  template <typename CostFn>
  std::vector<NodeId> Rank(absl::Span<const NodeView> nodes, CostFn cost) {
    std::vector<std::pair<Cost, size_t>> order;
    order.reserve(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) order.emplace_back(cost(nodes[i]), i);
    {
      absl::MutexLock lock(&mu_);
      std::shuffle(order.begin(), order.end(), rng_);
    }
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<NodeId> ids;
    ids.reserve(order.size());
    for (const auto& [c, i] : order) ids.push_back(nodes[i].id);
    return ids;
  }

 private:
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

// Decode nodes: fewest reserved-but-waiting tokens, then fewest running requests, then the most
// free KV memory.
inline Cost DecodeLoadCost(const NodeView& n) {
  return {static_cast<double>(n.queued_tokens), static_cast<double>(n.running + n.waiting),
          -n.kv_free_ratio};
}

}  // namespace tandem::router::internal
