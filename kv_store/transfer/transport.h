// kv_store/transfer/transport.h
//
// Transport moves one request's KV blocks from a prefill node to a decode node
// (ARCHITECTURE.md §4.6): Post() queues a TransferDesc and never blocks; the
// transfer is kDone only after the receiver validated every block
// (KvBlock::Parse against its KvFormat and the keys announced in BEGIN) and
// ACKed; any NACK, deadline, peer death or peer epoch change makes it kFailed
// with the reason. The receiving side hands validated blocks to a TransferSink.
// Connections are cached by (node id, epoch): a peer restarted with a new epoch
// is never confused with the old one.
//
// Implementations: TcpTransport (reference, always built) and UcxTransport
// (when UCX is found). Ownership: the transport owns its sockets and threads; a
// TransferSink passed to Listen() must outlive Shutdown(). Thread-safe: every
// method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/kv_key.h"
#include "common/metrics.h"
#include "kv_store/kv_block.h"

namespace tandem::kv {

struct TransferId {
  std::array<uint8_t, 16> bytes{};

  static TransferId Random();
  std::string Hex() const;
  bool operator==(const TransferId&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const TransferId& id) {
    return H::combine_contiguous(std::move(h), id.bytes.data(), id.bytes.size());
  }
};

using ReservationId = uint64_t;

// The receiver as the sender knows it. `epoch` is the receiver's process epoch
// from the router's registry; a receiver whose epoch differs NACKs
// `stale_epoch`.
struct PeerAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string node_id;
  uint64_t epoch = 0;
};

struct TransferMeta {
  TransferId id;
  std::string request_id;
  int32_t first_token = -1;
  uint32_t block_count = 0;
  uint64_t total_bytes = 0;
  // The keys the receiver validates BLOCK i against, in order (the router knows
  // them from the segmenter and the sink checks them against its reservation in
  // OnBegin).
  std::vector<BlockKey> keys;
  // The receiver's view of the sender's deadline: BEGIN carries the time left
  // when it was sent (less a margin of 20%, at most 100 ms, so the receiver
  // gives up first), so both sides agree without comparing clocks. A transfer
  // whose END arrives after it is NACKed `deadline` and never completes on the
  // receiver.
  absl::Time deadline = absl::InfiniteFuture();
  // The reservation's transfer token (issued by the receiver at reserve time, carried by the
  // router to the sender); the receiver refuses a BEGIN whose token does not match.
  std::string transfer_token{};
};

struct TransferDesc {
  TransferId id;
  PeerAddress dst;
  ReservationId reservation = 0;
  TransferMeta meta;            // id, block_count, total_bytes and keys are filled in by Post()
  std::vector<KvBlock> blocks;  // in order; every block checks itself
  absl::Time deadline = absl::InfinitePast();  // mandatory: InfinitePast is rejected
};

enum class TransferState { kPending, kInProgress, kDone, kFailed, kCancelled };
std::string_view TransferStateName(TransferState s);

// Receiver side; the decode node implements it. Callbacks for one connection
// come from one thread, in frame order. OnEnd is called exactly once for every
// transfer whose OnBegin returned OK: OK after the ACK is sent, otherwise the
// reason (bad block, cancel, sender gone, shutdown).
class TransferSink {
 public:
  virtual ~TransferSink() = default;
  virtual absl::Status OnBegin(const TransferMeta& meta,
                               ReservationId r) = 0;  // error -> NACK
  virtual absl::Status OnBlock(const TransferId& id,
                               KvBlock block) = 0;  // already validated
  virtual void OnEnd(const TransferId& id, const absl::Status& status) = 0;
};

struct TransportOptions {
  TransportOptions() = default;
  TransportOptions(std::string node, uint64_t process_epoch)
      : node_id(std::move(node)), epoch(process_epoch) {}

  std::string node_id = "local";
  uint64_t epoch = 1;  // this process's epoch, sent in every frame
  // When set, every connection starts with the mutual handshake of transfer/handshake.h: the
  // sender ships only to a receiver holding this secret, the receiver reads frames only from a
  // sender holding it. nullptr: no handshake (a loopback-only cluster without a secret).
  std::shared_ptr<const ClusterSecret> secret{};
  // tandem_auth_refusals_total (labels plane, reason), counted with plane "data"; may be null.
  CounterFamily* auth_refusals = nullptr;
  // Receiver limits. Connections beyond max_connections are closed at accept (each holds a
  // thread); a connection with no open transfer is closed after idle_timeout (the sender reconnects
  // when it next needs one).
  int max_connections = 64;
  absl::Duration idle_timeout = absl::Seconds(60);
};

struct ListenOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port; Listen() returns the bound one
  KvFormat format;    // every received block is validated against it
};

using TransferHandle = uint64_t;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string_view Name() const = 0;  // "tcp" | "ucx"
  virtual absl::StatusOr<uint16_t> Listen(const ListenOptions& o, TransferSink* sink) = 0;
  // Never blocks. InvalidArgument for a desc without a deadline or with empty
  // blocks.
  virtual absl::StatusOr<TransferHandle> Post(TransferDesc desc) = 0;
  // kDone only after the receiver's ACK; kFailed carries the NACK reason or the
  // local error. NotFound for an unknown handle.
  virtual std::pair<TransferState, absl::Status> Poll(TransferHandle h) = 0;
  // The transfer's final status (OK once kDone); DeadlineExceeded if `deadline`
  // passes first.
  virtual absl::Status Wait(TransferHandle h, absl::Time deadline) = 0;
  virtual void Cancel(TransferHandle h) = 0;  // best effort: keep polling until terminal
  // Stops listening, closes every connection (open inbound transfers end with
  // Unavailable, open outbound ones fail with Unavailable) and joins the
  // threads, waiting up to `grace` for outbound transfers already in flight.
  virtual absl::Status Shutdown(absl::Duration grace) = 0;
};

// "tcp", or "ucx" when built with UCX; InvalidArgument naming any other name,
// Unimplemented for "ucx" in a build without it.
absl::StatusOr<std::unique_ptr<Transport>> NewTransport(std::string_view name,
                                                        const TransportOptions& options);
// The `reason` label of tandem_kv_transfer_failures_total for a failed transfer, from its Status
// code (never its message, so the label set stays bounded): unavailable, deadline, aborted (stale
// epoch), cancelled, rejected (the receiver NACKed: bad block, unknown reservation, ...), other.
std::string_view TransferFailureReason(const absl::Status& status);
// Every value TransferFailureReason returns, so the failure counters start at 0 for each.
inline constexpr std::string_view kTransferFailureReasons[] = {"unavailable", "deadline", "aborted",
                                                               "cancelled",   "rejected", "other"};

// The transports this build has, "tcp" first.
std::vector<std::string> AvailableTransports();

// ---- Shared by the Transport implementations (so TCP and UCX accept and refuse the same). ----

// Post()'s checks (a deadline, at least one non-empty block, a destination port) and the derived
// TransferMeta fields (id, block count, total bytes, keys, deadline). InvalidArgument naming the
// field.
absl::Status PrepareTransferDesc(TransferDesc& desc);

// The newest epoch seen per peer node. Not thread-safe: the owning transport's lock guards it.
class PeerEpochs {
 public:
  // kAborted "peer epoch changed" for an epoch older than one already seen; otherwise records it.
  absl::Status Admit(const PeerAddress& dst);

 private:
  absl::flat_hash_map<std::string, uint64_t> newest_;
};

}  // namespace tandem::kv
