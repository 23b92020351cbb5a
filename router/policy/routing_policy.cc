// router/policy/routing_policy.cc: the policy factory.
#include "router/policy/routing_policy.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tandem::router {

std::string_view NodeRoleName(NodeRole role) {
  return role == NodeRole::kPrefill ? "prefill" : "decode";
}

absl::StatusOr<std::unique_ptr<RoutingPolicy>> NewRoutingPolicy(std::string_view name,
                                                                uint64_t seed,
                                                                KvAwareWeights weights) {
  if (name == "kv_aware") return NewKvAwarePolicy(seed, weights);
  if (name == "least_loaded") return NewLeastLoadedPolicy(seed);
  if (name == "round_robin") return NewRoundRobinPolicy();
  std::vector<std::string> names;
  for (std::string_view n : kRoutingPolicyNames) names.emplace_back(n);
  return absl::InvalidArgumentError(absl::StrCat("unknown routing policy '", AV(name),
                                                 "'; supported: ", absl::StrJoin(names, ", ")));
}

}  // namespace tandem::router
