// kv_store/transfer/tcp_receiver.cc: TcpTransport's receiving side (Listen, the
// accept and reader threads) and Shutdown.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "kv_store/transfer/handshake.h"
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
  absl::Time last_log = absl::InfinitePast();
  int suppressed = 0;
  while (!rx_stop_) {
    std::vector<std::thread> done;
    {
      absl::MutexLock lock(&rx_mu_);
      for (std::thread::id id : finished_readers_) {
        auto it = std::find_if(readers_.begin(), readers_.end(),
                               [id](const std::thread& t) { return t.get_id() == id; });
        if (it == readers_.end()) continue;
        done.push_back(std::move(*it));
        readers_.erase(it);
      }
      finished_readers_.clear();
    }
    for (std::thread& t : done) t.join();

    absl::StatusOr<int> fd = tcp::Accept(listen_fd_, absl::Milliseconds(20));
    if (!fd.ok()) {
      // EMFILE/ENFILE/ENOBUFS persist until something closes: back off instead of spinning, and
      // log at most once a second.
      const absl::Time now = absl::Now();
      if (now - last_log >= absl::Seconds(1)) {
        LOG(WARNING) << "kv transfer accept: " << fd.status()
                     << (suppressed > 0 ? absl::StrCat(" (", suppressed, " more suppressed)")
                                        : std::string());
        last_log = now;
        suppressed = 0;
      } else {
        ++suppressed;
      }
      absl::SleepFor(absl::Milliseconds(50));
      continue;
    }
    if (*fd < 0) continue;
    absl::MutexLock lock(&rx_mu_);
    if (rx_stop_) {
      close(*fd);
      break;
    }
    if (static_cast<int>(reader_fds_.size()) >= options_.max_connections) {
      // Each connection holds a thread: beyond the cap a newcomer is closed at once, and the
      // connections already open (the real senders') keep their threads.
      close(*fd);
      CountRefusal("too_many_connections");
      continue;
    }
    reader_fds_.insert(*fd);
    try {
      readers_.emplace_back([this, f = *fd] { ReaderLoop(f); });
    } catch (const std::system_error& e) {
      // No thread to serve it (the process is at its thread limit): refuse the connection, never
      // terminate the process.
      reader_fds_.erase(*fd);
      close(*fd);
      LOG(WARNING) << "kv transfer accept: cannot start a reader thread: " << e.what();
    }
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
  if (options_.secret != nullptr) {
    const absl::Status s =
        TcpServerHandshake(fd, *options_.secret, absl::Now() + kHandshakeTimeout, stop);
    if (!s.ok()) {
      if (absl::IsUnauthenticated(s)) CountRefusal(std::string(s.message()));
      VLOG(1) << "kv transfer: closing an unauthenticated connection: " << s;
      stream_ok = false;
    }
  }
  ReceiverSession session(options_, listen_.format, sink_, reply);
  // Reads exactly n bytes, never waiting past the earliest open transfer's deadline: when it
  // passes, the expired transfers are failed (freeing their reservations) and the read goes on.
  auto recv = [&](void* data, size_t n) -> absl::Status {
    size_t have = 0;
    while (true) {
      size_t got = 0;
      absl::Status s = tcp::RecvAll(fd, static_cast<char*>(data) + have, n - have,
                                    session.NextDeadline(), stop, &got);
      have += got;
      if (!absl::IsDeadlineExceeded(s)) return s;
      session.ExpireDeadlines(absl::Now());
      if (!stream_ok) return absl::UnavailableError("reply failed");
    }
  };

  while (stream_ok && !rx_stop_) {
    std::array<uint8_t, kFrameHeaderBytes> head;
    // Between transfers the connection may rest, but not forever: each one holds a thread.
    if (session.idle() && !tcp::Readable(fd, options_.idle_timeout)) {
      VLOG(1) << "kv transfer: closing a connection idle for " << options_.idle_timeout;
      break;
    }
    if (!recv(head.data(), head.size()).ok()) break;
    absl::StatusOr<FrameHeader> h = DecodeFrameHeader(head);
    if (!h.ok()) {
      LOG(WARNING) << "kv transfer: closing connection: " << h.status();
      break;
    }
    if (!session.WantsBody(*h)) {
      // A BLOCK of a transfer already NACKed or cancelled: skip it without storing it.
      std::array<char, 64 << 10> scratch;
      uint64_t left = h->body_bytes;
      absl::Status s;
      while (left > 0 && s.ok()) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(left, scratch.size()));
        s = recv(scratch.data(), n);
        left -= n;
      }
      if (!s.ok()) break;
      continue;
    }
    auto body = std::make_shared<Bytes>(h->body_bytes);
    if (h->body_bytes > 0 && !recv(body->data(), h->body_bytes).ok()) break;
    session.OnFrame(*h, std::move(body));
  }
  const absl::Status lost =
      rx_stop_ ? absl::UnavailableError("receiver shutting down mid-transfer")
               : absl::UnavailableError("connection to the sender lost mid-transfer");
  session.OnLost(lost);
  {
    absl::MutexLock lock(&rx_mu_);
    reader_fds_.erase(fd);
    finished_readers_.push_back(std::this_thread::get_id());
  }
  close(fd);
}

void TcpTransport::CountRefusal(std::string_view reason) {
  if (options_.auth_refusals != nullptr) {
    options_.auth_refusals->Labels({"data", std::string(reason)}).Increment();
  }
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
