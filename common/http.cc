#include "common/http.h"

#include <sys/socket.h>

#include <exception>
#include <utility>

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

std::string ExceptionMessage(std::exception_ptr ep) {
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const MetricsRegistry* metrics)
    : options_(std::move(options)),
      metrics_(metrics),
      server_(std::make_unique<httplib::Server>()) {
  if (options_.num_threads > 0) {
    const size_t n = static_cast<size_t>(options_.num_threads);
    server_->new_task_queue = [n] { return new httplib::ThreadPool(n); };
  }
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the same port and take
  // half the connections; a port in use must be an error at Start() instead. SO_REUSEADDR still
  // allows a quick restart over TIME_WAIT sockets.
  server_->set_socket_options([](auto sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server_->Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_->Serialize(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        WriteError(res, absl::InternalError(absl::StrCat("handler for ", req.path,
                                                         " threw: ", ExceptionMessage(ep))));
      });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Get(const std::string& pattern, Handler handler) {
  server_->Get(pattern, std::move(handler));
}

void HttpServer::Post(const std::string& pattern, Handler handler) {
  server_->Post(pattern, std::move(handler));
}

absl::Status HttpServer::Start() {
  if (thread_.joinable()) {
    return absl::FailedPreconditionError(
        absl::StrCat("http server on ", options_.host, ":", port_, " already started"));
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
