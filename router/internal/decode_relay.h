// router/internal/decode_relay.h
//
// Private to router/: the state of one request between Admit and its last byte (ActiveRequest),
// and RelayDecode, which streams a decode node's tokens into a text callback. Split out of
// router_service.cc so the request pipeline and the SSE relay read separately.
// One ActiveRequest per request, used by one thread at a time; RelayDecode blocks on the stream.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/node_api.h"
#include "router/detokenizer.h"
#include "router/metrics.h"
#include "router/policy/routing_policy.h"
#include "router/router_service.h"
#include "router/served_model.h"

namespace tandem::router {

// One request from Admit to its last byte. Keeps the running/waiting gauges honest whatever path
// the request leaves by.
struct ActiveRequest {
  ActiveRequest(PreparedRequest r, RouterMetrics* m) : req(std::move(r)), metrics(m) {
    metrics->requests_waiting->Labels({}).Increment();
  }
  ~ActiveRequest() {
    if (waiting) metrics->requests_waiting->Labels({}).Decrement();
    if (running) metrics->requests_running->Labels({}).Decrement();
  }
  void StartRunning() {
    if (!waiting) return;
    waiting = false;
    running = true;
    metrics->requests_waiting->Labels({}).Decrement();
    metrics->requests_running->Labels({}).Increment();
  }

  PreparedRequest req;
  RouterMetrics* metrics;
  bool waiting = true;
  bool running = false;
  RouteRequest route;
  int retries = 0;  // extra attempts used, across prefill and decode failures

  NodeView decode_node;
  node_api::ReserveReply reservation;
  bool reserved = false;
  NodeView prefill_node;
  node_api::PrefillReply prefill;
  std::vector<NodeId> failed_prefill_nodes;  // this request skips them while others remain
  std::vector<NodeId> failed_decode_nodes;   // the same, for reservations after a failed transfer
  bool ttft_observed = false;  // TTFT counts once per request, not once per attempt
  bool body_started = false;   // Stream() ran: it owns the cancel and the count from then on

  double router_queue_ms = 0;  // accept -> the successful prefill call was sent
  absl::Time first_token_at = absl::InfinitePast();
  absl::Time last_token_at = absl::InfinitePast();
  absl::Time decode_started_at = absl::InfinitePast();
  node_api::Timings decode_timings;
  int64_t completion_tokens = 0;
  std::string finish_reason = "length";
};

namespace internal {

enum class TextVerdict { kContinue, kStop, kClientGone };
using TextFn = std::function<TextVerdict(const std::string& text)>;

struct RelayResult {
  enum class Kind { kDone, kStopped, kClientGone, kFailed };
  Kind kind = Kind::kFailed;
  absl::Status error;
  bool stream_broke = false;  // the connection failed, not an error event: the node may be down
  int64_t decode_tokens = 0;
};

// Streams the decode node's tokens into `on_text` until done, a stop, the client leaving or a
// failure. Counts completion tokens and inter-token latency into `a` and `metrics`.
RelayResult RelayDecode(ActiveRequest& a, const ServedModel& model, IncrementalDetokenizer& detok,
                        const TextFn& on_text, absl::Duration decode_timeout,
                        absl::Duration connect_timeout, RouterMetrics& metrics,
                        std::shared_ptr<const ControlPlaneAuth> cluster_auth = nullptr);

}  // namespace internal
}  // namespace tandem::router
