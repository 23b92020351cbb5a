// router/internal/decode_relay.cc
#include "router/internal/decode_relay.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/http_client.h"
#include "common/status.h"

namespace tandem::router::internal {
namespace {

// The status a decode stream's `error` event stands for: retryable ones keep a retryable code.
absl::Status StatusFromDecodeError(const node_api::DecodeEvent& e) {
  const absl::StatusCode code = e.retryable ? absl::StatusCode::kUnavailable
                                            : StatusFromHttpReply(e.http_status, "").code();
  return absl::Status(code == absl::StatusCode::kOk ? absl::StatusCode::kInternal : code,
                      absl::StrCat("decode node: ", e.message));
}

}  // namespace

RelayResult RelayDecode(ActiveRequest& a, const ServedModel& model, IncrementalDetokenizer& detok,
                        const TextFn& on_text, absl::Duration decode_timeout,
                        absl::Duration connect_timeout, RouterMetrics& metrics,
                        std::shared_ptr<const ControlPlaneAuth> cluster_auth) {
  node_api::DecodeRequest body;
  body.request_id = a.req.request_id;
  body.reservation_id = a.reservation.target.reservation_id;
  body.transfer_id = a.prefill.transfer_id;
  body.first_token = a.prefill.first_token;
  body.sampling = a.req.sampling;
  body.sampling.rng_state = a.prefill.rng_state;
  body.max_tokens = a.req.api.effective_max_tokens;
  body.ignore_eos = a.req.api.ignore_eos;
  body.deadline_ms = node_api::NowUnixMs() + absl::ToInt64Milliseconds(decode_timeout);
  HttpCallOptions call;
  call.connect_timeout = connect_timeout;
  call.io_timeout = decode_timeout;
  call.cluster_auth = std::move(cluster_auth);

  RelayResult result;
  bool done = false;
  absl::Status event_error;
  std::optional<RelayResult::Kind> ended;
  prometheus::Histogram& itl = metrics.itl->Labels({});
  a.decode_started_at = absl::Now();
  auto on_event = [&](std::string_view event, std::string_view data) {
    absl::StatusOr<node_api::DecodeEvent> ev = node_api::DecodeEvent::FromSse(event, data);
    if (!ev.ok()) {
      event_error = absl::InternalError(absl::StrCat("bad decode event: ", ev.status().message()));
      return false;
    }
    switch (ev->kind) {
      case node_api::DecodeEvent::Kind::kToken: {
        // An end-of-generation token only ends the answer when EOS is honoured; with ignore_eos
        // the node generates past it and it is a completion token like any other (no text).
        if (!a.req.api.ignore_eos && model.IsEndOfGeneration(ev->token)) return true;
        const absl::Time now = absl::Now();
        itl.Observe(absl::ToDoubleSeconds(now - a.last_token_at));
        a.last_token_at = now;
        ++result.decode_tokens;
        ++a.completion_tokens;
        const TextVerdict v = on_text(detok.Push(ev->token));
        if (v == TextVerdict::kContinue) return true;
        ended = v == TextVerdict::kStop ? RelayResult::Kind::kStopped
                                        : RelayResult::Kind::kClientGone;
        return false;
      }
      case node_api::DecodeEvent::Kind::kDone:
        done = true;
        a.finish_reason = ev->finish_reason;
        a.decode_timings = ev->timings;
        return true;
      case node_api::DecodeEvent::Kind::kError:
        event_error = StatusFromDecodeError(*ev);
        return false;
    }
    return false;
  };
  int http_status = 0;
  const absl::Status st = PostSse(a.decode_node.endpoint, "/internal/v1/decode",
                                  node_api::ToJson(body), on_event, call, &http_status);
  if (ended) {
    result.kind = *ended;
    return result;
  }
  if (done) {
    result.kind = RelayResult::Kind::kDone;
    return result;
  }
  result.kind = RelayResult::Kind::kFailed;
  // Only a transport failure says the node may be down; a node that answered with an HTTP error
  // (an expired reservation, a bad request) is alive and keeps its traffic.
  const bool node_answered_error = http_status != 0 && (http_status < 200 || http_status >= 300);
  result.stream_broke = event_error.ok() && !st.ok() && !node_answered_error;
  result.error = !event_error.ok() ? event_error
                 : !st.ok()        ? st
                                   : absl::UnavailableError(
                                  "decode stream ended without a done event");
  return result;
}

}  // namespace tandem::router::internal
