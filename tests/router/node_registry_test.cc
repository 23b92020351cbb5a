// Tests for router/node_registry.h: status parsing, compatibility, staleness and KV events, against
// a test HTTP server that answers /internal/v1/status with canned JSON (it tests the router's
// side of the protocol, not a node).
#include "router/node_registry.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/hash.h"
#include "common/http.h"
#include "common/metrics.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem::router {
namespace {

using ::testing::HasSubstr;

constexpr char kVocab[] = "ab12ab12ab12ab12";

KvFormat Format(DType dtype = DType::kF16) {
  KvFormat f;
  f.model.fill(7);
  f.dtype = dtype;
  f.block_tokens = 4;
  return f;
}

std::string FormatHex(const KvFormat& f) {
  const std::string bytes = f.Encode();
  return HexEncode(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()),
                                       bytes.size()));
}

ClusterIdentity Identity() {
  ClusterIdentity id;
  id.model_fingerprint.fill(7);
  id.vocab_fingerprints = {kVocab};
  return id;
}

// Serves a settable NodeStatus at /internal/v1/status and records the `since` it was asked for.
class CannedNode {
 public:
  explicit CannedNode(std::string role) : server_({"127.0.0.1", 0, 2}, &metrics_) {
    status_.node_id = role + "-0";
    status_.role = role;
    status_.epoch = 11;
    status_.ready = true;
    status_.kv_format = FormatHex(Format());
    status_.vocab_fingerprint = kVocab;
    server_.Get("/internal/v1/status", [this](const httplib::Request& req, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      ++polls_started_;
      mu_.Await(absl::Condition(+[](bool* held) { return !*held; }, &held_));
      sinces_.push_back(req.get_param_value("since"));
      res.set_content(node_api::ToJson(status_), "application/json");
    });
    TANDEM_CHECK(server_.Start().ok());
  }
  template <typename F>
  void Edit(F f) {
    absl::MutexLock lock(&mu_);
    f(status_);
  }
  // While held, status answers wait (a poll that is in flight at a chosen moment).
  void Hold(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  void AwaitPollsStarted(int n) {
    absl::MutexLock lock(&mu_);
    auto started = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return polls_started_ >= n; };
    mu_.Await(absl::Condition(&started));
  }
  std::vector<std::string> sinces() {
    absl::MutexLock lock(&mu_);
    return sinces_;
  }
  HttpEndpoint endpoint() const { return {"127.0.0.1", server_.port()}; }
  void Stop() { server_.Stop(); }

 private:
  MetricsRegistry metrics_;
  HttpServer server_;
  absl::Mutex mu_;
  node_api::NodeStatus status_;
  std::vector<std::string> sinces_;
  bool held_ = false;
  int polls_started_ = 0;
};

struct Fixture {
  explicit Fixture(std::vector<HttpEndpoint> prefill, std::vector<HttpEndpoint> decode)
      : metrics(registry_metrics),
        nodes(Options(std::move(prefill), std::move(decode)), Identity(), &index, &metrics) {}
  static NodeRegistryOptions Options(std::vector<HttpEndpoint> p, std::vector<HttpEndpoint> d) {
    NodeRegistryOptions o;
    o.prefill_nodes = std::move(p);
    o.decode_nodes = std::move(d);
    o.poll_timeout = absl::Milliseconds(500);
    return o;
  }
  double Gauge(const char* name) {
    const std::string text = registry_metrics.Serialize();
    const std::string prefix = std::string(name) + " ";
    size_t at = text.find("\n" + prefix);
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + 1 + prefix.size()));
  }
  MetricsRegistry registry_metrics;
  RouterMetrics metrics;
  KvIndex index;
  NodeRegistry nodes;
};

TEST(NodeRegistry, ReadyCompatibleNodesAreUsable) {
  CannedNode prefill("prefill"), decode("decode");
  decode.Edit([](node_api::NodeStatus& s) {
    s.load.queued_tokens = 17;
    s.load.running = 2;
    s.load.kv_free_ratio = 0.25;
  });
  Fixture f({prefill.endpoint()}, {decode.endpoint()});
  EXPECT_FALSE(f.nodes.NotReadyReasons().empty());  // nothing polled yet
  f.nodes.PollAllOnce();
  EXPECT_TRUE(f.nodes.NotReadyReasons().empty());
  ASSERT_EQ(f.nodes.UsableNodes(NodeRole::kDecode).size(), 1u);
  const NodeView d = f.nodes.UsableNodes(NodeRole::kDecode)[0];
  EXPECT_EQ(d.id, decode.endpoint().ToString());
  EXPECT_EQ(d.node_id, "decode-0");
  EXPECT_EQ(d.epoch, 11u);
  EXPECT_EQ(d.queued_tokens, 17);
  EXPECT_EQ(d.running, 2);
  EXPECT_DOUBLE_EQ(d.kv_free_ratio, 0.25);
  ASSERT_TRUE(f.nodes.cluster_format().has_value());
  EXPECT_EQ(*f.nodes.cluster_format(), Format());
  EXPECT_EQ(f.Gauge("tandem_router_incompatible_nodes"), 0);
}

TEST(NodeRegistry, NotReadyNodeIsNotUsable) {
  CannedNode prefill("prefill"), decode("decode");
  decode.Edit([](node_api::NodeStatus& s) { s.ready = false; });
  Fixture f({prefill.endpoint()}, {decode.endpoint()});
  f.nodes.PollAllOnce();
  EXPECT_TRUE(f.nodes.UsableNodes(NodeRole::kDecode).empty());
  ASSERT_EQ(f.nodes.NotReadyReasons().size(), 1u);
  EXPECT_THAT(f.nodes.NotReadyReasons()[0], HasSubstr("no usable decode node"));
  EXPECT_THAT(f.nodes.NotReadyReasons()[0], HasSubstr("not ready"));
}

TEST(NodeRegistry, IncompatibleNodesGetNoTrafficAndAreCounted) {
  CannedNode good("prefill"), dtype("prefill"), vocab("decode"), model("decode"), role("decode");
  dtype.Edit([](node_api::NodeStatus& s) { s.kv_format = FormatHex(Format(DType::kF32)); });
  vocab.Edit([](node_api::NodeStatus& s) { s.vocab_fingerprint = "ffff"; });
  model.Edit([](node_api::NodeStatus& s) {
    KvFormat other = Format();
    other.model.fill(9);
    s.kv_format = FormatHex(other);
  });
  role.Edit([](node_api::NodeStatus& s) { s.role = "prefill"; });
  // `good` is polled first, so its format is the cluster's.
  Fixture f({good.endpoint(), dtype.endpoint()},
            {vocab.endpoint(), model.endpoint(), role.endpoint()});
  f.nodes.PollAllOnce();
  ASSERT_EQ(f.nodes.UsableNodes(NodeRole::kPrefill).size(), 1u);
  EXPECT_EQ(f.nodes.UsableNodes(NodeRole::kPrefill)[0].id, good.endpoint().ToString());
  EXPECT_TRUE(f.nodes.UsableNodes(NodeRole::kDecode).empty());
  EXPECT_EQ(f.Gauge("tandem_router_incompatible_nodes"), 4);
  const std::string reasons = f.nodes.NotReadyReasons()[0];
  EXPECT_THAT(reasons, HasSubstr("vocab_fingerprint ffff"));
  EXPECT_THAT(reasons, HasSubstr("kv_format differs: model fingerprint 0909"));
  const std::vector<NodeView> prefill = f.nodes.Nodes(NodeRole::kPrefill);
  ASSERT_EQ(prefill.size(), 2u);
  EXPECT_EQ(prefill[0].problem, "");
  EXPECT_THAT(prefill[1].problem, HasSubstr("kv_format differs: kv dtype f32, expected f16"));
  EXPECT_THAT(reasons, HasSubstr("role prefill, configured as decode"));
  for (const NodeView& v : f.nodes.Nodes(NodeRole::kPrefill)) {
    EXPECT_EQ(v.compatible, v.id == good.endpoint().ToString()) << v.id;
  }
}

TEST(NodeRegistry, ThreeMissedPollsMakeANodeStale) {
  CannedNode prefill("prefill"), decode("decode");
  Fixture f({prefill.endpoint()}, {decode.endpoint()});
  f.nodes.PollAllOnce();
  prefill.Edit([](node_api::NodeStatus& s) {
    KvFormat fmt = Format();
    s.events.push_back({1, "stored", ChainKeys(fmt, std::vector<KvTokenId>{1, 2, 3, 4})[0].Hex(),
                        "memory"});
    s.next_seq = 2;
  });
  f.nodes.PollAllOnce();
  const std::vector<BlockKey> keys = ChainKeys(Format(), std::vector<KvTokenId>{1, 2, 3, 4});
  const NodeId id = prefill.endpoint().ToString();
  EXPECT_EQ(f.index.HeldPrefixTokens(id, keys, 4), 4);
  prefill.Stop();
  f.nodes.PollAllOnce();
  // One missed poll: no traffic, not yet stale.
  EXPECT_TRUE(f.nodes.UsableNodes(NodeRole::kPrefill).empty());
  EXPECT_EQ(f.Gauge("tandem_router_index_stale_nodes"), 0);
  f.nodes.PollAllOnce();
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.Gauge("tandem_router_index_stale_nodes"), 1);
  EXPECT_EQ(f.index.HeldPrefixTokens(id, keys, 4), 0);
  EXPECT_THAT(f.nodes.NotReadyReasons()[0], HasSubstr("status poll failed"));
}

TEST(NodeRegistry, EventsFeedTheIndexAndSinceAdvances) {
  CannedNode prefill("prefill");
  const std::vector<BlockKey> keys =
      ChainKeys(Format(), std::vector<KvTokenId>{1, 2, 3, 4, 5, 6, 7, 8});
  prefill.Edit([&](node_api::NodeStatus& s) {
    s.events = {{1, "stored", keys[0].Hex(), "memory"}, {2, "stored", keys[1].Hex(), "memory"}};
    s.next_seq = 3;
  });
  Fixture f({prefill.endpoint()}, {});
  const NodeId id = prefill.endpoint().ToString();
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.index.HeldPrefixTokens(id, keys, 4), 8);
  prefill.Edit([&](node_api::NodeStatus& s) {
    s.events = {{3, "evicted", keys[1].Hex(), "memory"}};
    s.next_seq = 4;
  });
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.index.HeldPrefixTokens(id, keys, 4), 4);
  EXPECT_THAT(prefill.sinces(), ::testing::ElementsAre("0", "3"));

  // Truncated events: the node's set is rebuilt from what this poll carries.
  prefill.Edit([&](node_api::NodeStatus& s) {
    s.events = {{9, "stored", keys[1].Hex(), "memory"}};
    s.events_truncated = true;
    s.next_seq = 10;
  });
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.index.NumKeys(id), 1u);
  EXPECT_EQ(f.index.HeldPrefixTokens(id, keys, 4), 0);  // keys[0] was lost with the truncation
}

TEST(NodeRegistry, NewEpochDropsTheNodesKeysAndRereadsFromZero) {
  CannedNode prefill("prefill");
  const std::vector<BlockKey> keys = ChainKeys(Format(), std::vector<KvTokenId>{1, 2, 3, 4});
  prefill.Edit([&](node_api::NodeStatus& s) {
    s.events = {{1, "stored", keys[0].Hex(), "memory"}};
    s.next_seq = 5;
  });
  Fixture f({prefill.endpoint()}, {});
  const NodeId id = prefill.endpoint().ToString();
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.index.NumKeys(id), 1u);
  prefill.Edit([&](node_api::NodeStatus& s) {  // restarted: new epoch, empty store
    s.epoch = 12;
    s.events.clear();
    s.next_seq = 1;
  });
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.index.NumKeys(id), 0u);
  EXPECT_THAT(prefill.sinces(), ::testing::ElementsAre("0", "5", "0"));
  EXPECT_EQ(f.nodes.UsableNodes(NodeRole::kPrefill)[0].epoch, 12u);
}

TEST(NodeRegistry, MarkDownLastsUntilTheNextGoodPoll) {
  CannedNode decode("decode");
  Fixture f({}, {decode.endpoint()});
  f.nodes.PollAllOnce();
  const NodeId id = decode.endpoint().ToString();
  f.nodes.MarkDown(id, absl::UnavailableError("connection refused"));
  EXPECT_TRUE(f.nodes.UsableNodes(NodeRole::kDecode).empty());
  f.nodes.PollAllOnce();
  EXPECT_EQ(f.nodes.UsableNodes(NodeRole::kDecode).size(), 1u);
}

TEST(NodeRegistry, APollThatStartedBeforeAMarkDownDoesNotClearIt) {
  CannedNode decode("decode");
  Fixture f({}, {decode.endpoint()});
  f.nodes.PollAllOnce();
  const NodeId id = decode.endpoint().ToString();
  decode.Hold(true);
  std::thread poll([&] { f.nodes.PollAllOnce(); });
  decode.AwaitPollsStarted(2);  // the poll is in flight
  f.nodes.MarkDown(id, absl::UnavailableError("connection reset"));
  decode.Hold(false);
  poll.join();
  EXPECT_TRUE(f.nodes.UsableNodes(NodeRole::kDecode).empty());
  f.nodes.PollAllOnce();  // started after the failure: the node is back
  EXPECT_EQ(f.nodes.UsableNodes(NodeRole::kDecode).size(), 1u);
}

TEST(NodeRegistry, PollersRunInTheBackground) {
  CannedNode prefill("prefill"), decode("decode");
  NodeRegistryOptions o = Fixture::Options({prefill.endpoint()}, {decode.endpoint()});
  o.poll_interval = absl::Milliseconds(20);
  MetricsRegistry registry;
  RouterMetrics metrics(registry);
  KvIndex index;
  NodeRegistry nodes(o, Identity(), &index, &metrics);
  nodes.Start();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!nodes.NotReadyReasons().empty() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(nodes.NotReadyReasons().empty());
  while (decode.sinces().size() < 3 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_GE(decode.sinces().size(), 3u);
  nodes.Stop();
}

// A resolver whose answer the test sets: the registry's side of DNS discovery without a DNS
// server (the cluster test dns_discovery_test drives the real getaddrinfo through a hosts file).
class ScriptedResolver {
 public:
  void Answer(absl::StatusOr<std::vector<HttpEndpoint>> answer) {
    absl::MutexLock lock(&mu_);
    answer_ = std::move(answer);
  }
  DnsResolver AsResolver() {
    return [this](const DnsNodeName& name) -> absl::StatusOr<std::vector<HttpEndpoint>> {
      absl::MutexLock lock(&mu_);
      asked_.push_back(name.ToString());
      return answer_;
    };
  }
  std::vector<std::string> asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }

 private:
  absl::Mutex mu_;
  absl::StatusOr<std::vector<HttpEndpoint>> answer_ = absl::NotFoundError("no answer yet");
  std::vector<std::string> asked_;
};

std::vector<std::string> Ids(const std::vector<NodeView>& views) {
  std::vector<std::string> out;
  for (const NodeView& v : views) out.push_back(v.id);
  return out;
}

struct DnsFixture {
  DnsFixture(std::vector<HttpEndpoint> static_prefill, absl::Duration poll = absl::Seconds(1)) {
    NodeRegistryOptions o = Fixture::Options(std::move(static_prefill), {});
    o.prefill_dns = {{"tandem-prefill.test", 8100}};
    o.resolver = resolver.AsResolver();
    o.poll_interval = poll;
    o.dns_refresh = absl::Milliseconds(20);
    nodes = std::make_unique<NodeRegistry>(o, Identity(), &index, &metrics);
  }
  double Value(const std::string& sample) {
    const std::string text = registry_metrics.Serialize();
    size_t at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + 1 + sample.size() + 1));
  }
  ScriptedResolver resolver;
  MetricsRegistry registry_metrics;
  RouterMetrics metrics{registry_metrics};
  KvIndex index;
  std::unique_ptr<NodeRegistry> nodes;
};

TEST(NodeRegistryDns, AddressesBecomeNodesAndVanishedOnesAreDropped) {
  CannedNode a("prefill"), b("prefill"), fixed("prefill");
  const KvFormat fmt = Format();
  const std::vector<BlockKey> keys = ChainKeys(fmt, std::vector<KvTokenId>{1, 2, 3, 4});
  a.Edit([&](node_api::NodeStatus& s) { s.events = {{1, "stored", keys[0].Hex(), "memory"}}; });
  DnsFixture f({fixed.endpoint()});
  EXPECT_EQ(Ids(f.nodes->Nodes(NodeRole::kPrefill)),
            std::vector<std::string>{fixed.endpoint().ToString()});

  f.resolver.Answer(std::vector<HttpEndpoint>{a.endpoint()});
  f.nodes->ResolveAllOnce();
  EXPECT_EQ(f.resolver.asked(), std::vector<std::string>{"dns:tandem-prefill.test:8100"});
  EXPECT_EQ(Ids(f.nodes->Nodes(NodeRole::kPrefill)),
            (std::vector<std::string>{fixed.endpoint().ToString(), a.endpoint().ToString()}));
  f.nodes->PollAllOnce();
  EXPECT_EQ(f.nodes->UsableNodes(NodeRole::kPrefill).size(), 2u);
  EXPECT_EQ(f.index.NumKeys(a.endpoint().ToString()), 1u);
  EXPECT_EQ(f.Value("tandem_router_nodes{role=\"prefill\"}"), 2);
  EXPECT_EQ(f.Value("tandem_router_usable_nodes{role=\"prefill\"}"), 2);

  // A second address joins; the answer repeating the first does not add it twice.
  f.resolver.Answer(std::vector<HttpEndpoint>{b.endpoint(), a.endpoint()});
  f.nodes->ResolveAllOnce();
  f.nodes->PollAllOnce();
  EXPECT_EQ(f.nodes->UsableNodes(NodeRole::kPrefill).size(), 3u);

  // `a` leaves DNS: dropped with its index entries; the static node and `b` stay.
  const NodeView a_before = *f.nodes->Find(a.endpoint().ToString());
  f.resolver.Answer(std::vector<HttpEndpoint>{b.endpoint()});
  f.nodes->ResolveAllOnce();
  EXPECT_FALSE(f.nodes->Find(a.endpoint().ToString()).has_value());
  EXPECT_EQ(Ids(f.nodes->UsableNodes(NodeRole::kPrefill)),
            (std::vector<std::string>{fixed.endpoint().ToString(), b.endpoint().ToString()}));
  EXPECT_EQ(f.index.NumKeys(a.endpoint().ToString()), 0u);
  EXPECT_EQ(f.Value("tandem_router_nodes{role=\"prefill\"}"), 2);
  // A request that already routed to `a` keeps its copy and can still call it; a failure it
  // reports for a node the registry no longer has changes nothing.
  EXPECT_EQ(a_before.endpoint.port, a.endpoint().port);
  f.nodes->MarkDown(a_before.id, absl::UnavailableError("gone"));
  EXPECT_EQ(f.nodes->UsableNodes(NodeRole::kPrefill).size(), 2u);

  // It comes back (a new pod with the same address): a new node, read from seq 0.
  f.resolver.Answer(std::vector<HttpEndpoint>{a.endpoint(), b.endpoint()});
  f.nodes->ResolveAllOnce();
  f.nodes->PollAllOnce();
  EXPECT_EQ(f.nodes->UsableNodes(NodeRole::kPrefill).size(), 3u);
  EXPECT_EQ(a.sinces().back(), "0");
  EXPECT_EQ(f.index.NumKeys(a.endpoint().ToString()), 1u);
}

TEST(NodeRegistryDns, AFailedResolutionKeepsTheLastNodes) {
  CannedNode a("prefill"), decode("decode");
  DnsFixture f({});
  f.nodes->ResolveAllOnce();  // "no answer yet": nothing known, /ready says why
  ASSERT_TRUE(f.nodes->Nodes(NodeRole::kPrefill).empty());
  const std::vector<std::string> reasons = f.nodes->NotReadyReasons();
  ASSERT_FALSE(reasons.empty());
  EXPECT_THAT(reasons[0], HasSubstr("dns:tandem-prefill.test:8100: no answer yet"));

  f.resolver.Answer(std::vector<HttpEndpoint>{a.endpoint()});
  f.nodes->ResolveAllOnce();
  f.resolver.Answer(absl::UnavailableError("resolving tandem-prefill.test: timeout"));
  f.nodes->ResolveAllOnce();
  f.nodes->ResolveAllOnce();
  f.nodes->PollAllOnce();
  EXPECT_EQ(Ids(f.nodes->UsableNodes(NodeRole::kPrefill)),
            std::vector<std::string>{a.endpoint().ToString()});
  EXPECT_EQ(f.Value("tandem_router_dns_resolutions_total"), 4);
  EXPECT_EQ(f.Value("tandem_router_dns_failures_total"), 3);
}

TEST(NodeRegistryDns, DiscoveredNodesArePolledAndDroppedWhileRunning) {
  CannedNode a("prefill"), b("prefill");
  DnsFixture f({}, /*poll=*/absl::Milliseconds(20));
  f.resolver.Answer(std::vector<HttpEndpoint>{a.endpoint(), b.endpoint()});
  f.nodes->Start();
  auto wait_for = [&](auto done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    return done();
  };
  EXPECT_TRUE(wait_for([&] { return f.nodes->UsableNodes(NodeRole::kPrefill).size() == 2; }));
  f.resolver.Answer(std::vector<HttpEndpoint>{b.endpoint()});
  EXPECT_TRUE(wait_for([&] { return f.nodes->Nodes(NodeRole::kPrefill).size() == 1; }));
  // The dropped node's poller has ended: no poll reaches `a` any more. A poll already on the wire
  // when it was dropped may still land, so first wait for one poll period (20 ms here) without a
  // new one, then check that 200 ms bring none either.
  size_t polls = a.sinces().size();
  EXPECT_TRUE(wait_for([&] {
    absl::SleepFor(absl::Milliseconds(60));
    const size_t now = a.sinces().size();
    const bool quiet = now == polls;
    polls = now;
    return quiet;
  }));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(a.sinces().size(), polls);
  EXPECT_GT(b.sinces().size(), 3u);
  f.nodes->Stop();
}

TEST(ResolveDnsName, TheSystemResolver) {
  ASSERT_OK_AND_ASSIGN(std::vector<HttpEndpoint> found, ResolveDnsName({"127.0.0.7", 8200}));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].ToString(), "127.0.0.7:8200");
  ASSERT_OK_AND_ASSIGN(found, ResolveDnsName({"::1", 8200}));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].ToString(), "[::1]:8200");
  ASSERT_OK_AND_ASSIGN(found, ResolveDnsName({"localhost", 9}));
  std::vector<std::string> localhost;
  for (const HttpEndpoint& e : found) localhost.push_back(e.ToString());
  EXPECT_THAT(localhost, ::testing::Contains("127.0.0.1:9"));
  // RFC 6761: .invalid never resolves (NotFound, or Unavailable where no DNS server answers).
  EXPECT_FALSE(ResolveDnsName({"tandem-no-such-node.invalid", 1}).ok());
}

}  // namespace
}  // namespace tandem::router
