// HttpServer's hostile-caller limits on raw sockets (issue 13): an oversized body gets 413 before
// it is sent in full, a gzip bomb is refused without being inflated, chunked bodies and huge
// headers are refused, 2,000 connections that send nothing do not keep a normal client from being
// served, and connections beyond the worker queue get 503 + Retry-After at once.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/http.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/support/status_matchers.h"

namespace tandem::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

int ConnectTo(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// Sends `head`, then up to `body_bytes` of body in 64 KiB pieces while no reply has come, and
// returns the reply's first bytes; *sent receives the body bytes that were sent.
std::string Exchange(int port, const std::string& head, const std::string& body,
                     size_t* sent = nullptr) {
  const int fd = ConnectTo(port);
  if (fd < 0) return "<connect failed>";
  (void)send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  size_t off = 0;
  while (off < body.size()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 0) > 0) break;  // the server answered already
    const size_t n = std::min<size_t>(64 << 10, body.size() - off);
    const ssize_t w = send(fd, body.data() + off, n, MSG_NOSIGNAL);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  if (sent != nullptr) *sent = off;
  char buf[4096];
  const ssize_t n = recv(fd, buf, sizeof(buf), 0);
  close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "<no reply>";
}

std::string Gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);  // 15 + 16: gzip wrapper
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

class HttpLimitsTest : public ::testing::Test {
 protected:
  void Start(int threads = 4, int queued = 8) {
    HttpServerOptions o;
    o.host = "127.0.0.1";
    o.num_threads = threads;
    o.max_queued_connections = queued;
    o.max_body_bytes = 1 << 20;
    o.refusals = metrics_.Counter("tandem_http_refusals_total", "test", {"reason"});
    server_ = std::make_unique<HttpServer>(o, &metrics_);
    server_->Post("/v1/echo", [this](const httplib::Request& req, httplib::Response& res) {
      ++handled_;
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    server_->Get("/v1/slow", [this](const httplib::Request&, httplib::Response& res) {
      ++handled_;
      absl::SleepFor(absl::Seconds(2));
      res.set_content("slow", "text/plain");
    });
    ASSERT_OK(server_->Start());
  }
  double Refused(const std::string& reason) {
    return metrics_.Counter("tandem_http_refusals_total", "test", {"reason"})
        ->Labels({reason})
        .Value();
  }

  MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> handled_{0};
};

TEST_F(HttpLimitsTest, OversizedBodyGets413BeforeItIsSent) {
  Start();
  const std::string body(64 << 20, 'x');  // 64 MiB announced against a 1 MiB limit
  size_t sent = 0;
  const std::string reply = Exchange(
      server_->port(),
      "POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n",
      body, &sent);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 413"));
  EXPECT_LT(sent, body.size() / 2) << "the reply must come before the body is read in full";
  EXPECT_EQ(handled_.load(), 0);
  EXPECT_EQ(Refused("body_size"), 1);
  // Under the limit the same route works.
  httplib::Client client("127.0.0.1", server_->port());
  auto ok = client.Post("/v1/echo", std::string(1000, 'y'), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->body, "1000");
}

TEST_F(HttpLimitsTest, GzipBombIsRefusedWithoutInflating) {
  Start();
  const std::string bomb = Gzip(std::string(64 << 20, '\0'));  // 64 MiB of zeros, ~64 KiB sent
  ASSERT_LT(bomb.size(), size_t{1} << 20) << "the bomb fits under the body limit compressed";
  const std::string reply =
      Exchange(server_->port(),
               "POST /v1/echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
               "Content-Encoding: gzip\r\nContent-Length: " +
                   std::to_string(bomb.size()) + "\r\n\r\n",
               bomb);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 415"));
  EXPECT_EQ(handled_.load(), 0);
  EXPECT_EQ(Refused("content_encoding"), 1);
}

TEST_F(HttpLimitsTest, ChunkedBodiesAndHugeHeadersAreRefused) {
  Start();
  EXPECT_THAT(Exchange(server_->port(),
                       "POST /v1/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                       "5\r\nhello\r\n0\r\n\r\n"),
              StartsWith("HTTP/1.1 411"));
  std::string head = "GET /health HTTP/1.1\r\nHost: t\r\n";
  for (int i = 0; i < 10; ++i)
    head += "X-Pad-" + std::to_string(i) + ": " + std::string(4000, 'p') + "\r\n";
  EXPECT_THAT(Exchange(server_->port(), head + "\r\n", ""), StartsWith("HTTP/1.1 431"));
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(HttpLimitsTest, TwoThousandSilentConnectionsDoNotBlockANormalClient) {
  Start(/*threads=*/4, /*queued=*/8);
  std::vector<int> idle;
  for (int i = 0; i < 2000; ++i) {
    const int fd = ConnectTo(server_->port());
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_GE(idle.size(), 1900u);
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  httplib::Client client("127.0.0.1", server_->port());
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(5));
  for (int i = 0; i < 3; ++i) {
    auto res = client.Post("/v1/echo", "{\"a\":1}", "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 200);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  for (int fd : idle) close(fd);
}

TEST_F(HttpLimitsTest, BeyondTheQueueIsAnImmediate503WithRetryAfter) {
  Start(/*threads=*/1, /*queued=*/0);
  std::thread busy([&] {
    httplib::Client c("127.0.0.1", server_->port());
    c.Get("/v1/slow");
  });
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  httplib::Client client("127.0.0.1", server_->port());
  auto res = client.Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  busy.join();
  EXPECT_GE(Refused("over_capacity"), 1);
}

}  // namespace
}  // namespace tandem::testing
