// kv_store/transfer/tcp_transport.cc: the reference transport over TCP sockets.
#include "kv_store/transfer/tcp_transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "glog/logging.h"
#include "kv_store/transfer/handshake.h"
#include "kv_store/transfer/tcp_socket.h"

namespace tandem::kv {
namespace {

// How many finished transfers stay pollable before the oldest are forgotten.
constexpr size_t kMaxFinished = 4096;
// A CANCEL is a courtesy to the receiver; it never holds the sender for long.
constexpr absl::Duration kCancelSendBudget = absl::Milliseconds(100);

absl::Status SendFrame(int fd, const FrameHeader& h, const void* body, absl::Time deadline,
                       const tcp::StopFn& stop) {
  const auto head = EncodeFrameHeader(h);
  absl::Status s = tcp::SendAll(fd, head.data(), head.size(), deadline, stop);
  if (s.ok() && h.body_bytes > 0) s = tcp::SendAll(fd, body, h.body_bytes, deadline, stop);
  return s;
}

struct Frame {
  FrameHeader header;
  std::shared_ptr<Bytes> body;
  std::string_view view() const { return body ? body->view() : std::string_view(); }
};

// `*clean_eof` is set when the peer closed the stream exactly at a frame
// boundary.
absl::StatusOr<Frame> RecvFrame(int fd, absl::Time deadline, const tcp::StopFn& stop,
                                bool* clean_eof = nullptr) {
  std::array<uint8_t, kFrameHeaderBytes> head;
  size_t got = 0;
  absl::Status s = tcp::RecvAll(fd, head.data(), head.size(), deadline, stop, &got);
  if (clean_eof) *clean_eof = !s.ok() && got == 0 && absl::IsUnavailable(s);
  if (!s.ok()) return s;
  absl::StatusOr<FrameHeader> h = DecodeFrameHeader(head);
  if (!h.ok()) return h.status();
  Frame f{*h, nullptr};
  if (h->body_bytes > 0) {
    f.body = std::make_shared<Bytes>(h->body_bytes);
    s = tcp::RecvAll(fd, f.body->data(), h->body_bytes, deadline, stop);
    if (!s.ok()) return s;
  }
  return f;
}

}  // namespace

struct TcpTransport::Outbound {
  TransferHandle handle = 0;
  TransferDesc desc;
  TransferState state = TransferState::kPending;
  absl::Status status;
  std::atomic<bool> cancel{false};
};

TcpTransport::TcpTransport(TransportOptions options) : options_(std::move(options)) {
  sender_ = std::thread([this] { SenderLoop(); });
}

TcpTransport::~TcpTransport() {
  if (!shut_down_) Shutdown(absl::ZeroDuration()).IgnoreError();
}

// ---------------------------------------------------------------------------------------------
// Sender side.

absl::StatusOr<TransferHandle> TcpTransport::Post(TransferDesc desc) {
  TANDEM_RETURN_IF_ERROR(PrepareTransferDesc(desc));
  auto x = std::make_shared<Outbound>();
  x->desc = std::move(desc);
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::UnavailableError("transport is shutting down");
  x->handle = next_handle_++;
  xfers_[x->handle] = x;
  queue_.push_back(x);
  cv_.SignalAll();
  return x->handle;
}

std::pair<TransferState, absl::Status> TcpTransport::Poll(TransferHandle h) {
  absl::MutexLock lock(&mu_);
  auto it = xfers_.find(h);
  if (it == xfers_.end()) {
    return {TransferState::kFailed, absl::NotFoundError(absl::StrCat("transfer handle ", h))};
  }
  return {it->second->state, it->second->status};
}

absl::Status TcpTransport::Wait(TransferHandle h, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = xfers_.find(h);
    if (it == xfers_.end()) return absl::NotFoundError(absl::StrCat("transfer handle ", h));
    const TransferState s = it->second->state;
    if (s == TransferState::kDone) return absl::OkStatus();
    if (s == TransferState::kFailed || s == TransferState::kCancelled) return it->second->status;
    if (cv_.WaitWithDeadline(&mu_, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat("waiting for transfer handle ", h));
    }
  }
}

void TcpTransport::Cancel(TransferHandle h) {
  absl::MutexLock lock(&mu_);
  auto it = xfers_.find(h);
  if (it == xfers_.end()) return;
  Outbound& x = *it->second;
  x.cancel = true;
  if (x.state == TransferState::kPending) {
    // Still queued: the sender thread skips it.
    x.state = TransferState::kCancelled;
    x.status = absl::CancelledError("transfer cancelled before it started");
    finished_.push_back(h);
    cv_.SignalAll();
  }
}

void TcpTransport::Finish(Outbound& x, TransferState state, absl::Status status) {
  absl::MutexLock lock(&mu_);
  if (x.state == TransferState::kCancelled) return;  // cancelled while pending
  x.state = state;
  x.status = std::move(status);
  finished_.push_back(x.handle);
  while (finished_.size() > kMaxFinished) {
    xfers_.erase(finished_.front());
    finished_.pop_front();
  }
  cv_.SignalAll();
}

void TcpTransport::SenderLoop() {
  while (true) {
    std::shared_ptr<Outbound> x;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) break;  // stopping and drained
      x = queue_.front();
      queue_.pop_front();
      if (x->state != TransferState::kPending) continue;  // cancelled while queued
      if (stopping_ && hard_stop_) {
        x->state = TransferState::kFailed;
        x->status = absl::UnavailableError("transport shut down before the transfer started");
        finished_.push_back(x->handle);
        cv_.SignalAll();
        continue;
      }
      x->state = TransferState::kInProgress;
    }
    absl::Status s = RunTransfer(*x);
    if (s.ok()) {
      Finish(*x, TransferState::kDone, s);
    } else if (absl::IsCancelled(s) && x->cancel) {
      Finish(*x, TransferState::kCancelled, std::move(s));
    } else {
      Finish(*x, TransferState::kFailed, std::move(s));
    }
  }
  for (auto& [node, conn] : conns_) close(conn.fd);
  conns_.clear();
}

absl::StatusOr<TcpTransport::Conn*> TcpTransport::ConnFor(const PeerAddress& dst,
                                                          absl::Time deadline) {
  TANDEM_RETURN_IF_ERROR(peer_epochs_.Admit(dst));
  auto it = conns_.find(dst.node_id);
  if (it != conns_.end() && (it->second.epoch != dst.epoch || it->second.host != dst.host ||
                             it->second.port != dst.port || tcp::PeerClosed(it->second.fd))) {
    DropConn(dst.node_id);  // the peer restarted or moved: never reuse the old
                            // process's stream
    it = conns_.end();
  }
  if (it == conns_.end()) {
    absl::StatusOr<int> fd = tcp::Connect(dst.host, dst.port, deadline,
                                             [this] { return hard_stop_.load(); });
    if (!fd.ok()) {
      return absl::Status(fd.status().code(),
                          absl::StrCat("node ", dst.node_id, ": ", fd.status().message()));
    }
    if (options_.secret != nullptr) {
      absl::Status s =
          TcpClientHandshake(*fd, *options_.secret, deadline, [this] { return hard_stop_.load(); });
      if (!s.ok()) {
        close(*fd);
        return absl::Status(s.code(), absl::StrCat("node ", dst.node_id, ": ", s.message()));
      }
    }
    it = conns_.emplace(dst.node_id, Conn{*fd, dst.epoch, dst.host, dst.port}).first;
  }
  return &it->second;
}

void TcpTransport::DropConn(const std::string& node_id) {
  auto it = conns_.find(node_id);
  if (it == conns_.end()) return;
  close(it->second.fd);
  conns_.erase(it);
}

absl::Status TcpTransport::RunTransfer(Outbound& x) {
  const TransferDesc& d = x.desc;
  if (absl::Now() >= d.deadline) return absl::DeadlineExceededError("transfer deadline passed");
  TANDEM_ASSIGN_OR_RETURN(Conn * conn, ConnFor(d.dst, d.deadline));
  const int fd = conn->fd;
  const tcp::StopFn stop = [this] { return hard_stop_.load(); };
  FrameHeader h;
  h.id = d.id;
  h.sender_epoch = options_.epoch;
  h.receiver_epoch = d.dst.epoch;
  const std::string peer =
      absl::StrCat("node ", d.dst.node_id, " at ", d.dst.host, ":", d.dst.port);

  // Any I/O failure leaves the stream mid-frame or dead, so the connection is
  // dropped with it.
  auto io_failed = [&](const absl::Status& s) {
    DropConn(d.dst.node_id);
    if (absl::IsCancelled(s)) return absl::UnavailableError("transport shut down mid-transfer");
    if (absl::IsDeadlineExceeded(s)) return s;
    return absl::UnavailableError(absl::StrCat(peer, ": ", s.message()));
  };
  // Between frames the stream is intact: tell the receiver and keep the
  // connection.
  auto abandon = [&](absl::Status why) {
    FrameHeader c = h;
    c.type = FrameType::kCancel;
    c.body_bytes = 0;
    if (!SendFrame(fd, c, nullptr, absl::Now() + kCancelSendBudget, stop).ok()) {
      DropConn(d.dst.node_id);
    }
    return why;
  };
  // A reply for this transfer: OK for ACK, the reason for NACK. Replies to
  // older transfers (e.g. one cancelled after its END) are skipped.
  auto read_reply = [&](absl::Time until) -> absl::StatusOr<std::optional<absl::Status>> {
    absl::StatusOr<Frame> f = RecvFrame(fd, until, stop);
    if (!f.ok()) return f.status();
    if (!(f->header.id == d.id)) return std::optional<absl::Status>();
    if (f->header.type != FrameType::kAck && f->header.type != FrameType::kNack) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected ", AV(FrameTypeName(f->header.type)), " from receiver"));
    }
    if (f->header.type == FrameType::kAck) return std::optional<absl::Status>(absl::OkStatus());
    absl::StatusOr<Reply> r = DecodeReplyBody(f->view());
    if (!r.ok()) return r.status();
    if (r->reason == "stale_epoch") {
      DropConn(d.dst.node_id);
      return std::optional<absl::Status>(
          absl::AbortedError(absl::StrCat("peer epoch changed: ", r->status.message())));
    }
    absl::Status nack = r->status.ok() ? absl::InternalError("NACK with code OK") : r->status;
    return std::optional<absl::Status>(absl::Status(
        nack.code(), absl::StrCat("NACK ", r->reason, " from ", peer, ": ", nack.message())));
  };
  // A NACK may arrive before END (bad block, rejected BEGIN): stop sending at
  // once.
  auto early_reply = [&]() -> std::optional<absl::Status> {
    while (tcp::Readable(fd)) {
      absl::StatusOr<std::optional<absl::Status>> r = read_reply(d.deadline);
      if (!r.ok()) return io_failed(r.status());
      if (r->has_value()) {
        if ((*r)->ok()) return absl::InternalError(absl::StrCat("ACK before END from ", peer));
        return **r;
      }
    }
    return std::nullopt;
  };

  const std::string begin = EncodeBeginBody(d.meta, d.reservation);
  h.type = FrameType::kBegin;
  h.body_bytes = begin.size();
  if (absl::Status s = SendFrame(fd, h, begin.data(), d.deadline, stop); !s.ok()) {
    return io_failed(s);
  }
  for (const KvBlock& b : d.blocks) {
    if (auto r = early_reply()) return *r;
    if (x.cancel) return abandon(absl::CancelledError("transfer cancelled"));
    if (absl::Now() >= d.deadline) {
      return abandon(absl::DeadlineExceededError("transfer deadline passed"));
    }
    h.type = FrameType::kBlock;
    h.body_bytes = b.size();
    if (absl::Status s = SendFrame(fd, h, b.bytes().data(), d.deadline, stop); !s.ok()) {
      return io_failed(s);
    }
  }
  if (auto r = early_reply()) return *r;
  const std::string end = EncodeEndBody(d.blocks.size());
  h.type = FrameType::kEnd;
  h.body_bytes = end.size();
  if (absl::Status s = SendFrame(fd, h, end.data(), d.deadline, stop); !s.ok()) {
    return io_failed(s);
  }
  // Wait for the ACK in short slices so a Cancel is seen.
  while (true) {
    if (x.cancel) return absl::CancelledError("transfer cancelled while waiting for ACK");
    const absl::Duration left = d.deadline - absl::Now();
    if (!tcp::Readable(fd, std::clamp(left, absl::ZeroDuration(), absl::Milliseconds(20)))) {
      if (absl::Now() >= d.deadline) {
        DropConn(d.dst.node_id);
        return absl::DeadlineExceededError(absl::StrCat("no ACK from ", peer, " by the deadline"));
      }
      if (hard_stop_) return io_failed(absl::CancelledError("stopped"));
      continue;
    }
    absl::StatusOr<std::optional<absl::Status>> r = read_reply(d.deadline);
    if (!r.ok()) return io_failed(r.status());
    if (r->has_value()) return **r;
  }
}

void TcpTransport::RefusePosts() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (auto& x : queue_) {
    if (x->state != TransferState::kPending) continue;
    x->state = TransferState::kFailed;
    x->status = absl::UnavailableError("transport shut down before the transfer started");
    finished_.push_back(x->handle);
  }
  queue_.clear();
  cv_.SignalAll();
}

void TcpTransport::ShutdownSender(absl::Duration grace) {
  // Sender: refuse new posts, give the one in flight `grace`, then stop it.
  RefusePosts();
  {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      for (const auto& [h, x] : xfers_) {
        if (x->state == TransferState::kInProgress) return false;
      }
      return true;
    };
    mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
  }
  hard_stop_ = true;
  {
    absl::MutexLock lock(&mu_);
    cv_.SignalAll();
  }
  if (sender_.joinable()) sender_.join();
}

}  // namespace tandem::kv
