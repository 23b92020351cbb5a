// router/router_http.cc
#include "router/router_http.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
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

// The deepest nesting of arrays and objects in `body` (outside strings), stopping early once past
// `limit`: a linear scan that runs before any parser, so no body can make one recurse deeply.
int JsonDepthOver(std::string_view body, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return depth;
}

class RouterApi {
 public:
  RouterApi(RouterService& service, NodeRegistry& registry, RouterMetrics& metrics,
            RouterHttpOptions options)
      : service_(service),
        registry_(registry),
        metrics_(metrics),
        options_(std::move(options)),
        limiter_(options_.key_limits) {}

  // The name of the caller's API key ("anonymous" without authentication), or nullopt with a 401
  // written. The key itself is never logged or counted; its name is.
  std::optional<std::string> Authorized(const httplib::Request& req, httplib::Response& res,
                                        std::string_view label) {
    if (options_.api_keys.empty()) return std::string("anonymous");
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.rfind(kBearer, 0) == 0) {
      if (const ApiKey* key =
              MatchApiKey(options_.api_keys, std::string_view(header).substr(kBearer.size()))) {
        return key->name;
      }
    }
    ApiError e;
    e.http_status = 401;
    e.message = header.empty() ? "You didn't provide an API key: send 'Authorization: Bearer <key>'."
                               : "Incorrect API key provided.";
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    WriteApiError(res, e);
    metrics_.CountRequest(label, 401);
    return std::nullopt;
  }

  // 429 with Retry-After, OpenAI's shape.
  void RateLimited(httplib::Response& res, std::string_view label, const std::string& key,
                   std::string message, absl::Duration retry_after) {
    ApiError e;
    e.http_status = 429;
    e.message = std::move(message);
    e.type = "requests";
    e.code = "rate_limit_exceeded";
    WriteApiError(res, e);
    const int64_t seconds =
        std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(retry_after, absl::Seconds(1))));
    res.set_header("Retry-After", std::to_string(seconds));
    metrics_.CountRequest(label, 429);
    metrics_.CountKeyRequest(key, 429);
    VLOG(1) << "key=" << key << " rate limited: " << e.message;
  }

  void Completion(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
    const std::string label = endpoint == Endpoint::kChatCompletions ? "chat" : "completions";
    const std::optional<std::string> key = Authorized(req, res, label);
    if (!key.has_value()) return;
    absl::StatusOr<std::shared_ptr<KeyLimiter::Slot>> slot = limiter_.Acquire(*key);
    if (!slot.ok()) {
      return RateLimited(res, label, *key, std::string(slot.status().message()), absl::Seconds(1));
    }
    if (JsonDepthOver(req.body, options_.max_json_depth) > options_.max_json_depth) {
      ApiError e = ApiErrorFromStatus(absl::InvalidArgumentError(absl::StrCat(
          "request body nests JSON deeper than ", options_.max_json_depth, " levels")));
      WriteApiError(res, e);
      metrics_.CountRequest(label, e.http_status);
      return;
    }
    absl::StatusOr<PreparedRequest> prepared = service_.Prepare(endpoint, req.body);
    if (!prepared.ok()) {
      ApiError e = ApiErrorFromStatus(prepared.status());
      WriteApiError(res, e);
      metrics_.CountRequest(label, e.http_status);
      return;
    }
    const std::string request_id = prepared->request_id;
    const int64_t cost = static_cast<int64_t>(prepared->prompt.size()) +
                         std::max<int64_t>(prepared->api.effective_max_tokens, 0);
    if (std::optional<absl::Duration> wait = limiter_.Charge(*key, cost); wait.has_value()) {
      return RateLimited(res, label, *key,
                         absl::StrCat("Rate limit reached for key '", *key, "': ", cost,
                                      " tokens would exceed --api_key_tokens_per_minute"),
                         *wait);
    }
    VLOG(1) << "req=" << request_id << " key=" << *key;
    if (!prepared->api.stream) {
      // httplib 0.11 gives a handler no view of its connection (Request::is_connection_closed
      // came in later versions), so a client that leaves during a non-streaming request is not
      // noticed: the request runs to its end and is counted with the status it would have got.
      HttpResult r = service_.Complete(*std::move(prepared));
      res.status = r.http_status;
      if (!r.retry_after.empty()) res.set_header("Retry-After", r.retry_after);
      res.set_content(std::move(r.body), "application/json");
      metrics_.CountRequest(label, r.http_status);
      metrics_.CountKeyRequest(*key, r.http_status);
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
    // The key's slot is held as long as httplib holds the stream's callbacks.
    std::shared_ptr<KeyLimiter::Slot> held = *std::move(slot);
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, holder, label, held, name = *key](size_t, httplib::DataSink& sink) {
          const int code = service_.Stream(*holder, [&sink](std::string_view bytes) {
            return sink.write(bytes.data(), bytes.size());
          });
          metrics_.CountRequest(label, code);
          metrics_.CountKeyRequest(name, code);
          sink.done();
          return true;
        },
        // Runs when httplib drops the response, whether or not the provider ran: a client that
        // left before the body started (httplib then never calls the provider) still has its
        // reservation cancelled and is counted as 499.
        [this, holder, label, held](bool) {
          if (const int code = service_.Abandon(*holder); code != 0) {
            metrics_.CountRequest(label, code);
          }
        });
  }

  void Models(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res, "models").has_value()) return;
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
  KeyLimiter limiter_;
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
