#include "common/http.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem {
namespace {

// listen_after_bind() marks the server running as its first step, so this is a short wait; the
// bound is only there so that a broken httplib cannot hang Start().
constexpr absl::Duration kStartTimeout = absl::Seconds(10);

constexpr std::string_view kInternalPrefix = "/internal/";

bool IsInternal(std::string_view path) {
  return path.substr(0, kInternalPrefix.size()) == kInternalPrefix;
}

std::string ExceptionMessage(std::exception_ptr ep) {
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

// Set on the threads that answer connections beyond the queue bound: every request they read is
// answered 503 at once.
thread_local bool tls_over_capacity = false;

// httplib's ThreadPool with a bound: connections beyond `threads + queued` go to a small second
// pool whose threads answer them 503 + Retry-After (the pre-routing check sees tls_over_capacity)
// instead of letting them wait behind the streams that hold every worker. httplib 0.11's
// TaskQueue cannot refuse a task, hence the second pool rather than a drop.
class BoundedTaskQueue final : public httplib::TaskQueue {
 public:
  BoundedTaskQueue(size_t threads, size_t queued)
      : limit_(threads + queued), main_(threads), overflow_(2) {}

  void enqueue(std::function<void()> fn) override {
    if (in_main_.fetch_add(1) < limit_) {
      main_.enqueue([this, fn = std::move(fn)] {
        fn();
        in_main_.fetch_sub(1);
      });
      return;
    }
    in_main_.fetch_sub(1);
    overflow_.enqueue([fn = std::move(fn)] {
      tls_over_capacity = true;
      fn();
      tls_over_capacity = false;
    });
  }
  void shutdown() override {
    main_.shutdown();
    overflow_.shutdown();
  }

 private:
  const size_t limit_;
  std::atomic<size_t> in_main_{0};
  httplib::ThreadPool main_;
  httplib::ThreadPool overflow_;
};

}  // namespace

std::optional<HttpServer::Refusal> HttpServer::CheckLimits(const httplib::Request& req) const {
  if (tls_over_capacity) {
    return Refusal{503, "over_capacity", "server at capacity: every worker is busy; retry later"};
  }
  size_t header_bytes = req.target.size() + req.method.size();
  for (const auto& [name, value] : req.headers) header_bytes += name.size() + value.size() + 4;
  if (static_cast<int64_t>(header_bytes) > options_.max_header_bytes) {
    return Refusal{431, "header_size",
                   absl::StrCat("request headers exceed ", options_.max_header_bytes, " bytes")};
  }
  const std::string encoding = req.get_header_value("Content-Encoding");
  if (!encoding.empty() && !absl::EqualsIgnoreCase(encoding, "identity")) {
    // Refused from the header: a compressed body is never inflated, so no bomb can go off.
    return Refusal{415, "content_encoding",
                   "Content-Encoding is not supported: send the body uncompressed"};
  }
  if (req.has_header("Transfer-Encoding")) {
    return Refusal{411, "chunked", "send the body with a Content-Length, not chunked"};
  }
  if (req.has_header("Content-Length")) {
    int64_t length = 0;
    if (!absl::SimpleAtoi(req.get_header_value("Content-Length"), &length) || length < 0) {
      return Refusal{400, "content_length", "Content-Length is not a byte count"};
    }
    if (length > options_.max_body_bytes) {
      return Refusal{413, "body_size",
                     absl::StrCat("request body of ", length, " bytes exceeds the limit of ",
                                  options_.max_body_bytes)};
    }
  }
  return std::nullopt;
}

HttpServer::HttpServer(HttpServerOptions options, const MetricsRegistry* metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      server_(options_.tls_cert.empty()
                  ? std::make_unique<httplib::Server>()
                  : std::make_unique<httplib::SSLServer>(options_.tls_cert.c_str(),
                                                         options_.tls_key.c_str())) {
  if (options_.num_threads > 0) {
    const size_t n = static_cast<size_t>(options_.num_threads);
    const size_t queued = static_cast<size_t>(std::max(0, options_.max_queued_connections));
    server_->new_task_queue = [n, queued] { return new BoundedTaskQueue(n, queued); };
  }
  server_->set_payload_max_length(static_cast<size_t>(options_.max_body_bytes));
  const auto read_timeout =
      std::chrono::microseconds(absl::ToInt64Microseconds(options_.read_timeout));
  server_->set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(read_timeout).count(),
                            (read_timeout % std::chrono::seconds(1)).count());
  server_->set_keep_alive_timeout(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.read_timeout)));
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and take
  // half the connections; a port in use must be an error at Start() instead. SO_REUSEADDR still
  // allows a quick restart over TIME_WAIT sockets.
  const int defer_s = static_cast<int>(absl::ToInt64Seconds(options_.defer_accept));
  server_->set_socket_options([this, defer_s](auto sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (defer_s > 0) setsockopt(sock, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer_s, sizeof(defer_s));
    listen_fd_ = static_cast<int>(sock);
  });
  server_->Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->Serialize(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (std::optional<Refusal> r = CheckLimits(req); r.has_value()) {
      const absl::Status st = r->http_status == 503 ? absl::UnavailableError(r->message)
                                                    : absl::InvalidArgumentError(r->message);
      res.status = r->http_status;
      if (r->http_status == 503) res.set_header("Retry-After", "1");
      res.set_content(ErrorBody(st), "application/json");
      res.set_header("Connection", "close");
      if (options_.refusals != nullptr) options_.refusals->Labels({r->reason}).Increment();
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auth_ == nullptr || !IsInternal(req.path))
      return httplib::Server::HandlerResponse::Unhandled;
    const absl::Status st = auth_->VerifyHeader(req);
    if (st.ok()) return httplib::Server::HandlerResponse::Unhandled;
    // The reason is counted, not told: a stranger learns only that it is not trusted. The body
    // (if any) is left unread and the connection closed.
    WriteError(
        res, absl::UnauthenticatedError("unauthenticated: this endpoint needs the cluster secret"));
    res.set_header("Connection", "close");
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        WriteError(res, absl::InternalError(absl::StrCat("handler for ", req.path,
                                                         " threw: ", ExceptionMessage(ep))));
      });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::RequireClusterAuth(std::shared_ptr<const ControlPlaneAuth> auth) {
  auth_ = std::move(auth);
}

HttpServer::Handler HttpServer::Guarded(const std::string& pattern, Handler handler) {
  if (!IsInternal(pattern)) return handler;
  return [this, handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
    if (auth_ != nullptr) {
      if (absl::Status st = auth_->VerifyBody(req); !st.ok()) {
        WriteError(
            res, absl::UnauthenticatedError("unauthenticated: body does not match its signature"));
        res.set_header("Connection", "close");
        return;
      }
    }
    handler(req, res);
  };
}

void HttpServer::Get(const std::string& pattern, Handler handler) {
  server_->Get(pattern, Guarded(pattern, std::move(handler)));
}

void HttpServer::Post(const std::string& pattern, Handler handler) {
  server_->Post(pattern, Guarded(pattern, std::move(handler)));
}

absl::Status HttpServer::Start() {
  if (thread_.joinable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("http server on ", options_.host, ":", port_, " already started"));
  }
  if (options_.tls_cert.empty() != options_.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot load the TLS certificate ", options_.tls_cert, " or its key (PEM files expected)"));
  }
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    if (port <= 0) {
      return absl::UnavailableError(absl::StrCat("cannot bind ", options_.host, ": a free port"));
    }
  } else if (!server_->bind_to_port(options_.host, port)) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", options_.host, ":", port));
  }
  port_ = port;
  // httplib 0.11 listens with a backlog of 5: under a burst of connections (or silent ones that
  // TCP_DEFER_ACCEPT holds back) new clients would see their SYNs dropped. A second listen()
  // raises the backlog of the bound socket.
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  const absl::Time deadline = absl::Now() + kStartTimeout;
  while (!server_->is_running()) {
    if (absl::Now() > deadline) {
      Stop();
      return absl::DeadlineExceededError(
          absl::StrCat("http server on ", options_.host, ":", port_, " did not start"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (!thread_.joinable()) return;
  // stop() only acts once the serving loop runs; Start() waited for that, so this returns it.
  server_->stop();
  thread_.join();
}

std::string_view ErrorTypeForHttpStatus(int http_status) {
  switch (http_status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 503:
      return "service_unavailable_error";
    case 504:
      return "timeout_error";
    default:
      return http_status < 500 ? "invalid_request_error" : "server_error";
  }
}

std::string ErrorBody(const absl::Status& status, const ErrorDetail& detail) {
  nlohmann::ordered_json error;
  error["message"] = std::string(status.message());
  error["type"] = std::string(ErrorTypeForHttpStatus(HttpStatusFromStatus(status)));
  error["param"] = detail.param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(detail.param);
  const std::string code = detail.code.empty() ? ErrorCodeOf(status) : detail.code;
  error["code"] = code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code);
  nlohmann::ordered_json body;
  body["error"] = std::move(error);
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void WriteError(httplib::Response& res, const absl::Status& status, const ErrorDetail& detail) {
  res.status = HttpStatusFromStatus(status);
  if (res.status == 503) res.set_header("Retry-After", "1");
  res.set_content(ErrorBody(status, detail), "application/json");
}

}  // namespace tandem
