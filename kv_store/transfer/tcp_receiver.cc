// kv_store/transfer/tcp_receiver.cc: TcpTransport's receiving side (Listen, the
// accept and reader threads) and Shutdown.
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "kv_store/transfer/receiver_session.h"
#include "kv_store/transfer/tcp_socket.h"
#include "kv_store/transfer/tcp_transport.h"

namespace tandem::kv {
namespace {

// A frame header we cannot decode leaves the stream unframed: the connection is
// closed. Replies are small and the sender reads them promptly; a sender that
// stops reading is dead.
constexpr absl::Duration kReplyBudget = absl::Seconds(5);

}  // namespace

absl::StatusOr<uint16_t> TcpTransport::Listen(const ListenOptions& o, TransferSink* sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("Listen: sink is null");
  if (absl::Status s = o.format.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("Listen: format: ", s.message()));
  }
  if (listen_fd_ >= 0) return absl::FailedPreconditionError("Listen: already listening");
  absl::StatusOr<std::pair<int, uint16_t>> l = tcp::Listen(o.host, o.port);
  if (!l.ok()) return l.status();
  listen_ = o;
  sink_ = sink;
  listen_fd_ = l->first;
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return l->second;
}

void TcpTransport::AcceptLoop() {
  while (!rx_stop_) {
    absl::StatusOr<int> fd = tcp::Accept(listen_fd_, absl::Milliseconds(20));
    if (!fd.ok()) {
      LOG(WARNING) << "kv transfer accept: " << fd.status();
      continue;
    }
    if (*fd < 0) continue;
    absl::MutexLock lock(&rx_mu_);
    if (rx_stop_) {
      close(*fd);
      break;
    }
    reader_fds_.insert(*fd);
    readers_.emplace_back([this, f = *fd] { ReaderLoop(f); });
  }
}

void TcpTransport::ReaderLoop(int fd) {
  const tcp::StopFn stop = [this] { return rx_stop_.load(); };
  bool stream_ok = true;
  auto reply = [&](const FrameHeader& in, const absl::Status& status, std::string_view reason) {
    FrameHeader h;
    h.type = status.ok() ? FrameType::kAck : FrameType::kNack;
    h.id = in.id;
    h.sender_epoch = options_.epoch;
    h.receiver_epoch = in.sender_epoch;
    const std::string body = EncodeReplyBody(status, reason);
    h.body_bytes = body.size();
    const auto head = EncodeFrameHeader(h);
    absl::Status s = tcp::SendAll(fd, head.data(), head.size(), absl::Now() + kReplyBudget, stop);
    if (s.ok()) s = tcp::SendAll(fd, body.data(), body.size(), absl::Now() + kReplyBudget, stop);
    if (!s.ok()) stream_ok = false;
  };
  ReceiverSession session(options_, listen_.format, sink_, reply);

  while (stream_ok && !rx_stop_) {
    std::array<uint8_t, kFrameHeaderBytes> head;
    size_t got = 0;
    absl::Status s = tcp::RecvAll(fd, head.data(), head.size(), absl::InfiniteFuture(), stop, &got);
    if (!s.ok()) break;
    absl::StatusOr<FrameHeader> h = DecodeFrameHeader(head);
    if (!h.ok()) {
      LOG(WARNING) << "kv transfer: closing connection: " << h.status();
      break;
    }
    auto body = std::make_shared<Bytes>(h->body_bytes);
    if (h->body_bytes > 0) {
      s = tcp::RecvAll(fd, body->data(), h->body_bytes, absl::InfiniteFuture(), stop);
      if (!s.ok()) break;
    }
    session.OnFrame(*h, std::move(body));
  }
  const absl::Status lost =
      rx_stop_ ? absl::UnavailableError("receiver shutting down mid-transfer")
               : absl::UnavailableError("connection to the sender lost mid-transfer");
  session.OnLost(lost);
  {
    absl::MutexLock lock(&rx_mu_);
    reader_fds_.erase(fd);
  }
  close(fd);
}

absl::Status TcpTransport::Shutdown(absl::Duration grace) {
  if (shut_down_) return absl::OkStatus();
  shut_down_ = true;
  rx_stop_ = true;
  RefusePosts();
  // Receiver: stop accepting, wake every reader (shutdown() makes the peer see
  // the close at once; each reader closes its own fd so no fd number is reused
  // under it).
  rx_stop_ = true;
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  std::vector<std::thread> readers;
  {
    absl::MutexLock lock(&rx_mu_);
    for (int fd : reader_fds_) shutdown(fd, SHUT_RDWR);
    readers.swap(readers_);
  }
  for (std::thread& t : readers) t.join();

  ShutdownSender(grace);
  return absl::OkStatus();
}

}  // namespace tandem::kv
