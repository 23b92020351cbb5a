// router/router_http.cc
#include "router/router_http.h"

#include <memory>
#include <utility>

#include "glog/logging.h"
#include "nlohmann/json.hpp"
#include "router/openai_api.h"
#include "router/openai_render.h"

namespace tandem::router {
namespace {

void WriteApiError(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  if (e.http_status == 503) res.set_header("Retry-After", "1");
  res.set_content(e.Body(), "application/json");
}

// Compares in time independent of where the first difference is, so response timing does not
// reveal how much of a guessed key was right.
bool SameKey(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

class RouterApi {
 public:
  RouterApi(RouterService& service, NodeRegistry& registry, RouterMetrics& metrics,
            RouterHttpOptions options)
      : service_(service), registry_(registry), metrics_(metrics), options_(std::move(options)) {}

  // False (and a 401 written) when an API key is required and the request lacks it.
  bool Authorized(const httplib::Request& req, httplib::Response& res, std::string_view label) {
    if (options_.api_key.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.rfind(kBearer, 0) == 0 &&
        SameKey(std::string_view(header).substr(kBearer.size()), options_.api_key)) {
      return true;
    }
    ApiError e;
    e.http_status = 401;
    e.message = header.empty() ? "You didn't provide an API key: send 'Authorization: Bearer <key>'."
                               : "Incorrect API key provided.";
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    WriteApiError(res, e);
    metrics_.CountRequest(label, 401);
    return false;
  }

  void Completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
    const std::string label = endpoint == Endpoint::kChatCompletions ? "chat" : "completions";
    if (!Authorized(req, res, label)) return;
    absl::StatusOr<PreparedRequest> prepared = service_.Prepare(endpoint, req.body);
    if (!prepared.ok()) {
      ApiError e = ApiErrorFromStatus(prepared.status());
      WriteApiError(res, e);
      metrics_.CountRequest(label, e.http_status);
      return;
    }
    const std::string request_id = prepared->request_id;
    if (!prepared->api.stream) {
      // httplib 0.11 gives a handler no view of its connection (Request::is_connection_closed
      // came in later versions), so a client that leaves during a non-streaming request is not
      // noticed: the request runs to its end and is counted with the status it would have got.
      HttpResult r = service_.Complete(*std::move(prepared));
      res.status = r.http_status;
      if (!r.retry_after.empty()) res.set_header("Retry-After", r.retry_after);
      res.set_content(std::move(r.body), "application/json");
      metrics_.CountRequest(label, r.http_status);
      if (r.http_status != 200) VLOG(1) << "req=" << request_id << " answered " << r.http_status;
      return;
    }
    absl::StatusOr<std::shared_ptr<ActiveRequest>> active =
        service_.Admit(*std::move(prepared));
    if (!active.ok()) {
      LOG(WARNING) << "req=" << request_id << " not admitted: " << active.status();
      ApiError e = ApiErrorFromStatus(active.status());
      WriteApiError(res, e);
      metrics_.CountRequest(label, e.http_status);
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Request-Id", request_id);
    std::shared_ptr<ActiveRequest> holder = *std::move(active);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, holder, label](size_t, httplib::DataSink& sink) {
          const int code = service_.Stream(*holder, [&sink](std::string_view bytes) {
            return sink.write(bytes.data(), bytes.size());
          });
          metrics_.CountRequest(label, code);
          sink.done();
          return true;
        },
        // Runs when httplib drops the response, whether or not the provider ran: a client that
        // left before the body started (httplib then never calls the provider) still has its
        // reservation cancelled and is counted as 499.
        [this, holder, label](bool) {
          if (const int code = service_.Abandon(*holder); code != 0) {
            metrics_.CountRequest(label, code);
          }
        });
  }

  void Models(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res, "models")) return;
    res.set_content(RenderModels({options_.served_model_name}, options_.created),
                    "application/json");
    metrics_.CountRequest("models", 200);
  }

  void Ready(const httplib::Request&, httplib::Response& res) {
    const std::vector<std::string> reasons = registry_.NotReadyReasons();
    nlohmann::ordered_json body;
    body["ready"] = reasons.empty();
    if (!reasons.empty()) body["reasons"] = reasons;
    res.status = reasons.empty() ? 200 : 503;
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                    "application/json");
  }

 private:
  RouterService& service_;
  NodeRegistry& registry_;
  RouterMetrics& metrics_;
  const RouterHttpOptions options_;
};

}  // namespace

void RegisterRouterRoutes(HttpServer& server, RouterService& service, NodeRegistry& registry,
                          RouterMetrics& metrics, RouterHttpOptions options) {
  // The server's handlers outlive this call; the API object lives as long as they do.
  auto api = std::make_shared<RouterApi>(service, registry, metrics, std::move(options));
  server.Post("/v1/chat/completions", [api](const httplib::Request& req, httplib::Response& res) {
    api->Completion(Endpoint::kChatCompletions, req, res);
  });
  server.Post("/v1/completions", [api](const httplib::Request& req, httplib::Response& res) {
    api->Completion(Endpoint::kCompletions, req, res);
  });
  server.Get("/v1/models",
             [api](const httplib::Request& req, httplib::Response& res) { api->Models(req, res); });
  server.Get("/ready",
             [api](const httplib::Request& req, httplib::Response& res) { api->Ready(req, res); });
}

}  // namespace tandem::router
