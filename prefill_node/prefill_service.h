// prefill_node/prefill_service.h
//
// PrefillService: the prefill node's work (ARCHITECTURE.md §2 steps 4-5, §4.7). Prefill() takes a
// router's PrefillRequest, waits in the FIFO PrefillScheduler for the one ModelRunner, reuses the
// longest prefix of whole KV blocks the node's TieredKvStore holds (never the block with the last
// prompt token, whose logits are needed), computes the rest with the request's attention method,
// samples the first token exactly as runtime::Generate does, stores the prompt's full blocks, ships
// every block of the prompt to the decode node named in the request, and replies once that node
// ACKed. The first token and the KV bytes equal Generate's on the same runner options.
//
// The tier lookups start when the request arrives (TieredKvStore::Prefetch), so they overlap the
// queue. Not done yet: CacheBlend over segments (the prompt is one segment keyed from the root),
// holding the KV after the reply for `resend` (a failed transfer means a new prefill, mostly tier
// hits then), Ingest.
//
// Ownership: owns the loaded model (runner and KV cache, used only by the scheduler's worker
// thread), the KV store and one Transport per transport name (created on first use; it never
// listens). Borrows the MetricsRegistry, which must outlive it. Thread-safe: Prefill blocks its
// caller (an HTTP worker) for queue + compute + transfer; Status, Cancel and Drain may run
// concurrently with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "common/model_format/gguf.h"
#include "common/model_format/model_config.h"
#include "common/node_api.h"
#include "kv_store/tiered_store.h"
#include "kv_store/transfer/transport.h"
#include "prefill_node/metrics.h"
#include "prefill_node/options.h"
#include "prefill_node/scheduler.h"
#include "runtime/loaded_model.h"
#include "runtime/request_checks.h"

namespace tandem::prefill {

// Which request field a validation error is about ("tokens", "sampling.temperature",
// "target.port", ...), for the HTTP error body's `param` and `code`.
using BadField = runtime::BadField;

class PrefillService {
 public:
  // Loads the model (InvalidArgument / NotFound naming the file), creates the runner on
  // options.backend and opens the KV store (FailedPrecondition for a RocksDB path it cannot open).
  static absl::StatusOr<std::unique_ptr<PrefillService>> Create(const PrefillOptions& options,
                                                                MetricsRegistry& metrics);
  ~PrefillService();  // drops queued requests (Unavailable), finishes the running one
  PrefillService(const PrefillService&) = delete;
  PrefillService& operator=(const PrefillService&) = delete;

  // Blocks until the decode node ACKed the request's KV. Errors: InvalidArgument (bad request, see
  // ValidateRequest), ResourceExhausted (queue full), Unavailable (draining, or the KV transfer
  // failed: decode node unreachable, its NACK, a stale epoch, the transfer timeout; the message
  // names the transfer, the original code and the NACK reason), DeadlineExceeded (deadline_ms
  // passed in the queue), Cancelled (Cancel while queued).
  absl::StatusOr<node_api::PrefillReply> Prefill(const node_api::PrefillRequest& request);

  // InvalidArgument naming the field: empty tokens, an id >= vocab, tokens.size() >= the context
  // length (code context_length_exceeded), an unknown sparse_prefill, bad sampling values, a
  // target without host, port or transport. `bad` (optional) receives the field.
  absl::Status ValidateRequest(const node_api::PrefillRequest& request,
                               BadField* bad = nullptr) const;

  // Best effort: drops the request if it is still queued (its Prefill returns Cancelled).
  bool Cancel(std::string_view request_id);

  // Load, KV events since `since_event_seq`, identity and formats for the router's poll.
  node_api::NodeStatus Status(uint64_t since_event_seq) const;

  // Readiness (§8): true from Create until Drain begins.
  bool ready() const { return !draining_.load(); }
  // The shared tiers that are down ("redis", "rocksdb"): the node works without them.
  std::vector<std::string> Degraded() const;

  // Refuses new requests from now on (Unavailable; /ready turns 503). Non-blocking.
  void BeginDrain();
  // BeginDrain, then waits for queued and in-flight requests, flushes the store's write-behind
  // queues and shuts the transports down. Idempotent.
  void Drain();

  const format::ModelConfig& model_config() const { return model_->config(); }
  const KvFormat& kv_format() const { return model_->kv_format(); }
  kv::TieredKvStore& kv_store() { return *store_; }
  const std::string& node_id() const { return options_.node_id; }
  uint64_t epoch() const { return options_.epoch; }

 private:
  // What the worker thread hands back to the request's thread.
  struct Computed {
    int32_t first_token = -1;
    uint64_t rng_state = 0;
    std::vector<kv::KvBlock> blocks;  // every block of the prompt, in order
    int64_t cached_tokens = 0;
    std::string attention_method;
    double attention_density = 1;
    double queue_ms = 0;
    double kv_load_ms = 0;
    double blend_ms = 0;
    node_api::BlendReport blend;
    double prefill_ms = 0;
  };

  PrefillService(const PrefillOptions& options, MetricsRegistry& metrics);
  // Starts the tier lookups of the prompt's reusable blocks (none: an empty future).
  std::shared_future<std::vector<kv::Lookup>> PrefetchReusable(const std::vector<int32_t>& tokens,
                                                               absl::Time deadline);
  // On the worker thread: KV reuse (the prefetched lookups), forward, first sample, export, store.
  absl::StatusOr<Computed> Compute(const node_api::PrefillRequest& request,
                                   const std::shared_future<std::vector<kv::Lookup>>& lookups);
  absl::StatusOr<kernels::SparseConfig> SparseFor(std::string_view method) const;
  // The node's blend options with a request's settings applied; InvalidArgument naming the field.
  absl::StatusOr<runtime::BlendOptions> BlendFor(const node_api::BlendSettings& settings) const;
  // The stored blocks of every document of `request` that lies after `prefix` (documents the
  // prefix covers are exact already), computing and storing the missing ones; counts hits and
  // misses in `report`.
  absl::StatusOr<std::vector<runtime::BlendDocument>> DocumentsFor(
      const node_api::PrefillRequest& request, int32_t prefix, absl::Time deadline,
      node_api::BlendReport& report);
  absl::StatusOr<kv::Transport*> TransportFor(const std::string& name);
  // Node id, epoch and the cluster secret (the data-plane handshake).
  kv::TransportOptions MakeTransportOptions() const;
  // Posts the blocks to the target and waits for the ACK; returns the transfer id's hex. Every
  // failure is Unavailable (ARCHITECTURE.md §9 "Transfer fails": retryable, 503), whatever code
  // the decode node NACKed with: a NotFound (expired reservation) or Aborted (decode node
  // restarted) is about the target, not this request, and the router retries elsewhere.
  absl::Status Ship(const node_api::PrefillRequest& request, const Computed& computed,
                    std::string* transfer_id, int64_t* bytes);

  const PrefillOptions options_;
  PrefillMetrics metrics_;
  // The model, runner and KV cache; used only by the scheduler's worker thread, except the const
  // format and fingerprints.
  std::unique_ptr<runtime::LoadedModel> model_;
  std::unique_ptr<kv::TieredKvStore> store_;

  absl::Mutex transports_mu_;
  std::map<std::string, std::unique_ptr<kv::Transport>> transports_ ABSL_GUARDED_BY(transports_mu_);

  std::atomic<bool> draining_{false};
  absl::Mutex drain_mu_;
  bool drained_ ABSL_GUARDED_BY(drain_mu_) = false;
  mutable absl::Mutex in_flight_mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(in_flight_mu_) = 0;  // Prefill calls past validation

  // Last: its destructor joins the worker, which uses everything above.
  std::unique_ptr<PrefillScheduler> scheduler_;
};

}  // namespace tandem::prefill
