// router/policy/least_loaded.cc: rank by queued tokens, then running requests; ignores the index.
#include <memory>

#include "router/policy/ranking.h"
#include "router/policy/routing_policy.h"

namespace tandem::router {
namespace {

class LeastLoadedPolicy final : public RoutingPolicy {
 public:
  explicit LeastLoadedPolicy(uint64_t seed) : ranker_(seed) {}
  std::string_view Name() const override { return "least_loaded"; }

  std::vector<NodeId> RankPrefill(const RouteRequest&, const KvIndexView&,
                                  absl::Span<const NodeView> nodes) override {
    return ranker_.Rank(nodes, [](const NodeView& n) {
      return internal::Cost{static_cast<double>(n.queued_tokens),
                            static_cast<double>(n.running + n.waiting), 0};
    });
  }
  std::vector<NodeId> RankDecode(const RouteRequest&, absl::Span<const NodeView> nodes) override {
    return ranker_.Rank(nodes, internal::DecodeLoadCost);
  }

 private:
  internal::Ranker ranker_;
};

}  // namespace

std::unique_ptr<RoutingPolicy> NewLeastLoadedPolicy(uint64_t seed) {
  return std::make_unique<LeastLoadedPolicy>(seed);
}

}  // namespace tandem::router
