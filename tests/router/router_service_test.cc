// RouterService's failure paths (ARCHITECTURE.md §9), end to end through the router's HTTP API:
// the router runs in-process with the real model's tokenizer, and every prefill and decode node is
// a small scripted HTTP server on 127.0.0.1 that speaks the internal protocol (status, reserve,
// prefill, decode SSE, cancel) and records what it was asked. They test the router's logic, not a
// node: full decode nodes and the queue, prefill retries and their limit, failed transfers,
// decode streams that break before or after their first decoded token, client disconnects.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/http.h"
#include "common/http_client.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "common/node_api.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "router/router.h"
#include "router/served_model.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::router {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

// What a scripted handler answers: an HTTP status and a JSON body.
struct Answer {
  int status = 200;
  std::string body;
};

Answer ErrorAnswer(int status, const std::string& message, const std::string& code = "") {
  Json error{{"message", message}, {"type", "x"}};
  if (!code.empty()) error["code"] = code;
  return {status, Json{{"error", error}}.dump()};
}

// The decode stream a fake decode node sends: `tokens` one by one (`gap` apart), then a done
// event, or instead an error event after `error_after` tokens (-1: none).
struct DecodeScript {
  std::vector<int32_t> tokens;
  int error_after = -1;
  bool error_retryable = true;
  int http_error = 0;  // non-zero: refuse the stream with this HTTP status instead
  absl::Duration gap = absl::ZeroDuration();
};

// One fake node. Handlers take the call number (0-based, per path) and the request body.
class FakeNode {
 public:
  FakeNode(std::string role, std::string node_id, const ClusterIdentity& identity)
      : server_({"127.0.0.1", 0, 8}, &metrics_), node_id_(std::move(node_id)) {
    status_.node_id = node_id_;
    status_.role = role;
    status_.epoch = 5;
    status_.ready = true;
    KvFormat f;
    f.model = identity.model_fingerprint;
    f.block_tokens = 16;
    const std::string bytes = f.Encode();
    status_.kv_format = HexEncode(absl::MakeConstSpan(
        reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
    status_.vocab_fingerprint = identity.vocab_fingerprints.front();
    server_.Get("/internal/v1/status", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(node_api::ToJson(status_), "application/json");
    });
    auto scripted = [this](const std::string& path) {
      server_.Post(path, [this, path](const httplib::Request& req, httplib::Response& res) {
        std::function<Answer(int, const std::string&)> handler;
        int n;
        {
          absl::MutexLock lock(&mu_);
          n = calls_[path]++;
          bodies_[path].push_back(req.body);
          handler = handlers_[path];
        }
        Answer a = handler ? handler(n, req.body) : ErrorAnswer(404, "no handler");
        res.status = a.status;
        res.set_content(a.body, "application/json");
      });
    };
    for (const char* p : {"/internal/v1/reserve", "/internal/v1/prefill", "/internal/v1/cancel"}) {
      scripted(p);
    }
    server_.Post("/internal/v1/decode", [this](const httplib::Request& req,
                                               httplib::Response& res) { Decode(req, res); });
    Handle("/internal/v1/cancel", [](int, const std::string&) { return Answer{200, "{}"}; });
    TANDEM_CHECK(server_.Start().ok());
  }

  // The node goes away: its port refuses connections from now on.
  void Stop() { server_.Stop(); }

  void Handle(const std::string& path, std::function<Answer(int, const std::string&)> h) {
    absl::MutexLock lock(&mu_);
    handlers_[path] = std::move(h);
  }
  // Decode call n (0-based, on this node) gets pick(n).
  void SetDecode(std::function<DecodeScript(int)> pick) {
    absl::MutexLock lock(&mu_);
    decode_pick_ = std::move(pick);
  }
  void SetDecode(DecodeScript script) {
    SetDecode([script](int) { return script; });
  }
  int Calls(const std::string& path) {
    absl::MutexLock lock(&mu_);
    return calls_[path];
  }
  std::vector<std::string> Bodies(const std::string& path) {
    absl::MutexLock lock(&mu_);
    return bodies_[path];
  }
  // Waits (bounded) until `path` was called at least `n` times.
  bool AwaitCalls(const std::string& path, int n) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return calls_[path] >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  }
  HttpEndpoint endpoint() const { return {"127.0.0.1", server_.port()}; }
  const std::string& node_id() const { return node_id_; }

  // A reserve handler granting reservations 100, 101, ... that target this node.
  std::function<Answer(int, const std::string&)> Grant() {
    return [this](int n, const std::string&) {
      node_api::ReserveReply r;
      r.target.host = "127.0.0.1";
      r.target.port = 1;
      r.target.node_id = node_id_;
      r.target.epoch = 5;
      r.target.reservation_id = 100 + static_cast<uint64_t>(n);
      r.expires_ms = node_api::NowUnixMs() + 60000;
      return Answer{200, node_api::ToJson(r)};
    };
  }

 private:
  void Decode(const httplib::Request& req, httplib::Response& res) {
    DecodeScript script;
    {
      absl::MutexLock lock(&mu_);
      const int n = calls_["/internal/v1/decode"]++;
      bodies_["/internal/v1/decode"].push_back(req.body);
      if (decode_pick_) script = decode_pick_(n);
    }
    if (script.http_error != 0) {
      Answer a = ErrorAnswer(script.http_error, "reservation 100 not found");
      res.status = a.status;
      res.set_content(a.body, "application/json");
      return;
    }
    res.set_chunked_content_provider(
        "text/event-stream", [script](size_t, httplib::DataSink& sink) {
          auto send = [&](const node_api::DecodeEvent& e) {
            const std::string sse = e.ToSse();
            return sink.write(sse.data(), sse.size());
          };
          for (size_t i = 0; i < script.tokens.size(); ++i) {
            if (static_cast<int>(i) == script.error_after) break;
            absl::SleepFor(script.gap);
            node_api::DecodeEvent t;
            t.kind = node_api::DecodeEvent::Kind::kToken;
            t.token = script.tokens[i];
            if (!send(t)) return false;  // the router left
          }
          node_api::DecodeEvent end;
          if (script.error_after >= 0) {
            end.kind = node_api::DecodeEvent::Kind::kError;
            end.http_status = 503;
            end.message = "transfer NACKed: reservation expired";
            end.retryable = script.error_retryable;
          } else {
            end.kind = node_api::DecodeEvent::Kind::kDone;
            end.finish_reason = "length";
            end.completion_tokens = static_cast<int64_t>(script.tokens.size()) + 1;
          }
          send(end);
          sink.done();
          return true;
        });
  }

  MetricsRegistry metrics_;
  HttpServer server_;
  const std::string node_id_;
  node_api::NodeStatus status_;  // fixed before Start
  absl::Mutex mu_;
  std::map<std::string, std::function<Answer(int, const std::string&)>> handlers_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<std::string>> bodies_ ABSL_GUARDED_BY(mu_);
  std::function<DecodeScript(int)> decode_pick_ ABSL_GUARDED_BY(mu_);
};

constexpr char kAnswer[] = " Hello there, my friend";

class RouterServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = ServedModel::Load(testing::ModelPath());
    ASSERT_OK(m.status());
    model_ = m->release();
  }
  static void TearDownTestSuite() { delete model_; }

  void SetUp() override {
    answer_tokens_ = model_->tokenizer().Encode(kAnswer, /*parse_special=*/false);
    ASSERT_GE(answer_tokens_.size(), 4u);
  }

  // Two prefill and two decode nodes answering like healthy ones; tests then break some.
  void MakeNodes(int prefill = 2, int decode = 2) {
    for (int i = 0; i < prefill; ++i) {
      prefills_.push_back(std::make_unique<FakeNode>("prefill", absl::StrCat("prefill-", i),
                                                     model_->identity()));
      prefills_.back()->Handle("/internal/v1/prefill", PrefillOk());
    }
    for (int i = 0; i < decode; ++i) {
      decodes_.push_back(std::make_unique<FakeNode>("decode", absl::StrCat("decode-", i),
                                                    model_->identity()));
      decodes_.back()->Handle("/internal/v1/reserve", decodes_.back()->Grant());
      decodes_.back()->SetDecode(DecodeScript{Rest()});
    }
  }

  void StartRouter(int max_retries = 2, absl::Duration poll_interval = absl::Milliseconds(20)) {
    RouterOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.http_threads = 8;
    o.model_path = testing::ModelPath();
    for (auto& n : prefills_) o.prefill_nodes.push_back(n->endpoint());
    for (auto& n : decodes_) o.decode_nodes.push_back(n->endpoint());
    o.poll_interval = poll_interval;
    o.service.max_retries = max_retries;
    o.service.max_queue = absl::Milliseconds(300);
    o.service.queue_retry_interval = absl::Milliseconds(10);
    o.service.control_timeout = absl::Seconds(2);
    o.service.decode_timeout = absl::Seconds(10);
    auto r = Router::Start(o);
    ASSERT_OK(r.status());
    router_ = *std::move(r);
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (router_->registry().UsableNodes(NodeRole::kPrefill).size() < prefills_.size() ||
           router_->registry().UsableNodes(NodeRole::kDecode).size() < decodes_.size()) {
      ASSERT_LT(absl::Now(), give_up) << "the fake nodes never became usable";
      absl::SleepFor(absl::Milliseconds(10));
    }
  }

  void TearDown() override { Reset(); }

  // Stops the router before the nodes it polls go away.
  void Reset() {
    if (router_) router_->Stop();
    router_.reset();
    prefills_.clear();
    decodes_.clear();
  }

  std::function<Answer(int, const std::string&)> PrefillOk() {
    return [this](int, const std::string&) {
      node_api::PrefillReply r;
      r.first_token = answer_tokens_[0];
      r.rng_state = 42;
      r.transfer_id = "t-1";
      r.prompt_tokens = 1;
      return Answer{200, node_api::ToJson(r)};
    };
  }
  std::vector<int32_t> Rest() const {
    return std::vector<int32_t>(answer_tokens_.begin() + 1, answer_tokens_.end());
  }
  std::string Request(bool stream) const {
    return Json{{"model", "SmolLM2-135M-Instruct"},
                {"prompt", "Say hello"},
                {"max_tokens", answer_tokens_.size()},
                {"temperature", 0},
                {"stream", stream}}
        .dump();
  }

  httplib::Result Post(const std::string& body) {
    httplib::Client c("127.0.0.1", router_->port());
    c.set_read_timeout(30, 0);
    return c.Post("/v1/completions", body, "application/json");
  }

  // A streamed request: the data of each event ("[DONE]" included). `stop_after` > 0 closes the
  // connection after that many events.
  std::vector<std::string> PostStream(int stop_after = 0) {
    std::vector<std::string> events;
    HttpCallOptions call;
    call.io_timeout = absl::Seconds(30);
    const absl::Status st = PostSse(
        {"127.0.0.1", router_->port()}, "/v1/completions", Request(true),
        [&](std::string_view, std::string_view data) {
          events.emplace_back(data);
          return stop_after <= 0 || static_cast<int>(events.size()) < stop_after;
        },
        call);
    if (stop_after <= 0) {
      EXPECT_OK(st);
    }
    return events;
  }

  // The text of a streamed answer and the finish reasons of its chunks.
  static void Collect(const std::vector<std::string>& events, std::string* text,
                      std::vector<std::string>* finishes, std::vector<Json>* errors) {
    for (const std::string& e : events) {
      if (e == "[DONE]") continue;
      Json j = Json::parse(e);
      if (j.contains("error")) {
        errors->push_back(j["error"]);
        continue;
      }
      for (const Json& c : j["choices"]) {
        *text += c.value("text", "");
        if (!c["finish_reason"].is_null()) finishes->push_back(c["finish_reason"]);
      }
    }
  }

  static ServedModel* model_;
  std::vector<int32_t> answer_tokens_;
  std::vector<std::unique_ptr<FakeNode>> prefills_;
  std::vector<std::unique_ptr<FakeNode>> decodes_;
  std::unique_ptr<Router> router_;
};
ServedModel* RouterServiceTest::model_ = nullptr;

int Total(const std::vector<std::unique_ptr<FakeNode>>& nodes, const std::string& path) {
  int n = 0;
  for (const auto& node : nodes) n += node->Calls(path);
  return n;
}

TEST_F(RouterServiceTest, HealthyClusterAnswers) {
  MakeNodes();
  StartRouter();
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], kAnswer);
  EXPECT_EQ(j["usage"]["completion_tokens"], answer_tokens_.size());
  EXPECT_EQ(j["tandem"]["retries"], 0);
}

TEST_F(RouterServiceTest, FullDecodeNodeSendsTheRequestToTheNextOne) {
  MakeNodes();
  decodes_[0]->Handle("/internal/v1/reserve", [](int, const std::string&) {
    return ErrorAnswer(429, "no KV pages free");
  });
  auto grant = decodes_[1]->Grant();
  decodes_[1]->Handle("/internal/v1/reserve", [grant](int n, const std::string& b) {
    return n < 2 ? ErrorAnswer(429, "no KV pages free") : grant(n, b);
  });
  StartRouter();
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["tandem"]["decode_node"], "decode-1");
  EXPECT_GE(decodes_[0]->Calls("/internal/v1/reserve"), 1);  // asked, full, skipped
  EXPECT_EQ(decodes_[1]->Calls("/internal/v1/reserve"), 3);  // waited in the queue twice
}

TEST_F(RouterServiceTest, AllDecodeNodesFullFor503WithRetryAfterOnceTheQueueWaitIsOver) {
  MakeNodes();
  for (auto& d : decodes_) {
    d->Handle("/internal/v1/reserve",
              [](int, const std::string&) { return ErrorAnswer(429, "no KV pages free"); });
  }
  StartRouter();
  const absl::Time start = absl::Now();
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_THAT(r->body, HasSubstr("--router_max_queue_ms"));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));  // it queued before giving up
  for (auto& d : decodes_) EXPECT_GE(d->Calls("/internal/v1/reserve"), 2);
  EXPECT_EQ(Total(prefills_, "/internal/v1/prefill"), 0);
}

TEST_F(RouterServiceTest, FailedPrefillMovesToTheOtherPrefillNodeWithAFreshReservation) {
  MakeNodes();
  // Every prefill node fails its first call: attempt 1 fails on one node, attempt 2 goes to the
  // other (the failed one ranks last) and fails too, attempt 3 is back on the first and works.
  for (auto& p : prefills_) {
    auto ok = PrefillOk();
    p->Handle("/internal/v1/prefill", [ok](int n, const std::string& b) {
      return n == 0 ? ErrorAnswer(503, "prefill node draining") : ok(n, b);
    });
  }
  StartRouter(/*max_retries=*/2);
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["tandem"]["retries"], 2);
  EXPECT_EQ(prefills_[0]->Calls("/internal/v1/prefill") + prefills_[1]->Calls("/internal/v1/prefill"), 3);
  EXPECT_GE(prefills_[0]->Calls("/internal/v1/prefill"), 1);
  EXPECT_GE(prefills_[1]->Calls("/internal/v1/prefill"), 1);
  // Each failed attempt cancelled its reservation; each attempt reserved anew.
  EXPECT_EQ(Total(decodes_, "/internal/v1/reserve"), 3);
  EXPECT_EQ(Total(decodes_, "/internal/v1/cancel"), 2);
}

TEST_F(RouterServiceTest, PrefillRetriesStopAtTheLimit) {
  MakeNodes();
  for (auto& p : prefills_) {
    p->Handle("/internal/v1/prefill",
              [](int, const std::string&) { return ErrorAnswer(503, "prefill node draining"); });
  }
  StartRouter(/*max_retries=*/2);
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503) << r->body;
  EXPECT_EQ(r->get_header_value("Retry-After"), "1");
  EXPECT_EQ(Total(prefills_, "/internal/v1/prefill"), 3);  // 1 + --router_max_retries
  EXPECT_EQ(Total(decodes_, "/internal/v1/cancel"), 3);    // no reservation left behind
}

TEST_F(RouterServiceTest, ANodesClientErrorIsABadGatewayNotTheClients) {
  MakeNodes(1, 1);
  prefills_[0]->Handle("/internal/v1/prefill", [](int, const std::string&) {
    return ErrorAnswer(400, "tokens: id 99999 out of range");
  });
  StartRouter();
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502) << r->body;
  Json e = Json::parse(r->body)["error"];
  EXPECT_EQ(e["type"], "server_error");
  EXPECT_EQ(e["code"], "upstream_error");
  EXPECT_EQ(prefills_[0]->Calls("/internal/v1/prefill"), 1);  // not retryable
}

// The prefill node could not deliver the KV (the decode node NACKed it): 503 with code
// kv_transfer_failed. The router cancels, reserves on the other decode node and prefills again.
TEST_F(RouterServiceTest, FailedTransferReservesOnAnotherDecodeNode) {
  for (int http : {503}) {
    SCOPED_TRACE(http);
    Reset();
    MakeNodes(1, 2);
    auto ok = PrefillOk();
    prefills_[0]->Handle("/internal/v1/prefill", [ok, http](int n, const std::string& b) {
      return n == 0 ? ErrorAnswer(http, "kv transfer 0a1b of r-1 to decode-x at 127.0.0.1:1: "
                                        "reservation 100 not found",
                                  std::string(kErrorKvTransferFailed))
                    : ok(n, b);
    });
    StartRouter();
    httplib::Result r = Post(Request(false));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    Json j = Json::parse(r->body);
    EXPECT_EQ(j["tandem"]["retries"], 1);
    // The first reservation's node got the cancel and no second reservation.
    std::vector<std::string> targets;
    for (const std::string& b : prefills_[0]->Bodies("/internal/v1/prefill")) {
      targets.push_back(node_api::FromJson<node_api::PrefillRequest>(b)->target.node_id);
    }
    ASSERT_EQ(targets.size(), 2u);
    EXPECT_NE(targets[0], targets[1]);
    EXPECT_EQ(j["tandem"]["decode_node"], targets[1]);
    FakeNode& failed = *decodes_[targets[0] == "decode-0" ? 0 : 1];
    ASSERT_EQ(failed.Calls("/internal/v1/cancel"), 1);
    EXPECT_EQ(node_api::FromJson<node_api::CancelRequest>(
                  failed.Bodies("/internal/v1/cancel")[0])->reservation_id, 100u);
    EXPECT_EQ(failed.Calls("/internal/v1/reserve"), 1);
  }
}

TEST_F(RouterServiceTest, DecodeFailingBeforeItsFirstTokenIsRetriedElsewhere) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    Reset();
    MakeNodes(1, 2);
    // The first decode call of the cluster breaks before any token: on decode-0 with a
    // retryable error event, on decode-1 with an HTTP 404 (reservation gone).
    auto first = std::make_shared<std::atomic<bool>>(true);
    const std::vector<int32_t> rest = Rest();
    decodes_[0]->SetDecode([first, rest](int) {
      return first->exchange(false) ? DecodeScript{rest, 0} : DecodeScript{rest};
    });
    decodes_[1]->SetDecode([first, rest](int) {
      return first->exchange(false) ? DecodeScript{rest, -1, true, 404} : DecodeScript{rest};
    });
    StartRouter();
    std::string text;
    int retries = -1;
    if (!stream) {
      httplib::Result r = Post(Request(false));
      ASSERT_TRUE(r);
      ASSERT_EQ(r->status, 200) << r->body;
      Json j = Json::parse(r->body);
      text = j["choices"][0]["text"];
      EXPECT_EQ(j["usage"]["completion_tokens"], answer_tokens_.size());
      retries = j["tandem"]["retries"];
    } else {
      std::vector<std::string> finishes;
      std::vector<Json> errors;
      const std::vector<std::string> events = PostStream();
      Collect(events, &text, &finishes, &errors);
      EXPECT_TRUE(errors.empty()) << errors.size();
      EXPECT_EQ(finishes, std::vector<std::string>{"length"});
      retries = Json::parse(events[events.size() - 2])["tandem"]["retries"];
    }
    EXPECT_EQ(text, kAnswer);  // the first token exactly once
    EXPECT_EQ(retries, 1);
    // The retry went to the other decode node, after a new prefill.
    EXPECT_EQ(decodes_[0]->Calls("/internal/v1/decode"), 1);
    EXPECT_EQ(decodes_[1]->Calls("/internal/v1/decode"), 1);
    EXPECT_EQ(Total(prefills_, "/internal/v1/prefill"), 2);
  }
}

TEST_F(RouterServiceTest, DecodeFailingAfterTokensIs502OrAnSseErrorWithFinishReasonError) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream);
    Reset();
    MakeNodes(1, 1);
    decodes_[0]->SetDecode(DecodeScript{Rest(), 2});
    StartRouter();
    if (!stream) {
      httplib::Result r = Post(Request(false));
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, 502) << r->body;
      EXPECT_EQ(Json::parse(r->body)["error"]["type"], "server_error");
    } else {
      std::string text;
      std::vector<std::string> finishes;
      std::vector<Json> errors;
      const std::vector<std::string> events = PostStream();
      Collect(events, &text, &finishes, &errors);
      EXPECT_EQ(finishes, std::vector<std::string>{"error"});
      ASSERT_EQ(errors.size(), 1u);
      EXPECT_EQ(errors[0]["type"], "server_error");
      EXPECT_EQ(events.back(), "[DONE]");
      EXPECT_FALSE(text.empty());
      EXPECT_LT(text.size(), std::string(kAnswer).size());
    }
    EXPECT_EQ(decodes_[0]->Calls("/internal/v1/decode"), 1);  // tokens were out: no retry
    EXPECT_EQ(decodes_[0]->Calls("/internal/v1/cancel"), 1);
  }
}

// A decode node that answers, even with an error, is alive: only a broken connection marks it
// down. (Polls are 60 s apart here, so a wrong mark would still be visible afterwards.)
TEST_F(RouterServiceTest, ADecodeNodeThatAnswersAnErrorStaysUsable) {
  MakeNodes(1, 2);
  auto first = std::make_shared<std::atomic<bool>>(true);
  const std::vector<int32_t> rest = Rest();
  for (auto& d : decodes_) {
    d->SetDecode([first, rest](int) {
      return first->exchange(false) ? DecodeScript{rest, -1, true, 404} : DecodeScript{rest};
    });
  }
  StartRouter(/*max_retries=*/2, /*poll_interval=*/absl::Seconds(60));
  httplib::Result r = Post(Request(false));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(Json::parse(r->body)["tandem"]["retries"], 1);
  EXPECT_EQ(router_->registry().UsableNodes(NodeRole::kDecode).size(), 2u);

  // A decode node that is gone (connection refused) is marked down at once.
  decodes_[0]->Stop();
  decodes_[1]->Stop();
  r = Post(Request(false));
  ASSERT_TRUE(r);
  EXPECT_GE(r->status, 500) << r->body;
  EXPECT_LT(router_->registry().UsableNodes(NodeRole::kDecode).size(), 2u);
}

TEST_F(RouterServiceTest, ClientLeavingMidStreamCancelsOnTheDecodeNode) {
  MakeNodes(1, 1);
  std::vector<int32_t> many;
  for (int i = 0; i < 400; ++i) many.push_back(answer_tokens_[1 + i % (answer_tokens_.size() - 1)]);
  decodes_[0]->SetDecode(DecodeScript{many, -1, true, 0, absl::Milliseconds(10)});
  StartRouter();
  PostStream(/*stop_after=*/3);
  ASSERT_TRUE(decodes_[0]->AwaitCalls("/internal/v1/cancel", 1));
  EXPECT_EQ(node_api::FromJson<node_api::CancelRequest>(
                decodes_[0]->Bodies("/internal/v1/cancel")[0])->reservation_id, 100u);
  ASSERT_TRUE(prefills_[0]->AwaitCalls("/internal/v1/cancel", 1));
}

}  // namespace
}  // namespace tandem::router
