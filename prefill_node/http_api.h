// prefill_node/http_api.h
//
// PrefillHttpApi: the prefill node's HTTP routes (ARCHITECTURE.md §5.2, §8) on the process's one
// HttpServer, next to its built-in /health and /metrics:
//   POST /internal/v1/prefill  PrefillRequest -> PrefillReply (errors: common/http WriteError,
//                              400 naming `param`, 503 + Retry-After for retryable refusals)
//   GET  /internal/v1/status?since=N  NodeStatus
//   POST /internal/v1/cancel   CancelRequest -> {"cancelled": bool} (best effort)
//   POST /internal/v1/drain    {} -> {} ; /ready turns 503 and `on_drain` stops the process
//   GET  /ready                200 {"ready": true, "degraded": [...]}, else 503 with the reason
// Routes are registered at construction, before the server starts, and answer 503 "loading"
// until Attach() hands them the service, so /health and /ready work while the model loads.
//
// Ownership: borrows the server and the attached service. The api must outlive the server's
// serving thread (Stop() the server first), and the service must stay attached-valid until then.
// Thread-safe: handlers run concurrently on httplib's workers.
#pragma once

#include <atomic>
#include <functional>

#include "common/http.h"
#include "prefill_node/prefill_service.h"

namespace tandem::prefill {

class PrefillHttpApi {
 public:
  // `on_drain` (may be empty) is called after POST /internal/v1/drain made the service refuse new
  // work: the process's cue to finish the drain and exit (RunPrefillNode raises SIGTERM).
  PrefillHttpApi(HttpServer& server, std::function<void()> on_drain);
  PrefillHttpApi(const PrefillHttpApi&) = delete;
  PrefillHttpApi& operator=(const PrefillHttpApi&) = delete;

  // Starts (non-null) or stops (null) serving the internal routes from `service`.
  void Attach(PrefillService* service) { service_.store(service); }

 private:
  void HandlePrefill(const httplib::Request& req, httplib::Response& res);
  void HandleStatus(const httplib::Request& req, httplib::Response& res);
  void HandleCancel(const httplib::Request& req, httplib::Response& res);
  void HandleDrain(const httplib::Request& req, httplib::Response& res);
  void HandleReady(const httplib::Request& req, httplib::Response& res);
  // The attached service, or nullptr after writing 503 "loading".
  PrefillService* ServiceOr503(httplib::Response& res);

  std::function<void()> on_drain_;
  std::atomic<PrefillService*> service_{nullptr};
};

}  // namespace tandem::prefill
