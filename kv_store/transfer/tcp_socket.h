// kv_store/transfer/tcp_socket.h
//
// Small POSIX socket helpers for TcpTransport: connect and listen on IPv4
// hosts, and whole-buffer send/receive on non-blocking sockets that honour a
// deadline and a stop predicate (polled every few milliseconds) so no transport
// thread can hang on a dead or silent peer. Errors are Status values:
// Unavailable for a closed or broken connection, DeadlineExceeded, Cancelled
// when `stop` returned true. Free functions; thread-safe for distinct fds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tandem::kv::tcp {

using StopFn = std::function<bool()>;

// The longest one connect attempt waits, whatever the deadline.
inline constexpr absl::Duration kConnectLimit = absl::Seconds(10);

// A connected, non-blocking TCP socket with TCP_NODELAY. Gives up at `deadline`, after
// kConnectLimit (Unavailable), or with Cancelled once `stop` returns true.
absl::StatusOr<int> Connect(const std::string& host, uint16_t port, absl::Time deadline,
                            const StopFn& stop = nullptr);
// A listening, non-blocking socket and its bound port (port 0 picks a free
// one).
absl::StatusOr<std::pair<int, uint16_t>> Listen(const std::string& host, uint16_t port);
// The accepted fd (non-blocking, TCP_NODELAY), -1 when nothing was pending
// within `wait`.
absl::StatusOr<int> Accept(int listen_fd, absl::Duration wait);

absl::Status SendAll(int fd, const void* data, size_t n, absl::Time deadline, const StopFn& stop);
// `*got` (optional) receives the bytes read before an error, so callers can
// tell a clean close at a frame boundary (0) from a truncated frame.
absl::Status RecvAll(int fd, void* data, size_t n, absl::Time deadline, const StopFn& stop,
                     size_t* got = nullptr);
// True when `fd` has bytes (or EOF) to read within `wait`.
bool Readable(int fd, absl::Duration wait = absl::ZeroDuration());

// True when the peer has closed or reset `fd` (checked without consuming data),
// so an idle cached connection to a dead process is replaced before a transfer
// is written into it.
bool PeerClosed(int fd);

}  // namespace tandem::kv::tcp
