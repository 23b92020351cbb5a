// The control plane's cluster-secret check end to end on a real HttpServer: signed calls pass,
// every other caller gets 401 (missing, forged, tampered, replayed, stale, other secret), each
// refusal is counted, and a refused body is never handed to the route.
#include "common/http_auth.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/http.h"
#include "common/http_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const ClusterSecret> Secret(char fill) {
  return *ClusterSecret::FromBytes(std::string(40, fill));
}

class ControlPlaneAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    refusals_ = AuthRefusalsCounter(metrics_);
    auth_ = std::make_shared<ControlPlaneAuth>(Secret('a'), refusals_);
    HttpServerOptions options;
    options.host = "127.0.0.1";
    options.num_threads = 4;
    server_ = std::make_unique<HttpServer>(options, &metrics_);
    server_->RequireClusterAuth(auth_);
    server_->Post("/internal/v1/drain",
                  [this](const httplib::Request& req, httplib::Response& res) {
                    ++drains_;
                    res.set_content("{}", "application/json");
                  });
    server_->Get("/internal/v1/status", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"ok\":true}", "application/json");
    });
    server_->Get("/public", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("open", "text/plain");
    });
    ASSERT_OK(server_->Start());
    to_ = HttpEndpoint{"127.0.0.1", server_->port()};
  }

  double Refused(const std::string& reason) {
    return refusals_->Labels({"control", reason}).Value();
  }

  // A raw request with exactly the given auth header (empty: none).
  int RawPost(const std::string& path, const std::string& body, const std::string& header) {
    httplib::Client client("127.0.0.1", server_->port());
    httplib::Headers headers;
    if (!header.empty()) headers.emplace(kAuthHeader, header);
    auto res = client.Post(path.c_str(), headers, body, "application/json");
    if (!res) return -1;
    if (res->status == 401) {
      EXPECT_THAT(res->body, HasSubstr("authentication_error"));
      EXPECT_THAT(res->body, ::testing::Not(HasSubstr("bad_mac")));  // the reason is not told
    }
    return res->status;
  }

  MetricsRegistry metrics_;
  CounterFamily* refusals_ = nullptr;
  std::shared_ptr<ControlPlaneAuth> auth_;
  std::unique_ptr<HttpServer> server_;
  HttpEndpoint to_;
  std::atomic<int> drains_{0};
};

TEST_F(ControlPlaneAuthTest, SignedCallsPass) {
  HttpCallOptions call;
  call.cluster_auth = std::make_shared<ControlPlaneAuth>(Secret('a'));
  ASSERT_OK_AND_ASSIGN(HttpReply status, HttpGet(to_, "/internal/v1/status?since=3", call));
  EXPECT_EQ(status.status, 200);
  ASSERT_OK_AND_ASSIGN(std::string drained, CallJson(to_, "/internal/v1/drain", "{}", call));
  EXPECT_EQ(drained, "{}");
  EXPECT_EQ(drains_.load(), 1);
  // Routes outside /internal/ stay open (health, metrics, the public API).
  ASSERT_OK_AND_ASSIGN(HttpReply open, HttpGet(to_, "/public"));
  EXPECT_EQ(open.status, 200);
}

TEST_F(ControlPlaneAuthTest, StrangersGet401AndAreCounted) {
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", ""), 401);
  EXPECT_EQ(Refused("missing"), 1);
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", "v1 nonsense"), 401);
  EXPECT_EQ(Refused("malformed"), 1);
  // Signed with another cluster's secret.
  ControlPlaneAuth other(Secret('b'));
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", other.Sign("POST", "/internal/v1/drain", "{}")),
            401);
  EXPECT_EQ(Refused("bad_mac"), 1);
  // Signed for another path, or another method.
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", auth_->Sign("POST", "/internal/v1/cancel", "{}")),
            401);
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", auth_->Sign("GET", "/internal/v1/drain", "{}")),
            401);
  EXPECT_EQ(Refused("bad_mac"), 3);
  // Unknown internal paths are refused too (a stranger cannot map the API).
  EXPECT_EQ(RawPost("/internal/v1/nothing", "{}", ""), 401);
  // Too old.
  EXPECT_EQ(
      RawPost("/internal/v1/drain", "{}",
              auth_->Sign("POST", "/internal/v1/drain", "{}", absl::Now() - absl::Minutes(5))),
      401);
  EXPECT_EQ(Refused("expired"), 1);
  EXPECT_EQ(drains_.load(), 0);
}

TEST_F(ControlPlaneAuthTest, TamperedBodyAndReplayAreRefused) {
  const std::string header = auth_->Sign("POST", "/internal/v1/drain", "{}");
  EXPECT_EQ(RawPost("/internal/v1/drain", "{\"x\":1}", header), 401);
  EXPECT_EQ(Refused("body"), 1);
  const std::string fresh = auth_->Sign("POST", "/internal/v1/drain", "{}");
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", fresh), 200);
  EXPECT_EQ(RawPost("/internal/v1/drain", "{}", fresh), 401);
  EXPECT_EQ(Refused("replayed"), 1);
  EXPECT_EQ(drains_.load(), 1);
}

TEST_F(ControlPlaneAuthTest, RefusedBodyIsNeverRead) {
  // 64 MiB announced, 1 byte sent: the 401 comes back at once, before any body.
  httplib::Client client("127.0.0.1", server_->port());
  client.set_read_timeout(std::chrono::seconds(5));
  std::string big(1 << 20, 'x');
  size_t sent = 0;
  auto res = client.Post(
      "/internal/v1/drain", 64ull << 20,
      [&](size_t offset, size_t length, httplib::DataSink& sink) {
        const size_t n = std::min(length, big.size());
        if (!sink.write(big.data(), n)) return false;
        sent += n;
        return true;
      },
      "application/json");
  // Either the 401 arrives, or the server closed the connection before we wrote everything.
  if (res) {
    EXPECT_EQ(res->status, 401);
  }
  EXPECT_LT(sent, 64ull << 20);
  EXPECT_EQ(drains_.load(), 0);
}

TEST(ClusterSecret, FileRulesAndNoSecretInErrors) {
  const std::string dir = ::testing::TempDir();
  const std::string path = dir + "/secret_" + std::to_string(getpid());
  std::remove(path.c_str());
  ASSERT_OK(ClusterSecret::WriteNewFile(path));
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_FALSE(ClusterSecret::WriteNewFile(path).ok());  // never overwrites
  ASSERT_OK_AND_ASSIGN(auto a, ClusterSecret::ReadFile(path));
  ASSERT_OK_AND_ASSIGN(auto b, ClusterSecret::ReadFile(path));
  EXPECT_EQ(a->Key(KeyPurpose::kControlPlane), b->Key(KeyPurpose::kControlPlane));
  EXPECT_NE(a->Key(KeyPurpose::kControlPlane), a->Key(KeyPurpose::kKvAtRest));
  std::remove(path.c_str());

  const std::string short_path = path + "_short";
  { std::ofstream(short_path) << "hunter2-is-my-secret\n"; }
  absl::StatusOr<std::shared_ptr<const ClusterSecret>> too_short =
      ClusterSecret::ReadFile(short_path);
  EXPECT_FALSE(too_short.ok());
  EXPECT_THAT(std::string(too_short.status().message()), HasSubstr(short_path));
  EXPECT_THAT(std::string(too_short.status().message()), ::testing::Not(HasSubstr("hunter2")));
  std::remove(short_path.c_str());
  EXPECT_FALSE(ClusterSecret::ReadFile(path + "_missing").ok());
}

}  // namespace
}  // namespace tandem::testing
