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
  auto add = [this](const std::vector<HttpEndpoint>& endpoints, NodeRole role) {
    for (const HttpEndpoint& e : endpoints) {
      Node n;
      n.view.id = e.ToString();
      n.view.role = role;
      n.view.endpoint = e;
      n.view.problem = "not polled yet";
      nodes_.push_back(std::move(n));
    }
  };
  add(options_.prefill_nodes, NodeRole::kPrefill);
  add(options_.decode_nodes, NodeRole::kDecode);
  UpdateGauges();
}

NodeRegistry::~NodeRegistry() { Stop(); }

void NodeRegistry::Start() {
  size_t n;
  {
    absl::MutexLock lock(&mu_);
    n = nodes_.size();
  }
  for (size_t i = 0; i < n; ++i) pollers_.emplace_back([this, i] { PollerLoop(i); });
}

void NodeRegistry::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : pollers_) t.join();
  pollers_.clear();
}

void NodeRegistry::PollAllOnce() {
  size_t n;
  {
    absl::MutexLock lock(&mu_);
    n = nodes_.size();
  }
  for (size_t i = 0; i < n; ++i) PollNode(i);
}

void NodeRegistry::PollerLoop(size_t node_index) {
  while (true) {
    const absl::Time next = absl::Now() + options_.poll_interval;
    PollNode(node_index);
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(&stopping_), next);
    if (stopping_) return;
  }
}

void NodeRegistry::PollNode(size_t node_index) {
  // Two rounds at most: a new epoch invalidates `since`, so its events are fetched again from 0.
  for (int round = 0; round < 2; ++round) {
    HttpEndpoint endpoint;
    uint64_t since;
    uint64_t mark_downs_before;
    {
      absl::MutexLock lock(&mu_);
      endpoint = nodes_[node_index].view.endpoint;
      since = nodes_[node_index].next_seq;
      mark_downs_before = nodes_[node_index].mark_down_count;
    }
    HttpCallOptions call;
    call.connect_timeout = options_.poll_timeout;
    call.io_timeout = options_.poll_timeout;
    absl::StatusOr<HttpReply> reply =
        HttpGet(endpoint, absl::StrCat("/internal/v1/status?since=", since), call);
    const absl::Status call_status =
        reply.ok() ? StatusFromHttpReply(reply->status, reply->body) : reply.status();
    absl::StatusOr<node_api::NodeStatus> status =
        call_status.ok() ? node_api::FromJson<node_api::NodeStatus>(reply->body)
                         : absl::StatusOr<node_api::NodeStatus>(call_status);

    absl::MutexLock lock(&mu_);
    Node& node = nodes_[node_index];
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
  for (const Node& n : nodes_) {
    stale += n.missed_polls >= options_.stale_after_missed_polls;
    incompatible += n.polled_ok && !n.view.compatible;
  }
  metrics_->index_stale_nodes->Labels({}).Set(stale);
  metrics_->incompatible_nodes->Labels({}).Set(incompatible);
}

std::vector<NodeView> NodeRegistry::Nodes(NodeRole role) const {
  absl::MutexLock lock(&mu_);
  std::vector<NodeView> out;
  for (const Node& n : nodes_) {
    if (n.view.role == role) out.push_back(n.view);
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
  for (const Node& n : nodes_) {
    if (n.view.id == id) return n.view;
  }
  return std::nullopt;
}

std::optional<KvFormat> NodeRegistry::cluster_format() const {
  absl::MutexLock lock(&mu_);
  return cluster_format_;
}

void NodeRegistry::MarkDown(const NodeId& id, const absl::Status& why) {
  absl::MutexLock lock(&mu_);
  for (Node& n : nodes_) {
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
    for (const Node& n : nodes_) {
      if (n.view.role != role) continue;
      if (n.view.usable) any = true;
      problems.push_back(absl::StrCat(n.view.id, ": ", n.view.problem));
    }
    if (any) continue;
    reasons.push_back(absl::StrCat(
        "no usable ", AV(NodeRoleName(role)), " node",
        problems.empty() ? std::string(" (none configured)")
                         : absl::StrCat(" (", absl::StrJoin(problems, "; "), ")")));
  }
  return reasons;
}

}  // namespace tandem::router
