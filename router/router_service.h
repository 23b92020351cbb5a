// router/router_service.h
//
// RouterService runs one OpenAI request across the cluster (ARCHITECTURE.md §2, §9): parse and
// tokenize it exactly like `tandem generate`, reserve KV on the best decode node (the next one on
// ResourceExhausted; all full: wait up to max_queue, then 503), prefill on the best prefill node
// with the reservation as the KV target, then relay the decode node's token stream as OpenAI text
// with stop sequences applied, and finish with usage and the `tandem` extension (request id,
// nodes, phase timings, cached tokens, retries).
//
// Retries, at most max_retries per request, all before the first decoded token: a failed prefill
// cancels its reservation and starts over with a fresh one (a failed transfer on another decode
// node, any other failure on another prefill node); a decode stream that fails before its first
// decoded token is admitted again elsewhere and continues after the first token the client has.
// A node's own 4xx/5xx never reaches the client as such: retryable is 503 + Retry-After, the
// rest 502 (server_error, code upstream_error).
//
// Streaming runs in two steps so that a failure before the first token is an HTTP error: Admit()
// (reserve + prefill) on the handler thread, then Stream() writes SSE bytes through the caller's
// writer (or Abandon() when the client left before it ran). After bytes reached the client a
// failure ends the stream with finish_reason "error" and an SSE error event, never a normal
// finish; a client that goes away stops the relay and a best-effort cancel frees the reservation.
// Complete() does the same for a non-streaming request: 502 once decoded tokens were lost.
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
#include "router/options.h"
#include "router/policy/routing_policy.h"
#include "router/served_model.h"

namespace tandem::router {

// A parsed, tokenized request, ready to route.
struct PreparedRequest {
  CompletionRequest api;
  std::vector<int32_t> prompt;
  std::vector<node_api::DocumentSpan> documents;  // the prompt's documents, tokenized alone
  std::string request_id;  // "r-<16 hex>"
  absl::Time accepted;
  node_api::Sampling sampling;
};

// One request between Admit and the end of its response (opaque to the HTTP edge).
struct ActiveRequest;
class IncrementalDetokenizer;
namespace internal {
struct RelayResult;
enum class TextVerdict;
}  // namespace internal

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
  // Returns the code to count: 200, 499 when the client went away, 502 when the stream failed
  // after it started (the client got finish_reason "error" and an error event).
  int Stream(ActiveRequest& active, const std::function<bool(std::string_view)>& write);
  // Streaming, instead of step 2: the client left before the body started (the HTTP server never
  // ran Stream). Frees the reservation; returns 499 to count. A no-op returning 0 after Stream.
  int Abandon(ActiveRequest& active);

  // What the policy sees of `req`: sizes and the ChainKeys of the prompt's full blocks under the
  // cluster's KvFormat (no keys until a node has reported that format).
  RouteRequest MakeRouteRequest(const PreparedRequest& req) const;

 private:
  // Reserve + prefill, with retries; a retry cancels the reservation and reserves again, on
  // another decode node when the transfer failed. Errors are the client's (503 or 502).
  absl::Status AdmitAttempt(ActiveRequest& active);
  absl::StatusOr<node_api::ReserveReply> Reserve(ActiveRequest& active);
  // One prefill call on the best prefill node; a failed node goes on the request's
  // failed_prefill_nodes (last in later rankings) unless the transfer was what failed.
  absl::Status PrefillOnce(ActiveRequest& active);
  // The decode relay; a stream that fails before its first decoded token is admitted again on
  // other nodes and relayed from there (the first token is not produced twice).
  internal::RelayResult DecodeWithRetry(ActiveRequest& active, IncrementalDetokenizer& detok,
                                        const std::function<internal::TextVerdict(
                                            const std::string&)>& on_text);
  void ObserveTtft(ActiveRequest& active);
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
