// kv_store/transfer/receiver_session.cc: the receiving half of the §5.3 protocol.
#include "kv_store/transfer/receiver_session.h"

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tandem::kv {

ReceiverSession::ReceiverSession(const TransportOptions& options, const KvFormat& format,
                                 TransferSink* sink, ReplyFn reply)
    : options_(options), format_(format), sink_(sink), reply_(std::move(reply)) {}

void ReceiverSession::Fail(const FrameHeader& in, const absl::Status& status,
                           std::string_view reason, bool remember) {
  reply_(in, status, reason);
  if (open_.erase(in.id) > 0) sink_->OnEnd(in.id, status);
  if (remember) dead_.insert(in.id);
}

bool ReceiverSession::WantsBody(const FrameHeader& h) const {
  return h.type != FrameType::kBlock || open_.contains(h.id);
}

absl::Time ReceiverSession::NextDeadline() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, in] : open_) next = std::min(next, in.meta.deadline);
  return next;
}

void ReceiverSession::ExpireDeadlines(absl::Time now) {
  std::vector<FrameHeader> expired;
  for (const auto& [id, in] : open_) {
    if (in.meta.deadline > now) continue;
    FrameHeader h;
    h.type = FrameType::kBegin;
    h.id = id;
    h.sender_epoch = in.sender_epoch;
    h.receiver_epoch = options_.epoch;
    expired.push_back(h);
  }
  for (const FrameHeader& h : expired) {
    Fail(h, absl::DeadlineExceededError("transfer deadline passed on the receiver"), "deadline");
  }
}

void ReceiverSession::OnFrame(const FrameHeader& h, std::shared_ptr<Bytes> body) {
  const TransferId id = h.id;
  switch (h.type) {
    case FrameType::kBegin: {
      if (h.receiver_epoch != options_.epoch) {
        Fail(h,
             absl::AbortedError(absl::StrCat("receiver ", options_.node_id, " is at epoch ",
                                             options_.epoch, ", not ", h.receiver_epoch)),
             "stale_epoch", /*remember=*/false);
        break;
      }
      if (open_.contains(id) || dead_.contains(id)) {
        Fail(h, absl::InvalidArgumentError("duplicate BEGIN"), "protocol");
        break;
      }
      Inbound in;
      ReservationId r = 0;
      if (absl::Status b = DecodeBeginBody(body->view(), &in.meta, &r); !b.ok()) {
        Fail(h, b, "protocol");
        break;
      }
      in.meta.id = id;
      in.sender_epoch = h.sender_epoch;
      if (absl::Status b = sink_->OnBegin(in.meta, r); !b.ok()) {
        Fail(h, b, "rejected");
        break;
      }
      open_.emplace(id, std::move(in));
      break;
    }
    case FrameType::kBlock: {
      auto it = open_.find(id);
      if (it == open_.end()) break;  // NACKed or unknown: drop
      Inbound& in = it->second;
      if (in.received >= in.meta.keys.size()) {
        Fail(h, absl::InvalidArgumentError("more BLOCKs than BEGIN announced"), "protocol");
        break;
      }
      absl::StatusOr<KvBlock> b =
          KvBlock::Parse(std::move(body), format_, in.meta.keys[in.received]);
      if (!b.ok()) {
        const std::optional<MissReason> why = MissReasonOf(b.status());
        Fail(h,
             absl::DataLossError(absl::StrCat("block ", in.received, ": ", b.status().message())),
             why ? MissReasonName(*why) : "header");
        break;
      }
      if (absl::Now() > in.meta.deadline) {
        Fail(h, absl::DeadlineExceededError("transfer deadline passed on the receiver"),
             "deadline");
        break;
      }
      ++in.received;
      if (absl::Status o = sink_->OnBlock(id, *std::move(b)); !o.ok()) Fail(h, o, "rejected");
      break;
    }
    case FrameType::kEnd: {
      auto it = open_.find(id);
      if (it == open_.end()) {
        dead_.erase(id);
        break;
      }
      absl::StatusOr<uint64_t> n = DecodeEndBody(body->view());
      if (!n.ok() || *n != it->second.received || *n != it->second.meta.block_count) {
        Fail(h,
             absl::DataLossError(absl::StrCat("END after ", it->second.received, " of ",
                                              it->second.meta.block_count, " blocks")),
             "incomplete");
        break;
      }
      if (absl::Now() > it->second.meta.deadline) {
        Fail(h, absl::DeadlineExceededError("transfer deadline passed on the receiver"),
             "deadline");
        break;
      }
      reply_(h, absl::OkStatus(), "ok");
      open_.erase(it);
      sink_->OnEnd(id, absl::OkStatus());
      break;
    }
    case FrameType::kCancel:
      if (open_.erase(id) > 0) sink_->OnEnd(id, absl::CancelledError("sender cancelled"));
      dead_.erase(id);
      break;
    case FrameType::kAck:
    case FrameType::kNack:
      break;  // replies never flow towards a receiver; ignore
  }
}

void ReceiverSession::OnLost(const absl::Status& status) {
  for (auto& [id, in] : open_) sink_->OnEnd(id, status);
  open_.clear();
  dead_.clear();
}

}  // namespace tandem::kv
