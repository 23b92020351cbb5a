#include "prefill_node/http_api.h"

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "common/node_api.h"
#include "common/status.h"
#include "glog/logging.h"
#include "nlohmann/json.hpp"

namespace tandem::prefill {
namespace {

constexpr char kJson[] = "application/json";

void WriteJson(httplib::Response& res, const std::string& body) {
  res.status = 200;
  res.set_content(body, kJson);
}

}  // namespace

PrefillHttpApi::PrefillHttpApi(HttpServer& server, std::function<void()> on_drain)
    : on_drain_(std::move(on_drain)) {
  server.Post("/internal/v1/prefill", [this](const httplib::Request& req, httplib::Response& res) {
    HandlePrefill(req, res);
  });
  server.Get("/internal/v1/status", [this](const httplib::Request& req, httplib::Response& res) {
    HandleStatus(req, res);
  });
  server.Post("/internal/v1/cancel", [this](const httplib::Request& req, httplib::Response& res) {
    HandleCancel(req, res);
  });
  server.Post("/internal/v1/drain", [this](const httplib::Request& req, httplib::Response& res) {
    HandleDrain(req, res);
  });
  server.Get("/ready", [this](const httplib::Request& req, httplib::Response& res) {
    HandleReady(req, res);
  });
}

PrefillService* PrefillHttpApi::ServiceOr503(httplib::Response& res) {
  PrefillService* service = service_.load();
  if (service == nullptr) WriteError(res, absl::UnavailableError("prefill node loading"));
  return service;
}

void PrefillHttpApi::HandlePrefill(const httplib::Request& req, httplib::Response& res) {
  PrefillService* service = ServiceOr503(res);
  if (service == nullptr) return;
  absl::StatusOr<node_api::PrefillRequest> request =
      node_api::FromJson<node_api::PrefillRequest>(req.body);
  if (!request.ok()) return WriteError(res, request.status());
  BadField bad;
  if (absl::Status s = service->ValidateRequest(*request, &bad); !s.ok()) {
    return WriteError(res, s, ErrorDetail{bad.param, bad.code});
  }
  absl::StatusOr<node_api::PrefillReply> reply = service->Prefill(*request);
  if (!reply.ok() && reply.status().code() == absl::StatusCode::kAborted) {
    // Retryable by IsRetryable, but HttpStatusFromStatus has no Aborted case (500): answer 503 so
    // the router retries it. Ship already maps the stale-epoch NACK; this guards any other path.
    reply = absl::UnavailableError(reply.status().message());
  }
  if (!reply.ok()) {
    // Logged once here, where the Status becomes an HTTP answer; refusals under load are routine.
    if (IsRetryable(reply.status())) {
      VLOG(1) << "req=" << request->request_id << " prefill refused: " << reply.status();
    } else {
      LOG(WARNING) << "req=" << request->request_id << " prefill failed: " << reply.status();
    }
    return WriteError(res, reply.status());
  }
  WriteJson(res, node_api::ToJson(*reply));
}

void PrefillHttpApi::HandleStatus(const httplib::Request& req, httplib::Response& res) {
  PrefillService* service = ServiceOr503(res);
  if (service == nullptr) return;
  uint64_t since = 0;
  if (req.has_param("since") && !absl::SimpleAtoi(req.get_param_value("since"), &since)) {
    return WriteError(res,
                      absl::InvalidArgumentError("since: must be a non-negative event sequence"),
                      ErrorDetail{"since", ""});
  }
  WriteJson(res, node_api::ToJson(service->Status(since)));
}

void PrefillHttpApi::HandleCancel(const httplib::Request& req, httplib::Response& res) {
  PrefillService* service = ServiceOr503(res);
  if (service == nullptr) return;
  absl::StatusOr<node_api::CancelRequest> request =
      node_api::FromJson<node_api::CancelRequest>(req.body);
  if (!request.ok()) return WriteError(res, request.status());
  const bool cancelled = service->Cancel(request->request_id);
  WriteJson(res, nlohmann::json{{"cancelled", cancelled}}.dump());
}

void PrefillHttpApi::HandleDrain(const httplib::Request&, httplib::Response& res) {
  PrefillService* service = ServiceOr503(res);
  if (service == nullptr) return;
  service->BeginDrain();
  if (on_drain_) on_drain_();
  WriteJson(res, "{}");
}

void PrefillHttpApi::HandleReady(const httplib::Request&, httplib::Response& res) {
  PrefillService* service = service_.load();
  if (service == nullptr) {
    return WriteError(res, absl::UnavailableError("prefill node loading the model"));
  }
  if (!service->ready()) return WriteError(res, absl::UnavailableError("prefill node draining"));
  res.status = 200;
  res.set_content(nlohmann::json{{"ready", true}, {"degraded", service->Degraded()}}.dump(), kJson);
}

}  // namespace tandem::prefill
