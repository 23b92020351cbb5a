// The router's HTTP edge with the real model's tokenizer and no nodes: models list, auth, request
// validation, and 503 when no node is ready. Requests go through common/http_client.h.
#include <string>

#include "common/http_client.h"
#include "httplib.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "router/router.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_env.h"

namespace tandem::router {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr char kKey[] = "sk-test-123";

class RouterHttpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    RouterOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.http_threads = 4;
    o.model_path = testing::ModelPath();
    o.api_key = kKey;
    // Nothing listens there: the router must stay up and say why it is not ready.
    o.prefill_nodes = {{"127.0.0.1", 1}};
    o.poll_interval = absl::Milliseconds(50);
    auto r = Router::Start(o);
    ASSERT_OK(r.status());
    router_ = r->release();
  }
  static void TearDownTestSuite() { delete router_; }

  HttpEndpoint Endpoint() const { return {"127.0.0.1", router_->port()}; }
  HttpCallOptions Auth(const std::string& key = kKey) const {
    HttpCallOptions o;
    o.bearer_token = key;
    return o;
  }
  // POST and parse the error body; fails the test when the reply is not an OpenAI error.
  Json PostError(const std::string& path, const std::string& body, int want_status,
                 const HttpCallOptions& options) {
    auto reply = HttpPostJson(Endpoint(), path, body, options);
    EXPECT_OK(reply.status());
    if (!reply.ok()) return Json();
    EXPECT_EQ(reply->status, want_status) << reply->body;
    Json j = Json::parse(reply->body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << reply->body;
    return j.is_object() && j.contains("error") ? j["error"] : Json();
  }
  static Router* router_;
};
Router* RouterHttpTest::router_ = nullptr;

TEST_F(RouterHttpTest, ModelsListsTheServedModel) {
  ASSERT_OK_AND_ASSIGN(HttpReply reply, HttpGet(Endpoint(), "/v1/models", Auth()));
  ASSERT_EQ(reply.status, 200) << reply.body;
  Json j = Json::parse(reply.body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "SmolLM2-135M-Instruct");
}

TEST_F(RouterHttpTest, MissingOrWrongKeyIs401) {
  for (const std::string key : {"", "sk-wrong", "sk-test-12"}) {
    ASSERT_OK_AND_ASSIGN(HttpReply reply, HttpGet(Endpoint(), "/v1/models", Auth(key)));
    EXPECT_EQ(reply.status, 401) << key;
    Json e = Json::parse(reply.body)["error"];
    EXPECT_EQ(e["type"], "authentication_error");
    EXPECT_EQ(e["code"], "invalid_api_key");
    Json chat = PostError("/v1/chat/completions", R"({"model":"SmolLM2-135M-Instruct",
        "messages":[{"role":"user","content":"hi"}]})", 401, Auth(key));
    EXPECT_EQ(chat["code"], "invalid_api_key");
  }
}

TEST_F(RouterHttpTest, HealthAndMetricsNeedNoKey) {
  ASSERT_OK_AND_ASSIGN(HttpReply health, HttpGet(Endpoint(), "/health"));
  EXPECT_EQ(health.status, 200);
  ASSERT_OK_AND_ASSIGN(HttpReply metrics, HttpGet(Endpoint(), "/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("tandem_router_requests_running"));
  EXPECT_THAT(metrics.body, HasSubstr("tandem_router_index_stale_nodes"));
}

TEST_F(RouterHttpTest, MalformedJsonIs400) {
  Json e = PostError("/v1/chat/completions", "{\"model\": ", 400, Auth());
  EXPECT_EQ(e["type"], "invalid_request_error");
}

TEST_F(RouterHttpTest, WrongTypeNamesTheParam) {
  Json e = PostError("/v1/chat/completions", R"({"model":"SmolLM2-135M-Instruct",
      "messages":[{"role":"user","content":"hi"}],"temperature":"hot"})", 400, Auth());
  EXPECT_EQ(e["param"], "temperature");
  e = PostError("/v1/completions", R"({"model":"SmolLM2-135M-Instruct","prompt":7})", 400, Auth());
  EXPECT_EQ(e["param"], "prompt");
}

TEST_F(RouterHttpTest, MaxTokensOutOfRangeIs400) {
  for (const char* v : {"0", "-3", "100000000"}) {
    Json e = PostError("/v1/completions",
                       std::string(R"({"model":"SmolLM2-135M-Instruct","prompt":"Hi","max_tokens":)") +
                           v + "}",
                       400, Auth());
    EXPECT_EQ(e["param"], "max_tokens") << v;
  }
}

TEST_F(RouterHttpTest, PromptOverTheContextIs400ContextLengthExceeded) {
  // " hello" is one token; the GGUF's context is 8192 tokens.
  std::string prompt;
  for (int i = 0; i < 9000; ++i) prompt += " hello";
  Json e = PostError("/v1/completions",
                     Json{{"model", "SmolLM2-135M-Instruct"}, {"prompt", prompt}}.dump(), 400,
                     Auth());
  EXPECT_EQ(e["code"], "context_length_exceeded");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("maximum context length"));
}

TEST_F(RouterHttpTest, UnknownModelIs404) {
  Json e = PostError("/v1/chat/completions", R"({"model":"gpt-4o",
      "messages":[{"role":"user","content":"hi"}]})", 404, Auth());
  EXPECT_EQ(e["code"], "model_not_found");
}

TEST_F(RouterHttpTest, NoReadyNodesIs503WithRetryAfter) {
  for (const char* path : {"/v1/chat/completions", "/v1/completions"}) {
    for (const char* stream : {"false", "true"}) {
      const std::string body =
          std::string(path) == "/v1/completions"
              ? std::string(R"({"model":"SmolLM2-135M-Instruct","prompt":"Hi","stream":)") + stream + "}"
              : std::string(R"({"model":"SmolLM2-135M-Instruct","stream":)") + stream +
                    R"(,"messages":[{"role":"user","content":"hi"}]})";
      Json e = PostError(path, body, 503, Auth());
      EXPECT_EQ(e["type"], "service_unavailable_error") << path << " stream=" << stream;
      EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("no usable")) << path;
    }
  }
  httplib::Client client("127.0.0.1", router_->port());
  client.set_bearer_token_auth(kKey);
  httplib::Result raw = client.Post("/v1/completions",
                                    R"({"model":"SmolLM2-135M-Instruct","prompt":"Hi"})",
                                    "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 503);
  EXPECT_EQ(raw->get_header_value("Retry-After"), "1");
  ASSERT_OK_AND_ASSIGN(HttpReply ready, HttpGet(Endpoint(), "/ready"));
  EXPECT_EQ(ready.status, 503);
  Json j = Json::parse(ready.body);
  EXPECT_EQ(j["ready"], false);
  const std::string reasons = j["reasons"].dump();
  EXPECT_THAT(reasons, HasSubstr("no usable prefill node (127.0.0.1:1:"));
  EXPECT_THAT(reasons, HasSubstr("no usable decode node (none configured)"));
  ASSERT_OK_AND_ASSIGN(HttpReply metrics, HttpGet(Endpoint(), "/metrics"));
  EXPECT_THAT(metrics.body, HasSubstr(R"(tandem_router_requests_total{code="503",endpoint="chat"} 2)"));
}

}  // namespace
}  // namespace tandem::router
