// decode_node/reservations.h
//
// ReservationTable: the decode node's admission control and the receiving end of the KV data
// plane (ARCHITECTURE.md §2 steps 3, 5, 6). A reservation holds room for prompt + max_tokens KV
// tokens (counted in whole KV pages, so the engine's PagedKvCache::Reserve can never fail for an
// admitted request) and one sequence slot; Reserve() refuses with ResourceExhausted when either
// would be exceeded. An unclaimed reservation expires at its deadline and frees its room; a decode
// call claims it, which stops the clock, and releases it when its stream ends.
//
// Expiry clock (agrees with the router, which reserves with deadline_ms = now + its prefill
// timeout + control timeout, 305 s by default): before its transfer starts, a reservation lives
// until min(deadline_ms, now + ttl); while the transfer is arriving it lives until the transfer's
// own deadline (the transport ends the transfer then, calling OnEnd), capped at a ttl from BEGIN
// so a BEGIN without a deadline cannot hold the room forever, plus 2 s; when it ends, OK or
// failed, the clock restarts at now + ttl, so a long prefill never costs the decode call its KV
// and a failed transfer leaves a full ttl for a resend. Only an orphan (nobody ever claims or
// cancels it, e.g. the router died) is dropped, ttl after its transfer ended.
//
// As the TransferSink it keeps the blocks of a reservation's transfer in host memory, in order,
// until the decode call takes them (AwaitTransfer) and hands them to the engine thread: transport
// threads never touch the model runner.
//
// Thread-safe: HTTP handlers, transport threads and the engine thread call in concurrently;
// AwaitTransfer and WaitEmpty block up to their deadlines, everything else returns at once.
// Expiry is lazy: every call that looks at the table first drops what has expired.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/node_api.h"
#include "decode_node/metrics.h"
#include "decode_node/reservation_lease.h"
#include "kv_store/kv_block.h"
#include "kv_store/transfer/transport.h"

namespace tandem::decode {

// What the decode service derives from its options and its KV cache (no defaults of its own: the
// service fills every field).
struct ReservationLimits {
  int32_t max_seqs = 0;          // sequence slots
  int64_t capacity_pages = 0;    // KV allocation units of the pool (pages)
  int32_t page_tokens = 0;       // tokens per unit
  int64_t context_length = 0;    // the model's; prompt + max_tokens may not exceed it
  // Longest an unclaimed reservation waits for its transfer, and how long it is kept after the
  // transfer ended (see the expiry clock above).
  absl::Duration ttl = absl::ZeroDuration();
};

// What a decode call takes over once its reservation's transfer has completed.
struct ReceivedKv {
  std::vector<kv::KvBlock> blocks;  // in position order, covering positions [0, prompt_len)
  int32_t prompt_len = 0;
  int32_t first_token = -1;         // as BEGIN announced it
  std::string transfer_id;          // hex
  absl::Time completed_at;          // when OnEnd(OK) ran, after the ACK: start of decode_queue
};

struct Reserved {
  uint64_t id = 0;  // random (62 bits), so no caller can guess another request's reservation
  std::string transfer_token;  // what the sender's BEGIN must carry (hex, 128 random bits)
  absl::Time expires;
};

// The part of a reservation a claiming decode call keeps.
struct Claim {
  uint64_t id = 0;
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  // Set by Cancel() or by the stream when its client is gone; the engine drops the sequence.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

struct ReservationLoad {
  int64_t queued_tokens = 0;  // KV tokens reserved by requests not yet in the batch
  int64_t waiting = 0;        // claimed by a decode call, not yet running
  int64_t running = 0;        // handed to the engine
  int64_t reservations = 0;
  double kv_free_ratio = 1;   // 1 - reserved pages / pool pages
};

class ReservationTable final : public kv::TransferSink {
 public:
  // `metrics` is borrowed and must outlive the table.
  ReservationTable(const ReservationLimits& limits, DecodeMetrics* metrics);

  // A new reservation expiring at min(req.deadline_ms, now + ttl) (now + ttl when deadline_ms is
  // 0) unless its transfer starts first. InvalidArgument for non-positive counts, OutOfRange when
  // prompt_tokens, max_tokens or their sum exceed the context length (each is checked alone first,
  // so values near INT64_MAX cannot wrap), Unavailable while draining or closed,
  // ResourceExhausted "decode node overloaded: ..." when slots or KV pages would be exceeded.
  absl::StatusOr<Reserved> Reserve(const node_api::ReserveRequest& req);

  // A decode call takes reservation `id`: NotFound when unknown or expired, FailedPrecondition
  // when another call already claimed it, Unavailable once closed.
  absl::StatusOr<Claim> ClaimForDecode(uint64_t id);
  // Blocks until the claimed reservation's transfer completed (its blocks are moved out), failed
  // (Unavailable with the reason), was cancelled (Cancelled), the table was closed (Unavailable),
  // or `deadline` passed (DeadlineExceeded).
  absl::StatusOr<ReceivedKv> AwaitTransfer(uint64_t id, absl::Time deadline);
  // The claimed reservation's sequence joined the engine (for the waiting/running load).
  void MarkRunning(uint64_t id);
  // The lease that frees reservation `id`'s room when released or dropped: what a claiming decode
  // call holds and hands to the engine. The table must outlive it.
  ReservationLease Lease(uint64_t id);
  // Best effort: an unclaimed reservation is released; a claimed one is flagged cancelled (its
  // transfer wait returns, its sequence leaves the batch at the next step). NotFound if unknown.
  absl::Status Cancel(uint64_t id);

  // Refuse new reservations from now on; existing ones may still be claimed.
  void StartDraining();
  bool draining() const;
  // Shutdown: drains, refuses claims, and wakes every AwaitTransfer at once (Unavailable), so
  // the HTTP threads blocked in it return before the server stops. Idempotent.
  void Close();
  // Blocks until no reservation is left or `deadline`; true when empty.
  bool WaitEmpty(absl::Time deadline);
  ReservationLoad Load();

  // kv::TransferSink, called on transport threads.
  absl::Status OnBegin(const kv::TransferMeta& meta, kv::ReservationId r) override;
  absl::Status OnBlock(const kv::TransferId& id, kv::KvBlock block) override;
  void OnEnd(const kv::TransferId& id, const absl::Status& status) override;

 private:
  enum class TransferPhase { kAwaiting, kReceiving, kComplete, kFailed };
  struct Reservation {
    std::string request_id;
    int64_t prompt_tokens = 0;
    int64_t max_tokens = 0;
    int64_t pages = 0;
    absl::Time expires;           // while kReceiving: the transfer's deadline (at most now + ttl)
                                  // plus a grace; restarted at now + ttl when the transfer ends
    bool claimed = false;
    bool running = false;
    std::shared_ptr<std::atomic<bool>> cancelled;
    TransferPhase phase = TransferPhase::kAwaiting;
    kv::TransferId transfer;
    std::string transfer_token;
    uint32_t transfer_blocks = 0;  // BEGIN's block count: the last block must complete the prompt
    absl::Status failure;         // kFailed: why
    ReceivedKv kv;                // filled while receiving
  };

  // Frees the reservation's room; only a lease calls it. Unknown ids are ignored.
  void Release(uint64_t id);
  void ExpireLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Reservation* FindByTransferLocked(const kv::TransferId& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReservationLimits limits_;
  DecodeMetrics* const metrics_;
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t pages_used_ ABSL_GUARDED_BY(mu_) = 0;  // free = limits_.capacity_pages - pages_used_
  absl::flat_hash_map<uint64_t, Reservation> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<kv::TransferId, uint64_t> by_transfer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tandem::decode
