// router/kv_index.h
//
// KvIndex is the router's picture of which KV blocks each prefill node holds (ARCHITECTURE.md
// §4.7), fed by the stored/evicted events of each node's status poll. A key counts as held while
// any tier of the node holds it (an eviction from memory leaves the rocksdb copy). The picture is
// a hint: a wrong entry costs a miss on the node, never a wrong answer, because the node validates
// every block it loads.
//
// A node's set is cleared when its events were truncated (the router missed some) or its epoch
// changed (a new process); a node with three missed polls is ignored (held tokens 0) until it
// answers again. Thread-safe: the registry's pollers write while request threads query.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/kv_key.h"
#include "common/node_api.h"
#include "router/policy/routing_policy.h"

namespace tandem::router {

class KvIndex final : public KvIndexView {
 public:
  // Applies one poll's events in order. Events with a malformed key are skipped (counted in the
  // return value) rather than failing the poll: the rest of the node's status is still good.
  int Apply(const NodeId& node, absl::Span<const node_api::KvEventEntry> events);
  // Forgets every key of `node` (events truncated, epoch changed).
  void ResetNode(const NodeId& node);
  // A stale node's entries are kept but not counted by HeldPrefixTokens.
  void SetStale(const NodeId& node, bool stale);

  int64_t HeldPrefixTokens(const NodeId& node, absl::Span<const BlockKey> block_keys,
                           int32_t block_tokens) const override;
  // Keys `node` holds in any tier (tests, /ready detail).
  size_t NumKeys(const NodeId& node) const;

 private:
  struct NodeKeys {
    absl::flat_hash_map<BlockKey, uint8_t> tiers;  // key -> bit per tier holding it; never 0
    bool stale = false;
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<NodeId, NodeKeys> nodes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::router
