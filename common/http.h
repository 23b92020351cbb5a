// common/http.h
//
// HttpServer: the one HTTP port of a Tandem process (ARCHITECTURE.md §5.2, §8), on cpp-httplib 0.11.
// It always serves GET /health (liveness: 200 while the process serves HTTP) and GET /metrics (the
// MetricsRegistry's text exposition); components add their routes before Start(). WriteError writes
// the one error body every endpoint uses, OpenAI's {"error": {"message", "type", "param", "code"}},
// with the status from HttpStatusFromStatus.
//
// Ownership: the server borrows the MetricsRegistry, which must outlive it. Handlers run on
// httplib's worker threads, concurrently; they must be thread-safe and must not throw (an escaped
// exception becomes a 500 error body). Start() binds on the calling thread, so a port in use is an
// error at Start(), then serves on a background thread; Stop() blocks until that thread has exited.
// Routes must be added before Start(); Start/Stop are not thread-safe with each other.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/http_auth.h"
#include "common/metrics.h"
#include "httplib.h"

namespace tandem {

struct HttpServerOptions {
  // Address to bind. Default: "0.0.0.0" for nodes; tests use "127.0.0.1".
  std::string host = "0.0.0.0";
  // Port to bind; 0 binds a free port, reported by HttpServer::port().
  int port = 0;
  // Worker threads; each open SSE stream holds one. 0 keeps httplib's default (max(8, cores - 1)).
  int num_threads = 0;
  // Hostile-caller limits, checked from the headers before any body byte is read: a larger
  // Content-Length gets 413; a body without Content-Length (chunked) 411; a Content-Encoding
  // other than identity 415 (nothing is inflated); headers over max_header_bytes 431.
  int64_t max_body_bytes = 16 << 20;
  int64_t max_header_bytes = 32 << 10;
  // Connections accepted beyond num_threads that may wait for a worker; beyond that a connection
  // is answered 503 + Retry-After at once by a separate thread. Needs num_threads > 0.
  int max_queued_connections = 256;
  // The kernel hands a connection to the server only once its first bytes arrived
  // (TCP_DEFER_ACCEPT), so connections that send nothing never occupy a worker: longer than the
  // kernel's SYN-ACK retries (~63 s), a silent connection is dropped without ever being accepted.
  absl::Duration defer_accept = absl::Seconds(120);
  // Longest wait for the next bytes of a request (and of an idle keep-alive connection).
  absl::Duration read_timeout = absl::Seconds(10);
  // Counts what these limits refused, by reason (tandem_http_refusals_total); may be null.
  CounterFamily* refusals = nullptr;
  // PEM certificate (chain) and private key: serve HTTPS (OpenSSL) instead of HTTP. Both or
  // neither. A plain-HTTP request to a TLS port fails its handshake and is closed.
  std::string tls_cert{};
  std::string tls_key{};
};

class HttpServer {
 public:
  using Handler = httplib::Server::Handler;

  // `metrics` is borrowed and must outlive the server.
  HttpServer(HttpServerOptions options, const MetricsRegistry* metrics);
  ~HttpServer();  // Stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Every route under /internal/ (and any unknown path there) then needs the cluster secret
  // (common/http_auth.h): the header is checked before the body is read, the body after; a caller
  // without it gets 401 and the connection is closed. Call before Start().
  void RequireClusterAuth(std::shared_ptr<const ControlPlaneAuth> auth);

  // Route registration; `pattern` is an httplib regex such as "/v1/models" or "/kv/(\\w+)".
  void Get(const std::string& pattern, Handler handler);
  void Post(const std::string& pattern, Handler handler);

  // Binds host:port and starts serving; returns once the server accepts connections.
  // Unavailable "cannot bind 127.0.0.1:8000" when the address is taken; FailedPrecondition when
  // already started.
  absl::Status Start();
  // Stops accepting, closes the listening socket and joins the serving thread. Idempotent.
  void Stop();

  // The bound port (the free port chosen for port 0); 0 before Start().
  int port() const { return port_; }
  const std::string& host() const { return options_.host; }
  bool running() const { return server_->is_running(); }

  // For httplib settings this wrapper does not cover (timeouts, payload limits).
  httplib::Server& raw() { return *server_; }

 private:
  // What the limits of HttpServerOptions refused, from the headers alone.
  struct Refusal {
    int http_status;
    std::string reason;  // metric label
    std::string message;
  };
  std::optional<Refusal> CheckLimits(const httplib::Request& req) const;

  // Wraps handlers of /internal/ routes so that their body is checked against the signed digest.
  Handler Guarded(const std::string& pattern, Handler handler);

  HttpServerOptions options_;
  const MetricsRegistry* metrics_;
  std::unique_ptr<httplib::Server> server_;
  std::shared_ptr<const ControlPlaneAuth> auth_;
  int listen_fd_ = -1;  // the bound socket, as httplib's socket-options hook saw it
  std::thread thread_;
  int port_ = 0;
};

// Extra fields of an error body: which request field was bad, and a machine-readable code such as
// "context_length_exceeded". Empty means JSON null.
struct ErrorDetail {
  std::string param;
  std::string code;
};

// OpenAI's error "type" for an HTTP status: 400 invalid_request_error, 401 authentication_error,
// 403 permission_error, 404 not_found_error, 503 service_unavailable_error, 504 timeout_error,
// other 5xx server_error.
std::string_view ErrorTypeForHttpStatus(int http_status);

// The JSON error body for `status` (which must not be ok):
// {"error":{"message":"...","type":"invalid_request_error","param":null,"code":null}}
std::string ErrorBody(const absl::Status& status, const ErrorDetail& detail = {});

// Sets res.status = HttpStatusFromStatus(status), the JSON body and, for 503, Retry-After: 1.
void WriteError(httplib::Response& res, const absl::Status& status,
                const ErrorDetail& detail = {});

}  // namespace tandem
