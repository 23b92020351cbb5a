// decode_node/decode_service.h
//
// DecodeService: the decode node (ARCHITECTURE.md §2 steps 3, 5, 6; §4.7). It owns the model (a
// runtime::LoadedModel: runner and KV cache), the engine (Batcher) that alone drives them, the
// reservation table that admits requests and receives their KV, and the data-plane Transport
// listening for prefill nodes. The HTTP layer (http_api.h) is a thin adapter over these calls.
//
// A request's life: Reserve() holds room; the prefill node ships the prompt's KV to the
// reservation over the transport; StartDecode() claims the reservation and RunDecode() waits for
// the transfer, hands the KV to the engine and streams the events (tokens, then done or error) to
// a sink until the request stops, reaches max_tokens or is cancelled; the reservation is freed as
// the stream ends.
//
// Thread-safe: every method may be called from any thread (HTTP workers); RunDecode blocks for the
// stream's life. The destructor (or Shutdown) stops the transport and the engine.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "common/model_format/gguf.h"
#include "common/node_api.h"
#include "decode_node/batcher.h"
#include "decode_node/metrics.h"
#include "decode_node/options.h"
#include "decode_node/reservations.h"
#include "kv_store/transfer/transport.h"
#include "runtime/loaded_model.h"

namespace tandem::decode {

// Writes one event to the client; false when the client is gone (the request is then cancelled).
using DecodeEventSink = std::function<bool(const node_api::DecodeEvent& event)>;

// A claimed reservation between StartDecode and RunDecode. It holds the reservation's lease until
// RunDecode frees the room or hands the lease to the engine; destroying it without RunDecode
// releases the reservation. Not thread-safe.
class DecodeCall {
 public:
  DecodeCall(const DecodeCall&) = delete;
  DecodeCall& operator=(const DecodeCall&) = delete;
  const node_api::DecodeRequest& request() const { return request_; }

 private:
  friend class DecodeService;
  DecodeCall(node_api::DecodeRequest request, Claim claim, ReservationLease lease)
      : request_(std::move(request)), claim_(std::move(claim)), lease_(std::move(lease)) {}

  node_api::DecodeRequest request_;
  Claim claim_;
  ReservationLease lease_;
};

class DecodeService {
 public:
  // Opens the model, builds the runner and the KV pool (options.model.kv), starts
  // the engine and listens on the data plane. `metrics` is borrowed and must outlive the
  // service. NotFound for a missing model file, InvalidArgument for bad options, Unavailable
  // when the data port is taken.
  static absl::StatusOr<std::unique_ptr<DecodeService>> Create(const DecodeOptions& options,
                                                               MetricsRegistry* metrics);
  ~DecodeService();
  DecodeService(const DecodeService&) = delete;
  DecodeService& operator=(const DecodeService&) = delete;

  // See ReservationTable::Reserve; the reply names this node's data plane.
  absl::StatusOr<node_api::ReserveReply> Reserve(const node_api::ReserveRequest& req);

  // Validates the request and claims its reservation, without blocking: InvalidArgument for bad
  // fields (first_token outside the vocabulary, max_tokens < 1 or beyond the reservation,
  // sampling out of range), NotFound for an unknown or expired reservation, FailedPrecondition
  // when it is already claimed. The errors a caller answers before any stream starts.
  absl::StatusOr<std::unique_ptr<DecodeCall>> StartDecode(const node_api::DecodeRequest& req);
  // Streams the call's events into `sink` and returns once the terminal event (done or error) was
  // written or the sink failed. Waits up to the request's deadline_ms for the KV transfer (then
  // error 503/504, retryable). Releases the reservation.
  void RunDecode(DecodeCall& call, const DecodeEventSink& sink);
  // StartDecode + RunDecode; a StartDecode error is returned, otherwise OK once streamed.
  absl::Status Decode(const node_api::DecodeRequest& req, const DecodeEventSink& sink);

  // Best effort; NotFound for an unknown reservation (already finished or never made).
  absl::Status Cancel(const node_api::CancelRequest& req);

  // `since` is accepted for the protocol; the decode node has no KV events.
  node_api::NodeStatus Status(uint64_t since);
  bool ready() const { return !reservations_.draining(); }
  // Refuses new reservations; running and already reserved requests go on.
  void Drain() { reservations_.StartDraining(); }
  // Blocks until every reservation has ended or `deadline`; true when none is left.
  bool WaitDrained(absl::Time deadline) { return reservations_.WaitEmpty(deadline); }
  // Stops the data plane and the engine (unfinished streams end with an error) and wakes every
  // decode call still waiting for its transfer (503), so an HTTP server stopped next does not wait
  // for their deadlines. Idempotent.
  void Shutdown();

  uint16_t data_port() const { return data_port_; }
  const std::string& node_id() const { return options_.node_id; }
  const KvFormat& kv_format() const { return model_->kv_format(); }
  const format::ModelConfig& model_config() const { return model_->config(); }
  // Decode steps the engine has run so far (for tests and diagnostics).
  int64_t engine_steps() const { return batcher_->steps(); }

 private:
  explicit DecodeService(const DecodeOptions& options, MetricsRegistry* metrics,
                         const ReservationLimits& limits);

  const DecodeOptions options_;
  DecodeMetrics metrics_;
  // Node id, epoch, the cluster secret (the data-plane handshake) and where refusals are counted.
  kv::TransportOptions MakeTransportOptions();
  ReservationTable reservations_;
  std::unique_ptr<runtime::LoadedModel> model_;  // its runner and cache: the batcher's alone
  std::unique_ptr<Batcher> batcher_;
  std::unique_ptr<kv::Transport> transport_;
  uint16_t data_port_ = 0;
};

}  // namespace tandem::decode
