// The decode node in process: KV computed by a separate runner travels over the real TCP data
// plane into a reservation, and the streamed tokens equal runtime::Generate()'s (greedy, and
// sampled at temperature 0.8 with seed 7). Then the HTTP API: admission limits, expiry, a transfer
// that never comes, bad bodies, unknown reservations, cancel, status, drain.
#include "decode_node/decode_service.h"

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/hash.h"
#include "common/http.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "common/model_format/gguf.h"
#include "common/model_format/tokenizer.h"
#include "decode_node/http_api.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kv_store/transfer/transport.h"
#include "runtime/generator.h"
#include "tests/decode_node/decode_test_support.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::decode {
namespace {

using node_api::DecodeEvent;
using tandem::testing::StatusIs;

constexpr int32_t kBlockTokens = 16;
constexpr int32_t kCapacityTokens = 2048;
constexpr int32_t kMaxSeqs = 4;

DecodeOptions TestOptions() {
  DecodeOptions o;
  o.model.model_path = tandem::testing::ModelPath();
  o.model.kv.max_seqs = kMaxSeqs;
  o.model.kv.capacity_tokens = kCapacityTokens;
  o.model.kv_block_tokens = kBlockTokens;
  o.data_host = "127.0.0.1";
  o.data_port = 0;
  o.advertise_host = "127.0.0.1";
  o.node_id = "decode-test";
  o.epoch = 77;
  return o;
}

int64_t InMs(absl::Duration d) { return absl::ToUnixMillis(absl::Now() + d); }

// One process-wide service, reference runner and HTTP server: loading the model once keeps the
// suite fast on two cores. Every test leaves no reservation behind.
class DecodeServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    metrics_ = new MetricsRegistry();
    auto service = DecodeService::Create(TestOptions(), metrics_);
    ASSERT_OK(service);
    service_ = service->release();
    auto gguf = format::GgufFile::Open(tandem::testing::ModelPath());
    ASSERT_OK(gguf);
    gguf_ = new format::GgufFile(std::move(*gguf));
    auto tokenizer = format::Tokenizer::FromGguf(*gguf_);
    ASSERT_OK(tokenizer);
    tokenizer_ = new format::Tokenizer(std::move(*tokenizer));
    auto backend = kernels::GetBackend("cpu");
    ASSERT_OK(backend);
    auto engine = decode::testing::MakeEngine(*gguf_, **backend, 2, 1024);
    ASSERT_OK(engine);
    reference_ = new decode::testing::TestEngine(std::move(*engine));
    HttpServerOptions ho;
    ho.host = "127.0.0.1";
    ho.port = 0;
    http_ = new HttpServer(ho, metrics_);
    RegisterDecodeRoutes(*http_, *service_);
    ASSERT_OK(http_->Start());
    auto sender = kv::NewTransport("tcp", {"prefill-test", 5});
    ASSERT_OK(sender);
    sender_ = sender->release();
  }
  static void TearDownTestSuite() {
    if (sender_ != nullptr) sender_->Shutdown(absl::Seconds(1)).IgnoreError();
    delete sender_;
    delete http_;
    delete service_;
    delete reference_;
    delete tokenizer_;
    delete gguf_;
    delete metrics_;
  }

  HttpEndpoint Endpoint() const { return {"127.0.0.1", http_->port()}; }

  // A prefill node's part: reserve, compute the prompt's KV, post it and wait for the ACK.
  struct Shipped {
    node_api::ReserveReply reservation;
    decode::testing::PrefilledPrompt prefill;
    std::string transfer_id;  // hex, as the prefill reply carries it
  };
  // The decode request that continues `shipped`: its reservation and first token.
  static node_api::DecodeRequest ContinueRequest(const Shipped& shipped, std::string request_id,
                                                 int64_t max_tokens, absl::Duration deadline) {
    node_api::DecodeRequest req;
    req.request_id = std::move(request_id);
    req.reservation_id = shipped.reservation.target.reservation_id;
    req.first_token = shipped.prefill.first_token;
    req.max_tokens = max_tokens;
    req.deadline_ms = InMs(deadline);
    return req;
  }
  absl::StatusOr<Shipped> ReserveAndShip(const std::vector<int32_t>& prompt, int64_t max_tokens,
                                         const kernels::SamplingConfig& sampling, uint64_t seed) {
    node_api::ReserveRequest rr;
    rr.request_id = "r-ship";
    rr.prompt_tokens = static_cast<int64_t>(prompt.size());
    rr.max_tokens = max_tokens;
    rr.deadline_ms = InMs(absl::Seconds(30));
    Shipped out;
    TANDEM_ASSIGN_OR_RETURN(out.reservation, service_->Reserve(rr));
    TANDEM_ASSIGN_OR_RETURN(out.prefill, decode::testing::Prefill(*reference_,
                                                                  service_->kv_format(), prompt,
                                                                  sampling, seed));
    kv::TransferDesc desc;
    desc.id = kv::TransferId::Random();
    desc.dst.host = out.reservation.target.host;
    desc.dst.port = static_cast<uint16_t>(out.reservation.target.port);
    desc.dst.node_id = out.reservation.target.node_id;
    desc.dst.epoch = out.reservation.target.epoch;
    desc.reservation = out.reservation.target.reservation_id;
    desc.meta.request_id = rr.request_id;
    desc.meta.first_token = out.prefill.first_token;
    desc.meta.transfer_token = out.reservation.target.transfer_token;
    desc.blocks = out.prefill.blocks;
    desc.deadline = absl::Now() + absl::Seconds(10);
    out.transfer_id = desc.id.Hex();
    TANDEM_ASSIGN_OR_RETURN(kv::TransferHandle h, sender_->Post(std::move(desc)));
    TANDEM_RETURN_IF_ERROR(sender_->Wait(h, absl::Now() + absl::Seconds(10)));
    return out;
  }

  static MetricsRegistry* metrics_;
  static DecodeService* service_;
  static format::GgufFile* gguf_;
  static format::Tokenizer* tokenizer_;
  static decode::testing::TestEngine* reference_;
  static HttpServer* http_;
  static kv::Transport* sender_;
};

MetricsRegistry* DecodeServiceTest::metrics_ = nullptr;
DecodeService* DecodeServiceTest::service_ = nullptr;
format::GgufFile* DecodeServiceTest::gguf_ = nullptr;
format::Tokenizer* DecodeServiceTest::tokenizer_ = nullptr;
decode::testing::TestEngine* DecodeServiceTest::reference_ = nullptr;
HttpServer* DecodeServiceTest::http_ = nullptr;
kv::Transport* DecodeServiceTest::sender_ = nullptr;

struct Collected {
  std::vector<int32_t> tokens;
  std::vector<DecodeEvent> terminals;
};

TEST_F(DecodeServiceTest, TransferredKvDecodesLikeGenerate) {
  const std::vector<int32_t> prompt = tokenizer_->Encode(decode::testing::TestPrompts()[3], false);
  ASSERT_GT(prompt.size(), static_cast<size_t>(2 * kBlockTokens));  // several blocks + a tail
  constexpr int64_t kMaxTokens = 24;
  struct Case {
    const char* name;
    float temperature;
    uint64_t seed;
    bool over_http;
  };
  for (const Case& c : {Case{"greedy", 0.0f, 0, false}, Case{"t0.8_seed7", 0.8f, 7, true}}) {
    SCOPED_TRACE(c.name);
    kernels::SamplingConfig sampling;
    sampling.temperature = c.temperature;
    runtime::GenerateOptions g;
    g.max_tokens = kMaxTokens;
    g.sampling = sampling;
    g.seed = c.seed;
    ASSERT_OK_AND_ASSIGN(runtime::GenerateResult expected,
                         runtime::Generate(*reference_->runner, *reference_->kv, prompt, g));

    ASSERT_OK_AND_ASSIGN(Shipped shipped, ReserveAndShip(prompt, kMaxTokens, sampling, c.seed));
    ASSERT_EQ(shipped.prefill.first_token, expected.tokens.front());
    node_api::DecodeRequest req =
        ContinueRequest(shipped, absl::StrCat("r-", c.name), kMaxTokens, absl::Seconds(30));
    req.sampling.temperature = c.temperature;
    req.sampling.rng_state = shipped.prefill.rng_after_first;
    req.transfer_id = shipped.transfer_id;

    Collected got;
    got.tokens.push_back(req.first_token);
    auto collect = [&got](const DecodeEvent& e) {
      if (e.kind == DecodeEvent::Kind::kToken) {
        got.tokens.push_back(e.token);
      } else {
        got.terminals.push_back(e);
      }
      return true;
    };
    if (c.over_http) {
      ASSERT_OK(PostSse(Endpoint(), "/internal/v1/decode", node_api::ToJson(req),
                        [&collect](std::string_view event, std::string_view data) {
                          auto e = DecodeEvent::FromSse(event, data);
                          EXPECT_OK(e);
                          return e.ok() && collect(*e);
                        }));
    } else {
      ASSERT_OK(service_->Decode(req, collect));
    }
    ASSERT_EQ(got.terminals.size(), 1u);
    const DecodeEvent& done = got.terminals[0];
    ASSERT_EQ(done.kind, DecodeEvent::Kind::kDone) << done.message;
    EXPECT_EQ(done.finish_reason,
              expected.finish_reason == runtime::FinishReason::kStop ? "stop" : "length");
    EXPECT_EQ(done.completion_tokens, static_cast<int64_t>(expected.tokens.size()));
    size_t agree = 0;
    while (agree < std::min(got.tokens.size(), expected.tokens.size()) &&
           got.tokens[agree] == expected.tokens[agree]) {
      ++agree;
    }
    std::printf("E2E %s via %s: tokens_agree=%zu/%zu finish=%s decode_ms=%.1f queue_ms=%.2f\n",
                c.name, c.over_http ? "http" : "service", agree, expected.tokens.size(),
                done.finish_reason.c_str(), done.timings.decode, done.timings.decode_queue);
    EXPECT_EQ(got.tokens, expected.tokens);
  }
  const node_api::NodeStatus st = service_->Status(0);
  EXPECT_EQ(st.load.running, 0);
  EXPECT_EQ(st.load.kv_free_ratio, 1.0);
  EXPECT_TRUE(absl::StrContains(metrics_->Serialize(), "tandem_kv_transfer_bytes_total"));
}

TEST_F(DecodeServiceTest, FirstTokenEndOfGenerationStopsAtOnce) {
  const std::vector<int32_t> prompt = tokenizer_->Encode("Hello", false);
  ASSERT_OK_AND_ASSIGN(Shipped shipped, ReserveAndShip(prompt, 8, {}, 0));
  node_api::DecodeRequest req;
  req.reservation_id = shipped.reservation.target.reservation_id;
  req.first_token = service_->model_config().eog_token_ids.front();
  req.max_tokens = 8;
  req.deadline_ms = InMs(absl::Seconds(10));
  std::vector<DecodeEvent> events;
  ASSERT_OK(service_->Decode(req, [&events](const DecodeEvent& e) {
    events.push_back(e);
    return true;
  }));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEvent::Kind::kDone);
  EXPECT_EQ(events[0].finish_reason, "stop");
  EXPECT_EQ(events[0].completion_tokens, 0);
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);  // released
}

TEST_F(DecodeServiceTest, ReserveBeyondCapacityIsResourceExhaustedAndExpiryFreesRoom) {
  node_api::ReserveRequest big;
  big.request_id = "r-big";
  big.prompt_tokens = 1500;
  big.max_tokens = 500;  // 2000 of 2048 tokens
  big.deadline_ms = InMs(absl::Milliseconds(300));
  ASSERT_OK(service_->Reserve(big));
  node_api::ReserveRequest small = big;
  small.request_id = "r-small";
  small.prompt_tokens = 100;
  small.max_tokens = 100;
  small.deadline_ms = InMs(absl::Seconds(10));
  EXPECT_THAT(service_->Reserve(small),
              StatusIs(absl::StatusCode::kResourceExhausted, "decode node overloaded"));
  // Over HTTP the same refusal is a 503 with Retry-After.
  ASSERT_OK_AND_ASSIGN(HttpReply reply,
                       HttpPostJson(Endpoint(), "/internal/v1/reserve", node_api::ToJson(small)));
  EXPECT_EQ(reply.status, 503);
  EXPECT_TRUE(absl::StrContains(reply.body, "overloaded")) << reply.body;

  // Nobody claims the big one: at its deadline it expires and frees its room.
  absl::StatusOr<node_api::ReserveReply> after;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {
    after = service_->Reserve(small);
  } while (!after.ok() && absl::Now() < give_up);
  ASSERT_OK(after);
  node_api::CancelRequest cancel;
  cancel.reservation_id = after->target.reservation_id;
  ASSERT_OK(service_->Cancel(cancel));

  // Slots: max_seqs reservations, then the next is refused.
  std::vector<uint64_t> ids;
  for (int i = 0; i < kMaxSeqs; ++i) {
    ASSERT_OK_AND_ASSIGN(node_api::ReserveReply r, service_->Reserve(small));
    ids.push_back(r.target.reservation_id);
  }
  EXPECT_THAT(service_->Reserve(small),
              StatusIs(absl::StatusCode::kResourceExhausted, "sequence slots"));
  for (uint64_t id : ids) {
    cancel.reservation_id = id;
    ASSERT_OK(service_->Cancel(cancel));
  }
  node_api::ReserveRequest too_long = small;
  too_long.prompt_tokens = 100000;
  EXPECT_THAT(service_->Reserve(too_long), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);
}

TEST_F(DecodeServiceTest, TransferThatNeverComesIsARetryableErrorByTheDeadline) {
  node_api::ReserveRequest rr;
  rr.request_id = "r-lost";
  rr.prompt_tokens = 10;
  rr.max_tokens = 10;
  rr.deadline_ms = InMs(absl::Seconds(10));
  ASSERT_OK_AND_ASSIGN(node_api::ReserveReply reserved, service_->Reserve(rr));
  node_api::DecodeRequest req;
  req.request_id = "r-lost";
  req.reservation_id = reserved.target.reservation_id;
  req.first_token = 42;
  req.max_tokens = 10;
  req.deadline_ms = InMs(absl::Milliseconds(300));
  std::vector<DecodeEvent> events;
  ASSERT_OK(PostSse(Endpoint(), "/internal/v1/decode", node_api::ToJson(req),
                    [&events](std::string_view event, std::string_view data) {
                      auto e = DecodeEvent::FromSse(event, data);
                      EXPECT_OK(e);
                      if (e.ok()) events.push_back(*e);
                      return e.ok();
                    }));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(events[0].http_status, 503);
  EXPECT_TRUE(events[0].retryable);
  std::printf("LOST_TRANSFER error: %d %s\n", events[0].http_status, events[0].message.c_str());
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);  // released
  EXPECT_TRUE(absl::StrContains(
      metrics_->Serialize(),
      "tandem_kv_transfer_failures_total{reason=\"deadline\",transport=\"tcp\"} 1\n"))
      << metrics_->Serialize();
}

TEST_F(DecodeServiceTest, RejectedTransferIsNackedAndTheDecodeFailsRetryably) {
  const std::vector<int32_t> prompt = tokenizer_->Encode(decode::testing::TestPrompts()[1], false);
  ASSERT_GT(prompt.size(), static_cast<size_t>(kBlockTokens));
  ASSERT_OK_AND_ASSIGN(decode::testing::PrefilledPrompt prefill,
                       decode::testing::Prefill(*reference_, service_->kv_format(), prompt, {}, 0));
  // The reservation announced fewer prompt tokens than the transfer carries.
  node_api::ReserveRequest rr;
  rr.request_id = "r-short";
  rr.prompt_tokens = kBlockTokens - 1;
  rr.max_tokens = 8;
  rr.deadline_ms = InMs(absl::Seconds(10));
  ASSERT_OK_AND_ASSIGN(node_api::ReserveReply reserved, service_->Reserve(rr));
  auto post = [&](uint64_t reservation_id) {
    kv::TransferDesc desc;
    desc.id = kv::TransferId::Random();
    desc.dst = {"127.0.0.1", static_cast<uint16_t>(reserved.target.port), reserved.target.node_id,
                reserved.target.epoch};
    desc.reservation = reservation_id;
    desc.meta.request_id = rr.request_id;
    desc.meta.first_token = prefill.first_token;
    desc.meta.transfer_token = reserved.target.transfer_token;
    desc.blocks = prefill.blocks;
    desc.deadline = absl::Now() + absl::Seconds(10);
    absl::StatusOr<kv::TransferHandle> h = sender_->Post(std::move(desc));
    if (!h.ok()) return h.status();
    return sender_->Wait(*h, absl::Now() + absl::Seconds(10));
  };
  const absl::Status unknown = post(123456789);
  EXPECT_FALSE(unknown.ok());
  std::printf("NACK unknown reservation: %s\n", unknown.ToString().c_str());
  const absl::Status too_long = post(reserved.target.reservation_id);
  EXPECT_FALSE(too_long.ok());
  std::printf("NACK oversized transfer: %s\n", too_long.ToString().c_str());

  node_api::DecodeRequest req;
  req.request_id = rr.request_id;
  req.reservation_id = reserved.target.reservation_id;
  req.first_token = prefill.first_token;
  req.max_tokens = 8;
  req.deadline_ms = InMs(absl::Seconds(10));
  std::vector<DecodeEvent> events;
  ASSERT_OK(service_->Decode(req, [&events](const DecodeEvent& e) {
    events.push_back(e);
    return true;
  }));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(events[0].http_status, 503);
  EXPECT_TRUE(events[0].retryable);
  EXPECT_TRUE(absl::StrContains(events[0].message, "KV transfer failed")) << events[0].message;
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);
}

TEST_F(DecodeServiceTest, CancelEndsARunningStream) {
  const std::vector<int32_t> prompt = tokenizer_->Encode("Count slowly: one, two,", false);
  ASSERT_OK_AND_ASSIGN(Shipped shipped, ReserveAndShip(prompt, 400, {}, 0));
  node_api::DecodeRequest req = ContinueRequest(shipped, "r-cancel", 400, absl::Seconds(30));
  req.ignore_eos = true;
  absl::Notification first_token;
  std::vector<DecodeEvent> terminals;
  int tokens = 0;
  std::thread client([&] {
    EXPECT_OK(PostSse(Endpoint(), "/internal/v1/decode", node_api::ToJson(req),
                      [&](std::string_view event, std::string_view data) {
                        auto e = DecodeEvent::FromSse(event, data);
                        if (!e.ok()) return false;
                        if (e->kind == DecodeEvent::Kind::kToken) {
                          if (++tokens == 1) first_token.Notify();
                        } else {
                          terminals.push_back(*e);
                        }
                        return true;
                      }));
  });
  ASSERT_TRUE(first_token.WaitForNotificationWithTimeout(absl::Seconds(60)));
  node_api::CancelRequest cancel{"r-cancel", req.reservation_id};
  ASSERT_OK(CallJson(Endpoint(), "/internal/v1/cancel", node_api::ToJson(cancel)));
  client.join();
  ASSERT_EQ(terminals.size(), 1u);
  EXPECT_EQ(terminals[0].kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(terminals[0].http_status, 499);
  EXPECT_LT(tokens, 399);
  std::printf("CANCEL after %d streamed tokens\n", tokens);
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);
}

TEST_F(DecodeServiceTest, ClientThatGoesAwayCancelsItsSequence) {
  const std::vector<int32_t> prompt = tokenizer_->Encode("Write a long story:", false);
  ASSERT_OK_AND_ASSIGN(Shipped shipped, ReserveAndShip(prompt, 400, {}, 0));
  node_api::DecodeRequest req = ContinueRequest(shipped, "r-gone", 400, absl::Seconds(30));
  req.ignore_eos = true;
  const int64_t steps_before = service_->engine_steps();
  // The client hangs up after its first token (PostSse closes the connection).
  EXPECT_THAT(PostSse(Endpoint(), "/internal/v1/decode", node_api::ToJson(req),
                      [](std::string_view, std::string_view) { return false; }),
              StatusIs(absl::StatusCode::kCancelled));
  // The server notices at its next write and frees the sequence and the room. Without the
  // cancel the sequence would run all 399 steps, inside this wait, and free the room anyway: the
  // step count is what tells the two apart.
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  node_api::NodeStatus st = service_->Status(0);
  while ((st.load.running != 0 || st.load.kv_free_ratio != 1.0) && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    st = service_->Status(0);
  }
  EXPECT_EQ(st.load.running, 0);
  EXPECT_EQ(st.load.kv_free_ratio, 1.0);
  const int64_t steps = service_->engine_steps() - steps_before;
  std::printf("CLIENT_GONE sequence stopped after %lld of 399 decode steps\n",
              static_cast<long long>(steps));
  EXPECT_GT(steps, 0);
  EXPECT_LT(steps, 100);
}

TEST_F(DecodeServiceTest, DecodeNamingAnotherTransferIsRefusedRetryably) {
  const std::vector<int32_t> prompt = tokenizer_->Encode("The capital of Italy is", false);
  ASSERT_OK_AND_ASSIGN(Shipped shipped, ReserveAndShip(prompt, 8, {}, 0));
  node_api::DecodeRequest req =
      ContinueRequest(shipped, "r-other-transfer", 8, absl::Seconds(10));
  req.transfer_id = kv::TransferId::Random().Hex();  // e.g. a retried prefill's transfer
  ASSERT_NE(req.transfer_id, shipped.transfer_id);
  std::vector<DecodeEvent> events;
  ASSERT_OK(service_->Decode(req, [&events](const DecodeEvent& e) {
    events.push_back(e);
    return true;
  }));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, DecodeEvent::Kind::kError);
  EXPECT_EQ(events[0].http_status, 503);
  EXPECT_TRUE(events[0].retryable);
  EXPECT_TRUE(absl::StrContains(events[0].message, shipped.transfer_id)) << events[0].message;
  std::printf("TRANSFER_MISMATCH error: %d %s\n", events[0].http_status,
              events[0].message.c_str());
  EXPECT_EQ(service_->Status(0).load.kv_free_ratio, 1.0);  // released
}

TEST_F(DecodeServiceTest, HttpErrorsStatusAndDrain) {
  // A body that is not the protocol: 400 on every POST route.
  for (const char* path : {"/internal/v1/reserve", "/internal/v1/decode", "/internal/v1/cancel"}) {
    ASSERT_OK_AND_ASSIGN(HttpReply bad, HttpPostJson(Endpoint(), path, "{not json"));
    EXPECT_EQ(bad.status, 400) << path << ": " << bad.body;
  }
  node_api::DecodeRequest unknown;
  unknown.request_id = "r-unknown";
  unknown.reservation_id = 987654321;
  unknown.first_token = 1;
  unknown.max_tokens = 4;
  unknown.deadline_ms = InMs(absl::Seconds(1));
  ASSERT_OK_AND_ASSIGN(HttpReply missing, HttpPostJson(Endpoint(), "/internal/v1/decode",
                                                       node_api::ToJson(unknown)));
  EXPECT_EQ(missing.status, 404) << missing.body;
  unknown.first_token = -5;
  ASSERT_OK_AND_ASSIGN(HttpReply bad_token, HttpPostJson(Endpoint(), "/internal/v1/decode",
                                                         node_api::ToJson(unknown)));
  EXPECT_EQ(bad_token.status, 400) << bad_token.body;
  node_api::CancelRequest cancel{"r-unknown", 987654321};
  ASSERT_OK_AND_ASSIGN(HttpReply cancel_missing, HttpPostJson(Endpoint(), "/internal/v1/cancel",
                                                              node_api::ToJson(cancel)));
  EXPECT_EQ(cancel_missing.status, 404);

  ASSERT_OK_AND_ASSIGN(HttpReply status_reply, HttpGet(Endpoint(), "/internal/v1/status?since=0"));
  ASSERT_EQ(status_reply.status, 200);
  ASSERT_OK_AND_ASSIGN(node_api::NodeStatus st,
                       node_api::FromJson<node_api::NodeStatus>(status_reply.body));
  EXPECT_EQ(st.role, "decode");
  EXPECT_EQ(st.node_id, "decode-test");
  EXPECT_EQ(st.epoch, 77u);
  EXPECT_TRUE(st.ready);
  const std::string encoded = service_->kv_format().Encode();
  EXPECT_EQ(st.kv_format, HexEncode(absl::MakeConstSpan(
                              reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size())));
  EXPECT_EQ(st.vocab_fingerprint.size(), 64u);
  ASSERT_OK_AND_ASSIGN(HttpReply bad_since, HttpGet(Endpoint(), "/internal/v1/status?since=x"));
  EXPECT_EQ(bad_since.status, 400);
  ASSERT_OK_AND_ASSIGN(HttpReply metrics, HttpGet(Endpoint(), "/metrics"));
  for (const char* name : {"tandem_decode_requests_waiting", "tandem_decode_requests_running",
                           "tandem_decode_kv_usage_ratio", "tandem_decode_step_seconds",
                           "tandem_decode_batch_size"}) {
    EXPECT_TRUE(absl::StrContains(metrics.body, name)) << name;
  }

  ASSERT_OK_AND_ASSIGN(HttpReply ready, HttpGet(Endpoint(), "/ready"));
  EXPECT_EQ(ready.status, 200);
  ASSERT_OK(CallJson(Endpoint(), "/internal/v1/drain", "{}"));
  ASSERT_OK_AND_ASSIGN(HttpReply draining, HttpGet(Endpoint(), "/ready"));
  EXPECT_EQ(draining.status, 503);
  node_api::ReserveRequest rr;
  rr.request_id = "r-late";
  rr.prompt_tokens = 4;
  rr.max_tokens = 4;
  ASSERT_OK_AND_ASSIGN(HttpReply refused,
                       HttpPostJson(Endpoint(), "/internal/v1/reserve", node_api::ToJson(rr)));
  EXPECT_EQ(refused.status, 503);
  EXPECT_TRUE(service_->WaitDrained(absl::Now() + absl::Seconds(5)));
}

}  // namespace
}  // namespace tandem::decode
