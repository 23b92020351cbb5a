// router/router_http.h
//
// The router's public HTTP API (ARCHITECTURE.md §5.2, §8): POST /v1/chat/completions and
// /v1/completions (JSON, or SSE with "stream": true), GET /v1/models and GET /ready, registered on
// the process's HttpServer (which serves /health and /metrics itself). With an API key set, every
// /v1/* call needs "Authorization: Bearer <key>", else 401 authentication_error / invalid_api_key.
// Every error body is OpenAI's, from ApiErrorFromStatus; every finished request is counted in
// tandem_router_requests_total{endpoint, code}: a streaming client that leaves, before or during
// the body, is 499 and its reservation is cancelled. Known limits of httplib 0.11: a handler cannot
// see its connection, so a non-streaming client that leaves is not noticed (the request runs to
// its end and is counted with its would-be status); and requests beyond --http_threads wait in
// httplib's queue, which has no bound (the decode queue, --router_max_queue_ms, starts only once a
// worker runs the request).
//
// Ownership: borrows the service, registry and metrics, which must outlive the server the routes
// are registered on. Thread-safe: handlers run concurrently on the server's workers.
#pragma once

#include <string>

#include "common/http.h"
#include "router/api_keys.h"
#include "router/metrics.h"
#include "router/node_registry.h"
#include "router/router_service.h"

namespace tandem::router {

struct RouterHttpOptions {
  // The accepted keys (--api_keys_file, plus --api_key as the key named "default"); empty: no
  // authentication, and every request counts as the key "anonymous".
  std::vector<ApiKey> api_keys;
  KeyLimits key_limits;
  // Deepest JSON nesting a request body may have; deeper is 400 before parsing. Default: 32.
  int max_json_depth = 32;
  std::string served_model_name;  // the one model /v1/models lists
  int64_t created = 0;            // unix seconds the model is reported created (process start)
};

// Adds the routes above to `server` (before its Start()).
void RegisterRouterRoutes(HttpServer& server, RouterService& service, NodeRegistry& registry,
                          RouterMetrics& metrics, RouterHttpOptions options);

}  // namespace tandem::router
