// kv_store/transfer/ucx_impl.h
//
// Internal to UcxTransport (ucx_transport.cc and ucx_progress.cc only; includes UCX headers): the
// progress thread's state (outbound transfers, client and server endpoints, frames awaiting
// rendezvous data) and UcxTransport::Impl, which owns the UCX context and worker. Everything but
// the fields guarded by `mu` belongs to the progress thread.
#pragma once

#include <ucp/api/ucp.h>

#include <array>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "kv_store/transfer/frame.h"
#include "kv_store/transfer/handshake.h"
#include "kv_store/transfer/receiver_session.h"
#include "kv_store/transfer/ucx_transport.h"

namespace tandem::kv {
// Internal to the UCX transport; only ucx_transport.cc and ucx_progress.cc include this header.

constexpr unsigned kAmFrame = 1;   // sender -> receiver
constexpr unsigned kAmReply = 2;   // receiver -> sender
// The cluster-secret handshake of transfer/handshake.h, as active messages (no AM header; the
// message is the data): HELLO (40 bytes) then PROOF (32) from the sender, CHALLENGE (72) back.
constexpr unsigned kAmHello = 3;      // sender -> receiver: HELLO or PROOF
constexpr unsigned kAmChallenge = 4;  // receiver -> sender
constexpr size_t kSendWindow = 4;  // frames in flight per transfer
constexpr size_t kMaxFinished = 4096;

inline absl::Status Ucs(ucs_status_t s, std::string_view what) {
  return absl::UnavailableError(absl::StrCat(AV(what), ": ", ucs_status_string(s)));
}

struct UcxOutbound {
  TransferHandle handle = 0;
  TransferDesc desc;
  TransferState state = TransferState::kPending;
  absl::Status status;
  std::atomic<bool> cancel{false};
  // Frame headers and small bodies, alive until every send request completes.
  std::vector<std::array<uint8_t, kFrameHeaderBytes>> heads;
  std::string begin, end;
};

struct UcxPeerConn {
  ucp_ep_h ep = nullptr;
  // Handshake state when the transport has a secret: no frame is sent before kProven.
  enum class Auth { kNone, kHelloSent, kProven, kRefused } auth = Auth::kNone;
  HandshakeNonce nonce{};
  uint64_t epoch = 0;
  std::string host;
  uint16_t port = 0;
  bool failed = false;
  std::string error;
};

struct UcxInFrame {
  FrameHeader h;
  std::shared_ptr<Bytes> body;
  bool ready = false;
  bool failed = false;
};

struct UcxInConn {
  ucp_ep_h ep = nullptr;
  // With a secret: HELLO answered (challenged), then PROOF verified (authenticated). Frames of a
  // connection that is not authenticated are refused and the connection dropped.
  bool challenged = false;
  bool authenticated = false;
  HandshakeNonce sender_nonce{};
  HandshakeNonce nonce{};
  std::unique_ptr<ReceiverSession> session;
  std::deque<std::shared_ptr<UcxInFrame>> pending;
  bool failed = false;
  bool closed = false;
};

// A reply (or CANCEL) being sent; its buffers live until the request completes.
struct UcxPending {
  void* req = nullptr;
  std::array<uint8_t, kFrameHeaderBytes> head{};
  std::string body;
  std::shared_ptr<UcxOutbound> keep;  // frames of an abandoned transfer
};

inline bool IsRequest(ucs_status_ptr_t r) { return r != nullptr && !UCS_PTR_IS_ERR(r); }

struct UcxTransport::Impl {
  TransportOptions options;
  ucp_context_h ctx = nullptr;
  ucp_worker_h worker = nullptr;
  ucp_listener_h listener = nullptr;

  absl::Mutex mu;
  absl::CondVar cv;
  // The worker's wakeup fd (UCP_FEATURE_WAKEUP), or -1 when UCX offers none or it failed: an
  // idle progress thread sleeps in poll() on it instead of waking every 200 us. Other threads
  // that hand it work (Post, Cancel, Shutdown) call Wake() under `mu`; the progress thread sets
  // it to -1 under `mu` before it destroys the worker, so a late Wake() never signals a freed one.
  int event_fd ABSL_GUARDED_BY(mu) = -1;
  void Wake() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (event_fd >= 0) ucp_worker_signal(worker);
  }
  TransferHandle next_handle ABSL_GUARDED_BY(mu) = 1;
  absl::flat_hash_map<TransferHandle, std::shared_ptr<UcxOutbound>> xfers ABSL_GUARDED_BY(mu);
  std::deque<std::shared_ptr<UcxOutbound>> queue ABSL_GUARDED_BY(mu);
  std::deque<TransferHandle> finished ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  std::atomic<bool> hard_stop{false};
  std::atomic<bool> rx_stop{false};  // set first by Shutdown: no more frames reach the sink
  std::atomic<bool> exit{false};
  std::atomic<bool> shut_down{false};
  std::thread progress;

  ListenOptions listen;
  TransferSink* sink = nullptr;

  // Progress thread only.
  absl::flat_hash_map<std::string, std::unique_ptr<UcxPeerConn>> conns;
  std::vector<std::unique_ptr<UcxPeerConn>> dropped;  // kept: UCX may still call their handlers
  PeerEpochs peer_epochs;
  absl::flat_hash_map<ucp_ep_h, std::unique_ptr<UcxInConn>> inconns;
  std::vector<ucp_conn_request_h> conn_requests;
  std::deque<std::unique_ptr<UcxPending>> pending_sends;
  // Frames of a failed connection whose rendezvous receive is still in flight: UCX writes into
  // their body and calls OnRecvData with their address, so they live until it has (or until the
  // worker is destroyed).
  std::vector<std::shared_ptr<UcxInFrame>> orphan_frames;
  // Rendezvous payloads of BLOCKs refused before allocation, released after their callback.
  std::vector<void*> unread_rndv;
  std::vector<void*> closing;
  struct Active {
    std::shared_ptr<UcxOutbound> x;
    UcxPeerConn* conn = nullptr;
    size_t next = 0;  // next frame: 0 BEGIN, 1..n BLOCK, n+1 END
    std::vector<void*> reqs;
    std::optional<absl::Status> reply;
  };
  std::optional<Active> active;

  // --- callbacks (run inside ucp_worker_progress on the progress thread) ---
  static void OnConnRequest(ucp_conn_request_h req, void* arg);
  static void OnServerEpError(void* arg, ucp_ep_h, ucs_status_t);
  static void OnClientEpError(void* arg, ucp_ep_h, ucs_status_t s);
  static void OnRecvData(void* request, ucs_status_t status, size_t, void* user_data);
  static ucs_status_t OnFrameAm(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t OnHelloAm(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t OnChallengeAm(void* arg, const void* header, size_t header_length, void* data,
                                    size_t length, const ucp_am_recv_param_t* param);
  // Sends `bytes` as one active message `id` on `ep`, keeping them alive until it completes.
  bool SendSmall(ucp_ep_h ep, unsigned id, std::string bytes);
  void CountRefusal(std::string_view reason);
  static ucs_status_t OnReplyAm(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);

  UcxInConn* ConnOf(ucp_ep_h ep);

  void MakeSession(UcxInConn* c);

  ucs_status_t HandleFrame(const void* header, size_t header_length, void* data, size_t length,
                           const ucp_am_recv_param_t* param);

  ucs_status_t HandleReply(const void* header, size_t header_length, void* data, size_t length,
                           const ucp_am_recv_param_t* param);

  // --- progress thread work ---
  void AcceptConnections();

  // A flushing close tells the peer (its error handler fires), so a waiting sender or receiver
  // learns at once; FORCE is for endpoints already known to be broken.
  void CloseEp(ucp_ep_h ep, bool force = false);

  bool ProcessInbound();

  void Reap(std::vector<void*>& reqs, bool* error);

  void ReapPending();

  void DropConn(const std::string& node);

  absl::StatusOr<UcxPeerConn*> ConnFor(const PeerAddress& dst);

  void Finish(const std::shared_ptr<UcxOutbound>& x, TransferState state, absl::Status status);

  void SendCancel(Active& a);

  // Ends the active transfer; its in-flight requests are released to UCX, with the frames kept
  // alive until they complete.
  void EndActive(TransferState state, absl::Status status);

  bool DriveSender();

  void Loop();
};

}  // namespace tandem::kv
