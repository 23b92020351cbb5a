// kv_store/transfer/tcp_socket.cc: deadline-aware socket I/O for TcpTransport.
#include "kv_store/transfer/tcp_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace tandem::kv::tcp {
namespace {

// The longest one poll() sleeps, so `stop` is seen promptly.
constexpr int kSliceMs = 20;

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void Configure(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

absl::StatusOr<sockaddr_in> Resolve(const std::string& host, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  const std::string h = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, h.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("host '", host, "' is not an IPv4 address"));
  }
  return addr;
}

// Waits for `events` on fd; OK when ready, else the deadline/stop status.
absl::Status WaitFor(int fd, short events, absl::Time deadline, const StopFn& stop) {
  while (true) {
    if (stop && stop()) return absl::CancelledError("stopped");
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration())
      return absl::DeadlineExceededError("transfer deadline passed");
    // Compared as durations: with no transfer open the deadline is InfiniteFuture, and
    // ToInt64Milliseconds(infinity) + 1 overflows to a poll timeout of 0, a busy loop that took a
    // whole core from every idle decode node.
    const int ms = left > absl::Milliseconds(kSliceMs)
                       ? static_cast<int>(kSliceMs)
                       : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
    pollfd p{fd, events, 0};
    const int r = poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) return Errno("poll");
    if (r > 0) return absl::OkStatus();
  }
}

}  // namespace

absl::StatusOr<int> Connect(const std::string& host, uint16_t port, absl::Time deadline,
                            const StopFn& stop) {
  absl::StatusOr<sockaddr_in> addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  Configure(fd);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 &&
      errno != EINPROGRESS) {
    absl::Status s = Errno(absl::StrCat("connect ", host, ":", port));
    close(fd);
    return s;
  }
  // One attempt never outlasts kConnectLimit, even under an infinite transfer deadline.
  const absl::Time attempt_end = absl::Now() + kConnectLimit;
  absl::Status ready = WaitFor(fd, POLLOUT, std::min(deadline, attempt_end), stop);
  if (absl::IsDeadlineExceeded(ready) && attempt_end < deadline) {
    ready = absl::UnavailableError(absl::StrCat("connect ", host, ":", port, ": no answer within ",
                                                absl::FormatDuration(kConnectLimit)));
  }
  int err = 0;
  socklen_t len = sizeof(err);
  if (ready.ok()) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (!ready.ok() || err != 0) {
    close(fd);
    if (!ready.ok()) return ready;
    return absl::UnavailableError(
        absl::StrCat("connect ", host, ":", port, ": ", std::strerror(err)));
  }
  return fd;
}

absl::StatusOr<std::pair<int, uint16_t>> Listen(const std::string& host, uint16_t port) {
  absl::StatusOr<sockaddr_in> addr = Resolve(host, port);
  if (!addr.ok()) return addr.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 ||
      listen(fd, 64) != 0) {
    absl::Status s = Errno(absl::StrCat("listen ", host, ":", port));
    close(fd);
    return s;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return std::make_pair(fd, ntohs(bound.sin_port));
}

absl::StatusOr<int> Accept(int listen_fd, absl::Duration wait) {
  pollfd p{listen_fd, POLLIN, 0};
  const int r = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait)));
  if (r <= 0) return -1;
  const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return -1;
    return Errno("accept");
  }
  Configure(fd);
  return fd;
}

absl::Status SendAll(int fd, const void* data, size_t n, absl::Time deadline, const StopFn& stop) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      absl::Status ready = WaitFor(fd, POLLOUT, deadline, stop);
      if (!ready.ok()) return ready;
      continue;
    }
    return Errno("send");
  }
  return absl::OkStatus();
}

absl::Status RecvAll(int fd, void* data, size_t n, absl::Time deadline, const StopFn& stop,
                     size_t* got) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  if (got) *got = 0;
  while (done < n) {
    const ssize_t r = recv(fd, p + done, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
      if (got) *got = done;
      continue;
    }
    if (r == 0) return absl::UnavailableError("connection closed by peer");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      absl::Status ready = WaitFor(fd, POLLIN, deadline, stop);
      if (!ready.ok()) return ready;
      continue;
    }
    return Errno("recv");
  }
  return absl::OkStatus();
}

bool Readable(int fd, absl::Duration wait) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(wait))) > 0;
}

bool PeerClosed(int fd) {
  char c;
  const ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (r == 0) return true;
  return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace tandem::kv::tcp
