#include "common/http.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;

HttpServerOptions Loopback(int port = 0) {
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = port;
  options.num_threads = 2;
  return options;
}

TEST(HttpServer, ServesHealthMetricsAndRoutes) {
  MetricsRegistry metrics;
  metrics.Counter("tandem_test_requests_total", "Requests the test made.", {"endpoint"})
      ->Labels({"/v1/echo"})
      .Increment(3);
  HttpServer server(Loopback(), &metrics);
  server.Post("/v1/echo", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body, "text/plain");
  });
  server.Get("/v1/fail", [](const httplib::Request&, httplib::Response& res) {
    WriteError(res, absl::InvalidArgumentError("max_tokens: -1 is negative"),
               {.param = "max_tokens", .code = ""});
  });
  ASSERT_OK(server.Start());
  ASSERT_GT(server.port(), 0);
  EXPECT_TRUE(server.running());

  httplib::Client client("127.0.0.1", server.port());
  auto health = client.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);

  auto scrape = client.Get("/metrics");
  ASSERT_TRUE(scrape);
  EXPECT_EQ(scrape->status, 200);
  EXPECT_THAT(scrape->get_header_value("Content-Type"), HasSubstr("text/plain"));
  EXPECT_THAT(scrape->body, HasSubstr("tandem_test_requests_total{endpoint=\"/v1/echo\"} 3"));

  auto echo = client.Post("/v1/echo", "hello", "text/plain");
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->body, "hello");

  auto fail = client.Get("/v1/fail");
  ASSERT_TRUE(fail);
  EXPECT_EQ(fail->status, 400);
  nlohmann::json body = nlohmann::json::parse(fail->body);
  EXPECT_EQ(body["error"]["message"], "max_tokens: -1 is negative");
  EXPECT_EQ(body["error"]["type"], "invalid_request_error");
  EXPECT_EQ(body["error"]["param"], "max_tokens");
  EXPECT_TRUE(body["error"]["code"].is_null());

  EXPECT_THAT(server.Start(), StatusIs(absl::StatusCode::kFailedPrecondition));
  server.Stop();
  EXPECT_FALSE(server.running());
  server.Stop();  // idempotent
  EXPECT_FALSE(client.Get("/health"));
}

TEST(HttpServer, PortInUseIsAnError) {
  MetricsRegistry metrics;
  HttpServer first(Loopback(), &metrics);
  ASSERT_OK(first.Start());
  HttpServer second(Loopback(first.port()), &metrics);
  EXPECT_THAT(second.Start(),
              StatusIs(absl::StatusCode::kUnavailable,
                       "cannot bind 127.0.0.1:" + std::to_string(first.port())));
}

TEST(HttpServer, ThrowingHandlerGivesErrorBody) {
  MetricsRegistry metrics;
  HttpServer server(Loopback(), &metrics);
  server.Get("/boom", [](const httplib::Request&, httplib::Response&) {
    throw std::runtime_error("kaboom");
  });
  ASSERT_OK(server.Start());
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/boom");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 500);
  nlohmann::json body = nlohmann::json::parse(res->body);
  EXPECT_EQ(body["error"]["type"], "server_error");
  EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr("kaboom"));
}

TEST(ErrorBody, OpenAiShapeAndRetryAfter) {
  nlohmann::json body = nlohmann::json::parse(
      ErrorBody(absl::InvalidArgumentError("prompt too long"),
                {.param = "messages", .code = "context_length_exceeded"}));
  ASSERT_TRUE(body.contains("error"));
  EXPECT_EQ(body.size(), 1u);
  EXPECT_EQ(body["error"].size(), 4u);
  EXPECT_EQ(body["error"]["code"], "context_length_exceeded");
  EXPECT_EQ(body["error"]["param"], "messages");

  httplib::Response res;
  WriteError(res, absl::UnavailableError("all decode nodes full"));
  EXPECT_EQ(res.status, 503);
  EXPECT_EQ(res.get_header_value("Retry-After"), "1");
  body = nlohmann::json::parse(res.body);
  EXPECT_EQ(body["error"]["type"], "service_unavailable_error");
  EXPECT_TRUE(body["error"]["param"].is_null());

  httplib::Response not_found;
  WriteError(not_found, absl::NotFoundError("model 'gpt-9' not found"));
  EXPECT_EQ(not_found.status, 404);
  EXPECT_FALSE(not_found.has_header("Retry-After"));
  EXPECT_EQ(ErrorTypeForHttpStatus(504), "timeout_error");
  EXPECT_EQ(ErrorTypeForHttpStatus(500), "server_error");
}

}  // namespace
}  // namespace tandem::testing
