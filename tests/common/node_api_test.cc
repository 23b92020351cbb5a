// The internal control plane's encoding (common/node_api.h) and its client (common/http_client.h):
// every message survives a round trip with its 64-bit fields intact, bad bodies are rejected by
// field name, SSE is decoded however the bytes are split, and the client maps HTTP answers and
// broken connections to the Status codes the router's retry logic relies on.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/http.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "common/node_api.h"
#include "common/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"

namespace tandem {
namespace {

using node_api::DecodeEvent;
using ::tandem::testing::StatusIs;

TEST(NodeApi, PrefillRequestRoundTripKeeps64BitFields) {
  node_api::PrefillRequest in;
  in.request_id = "r-1";
  in.tokens = {1, 2, 49151};
  in.sampling = {.temperature = 0.7, .top_p = 0.9, .top_k = 40, .rng_state = ~uint64_t{0} - 5};
  in.sparse_prefill = "sale";
  in.store_kv = false;
  in.target = {.transport = "ucx",
               .host = "10.0.0.2",
               .port = 8201,
               .node_id = "decode-1",
               .epoch = (uint64_t{1} << 63) + 12345,
               .reservation_id = 99,
               .transfer_token = "0123456789abcdef0123456789abcdef"};
  in.deadline_ms = 1700000000123;
  ASSERT_OK_AND_ASSIGN(auto out, node_api::FromJson<node_api::PrefillRequest>(node_api::ToJson(in)));
  EXPECT_EQ(out.request_id, in.request_id);
  EXPECT_EQ(out.tokens, in.tokens);
  EXPECT_EQ(out.sampling.rng_state, in.sampling.rng_state);
  EXPECT_EQ(out.sampling.top_k, 40);
  EXPECT_DOUBLE_EQ(out.sampling.temperature, 0.7);
  EXPECT_EQ(out.sparse_prefill, "sale");
  EXPECT_FALSE(out.store_kv);
  EXPECT_EQ(out.target.epoch, in.target.epoch);
  EXPECT_EQ(out.target.transport, "ucx");
  EXPECT_EQ(out.target.port, 8201);
  EXPECT_EQ(out.target.transfer_token, in.target.transfer_token);
  EXPECT_EQ(out.deadline_ms, in.deadline_ms);
}

TEST(NodeApi, RepliesAndStatusRoundTrip) {
  node_api::PrefillReply reply;
  reply.first_token = 42;
  reply.rng_state = 0xdeadbeefcafef00dULL;
  reply.cached_tokens = 256;
  reply.timings.prefill = 12.5;
  ASSERT_OK_AND_ASSIGN(auto r, node_api::FromJson<node_api::PrefillReply>(node_api::ToJson(reply)));
  EXPECT_EQ(r.first_token, 42);
  EXPECT_EQ(r.rng_state, reply.rng_state);
  EXPECT_EQ(r.cached_tokens, 256);
  EXPECT_DOUBLE_EQ(r.timings.prefill, 12.5);

  node_api::NodeStatus status;
  status.node_id = "prefill-0";
  status.role = "prefill";
  status.epoch = 7;
  status.ready = true;
  status.degraded = {"redis"};
  status.load.queued_tokens = 300;
  status.events = {{.seq = 3, .op = "stored", .key = std::string(64, 'a'), .tier = "memory"}};
  status.next_seq = 4;
  ASSERT_OK_AND_ASSIGN(auto s, node_api::FromJson<node_api::NodeStatus>(node_api::ToJson(status)));
  EXPECT_EQ(s.node_id, "prefill-0");
  EXPECT_EQ(s.epoch, 7u);
  EXPECT_TRUE(s.ready);
  EXPECT_EQ(s.degraded, std::vector<std::string>{"redis"});
  EXPECT_EQ(s.load.queued_tokens, 300);
  ASSERT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.events[0].op, "stored");
  EXPECT_EQ(s.next_seq, 4u);
}

TEST(NodeApi, BadBodiesNameTheField) {
  using node_api::FromJson;
  EXPECT_THAT(FromJson<node_api::ReserveRequest>("{not json").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "not valid JSON"));
  EXPECT_THAT(FromJson<node_api::ReserveRequest>("[1]").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "JSON object"));
  EXPECT_THAT(FromJson<node_api::ReserveRequest>(R"({"request_id":"a","max_tokens":1})").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "'prompt_tokens' is required"));
  EXPECT_THAT(
      FromJson<node_api::PrefillRequest>(R"({"request_id":"a","tokens":[1,-2],"target":{}})")
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "'tokens'"));
  EXPECT_THAT(FromJson<node_api::PrefillRequest>(
                  R"({"request_id":"a","tokens":[1],"target":{"transport":"tcp","host":"h",
                      "port":"80","node_id":"n","epoch":"1","reservation_id":"1"}})")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "'target.port'"));
  EXPECT_THAT(FromJson<node_api::DecodeRequest>(
                  R"({"request_id":"a","reservation_id":"x1","first_token":1,"max_tokens":2})")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "'reservation_id'"));
  EXPECT_THAT(FromJson<node_api::NodeStatus>(
                  R"({"node_id":"n","role":"decode","epoch":1,"events":[{"op":"stored"}]})")
                  .status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "'events[0].key'"));
}

TEST(NodeApi, DecodeEventsThroughSseParserAnySplit) {
  std::vector<DecodeEvent> sent(3);
  sent[0].token = 17;
  sent[1].token = 4000;
  sent[2].kind = DecodeEvent::Kind::kDone;
  sent[2].finish_reason = "length";
  sent[2].completion_tokens = 3;
  sent[2].timings.decode = 8.25;
  std::string wire = ": keep-alive comment\n\n";
  for (const DecodeEvent& e : sent) wire += e.ToSse();
  // Every split point of the byte stream must give the same events.
  for (size_t split = 0; split <= wire.size(); ++split) {
    std::vector<DecodeEvent> got;
    SseParser parser([&](std::string_view event, std::string_view data) {
      auto e = DecodeEvent::FromSse(event, data);
      EXPECT_TRUE(e.ok()) << e.status();
      if (e.ok()) got.push_back(*e);
      return true;
    });
    ASSERT_TRUE(parser.Feed(std::string_view(wire).substr(0, split)));
    ASSERT_TRUE(parser.Feed(std::string_view(wire).substr(split)));
    ASSERT_EQ(got.size(), 3u) << "split at " << split;
    EXPECT_EQ(got[0].token, 17);
    EXPECT_EQ(got[1].token, 4000);
    EXPECT_EQ(got[2].kind, DecodeEvent::Kind::kDone);
    EXPECT_EQ(got[2].finish_reason, "length");
    EXPECT_EQ(got[2].completion_tokens, 3);
    EXPECT_DOUBLE_EQ(got[2].timings.decode, 8.25);
  }
  EXPECT_THAT(DecodeEvent::FromSse("bogus", "{}").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, "bogus"));
  DecodeEvent error;
  error.kind = DecodeEvent::Kind::kError;
  error.http_status = 503;
  error.message = "transfer failed";
  error.retryable = true;
  SseParser parser([&](std::string_view event, std::string_view data) {
    auto e = DecodeEvent::FromSse(event, data);
    EXPECT_TRUE(e.ok());
    EXPECT_EQ(e->kind, DecodeEvent::Kind::kError);
    EXPECT_EQ(e->http_status, 503);
    EXPECT_TRUE(e->retryable);
    EXPECT_EQ(e->message, "transfer failed");
    return false;  // stop after the first event
  });
  EXPECT_FALSE(parser.Feed(error.ToSse() + error.ToSse()));
}

TEST(HttpClient, MapsRepliesAndConnectionFailures) {
  MetricsRegistry metrics;
  HttpServerOptions options;
  options.host = "127.0.0.1";
  HttpServer server(options, &metrics);
  server.Post("/fail", [](const httplib::Request&, httplib::Response& res) {
    WriteError(res, absl::ResourceExhaustedError("decode node overloaded"));
  });
  server.Post("/coded", [](const httplib::Request&, httplib::Response& res) {
    WriteError(res, WithErrorCode(absl::UnavailableError("kv gone"), kErrorKvTransferFailed));
  });
  server.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body, "application/json");
  });
  server.Post("/stream", [](const httplib::Request&, httplib::Response& res) {
    res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
      for (int i = 0; i < 5; ++i) {
        DecodeEvent e;
        e.token = i;
        const std::string s = e.ToSse();
        sink.write(s.data(), s.size());
      }
      sink.done();
      return true;
    });
  });
  ASSERT_OK(server.Start());
  const HttpEndpoint to{"127.0.0.1", server.port()};

  ASSERT_OK_AND_ASSIGN(std::string body, CallJson(to, "/echo", R"({"a":1})"));
  EXPECT_EQ(body, R"({"a":1})");
  EXPECT_THAT(CallJson(to, "/fail", "{}").status(),
              StatusIs(absl::StatusCode::kUnavailable, "overloaded"));
  EXPECT_THAT(CallJson(to, "/missing", "{}").status(), StatusIs(absl::StatusCode::kNotFound));
  // A machine-readable code crosses the hop: WriteError puts it in the body, the client reads it.
  const absl::Status coded = CallJson(to, "/coded", "{}").status();
  EXPECT_THAT(coded, StatusIs(absl::StatusCode::kUnavailable, "kv gone"));
  EXPECT_EQ(ErrorCodeOf(coded), kErrorKvTransferFailed);
  EXPECT_EQ(ErrorCodeOf(CallJson(to, "/fail", "{}").status()), "");

  std::vector<int> tokens;
  ASSERT_OK(PostSse(to, "/stream", "{}", [&](std::string_view event, std::string_view data) {
    auto e = DecodeEvent::FromSse(event, data);
    if (e.ok()) tokens.push_back(e->token);
    return true;
  }));
  EXPECT_EQ(tokens, (std::vector<int>{0, 1, 2, 3, 4}));
  // The reader may stop early: Cancelled, not an error of the server.
  tokens.clear();
  EXPECT_THAT(PostSse(to, "/stream", "{}",
                      [&](std::string_view, std::string_view) {
                        tokens.push_back(0);
                        return tokens.size() < 2;
                      }),
              StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(PostSse(to, "/fail", "{}", [](std::string_view, std::string_view) { return true; }),
              StatusIs(absl::StatusCode::kUnavailable));

  server.Stop();
  // Nobody listens any more: Unavailable, which the router retries on another node.
  EXPECT_THAT(CallJson(to, "/echo", "{}").status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsRetryable(CallJson(to, "/echo", "{}").status()));
}

}  // namespace
}  // namespace tandem
