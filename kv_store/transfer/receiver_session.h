// kv_store/transfer/receiver_session.h
//
// ReceiverSession: the receiving half of the §5.3 protocol for one inbound connection, shared by
// every transport so they validate identically. It takes decoded frames in stream order, checks
// the receiver epoch (NACK stale_epoch), decodes BEGIN and asks the sink (error -> NACK), validates
// every BLOCK with KvBlock::Parse against the listener's KvFormat and the key BEGIN announced for
// that position (failure -> NACK with the miss reason, never delivered), enforces the receiver-side
// deadline, ACKs a complete END, and ends the transfer on CANCEL. Replies go out through the
// transport's ReplyFn. OnLost() ends every open transfer with the given status.
//
// Not thread-safe: one session per connection, driven by one thread at a time. The sink must
// outlive the session.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/kv_key.h"
#include "kv_store/kv_block.h"
#include "kv_store/transfer/frame.h"
#include "kv_store/transfer/transport.h"

namespace tandem::kv {

class ReceiverSession {
 public:
  // Sends an ACK (OK status) or NACK for the transfer of `in`.
  using ReplyFn = std::function<void(const FrameHeader& in, const absl::Status& status,
                                     std::string_view reason)>;

  ReceiverSession(const TransportOptions& options, const KvFormat& format, TransferSink* sink,
                  ReplyFn reply);

  void OnFrame(const FrameHeader& h, std::shared_ptr<Bytes> body);
  // The connection is gone: every open transfer ends with `status`.
  void OnLost(const absl::Status& status);
  // False for a BLOCK of a transfer that is not open (NACKed, cancelled or never begun): the
  // transport reads and discards its body instead of storing it.
  bool WantsBody(const FrameHeader& h) const;
  // No transfer is open on this connection.
  bool idle() const { return open_.empty(); }
  // The earliest deadline of an open transfer (InfiniteFuture when none): the transport waits for
  // the next frame no longer than this, so a silent sender cannot hold a reservation forever.
  absl::Time NextDeadline() const;
  // NACKs and ends (DeadlineExceeded) every open transfer whose deadline is at or before `now`.
  void ExpireDeadlines(absl::Time now);

 private:
  struct Inbound {
    TransferMeta meta;
    uint64_t sender_epoch = 0;
    uint32_t received = 0;
  };
  // `remember` adds the id to dead_; a stale-epoch NACK does not, so the sender may retry the
  // same transfer id at the right epoch.
  void Fail(const FrameHeader& in, const absl::Status& status, std::string_view reason,
            bool remember = true);

  const TransportOptions options_;
  const KvFormat format_;
  TransferSink* const sink_;
  const ReplyFn reply_;
  absl::flat_hash_map<TransferId, Inbound> open_;
  // Transfers already NACKed or cancelled: a repeated BEGIN for them is a protocol error.
  absl::flat_hash_set<TransferId> dead_;
};

}  // namespace tandem::kv
