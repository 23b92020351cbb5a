// router/node_registry.cc
#include "router/node_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/status.h"
#include "glog/logging.h"

namespace tandem::router {
namespace {

std::string ShortHex(const std::string& hex) { return hex.substr(0, std::min<size_t>(12, hex.size())); }

}  // namespace

NodeRegistry::NodeRegistry(NodeRegistryOptions options, ClusterIdentity identity, KvIndex* index,
                           RouterMetrics* metrics)
    : options_(std::move(options)), identity_(std::move(identity)), index_(index),
      metrics_(metrics) {
  absl::MutexLock lock(&mu_);
  for (const HttpEndpoint& e : options_.prefill_nodes) AddNode(e, NodeRole::kPrefill, -1);
  for (const HttpEndpoint& e : options_.decode_nodes) AddNode(e, NodeRole::kDecode, -1);
  for (const DnsNodeName& d : options_.prefill_dns) {
    dns_sources_.push_back({d, NodeRole::kPrefill, "not resolved yet"});
  }
  for (const DnsNodeName& d : options_.decode_dns) {
    dns_sources_.push_back({d, NodeRole::kDecode, "not resolved yet"});
  }
  UpdateGauges();
}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::AddNode(const HttpEndpoint& endpoint, NodeRole role, int dns_source) {
  const std::string id = endpoint.ToString();
  for (const auto& n : nodes_) {
    if (n->view.id == id && n->view.role == role) return;  // listed twice, or static and in DNS
  }
  auto n = std::make_unique<Node>();
  n->view.id = id;
  n->view.role = role;
  n->view.endpoint = endpoint;
  n->view.problem = "not polled yet";
  n->dns_source = dns_source;
  if (dns_source >= 0) {
    LOG(INFO) << "node=" << id << " role=" << NodeRoleName(role) << " found by "
              << dns_sources_[dns_source].name.ToString();
  }
  nodes_.push_back(std::move(n));
  if (running_) StartPoller(nodes_.back().get());
}

void NodeRegistry::StartPoller(Node* node) {
  node->poller = std::thread([this, node] { PollerLoop(node); });
}

void NodeRegistry::Start() {
  absl::MutexLock lock(&mu_);
  if (running_ || stopping_) return;
  running_ = true;
  for (auto& n : nodes_) StartPoller(n.get());
  if (!dns_sources_.empty()) resolver_ = std::thread([this] { ResolverLoop(); });
}

void NodeRegistry::Stop() {
  std::vector<std::thread> pollers;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto& n : nodes_) {
      if (n->poller.joinable()) pollers.push_back(std::move(n->poller));
    }
  }
  if (resolver_.joinable()) resolver_.join();
  for (std::thread& t : pollers) t.join();
}

std::vector<NodeRegistry::Node*> NodeRegistry::NodesSnapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<Node*> out;
  for (const auto& n : nodes_) out.push_back(n.get());
  return out;
}

void NodeRegistry::PollAllOnce() {
  // Nodes are destroyed only by the resolver pass, which tests do not run concurrently with this.
  for (Node* n : NodesSnapshot()) PollNode(n);
}

void NodeRegistry::PollerLoop(Node* node) {
  auto done = [this, node]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || node->dropped;
  };
  while (true) {
    const absl::Time next = absl::Now() + options_.poll_interval;
    PollNode(node);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&done), next);
    if (done()) return;
  }
}

void NodeRegistry::ResolverLoop() {
  while (true) {
    const absl::Time next = absl::Now() + options_.dns_refresh;
    ResolveAllOnce();
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&stopping_), next);
    if (stopping_) return;
  }
}

void NodeRegistry::ResolveAllOnce() {
  absl::MutexLock pass(&resolve_mu_);
  std::vector<DnsSource> sources;
  {
    absl::MutexLock lock(&mu_);
    sources = dns_sources_;
  }
  std::vector<std::unique_ptr<Node>> dropped;
  for (size_t i = 0; i < sources.size(); ++i) {
    absl::StatusOr<std::vector<HttpEndpoint>> found = options_.resolver(sources[i].name);
    metrics_->dns_resolutions->Labels({}).Increment();
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    DnsSource& source = dns_sources_[i];
    if (!found.ok()) {
      metrics_->dns_failures->Labels({}).Increment();
      if (source.last_error.empty() || source.last_error == "not resolved yet") {
        LOG(WARNING) << source.name.ToString() << " did not resolve; keeping its "
                     << "last nodes until it does: " << found.status();
      }
      source.last_error = std::string(found.status().message());
      continue;
    }
    if (!source.last_error.empty() && source.last_error != "not resolved yet") {
      LOG(INFO) << source.name.ToString() << " resolves again";
    }
    source.last_error.clear();
    std::vector<std::string> ids;
    for (const HttpEndpoint& e : *found) {
      ids.push_back(e.ToString());
      AddNode(e, source.role, static_cast<int>(i));
    }
    for (auto it = nodes_.begin(); it != nodes_.end();) {
      Node& n = **it;
      if (n.dns_source != static_cast<int>(i) ||
          std::find(ids.begin(), ids.end(), n.view.id) != ids.end()) {
        ++it;
        continue;
      }
      LOG(INFO) << "node=" << n.view.id << " role=" << NodeRoleName(n.view.role)
                << " is gone from " << source.name.ToString()
                << "; no new traffic (requests on it finish)";
      n.dropped = true;
      index_->ResetNode(n.view.id);
      dropped.push_back(std::move(*it));
      it = nodes_.erase(it);
    }
    UpdateGauges();
  }
  // Outside the lock: a poller finishing its last poll needs mu_ to see that it was dropped.
  for (auto& n : dropped) {
    if (n->poller.joinable()) n->poller.join();
  }
}

void NodeRegistry::PollNode(Node* polled) {
  // Two rounds at most: a new epoch invalidates `since`, so its events are fetched again from 0.
  for (int round = 0; round < 2; ++round) {
    HttpEndpoint endpoint;
    uint64_t since;
    uint64_t mark_downs_before;
    {
      absl::MutexLock lock(&mu_);
      if (polled->dropped) return;
      endpoint = polled->view.endpoint;
      since = polled->next_seq;
      mark_downs_before = polled->mark_down_count;
    }
    HttpCallOptions call;
    call.connect_timeout = options_.poll_timeout;
    call.io_timeout = options_.poll_timeout;
    call.cluster_auth = options_.cluster_auth;
    absl::StatusOr<HttpReply> reply =
        HttpGet(endpoint, absl::StrCat("/internal/v1/status?since=", since), call);
    const absl::Status call_status =
        reply.ok() ? StatusFromHttpReply(reply->status, reply->body) : reply.status();
    absl::StatusOr<node_api::NodeStatus> status =
        call_status.ok() ? node_api::FromJson<node_api::NodeStatus>(reply->body)
                         : absl::StatusOr<node_api::NodeStatus>(call_status);

    absl::MutexLock lock(&mu_);
    Node& node = *polled;
    if (node.dropped) return;  // its index entries are gone and must stay gone
    if (!status.ok()) {
      node.polled_ok = false;
      ++node.missed_polls;
      node.view.problem = absl::StrCat("status poll failed: ", status.status().message());
      if (node.missed_polls == options_.stale_after_missed_polls) {
        LOG(WARNING) << "node=" << node.view.id << " role=" << NodeRoleName(node.view.role)
                     << " missed " << node.missed_polls
                     << " status polls; not ready and its index entries are ignored: "
                     << status.status();
        index_->SetStale(node.view.id, true);
      }
      UpdateUsable(node);
      UpdateGauges();
      return;
    }
    if (node.missed_polls >= options_.stale_after_missed_polls) {
      LOG(INFO) << "node=" << node.view.id << " answers status polls again";
      index_->SetStale(node.view.id, false);
    }
    node.missed_polls = 0;
    node.polled_ok = true;
    if (node.marked_down && node.mark_down_count == mark_downs_before) {
      LOG(INFO) << "node=" << node.view.id << " is back after a failed call";
      node.marked_down = false;
    }

    const bool epoch_changed = node.has_epoch && status->epoch != node.view.epoch;
    node.has_epoch = true;
    node.view.epoch = status->epoch;
    node.view.node_id = status->node_id;
    node.view.queued_tokens = status->load.queued_tokens;
    node.view.running = status->load.running;
    node.view.waiting = status->load.waiting;
    node.view.kv_free_ratio = status->load.kv_free_ratio;
    const std::string incompatible = CheckCompatible(node, *status);
    node.view.compatible = incompatible.empty();
    node.view.ready = status->ready;
    node.view.problem = !incompatible.empty() ? incompatible
                        : status->ready       ? ""
                                              : "node not ready";
    if (!incompatible.empty() && node.incompatible_logged_epoch != status->epoch) {
      node.incompatible_logged_epoch = status->epoch;
      LOG(WARNING) << "node=" << node.view.id << " (" << status->node_id
                   << ") is incompatible and gets no traffic: " << incompatible;
    }
    node.status = *std::move(status);
    UpdateUsable(node);
    UpdateGauges();

    if (node.view.role != NodeRole::kPrefill) {
      node.next_seq = node.status.next_seq;
      return;
    }
    if (epoch_changed) {
      LOG(INFO) << "node=" << node.view.id << " has a new epoch " << node.view.epoch
                << "; its index entries are dropped";
      index_->ResetNode(node.view.id);
      node.next_seq = 0;
      if (since == 0) return;  // these events are the new process's, from the start
      continue;
    }
    if (node.status.events_truncated) {
      // Events between `since` and this reply were lost, evictions among them, so every entry
      // of this node may be wrong. The status API offers no snapshot of a node's keys to rebuild
      // from, so the node is treated as holding nothing but what it reports from here on: the
      // index underestimates it (a missed prefix hit, never a wrong one).
      LOG(WARNING) << "node=" << node.view.id << " dropped KV events after seq " << since
                   << "; its index entries are reset and hold only keys reported from now on";
      index_->ResetNode(node.view.id);
    }
    const int skipped = index_->Apply(node.view.id, node.status.events);
    if (skipped > 0) {
      LOG_EVERY_N(WARNING, 100) << "node=" << node.view.id << " sent " << skipped
                                << " KV events with a bad key or op; skipped";
    }
    node.next_seq = node.status.next_seq;
    node.status.events.clear();  // applied; the snapshot keeps load and identity only
    return;
  }
}

std::string NodeRegistry::CheckCompatible(const Node& node, const node_api::NodeStatus& status) {
  if (status.role != NodeRoleName(node.view.role)) {
    return absl::StrCat("role ", status.role, ", configured as ",
                        AV(NodeRoleName(node.view.role)));
  }
  if (std::find(identity_.vocab_fingerprints.begin(), identity_.vocab_fingerprints.end(),
                status.vocab_fingerprint) == identity_.vocab_fingerprints.end()) {
    return absl::StrCat("vocab_fingerprint ", ShortHex(status.vocab_fingerprint), ", router ",
                        identity_.vocab_fingerprints.empty()
                            ? std::string("none")
                            : ShortHex(identity_.vocab_fingerprints.front()));
  }
  absl::StatusOr<std::string> bytes = HexDecode(status.kv_format);
  absl::StatusOr<KvFormat> format =
      bytes.ok() ? KvFormat::Decode(*bytes) : absl::StatusOr<KvFormat>(bytes.status());
  if (!format.ok()) return absl::StrCat("kv_format unreadable: ", format.status().message());
  if (format->model != identity_.model_fingerprint) {
    KvFormat ours = *format;
    ours.model = identity_.model_fingerprint;
    return absl::StrCat("kv_format differs: ", format->Diff(ours), " (the router's model)");
  }
  if (!cluster_format_) {
    cluster_format_ = *format;
    LOG(INFO) << "cluster kv format from node=" << node.view.id << ": "
              << cluster_format_->DebugString();
    return "";
  }
  if (*format != *cluster_format_) {
    return absl::StrCat("kv_format differs: ", format->Diff(*cluster_format_), " (the cluster's)");
  }
  return "";
}

void NodeRegistry::UpdateUsable(Node& node) {
  node.view.usable =
      node.polled_ok && node.view.ready && node.view.compatible && !node.marked_down;
  if (!node.polled_ok) node.view.ready = false;
}

void NodeRegistry::UpdateGauges() {
  int stale = 0;
  int incompatible = 0;
  int known[2] = {0, 0};
  int usable[2] = {0, 0};
  double kv_used = 0;
  for (const auto& p : nodes_) {
    const Node& n = *p;
    stale += n.missed_polls >= options_.stale_after_missed_polls;
    incompatible += n.polled_ok && !n.view.compatible;
    const int r = n.view.role == NodeRole::kPrefill ? 0 : 1;
    ++known[r];
    if (!n.view.usable) continue;
    ++usable[r];
    if (r == 1) kv_used += 1.0 - std::clamp(n.view.kv_free_ratio, 0.0, 1.0);
  }
  metrics_->index_stale_nodes->Labels({}).Set(stale);
  metrics_->incompatible_nodes->Labels({}).Set(incompatible);
  for (NodeRole role : {NodeRole::kPrefill, NodeRole::kDecode}) {
    const int r = role == NodeRole::kPrefill ? 0 : 1;
    const std::string name(NodeRoleName(role));
    metrics_->nodes->Labels({name}).Set(known[r]);
    metrics_->usable_nodes->Labels({name}).Set(usable[r]);
  }
  metrics_->kv_usage->Labels({}).Set(usable[1] > 0 ? kv_used / usable[1] : 0.0);
}

std::vector<NodeView> NodeRegistry::Nodes(NodeRole role) const {
  absl::MutexLock lock(&mu_);
  std::vector<NodeView> out;
  for (const auto& n : nodes_) {
    if (n->view.role == role) out.push_back(n->view);
  }
  return out;
}

std::vector<NodeView> NodeRegistry::UsableNodes(NodeRole role) const {
  std::vector<NodeView> out = Nodes(role);
  out.erase(std::remove_if(out.begin(), out.end(), [](const NodeView& v) { return !v.usable; }),
            out.end());
  return out;
}

std::optional<NodeView> NodeRegistry::Find(const NodeId& id) const {
  absl::MutexLock lock(&mu_);
  for (const auto& n : nodes_) {
    if (n->view.id == id) return n->view;
  }
  return std::nullopt;
}

std::optional<KvFormat> NodeRegistry::cluster_format() const {
  absl::MutexLock lock(&mu_);
  return cluster_format_;
}

void NodeRegistry::MarkDown(const NodeId& id, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  for (auto& p : nodes_) {
    Node& n = *p;
    if (n.view.id != id) continue;
    if (!n.marked_down) {
      LOG(WARNING) << "node=" << id << " marked down until its next status poll: " << why;
    }
    n.marked_down = true;
    ++n.mark_down_count;
    n.view.problem = absl::StrCat("call failed: ", why.message());
    UpdateUsable(n);
  }
}

std::vector<std::string> NodeRegistry::NotReadyReasons() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> reasons;
  for (NodeRole role : {NodeRole::kPrefill, NodeRole::kDecode}) {
    bool any = false;
    std::vector<std::string> problems;
    for (const auto& n : nodes_) {
      if (n->view.role != role) continue;
      if (n->view.usable) any = true;
      problems.push_back(absl::StrCat(n->view.id, ": ", n->view.problem));
    }
    if (any) continue;
    for (const DnsSource& d : dns_sources_) {
      if (d.role == role && !d.last_error.empty()) {
        problems.push_back(absl::StrCat(d.name.ToString(), ": ", d.last_error));
      }
    }
    reasons.push_back(absl::StrCat(
        "no usable ", AV(NodeRoleName(role)), " node",
        problems.empty() ? std::string(" (none configured)")
                         : absl::StrCat(" (", absl::StrJoin(problems, "; "), ")")));
  }
  return reasons;
}

}  // namespace tandem::router
