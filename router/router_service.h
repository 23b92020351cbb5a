// router/router_service.h
//
// RouterService runs one OpenAI request across the cluster (ARCHITECTURE.md §2): parse and
// tokenize it exactly like `tandem generate`, reserve KV on the best decode node (the next one on
// ResourceExhausted; all full: wait up to max_queue, then 503), prefill on the best prefill node
// with the reservation as the KV target (a retryable failure moves to the next prefill node, at
// most max_retries extra attempts), then relay the decode node's token stream as OpenAI text with
// stop sequences applied, and finish with usage and the `tandem` extension (request id, nodes,
// phase timings, cached tokens).
//
// Streaming runs in two steps so that a failure before the first token is an HTTP error: Admit()
// (reserve + prefill) on the handler thread, then Stream() writes SSE bytes through the caller's
// writer. After bytes reached the client a failure ends the stream with an SSE error event, never
// a normal finish; a client that goes away stops the relay (the decode node sees the disconnect)
// and a best-effort cancel frees the reservation. Complete() does the same for a non-streaming
// request and retries a decode stream that failed before its first decoded token.
//
// Ownership: borrows the model, registry, index, policy and metrics (all must outlive it).
// Thread-safe: each request's state lives in its own ActiveRequest. Every call blocks on the
// network up to the configured timeouts.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/node_api.h"
#include "router/metrics.h"
#include "router/node_registry.h"
#include "router/openai_api.h"
#include "router/policy/routing_policy.h"
#include "router/served_model.h"

namespace tandem::router {

struct RouterServiceOptions {
  std::string served_model_name = "SmolLM2-135M-Instruct";
  int max_retries = 2;
  absl::Duration max_queue = absl::Seconds(30);
  // How often a request waiting for a decode reservation tries again.
  absl::Duration queue_retry_interval = absl::Milliseconds(50);
  absl::Duration prefill_timeout = absl::Seconds(300);
  absl::Duration decode_timeout = absl::Seconds(60);
  // Reserve and cancel calls are quick; a node that takes longer is treated as down.
  absl::Duration control_timeout = absl::Seconds(5);
};

// A parsed, tokenized request, ready to route.
struct PreparedRequest {
  CompletionRequest api;
  std::vector<int32_t> prompt;
  std::string request_id;  // "r-<16 hex>"
  absl::Time accepted;
  node_api::Sampling sampling;
};

// One request between Admit and the end of its response (opaque to the HTTP edge).
struct ActiveRequest;

// A finished non-streaming response: the status and body to send.
struct HttpResult {
  int http_status = 200;
  std::string body;
  std::string retry_after;  // set for 503
};

class RouterService {
 public:
  RouterService(RouterServiceOptions options, const ServedModel& model, NodeRegistry& registry,
                const KvIndexView& index, RoutingPolicy& policy, RouterMetrics& metrics);
  ~RouterService();

  // Parses and validates `body` and tokenizes its prompt. Errors are the parser's (400, 404).
  absl::StatusOr<PreparedRequest> Prepare(Endpoint endpoint, std::string_view body) const;

  // The whole non-streaming request; failures become error bodies (a decode stream broken after
  // tokens arrived is 502).
  HttpResult Complete(PreparedRequest req);

  // Streaming, step 1: reserve and prefill (with retries). Its error is the HTTP error to send.
  absl::StatusOr<std::shared_ptr<ActiveRequest>> Admit(PreparedRequest req);
  // Streaming, step 2: the SSE body, written through `write` (false = the client is gone).
  // Returns the code to count: 200, or 499 when the client went away.
  int Stream(ActiveRequest& active, const std::function<bool(std::string_view)>& write);

  // What the policy sees of `req`: sizes and the ChainKeys of the prompt's full blocks under the
  // cluster's KvFormat (no keys until a node has reported that format).
  RouteRequest MakeRouteRequest(const PreparedRequest& req) const;

 private:
  absl::Status AdmitAttempt(ActiveRequest& active);
  absl::StatusOr<node_api::ReserveReply> Reserve(ActiveRequest& active);
  absl::Status Prefill(ActiveRequest& active);
  void CancelBestEffort(const ActiveRequest& active, bool prefill_too);
  void Finish(ActiveRequest& active);

  const RouterServiceOptions options_;
  const ServedModel& model_;
  NodeRegistry& registry_;
  const KvIndexView& index_;
  RoutingPolicy& policy_;
  RouterMetrics& metrics_;
};

}  // namespace tandem::router
