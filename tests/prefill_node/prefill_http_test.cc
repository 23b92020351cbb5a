// The prefill node's HTTP surface on the real model (small 16-token KV blocks keep it fast): bad
// bodies are 400 naming the field, an unreachable decode node is a retryable 503 counted in the
// transfer failure metric, /internal/v1/status reports identity, formats and the stored blocks,
// and drain turns /ready to 503 and refuses new work.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/http.h"
#include "common/http_client.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "common/node_api.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "prefill_node/http_api.h"
#include "prefill_node/prefill_service.h"
#include "tests/prefill_node/prefill_test_support.h"
#include "tests/support/status_matchers.h"

namespace tandem::prefill {
namespace {

using ::tandem::prefill::testing::TestReceiver;

constexpr int kBlockTokens = 16;

// A loopback port nobody listens on: bound, then closed.
int ClosedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class PrefillHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    metrics_ = new MetricsRegistry();
    auto service = PrefillService::Create(testing::TestPrefillOptions(kBlockTokens), *metrics_);
    ASSERT_OK(service);
    service_ = service->release();
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.num_threads = 4;
    server_ = new HttpServer(options, metrics_);
    api_ = new PrefillHttpApi(*server_, nullptr);
    ASSERT_OK(server_->Start());
    api_->Attach(service_);
    receiver_ = new TestReceiver();
    ASSERT_OK(receiver_->Start(service_->kv_format()));
  }
  static void TearDownTestSuite() {
    server_->Stop();
    delete receiver_;
    delete api_;
    delete server_;
    delete service_;
    delete metrics_;
  }

  static HttpEndpoint Node() { return HttpEndpoint{"127.0.0.1", server_->port()}; }

  static node_api::PrefillRequest Request(std::vector<int32_t> tokens) {
    node_api::PrefillRequest r;
    r.request_id = "r-http";
    r.tokens = std::move(tokens);
    r.sampling.temperature = 0;
    r.target.transport = "tcp";
    r.target.host = "127.0.0.1";
    r.target.port = receiver_->port;
    r.target.node_id = "decode-test";
    r.target.epoch = TestReceiver::kEpoch;
    r.target.reservation_id = 9;
    r.deadline_ms = node_api::NowUnixMs() + 60'000;
    return r;
  }

  static HttpReply Post(const std::string& path, const std::string& body) {
    auto reply = HttpPostJson(Node(), path, body);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : HttpReply{};
  }

  static HttpReply Get(const std::string& path) {
    auto reply = HttpGet(Node(), path);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? *reply : HttpReply{};
  }

  // The error object of a JSON error body.
  static nlohmann::json ErrorOf(const HttpReply& reply) {
    nlohmann::json j = nlohmann::json::parse(reply.body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << reply.body;
    return j.is_object() && j.contains("error") ? j["error"] : nlohmann::json::object();
  }

  // `n` token ids; prompts with different `salt`s share no block.
  static std::vector<int32_t> Prompt(int n, int salt = 0) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) t[i] = 100 + (i * 37 + salt * 101) % 5000;
    return t;
  }

  static inline MetricsRegistry* metrics_ = nullptr;
  static inline PrefillService* service_ = nullptr;
  static inline HttpServer* server_ = nullptr;
  static inline PrefillHttpApi* api_ = nullptr;
  static inline TestReceiver* receiver_ = nullptr;
};

TEST_F(PrefillHttpTest, BadBodiesAre400NamingTheField) {
  HttpReply r = Post("/internal/v1/prefill", "{not json");
  EXPECT_EQ(r.status, 400) << r.body;

  nlohmann::json no_tokens = nlohmann::json::parse(node_api::ToJson(Request(Prompt(4))));
  no_tokens.erase("tokens");
  r = Post("/internal/v1/prefill", no_tokens.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(ErrorOf(r)["message"].get<std::string>().find("tokens"), std::string::npos) << r.body;

  nlohmann::json no_target = nlohmann::json::parse(node_api::ToJson(Request(Prompt(4))));
  no_target.erase("target");
  r = Post("/internal/v1/prefill", no_target.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(ErrorOf(r)["message"].get<std::string>().find("target"), std::string::npos) << r.body;

  r = Post("/internal/v1/prefill", node_api::ToJson(Request({})));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r)["param"], "tokens") << r.body;

  std::vector<int32_t> out_of_vocab = Prompt(8);
  out_of_vocab[5] = service_->model_config().vocab_size;
  r = Post("/internal/v1/prefill", node_api::ToJson(Request(out_of_vocab)));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r)["param"], "tokens") << r.body;
  EXPECT_EQ(ErrorOf(r)["type"], "invalid_request_error") << r.body;

  r = Post("/internal/v1/prefill",
           node_api::ToJson(Request(Prompt(service_->model_config().context_length))));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r)["code"], "context_length_exceeded") << r.body;

  node_api::PrefillRequest sparse = Request(Prompt(8));
  sparse.sparse_prefill = "flash";
  r = Post("/internal/v1/prefill", node_api::ToJson(sparse));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r)["param"], "sparse_prefill") << r.body;

  node_api::PrefillRequest sampling = Request(Prompt(8));
  sampling.sampling.top_p = 0;
  r = Post("/internal/v1/prefill", node_api::ToJson(sampling));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(ErrorOf(r)["param"], "sampling.top_p") << r.body;

  r = Get("/internal/v1/status?since=abc");
  EXPECT_EQ(r.status, 400);
}

TEST_F(PrefillHttpTest, UnreachableDecodeNodeIsRetryable503) {
  node_api::PrefillRequest req = Request(Prompt(20, /*salt=*/1));
  req.target.port = ClosedPort();
  HttpReply r = Post("/internal/v1/prefill", node_api::ToJson(req));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(IsRetryable(StatusFromHttpReply(r.status, r.body))) << r.body;
  std::printf("unreachable decode node: %d %s\n", r.status, r.body.c_str());
  const std::string metrics = Get("/metrics").body;
  // Counted once (every reason's series exists from the start at 0).
  EXPECT_NE(metrics.find(
                "tandem_kv_transfer_failures_total{reason=\"unavailable\",transport=\"tcp\"} 1\n"),
            std::string::npos)
      << metrics;
}

// ARCHITECTURE.md §9 "Transfer fails": whatever the decode node NACKs with, the prefill answer is
// a retryable 503 naming the reason, never the NACK's own 404/400/500.
TEST_F(PrefillHttpTest, NackedTransferIsRetryable503WithTheReason) {
  TestReceiver refusing;
  ASSERT_OK(refusing.Start(service_->kv_format(), "decode-refusing"));
  struct Case {
    absl::Status nack;
    const char* reason;
  };
  for (const Case& c : {Case{absl::NotFoundError("no reservation 9 (unknown or expired)"),
                             "unknown or expired"},
                        Case{absl::FailedPreconditionError("reservation 9 already has transfer"),
                             "already has transfer"},
                        Case{absl::DataLossError("block 0: checksum"), "checksum"}}) {
    SCOPED_TRACE(c.nack.ToString());
    refusing.sink.RejectBegins(c.nack);
    node_api::PrefillRequest req = Request(Prompt(20, /*salt=*/5));
    req.target.port = refusing.port;
    req.target.node_id = "decode-refusing";
    HttpReply r = Post("/internal/v1/prefill", node_api::ToJson(req));
    EXPECT_EQ(r.status, 503) << r.body;
    const absl::Status st = StatusFromHttpReply(r.status, r.body);
    EXPECT_TRUE(IsRetryable(st)) << r.body;
    // The router tells "the KV did not arrive" (reserve again elsewhere) from other 503s by code.
    EXPECT_EQ(ErrorCodeOf(st), kErrorKvTransferFailed) << r.body;
    EXPECT_NE(r.body.find(c.reason), std::string::npos) << r.body;
    EXPECT_NE(r.body.find(std::string(absl::StatusCodeToString(c.nack.code()))), std::string::npos)
        << r.body;
    std::printf("NACK %s -> %d %s\n", std::string(absl::StatusCodeToString(c.nack.code())).c_str(),
                r.status, ErrorOf(r)["message"].get<std::string>().c_str());
  }
}

TEST_F(PrefillHttpTest, StaleEpochIsRetryable503) {
  TestReceiver restarted;
  ASSERT_OK(restarted.Start(service_->kv_format(), "decode-restarted"));
  node_api::PrefillRequest req = Request(Prompt(20, /*salt=*/6));
  req.target.port = restarted.port;
  req.target.node_id = "decode-restarted";
  req.target.epoch = TestReceiver::kEpoch - 1;  // the router's registry still has the old process
  HttpReply r = Post("/internal/v1/prefill", node_api::ToJson(req));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_TRUE(IsRetryable(StatusFromHttpReply(r.status, r.body))) << r.body;
  EXPECT_NE(r.body.find("epoch"), std::string::npos) << r.body;
  std::printf("stale epoch: %d %s\n", r.status, ErrorOf(r)["message"].get<std::string>().c_str());
}

TEST_F(PrefillHttpTest, StatusReportsFormatAndStoredBlocks) {
  const std::vector<int32_t> prompt = Prompt(40, /*salt=*/2);  // blocks of 16, 16 and 8 tokens
  HttpReply r = Post("/internal/v1/prefill", node_api::ToJson(Request(prompt)));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_OK_AND_ASSIGN(node_api::PrefillReply reply,
                       node_api::FromJson<node_api::PrefillReply>(r.body));
  EXPECT_EQ(reply.prompt_tokens, 40);
  EXPECT_EQ(reply.cached_tokens, 0);
  EXPECT_EQ(reply.transfer_id.size(), 32u);
  auto transfer = receiver_->sink.Get(reply.transfer_id);
  ASSERT_TRUE(transfer.has_value());
  EXPECT_EQ(transfer->blocks.size(), 3u);
  std::printf("prefill reply: %s\n", r.body.c_str());

  r = Get("/internal/v1/status?since=0");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_OK_AND_ASSIGN(node_api::NodeStatus status,
                       node_api::FromJson<node_api::NodeStatus>(r.body));
  EXPECT_EQ(status.role, "prefill");
  EXPECT_EQ(status.node_id, "prefill-test");
  EXPECT_EQ(status.epoch, 5u);
  EXPECT_TRUE(status.ready);
  const std::string encoded = service_->kv_format().Encode();
  EXPECT_EQ(status.kv_format,
            HexEncode(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(encoded.data()),
                                          encoded.size())));
  ASSERT_OK_AND_ASSIGN(std::string format_bytes, HexDecode(status.kv_format));
  ASSERT_OK_AND_ASSIGN(KvFormat decoded, KvFormat::Decode(format_bytes));
  EXPECT_EQ(decoded.block_tokens, kBlockTokens);
  EXPECT_EQ(status.vocab_fingerprint.size(), 64u);
  EXPECT_EQ(status.load.waiting, 0);
  const std::vector<BlockKey> keys = ChainKeys(service_->kv_format(), prompt);
  ASSERT_EQ(keys.size(), 3u);
  std::vector<std::string> stored;
  for (const node_api::KvEventEntry& e : status.events) {
    if (e.op == "stored" && e.tier == "memory") stored.push_back(e.key);
  }
  EXPECT_NE(std::find(stored.begin(), stored.end(), keys[0].Hex()), stored.end()) << r.body;
  EXPECT_NE(std::find(stored.begin(), stored.end(), keys[1].Hex()), stored.end()) << r.body;
  EXPECT_EQ(std::find(stored.begin(), stored.end(), keys[2].Hex()), stored.end())
      << "the partial tail block is not stored";
  EXPECT_EQ(status.next_seq, status.events.back().seq + 1);

  // The same prompt again reuses both full blocks; the reuse shows in the metrics.
  r = Post("/internal/v1/prefill", node_api::ToJson(Request(prompt)));
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_OK_AND_ASSIGN(node_api::PrefillReply again,
                       node_api::FromJson<node_api::PrefillReply>(r.body));
  EXPECT_EQ(again.cached_tokens, 32);
  EXPECT_EQ(again.first_token, reply.first_token);
  const std::string metrics = Get("/metrics").body;
  for (const char* name :
       {"tandem_prefill_requests_waiting", "tandem_prefill_requests_running",
        "tandem_prefill_tokens_total{kind=\"reused\"}", "tandem_prefill_sparse_attention_density",
        "tandem_prefill_attention_seconds", "tandem_kv_transfer_bytes_total",
        "tandem_kv_transfer_seconds"}) {
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
  }
}

TEST_F(PrefillHttpTest, DeadlinePassedInTheQueueIs504) {
  node_api::PrefillRequest req = Request(Prompt(8, /*salt=*/3));
  req.deadline_ms = node_api::NowUnixMs() - 1;
  HttpReply r = Post("/internal/v1/prefill", node_api::ToJson(req));
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_NE(ErrorOf(r)["message"].get<std::string>().find("deadline"), std::string::npos) << r.body;
}

TEST_F(PrefillHttpTest, CancelOfUnknownRequestIsHarmless) {
  HttpReply r = Post("/internal/v1/cancel", R"({"request_id": "r-nobody"})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(nlohmann::json::parse(r.body)["cancelled"], false);
}

// Last: it leaves the node draining.
TEST_F(PrefillHttpTest, ZzDrainTurnsReadyTo503AndRefusesWork) {
  EXPECT_EQ(Get("/ready").status, 200);
  HttpReply r = Post("/internal/v1/drain", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Get("/ready").status, 503);
  r = Post("/internal/v1/prefill", node_api::ToJson(Request(Prompt(8))));
  EXPECT_EQ(r.status, 503) << r.body;
  service_->Drain();
  EXPECT_EQ(Get("/health").status, 200);
}

}  // namespace
}  // namespace tandem::prefill
