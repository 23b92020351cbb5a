// router/policy/round_robin.cc: each role's nodes in turn, ignoring load and the index.
#include <atomic>
#include <memory>

#include "router/policy/routing_policy.h"

namespace tandem::router {
namespace {

// The list rotated by one more position on every call; the rest of the list stays in order so
// that retries also walk the nodes in turn.
std::vector<NodeId> Rotate(absl::Span<const NodeView> nodes, std::atomic<uint64_t>& next) {
  std::vector<NodeId> ids;
  if (nodes.empty()) return ids;
  const uint64_t start = next.fetch_add(1, std::memory_order_relaxed) % nodes.size();
  ids.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) ids.push_back(nodes[(start + i) % nodes.size()].id);
  return ids;
}

class RoundRobinPolicy final : public RoutingPolicy {
 public:
  std::string_view Name() const override { return "round_robin"; }
  std::vector<NodeId> RankPrefill(const RouteRequest&, const KvIndexView&,
                                  absl::Span<const NodeView> nodes) override {
    return Rotate(nodes, next_prefill_);
  }
  std::vector<NodeId> RankDecode(const RouteRequest&, absl::Span<const NodeView> nodes) override {
    return Rotate(nodes, next_decode_);
  }

 private:
  std::atomic<uint64_t> next_prefill_{0};
  std::atomic<uint64_t> next_decode_{0};
};

}  // namespace

std::unique_ptr<RoutingPolicy> NewRoundRobinPolicy() {
  return std::make_unique<RoundRobinPolicy>();
}

}  // namespace tandem::router
