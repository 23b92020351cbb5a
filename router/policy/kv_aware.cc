// router/policy/kv_aware.cc: prefill nodes by the tokens they would compute plus their queue.
#include <algorithm>
#include <memory>

#include "router/policy/ranking.h"
#include "router/policy/routing_policy.h"

namespace tandem::router {
namespace {

class KvAwarePolicy final : public RoutingPolicy {
 public:
  KvAwarePolicy(uint64_t seed, KvAwareWeights weights) : ranker_(seed), weights_(weights) {}
  std::string_view Name() const override { return "kv_aware"; }

  std::vector<NodeId> RankPrefill(const RouteRequest& req, const KvIndexView& index,
                                  absl::Span<const NodeView> nodes) override {
    return ranker_.Rank(nodes, [&](const NodeView& n) {
      const int64_t held =
          req.block_keys.empty() ? 0
                                 : index.HeldPrefixTokens(n.id, req.block_keys, req.block_tokens);
      // The last prompt token is always computed (its logits give the first token).
      const int64_t compute_tokens =
          std::max<int64_t>(std::min<int64_t>(req.prompt_tokens, 1), req.prompt_tokens - held);
      const double cost = weights_.compute * static_cast<double>(compute_tokens) +
                          weights_.queue * static_cast<double>(n.queued_tokens);
      // Equal cost: the node with fewer requests in flight, then at random.
      return internal::Cost{cost, static_cast<double>(n.running + n.waiting), 0};
    });
  }
  std::vector<NodeId> RankDecode(const RouteRequest&, absl::Span<const NodeView> nodes) override {
    return ranker_.Rank(nodes, internal::DecodeLoadCost);
  }

 private:
  internal::Ranker ranker_;
  KvAwareWeights weights_;
};

}  // namespace

std::unique_ptr<RoutingPolicy> NewKvAwarePolicy(uint64_t seed, KvAwareWeights weights) {
  return std::make_unique<KvAwarePolicy>(seed, weights);
}

}  // namespace tandem::router
