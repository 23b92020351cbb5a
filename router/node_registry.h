// router/node_registry.h
//
// NodeRegistry knows the router's prefill and decode nodes (ARCHITECTURE.md §8) and how each one
// looked at its last status poll. Nodes come from static host:port lists and from DNS names
// (dns:name:port) that one resolver thread resolves again every dns_refresh: an address that
// appears becomes a node, one that is gone from the answer is dropped (its index entries with it).
// A failed resolution keeps the last answer (a DNS outage must not empty the cluster; nodes that
// are really gone fail their polls and stop being usable). One poller thread per node GETs
// /internal/v1/status?since=N every poll interval; the reply gives the node's readiness and load,
// and (prefill nodes) the KV events that feed the KvIndex.
//
// Dropping a node only stops new traffic to it: requests in flight hold their own copy of its
// NodeView and finish on it.
//
// Usable = the last poll succeeded, the node said ready, its role is the configured one, its
// vocabulary fingerprint is the router's and its kv_format matches the cluster's (the first
// compatible node's format, whose model fingerprint must be the router's), and no call has failed
// since that poll (MarkDown). An incompatible node is logged once per epoch with the differing
// field and counted in tandem_router_incompatible_nodes; a node that misses three polls in a row
// is logged, counted in tandem_router_index_stale_nodes, and its index entries are ignored.
//
// Ownership: borrows the KvIndex and RouterMetrics, which must outlive it. Thread-safe; Start()
// and Stop() are called once each by the owner (the destructor Stop()s). Snapshots never block on
// the network.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/http_client.h"
#include "common/kv_key.h"
#include "common/node_api.h"
#include "router/dns_resolver.h"
#include "router/kv_index.h"
#include "router/metrics.h"
#include "router/policy/routing_policy.h"

namespace tandem::router {

// What the router compares every node with: computed from its own GGUF.
struct ClusterIdentity {
  std::array<uint8_t, 32> model_fingerprint{};  // format::ModelFingerprint(gguf).bytes
  // Vocabulary fingerprints (hex) the router accepts; the GGUF's token-list hash
  // (format::VocabFingerprintHex) and the tokenizer's (Tokenizer::VocabFingerprint) both name the
  // router's vocabulary, and a node may report either.
  std::vector<std::string> vocab_fingerprints;
};

struct NodeRegistryOptions {
  std::vector<HttpEndpoint> prefill_nodes;
  std::vector<HttpEndpoint> decode_nodes;
  std::vector<DnsNodeName> prefill_dns;
  std::vector<DnsNodeName> decode_dns;
  // Period of resolving the DNS names again. Default: 5 s. Flag: --router_dns_refresh_ms
  absl::Duration dns_refresh = absl::Seconds(5);
  // How names are resolved: the system resolver unless a test gives its own.
  DnsResolver resolver = ResolveDnsName;
  // Time between two polls of a node. Default: 200 ms. Flag: --router_poll_ms
  absl::Duration poll_interval = absl::Milliseconds(200);
  // Connect and read timeout of one poll; a poll that takes longer counts as missed.
  absl::Duration poll_timeout = absl::Seconds(1);
  // Missed polls in a row after which a node counts as stale.
  int stale_after_missed_polls = 3;
  // Signs the status polls with the cluster secret; nullptr sends them unsigned.
  std::shared_ptr<const ControlPlaneAuth> cluster_auth{};
};

class NodeRegistry {
 public:
  NodeRegistry(NodeRegistryOptions options, ClusterIdentity identity, KvIndex* index,
               RouterMetrics* metrics);
  ~NodeRegistry();
  NodeRegistry(const NodeRegistry&) = delete;
  NodeRegistry& operator=(const NodeRegistry&) = delete;

  // Starts one poller thread per node, and the resolver thread when there are DNS names; the
  // first resolution and polls run at once.
  void Start();
  // Stops and joins the pollers and the resolver (an in-flight poll finishes first, bounded by
  // poll_timeout; a resolution by the system resolver's own timeout).
  void Stop();
  // Polls every node once on the calling thread (tests; also what each poller does per tick).
  void PollAllOnce();
  // Resolves every DNS name once on the calling thread and adds and drops nodes (tests; also
  // what the resolver thread does per tick). New nodes get a poller only after Start().
  void ResolveAllOnce();

  // Every configured node of `role`, in configuration order.
  std::vector<NodeView> Nodes(NodeRole role) const;
  // The usable nodes of `role`.
  std::vector<NodeView> UsableNodes(NodeRole role) const;
  std::optional<NodeView> Find(const NodeId& id) const;
  // The cluster's KvFormat, once a compatible node has reported it.
  std::optional<KvFormat> cluster_format() const;

  // A call to `id` failed at the transport level: no traffic until its next successful poll.
  void MarkDown(const NodeId& id, const absl::Status& why);

  // Why the router is not ready ("no usable decode node (127.0.0.1:8200: not ready)"); empty when
  // at least one prefill and one decode node are usable.
  std::vector<std::string> NotReadyReasons() const;

 private:
  struct Node {
    NodeView view;
    int dns_source = -1;          // index into dns_sources_, -1 for a static node
    bool dropped = false;         // gone from DNS: its poller ends, nothing updates it
    std::thread poller;
    node_api::NodeStatus status;
    bool polled_ok = false;       // the last poll succeeded
    int missed_polls = 0;         // in a row
    bool marked_down = false;
    // Counts MarkDown calls: a poll that began before the latest one says nothing about the
    // failure it reported, so it must not clear the mark.
    uint64_t mark_down_count = 0;
    uint64_t next_seq = 0;        // `since` of the next poll
    uint64_t incompatible_logged_epoch = 0;
    bool has_epoch = false;
  };

  struct DnsSource {
    DnsNodeName name;
    NodeRole role;
    std::string last_error;  // of the latest resolution; "" after a good one
  };

  // Adds a node unless one with the same id exists; starts its poller once the registry runs.
  void AddNode(const HttpEndpoint& endpoint, NodeRole role, int dns_source)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartPoller(Node* node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PollerLoop(Node* node);
  void PollNode(Node* node);
  void ResolverLoop();
  std::vector<Node*> NodesSnapshot() const;
  // Compatibility of `status` for `node`; empty when compatible. Sets the cluster format from the
  // first node whose model fingerprint is ours.
  std::string CheckCompatible(const Node& node, const node_api::NodeStatus& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateUsable(Node& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const NodeRegistryOptions options_;
  const ClusterIdentity identity_;
  KvIndex* index_;
  RouterMetrics* metrics_;

  mutable absl::Mutex mu_;
  // Static nodes first, in configuration order, then discovered ones as they appear. A dropped
  // node leaves this list at once and is destroyed once its poller has ended.
  std::vector<std::unique_ptr<Node>> nodes_ ABSL_GUARDED_BY(mu_);
  std::vector<DnsSource> dns_sources_ ABSL_GUARDED_BY(mu_);
  std::optional<KvFormat> cluster_format_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;   // between Start() and Stop()
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread resolver_;
  absl::Mutex resolve_mu_;  // one resolution pass at a time (the thread or a test)
};

}  // namespace tandem::router
