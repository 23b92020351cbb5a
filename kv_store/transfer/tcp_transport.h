// kv_store/transfer/tcp_transport.h
//
// TcpTransport: the reference Transport (ARCHITECTURE.md §4.6, §5.3). Outbound,
// one sender thread drains a queue of posted transfers, one at a time, over
// connections cached by (node id, epoch); all frames to a peer share one
// stream. Inbound, an accept thread hands each connection to its own reader
// thread, which validates every frame and block and answers ACK or NACK.
//
// Failure semantics: a NACK fails the transfer with the receiver's status and
// reason (stale_epoch -> Aborted "peer epoch changed"); a broken or closed
// connection fails it with Unavailable and drops the cached connection; an
// expired deadline fails it with DeadlineExceeded. A transfer to an epoch older
// than one already seen for that node fails with Aborted without being sent. On
// the receiving side a connection lost mid-transfer ends the transfer with
// Unavailable in TransferSink::OnEnd.
//
// Thread-safe. Shutdown() must be called before destruction if Listen() or
// Post() were used (the destructor calls it with no grace otherwise).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "kv_store/transfer/frame.h"
#include "kv_store/transfer/transport.h"

namespace tandem::kv {

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(TransportOptions options);
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  std::string_view Name() const override { return "tcp"; }
  absl::StatusOr<uint16_t> Listen(const ListenOptions& o, TransferSink* sink) override;
  absl::StatusOr<TransferHandle> Post(TransferDesc desc) override;
  std::pair<TransferState, absl::Status> Poll(TransferHandle h) override;
  absl::Status Wait(TransferHandle h, absl::Time deadline) override;
  void Cancel(TransferHandle h) override;
  absl::Status Shutdown(absl::Duration grace) override;

 private:
  struct Outbound;
  struct Conn {
    int fd = -1;
    uint64_t epoch = 0;
    std::string host;
    uint16_t port = 0;
  };

  // Sender side.
  void SenderLoop();
  absl::Status RunTransfer(Outbound& x);
  absl::StatusOr<Conn*> ConnFor(const PeerAddress& dst, absl::Time deadline);
  void DropConn(const std::string& node_id);
  void Finish(Outbound& x, TransferState state, absl::Status status);
  void RefusePosts();
  void ShutdownSender(absl::Duration grace);

  // Receiver side.
  void AcceptLoop();
  void ReaderLoop(int fd);
  void CountRefusal(std::string_view reason);

  const TransportOptions options_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  TransferHandle next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<TransferHandle, std::shared_ptr<Outbound>> xfers_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Outbound>> queue_ ABSL_GUARDED_BY(mu_);
  std::deque<TransferHandle> finished_ ABSL_GUARDED_BY(mu_);  // oldest first, for eviction
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread sender_;
  std::atomic<bool> hard_stop_{false};

  // Only the sender thread touches these.
  absl::flat_hash_map<std::string, Conn> conns_;
  PeerEpochs peer_epochs_;

  // Receiver.
  ListenOptions listen_;
  TransferSink* sink_ = nullptr;
  int listen_fd_ = -1;
  std::thread acceptor_;
  std::atomic<bool> rx_stop_{false};
  absl::Mutex rx_mu_;
  std::vector<std::thread> readers_ ABSL_GUARDED_BY(rx_mu_);
  absl::flat_hash_set<int> reader_fds_ ABSL_GUARDED_BY(rx_mu_);
  // Readers that have returned, joined (reaped) by the accept loop so threads do not pile up.
  std::vector<std::thread::id> finished_readers_ ABSL_GUARDED_BY(rx_mu_);
  bool shut_down_ = false;
};

}  // namespace tandem::kv
