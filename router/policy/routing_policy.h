// router/policy/routing_policy.h
//
// RoutingPolicy ranks the usable prefill and decode nodes for one request (ARCHITECTURE.md §4.7).
// The router tries nodes in the returned order: a retry walks the list. Inputs are snapshots
// (NodeView, RouteRequest) and a read-only view of the KV index, so a policy holds no node state
// beyond its own counters. Every node passed in appears in the ranking exactly once: a usable node
// is never left out, it is only ranked last.
//
// Policies: kv_aware (default: fewest tokens to compute plus queue), least_loaded, round_robin.
// Implementations are thread-safe: handler threads rank concurrently. Ranking never blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/http_client.h"
#include "common/kv_key.h"

namespace tandem::router {

// The registry's key of a node: its configured "host:port", stable across restarts of the node
// (the node's own node_id may change with each life).
using NodeId = std::string;

enum class NodeRole { kPrefill, kDecode };
std::string_view NodeRoleName(NodeRole role);  // "prefill" | "decode"

// One node as the router last saw it.
struct NodeView {
  NodeId id;               // "host:port" as configured
  std::string node_id;     // the node's own id from its status ("" before the first poll)
  NodeRole role = NodeRole::kPrefill;
  HttpEndpoint endpoint;
  uint64_t epoch = 0;
  bool ready = false;       // the last poll succeeded and the node said ready
  bool compatible = false;  // kv_format and vocabulary match the cluster's
  bool usable = false;      // ready && compatible && not marked down since its last poll
  std::string problem;      // why the node is not usable ("" when it is), for /ready and logs
  int64_t queued_tokens = 0;
  int64_t running = 0;
  int64_t waiting = 0;
  double kv_free_ratio = 1;
};

// What a policy may know about the request being routed.
struct RouteRequest {
  std::string request_id;
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  // ChainKeys of the prompt's full blocks under the cluster's KvFormat (empty when the cluster's
  // format is unknown yet or the prompt is shorter than a block).
  std::vector<BlockKey> block_keys;
  int32_t block_tokens = 0;
};

// Read access to the router's KV index.
class KvIndexView {
 public:
  virtual ~KvIndexView() = default;
  // How many leading prompt tokens `node` holds: block_tokens times the length of the longest
  // prefix of `block_keys` the node has stored. 0 for an unknown node.
  virtual int64_t HeldPrefixTokens(const NodeId& node, absl::Span<const BlockKey> block_keys,
                                   int32_t block_tokens) const = 0;
};

class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  virtual std::string_view Name() const = 0;
  // Best first; every node of `nodes` exactly once.
  virtual std::vector<NodeId> RankPrefill(const RouteRequest& req, const KvIndexView& index,
                                          absl::Span<const NodeView> nodes) = 0;
  virtual std::vector<NodeId> RankDecode(const RouteRequest& req,
                                         absl::Span<const NodeView> nodes) = 0;
};

// kv_aware's weights: cost = compute * compute_tokens + queue * queued_tokens, where
// compute_tokens are the prompt tokens the node does not hold. Equal weights treat a queued token
// and a token to compute alike, which is what they cost a prefill node.
struct KvAwareWeights {
  double compute = 1.0;
  double queue = 1.0;
};

// The names --router_policy accepts.
inline constexpr std::string_view kRoutingPolicyNames[] = {"kv_aware", "least_loaded",
                                                           "round_robin"};

// InvalidArgument naming `name` and the supported set for an unknown policy. `seed` drives the
// random tie-breaks (tests fix it).
absl::StatusOr<std::unique_ptr<RoutingPolicy>> NewRoutingPolicy(std::string_view name,
                                                                uint64_t seed,
                                                                KvAwareWeights weights = {});
std::unique_ptr<RoutingPolicy> NewKvAwarePolicy(uint64_t seed, KvAwareWeights weights);
std::unique_ptr<RoutingPolicy> NewLeastLoadedPolicy(uint64_t seed);
std::unique_ptr<RoutingPolicy> NewRoundRobinPolicy();

}  // namespace tandem::router
