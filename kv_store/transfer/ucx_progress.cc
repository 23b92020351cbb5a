// kv_store/transfer/ucx_progress.cc: UcxTransport's progress thread: UCX callbacks, inbound
// frames, the outbound state machine and teardown.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "glog/logging.h"
#include "kv_store/transfer/ucx_impl.h"

namespace tandem::kv {

void UcxTransport::Impl::OnConnRequest(ucp_conn_request_h req, void* arg) {
  static_cast<Impl*>(arg)->conn_requests.push_back(req);
}

void UcxTransport::Impl::OnServerEpError(void* arg, ucp_ep_h, ucs_status_t) {
  static_cast<UcxInConn*>(arg)->failed = true;
}

void UcxTransport::Impl::OnClientEpError(void* arg, ucp_ep_h, ucs_status_t s) {
  auto* c = static_cast<UcxPeerConn*>(arg);
  c->failed = true;
  c->error = ucs_status_string(s);
}

void UcxTransport::Impl::OnRecvData(void* request, ucs_status_t status, size_t, void* user_data) {
  auto* f = static_cast<UcxInFrame*>(user_data);
  if (status == UCS_OK) {
    f->ready = true;
  } else {
    f->failed = true;
  }
  ucp_request_free(request);
}

ucs_status_t UcxTransport::Impl::OnFrameAm(void* arg, const void* header, size_t header_length,
                                           void* data, size_t length,
                                           const ucp_am_recv_param_t* param) {
  return static_cast<Impl*>(arg)->HandleFrame(header, header_length, data, length, param);
}

ucs_status_t UcxTransport::Impl::OnReplyAm(void* arg, const void* header, size_t header_length,
                                           void* data, size_t length,
                                           const ucp_am_recv_param_t* param) {
  return static_cast<Impl*>(arg)->HandleReply(header, header_length, data, length, param);
}

void UcxTransport::Impl::CountRefusal(std::string_view reason) {
  if (options.auth_refusals != nullptr) {
    options.auth_refusals->Labels({"data", std::string(reason)}).Increment();
  }
}

bool UcxTransport::Impl::SendSmall(ucp_ep_h ep, unsigned id, std::string bytes) {
  auto p = std::make_unique<UcxPending>();
  p->body = std::move(bytes);
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  rp.flags = UCP_AM_SEND_FLAG_REPLY;
  ucs_status_ptr_t r = ucp_am_send_nbx(ep, id, nullptr, 0, p->body.data(), p->body.size(), &rp);
  if (UCS_PTR_IS_ERR(r)) return false;
  p->req = r;
  if (IsRequest(r)) pending_sends.push_back(std::move(p));
  return true;
}

// Receiver: HELLO gets a CHALLENGE; PROOF authenticates the connection or drops it.
ucs_status_t UcxTransport::Impl::OnHelloAm(void* arg, const void*, size_t, void* data,
                                           size_t length, const ucp_am_recv_param_t* param) {
  Impl* self = static_cast<Impl*>(arg);
  if (!(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) || self->sink == nullptr ||
      self->options.secret == nullptr || (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
    return UCS_OK;
  }
  UcxInConn* c = self->ConnOf(param->reply_ep);
  if (c->closed || c->failed) return UCS_OK;
  const auto bytes = absl::MakeConstSpan(static_cast<const uint8_t*>(data), length);
  if (!c->challenged && length == kHelloBytes) {
    absl::StatusOr<HandshakeNonce> theirs = DecodeHello(bytes);
    if (!theirs.ok()) {
      self->CountRefusal("no_handshake");
      c->failed = true;
      return UCS_OK;
    }
    c->sender_nonce = *theirs;
    SecureRandomBytes(c->nonce.data(), c->nonce.size());
    std::string challenge(reinterpret_cast<const char*>(bytes.data()), 8);
    challenge.append(reinterpret_cast<const char*>(c->nonce.data()), c->nonce.size());
    const Sha256Digest proof =
        HandshakeProof(*self->options.secret, "receiver", c->sender_nonce, c->nonce);
    challenge.append(reinterpret_cast<const char*>(proof.data()), proof.size());
    c->challenged = true;
    if (!self->SendSmall(c->ep, kAmChallenge, std::move(challenge))) c->failed = true;
    return UCS_OK;
  }
  if (c->challenged && !c->authenticated && length == kProofBytes) {
    const Sha256Digest want =
        HandshakeProof(*self->options.secret, "sender", c->sender_nonce, c->nonce);
    if (ConstantTimeEquals(want, bytes)) {
      c->authenticated = true;
      return UCS_OK;
    }
    self->CountRefusal("bad_proof");
  } else {
    self->CountRefusal("no_handshake");
  }
  c->failed = true;
  return UCS_OK;
}

// Sender: the active transfer's connection proves the receiver, or is refused.
ucs_status_t UcxTransport::Impl::OnChallengeAm(void* arg, const void*, size_t, void* data,
                                               size_t length, const ucp_am_recv_param_t* param) {
  Impl* self = static_cast<Impl*>(arg);
  if (!self->active || self->options.secret == nullptr ||
      (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
    return UCS_OK;
  }
  UcxPeerConn* conn = self->active->conn;
  if (conn->auth != UcxPeerConn::Auth::kHelloSent) return UCS_OK;
  const auto* bytes = static_cast<const uint8_t*>(data);
  HandshakeNonce theirs{};
  bool ok = length == kChallengeBytes && std::memcmp(bytes, "TXHS", 4) == 0;
  if (ok) {
    std::memcpy(theirs.data(), bytes + 8, theirs.size());
    const Sha256Digest want =
        HandshakeProof(*self->options.secret, "receiver", conn->nonce, theirs);
    ok = ConstantTimeEquals(want, absl::MakeConstSpan(bytes + 40, kProofBytes));
  }
  if (!ok) {
    conn->auth = UcxPeerConn::Auth::kRefused;
    return UCS_OK;
  }
  const Sha256Digest proof = HandshakeProof(*self->options.secret, "sender", conn->nonce, theirs);
  conn->auth = UcxPeerConn::Auth::kProven;
  if (!self->SendSmall(conn->ep, kAmHello,
                       std::string(reinterpret_cast<const char*>(proof.data()), proof.size()))) {
    conn->failed = true;
    conn->error = "handshake send failed";
  }
  return UCS_OK;
}

UcxInConn* UcxTransport::Impl::ConnOf(ucp_ep_h ep) {
  auto it = inconns.find(ep);
  if (it != inconns.end()) return it->second.get();
  auto c = std::make_unique<UcxInConn>();
  c->ep = ep;
  UcxInConn* raw = c.get();
  MakeSession(raw);
  inconns.emplace(ep, std::move(c));
  return raw;
}

void UcxTransport::Impl::MakeSession(UcxInConn* c) {
  c->session = std::make_unique<ReceiverSession>(
      options, listen.format, sink,
      [this, c](const FrameHeader& in, const absl::Status& status, std::string_view reason) {
        auto p = std::make_unique<UcxPending>();
        FrameHeader h;
        h.type = status.ok() ? FrameType::kAck : FrameType::kNack;
        h.id = in.id;
        h.sender_epoch = options.epoch;
        h.receiver_epoch = in.sender_epoch;
        p->body = EncodeReplyBody(status, reason);
        h.body_bytes = p->body.size();
        p->head = EncodeFrameHeader(h);
        ucp_request_param_t rp{};
        ucs_status_ptr_t r = ucp_am_send_nbx(c->ep, kAmReply, p->head.data(), p->head.size(),
                                             p->body.data(), p->body.size(), &rp);
        if (UCS_PTR_IS_ERR(r)) {
          c->failed = true;
          return;
        }
        p->req = r;
        if (IsRequest(r)) pending_sends.push_back(std::move(p));
      });
}

ucs_status_t UcxTransport::Impl::HandleFrame(const void* header, size_t header_length, void* data,
                                             size_t length, const ucp_am_recv_param_t* param) {
  if (!(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) || sink == nullptr) return UCS_OK;
  UcxInConn* c = ConnOf(param->reply_ep);
  // A failed connection's stream is no longer framed; its later frames are dropped.
  if (c->closed || c->failed) return UCS_OK;
  if (options.secret != nullptr && !c->authenticated) {
    // A frame before the handshake: a sender without the secret. Nothing of it is kept.
    CountRefusal("no_handshake");
    c->failed = true;
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
      unread_rndv.push_back(data);
      return UCS_INPROGRESS;
    }
    return UCS_OK;
  }
  absl::StatusOr<FrameHeader> h =
      DecodeFrameHeader(absl::MakeConstSpan(static_cast<const uint8_t*>(header), header_length));
  if (!h.ok() || h->body_bytes != length) {
    LOG(WARNING) << "kv transfer (ucx): dropping connection: "
                 << (h.ok() ? "body length mismatch" : h.status().ToString());
    c->failed = true;
    return UCS_OK;
  }
  if (h->type == FrameType::kBlock && !c->session->WantsBody(*h)) {
    // No allocation for a BLOCK of a transfer that is neither open nor about to open (its BEGIN
    // queued ahead of it): up to 256 MiB per frame must not be had by sending BLOCKs alone. A
    // rendezvous payload is released unread once this callback has returned.
    const bool begin_queued = std::any_of(c->pending.begin(), c->pending.end(), [&](const auto& p) {
      return p->h.type == FrameType::kBegin && p->h.id == h->id;
    });
    if (!begin_queued) {
      if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
        unread_rndv.push_back(data);
        return UCS_INPROGRESS;
      }
      return UCS_OK;
    }
  }
  auto f = std::make_shared<UcxInFrame>();
  f->h = *h;
  f->body = std::make_shared<Bytes>(length);
  c->pending.push_back(f);
  if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    rp.cb.recv_am = &OnRecvData;
    rp.user_data = f.get();
    ucs_status_ptr_t r = ucp_am_recv_data_nbx(worker, data, f->body->data(), length, &rp);
    if (UCS_PTR_IS_ERR(r)) {
      f->failed = true;
    } else if (r == nullptr) {
      f->ready = true;
    }
  } else {
    if (length > 0) std::memcpy(f->body->data(), data, length);
    f->ready = true;
  }
  return UCS_OK;
}

ucs_status_t UcxTransport::Impl::HandleReply(const void* header, size_t header_length, void* data,
                                             size_t length, const ucp_am_recv_param_t* param) {
  absl::StatusOr<FrameHeader> h =
      DecodeFrameHeader(absl::MakeConstSpan(static_cast<const uint8_t*>(header), header_length));
  if (!h.ok() || !active || !(h->id == active->x->desc.id)) return UCS_OK;
  if (h->type == FrameType::kAck) {
    active->reply = absl::OkStatus();
    return UCS_OK;
  }
  if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) {
    active->reply = absl::InternalError("NACK body arrived by rendezvous");
    return UCS_OK;
  }
  absl::StatusOr<Reply> r =
      DecodeReplyBody(std::string_view(static_cast<const char*>(data), length));
  const PeerAddress& dst = active->x->desc.dst;
  const std::string peer = absl::StrCat("node ", dst.node_id, " at ", dst.host, ":", dst.port);
  if (!r.ok()) {
    active->reply = r.status();
  } else if (r->reason == "stale_epoch") {
    active->reply = absl::AbortedError(absl::StrCat("peer epoch changed: ", r->status.message()));
  } else {
    absl::Status nack = r->status.ok() ? absl::InternalError("NACK with code OK") : r->status;
    active->reply = absl::Status(
        nack.code(), absl::StrCat("NACK ", r->reason, " from ", peer, ": ", nack.message()));
  }
  return UCS_OK;
}

void UcxTransport::Impl::AcceptConnections() {
  std::vector<ucp_conn_request_h> reqs;
  reqs.swap(conn_requests);
  for (ucp_conn_request_h req : reqs) {
    auto c = std::make_unique<UcxInConn>();
    ucp_ep_params_t p{};
    p.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLER |
                   UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    p.conn_request = req;
    p.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    p.err_handler.cb = &OnServerEpError;
    p.err_handler.arg = c.get();
    ucp_ep_h ep = nullptr;
    if (ucs_status_t s = ucp_ep_create(worker, &p, &ep); s != UCS_OK) {
      LOG(WARNING) << "kv transfer (ucx): accept: " << ucs_status_string(s);
      continue;
    }
    c->ep = ep;
    MakeSession(c.get());
    inconns[ep] = std::move(c);
  }
}

void UcxTransport::Impl::CloseEp(ucp_ep_h ep, bool force) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t r = ucp_ep_close_nbx(ep, &p);
  if (IsRequest(r)) closing.push_back(r);
}

bool UcxTransport::Impl::ProcessInbound() {
  bool busy = false;
  for (void* data : unread_rndv) ucp_am_data_release(worker, data);
  unread_rndv.clear();
  for (auto& [ep, c] : inconns) {
    if (c->closed) continue;
    while (!rx_stop && !c->pending.empty() &&
           (c->pending.front()->ready || c->pending.front()->failed)) {
      std::shared_ptr<UcxInFrame> f = c->pending.front();
      c->pending.pop_front();
      if (f->failed) {
        c->failed = true;
        break;
      }
      c->session->OnFrame(f->h, std::move(f->body));
      busy = true;
    }
    if (!c->pending.empty()) busy = true;
    // A silent sender must not hold a sink reservation past the transfer's deadline.
    if (!c->failed && !rx_stop && c->session->NextDeadline() <= absl::Now()) {
      c->session->ExpireDeadlines(absl::Now());
    }
    if (c->failed) {
      c->session->OnLost(absl::UnavailableError("connection to the sender lost mid-transfer"));
      c->closed = true;
      for (std::shared_ptr<UcxInFrame>& f : c->pending) {
        if (!f->ready && !f->failed) orphan_frames.push_back(std::move(f));
      }
      c->pending.clear();
      CloseEp(c->ep, /*force=*/true);
    }
  }
  std::erase_if(orphan_frames, [](const std::shared_ptr<UcxInFrame>& f) {
    return f->ready || f->failed;
  });
  return busy;
}

void UcxTransport::Impl::Reap(std::vector<void*>& reqs, bool* error) {
  for (size_t i = 0; i < reqs.size();) {
    const ucs_status_t s = ucp_request_check_status(reqs[i]);
    if (s == UCS_INPROGRESS) {
      ++i;
      continue;
    }
    if (s != UCS_OK && error) *error = true;
    ucp_request_free(reqs[i]);
    reqs[i] = reqs.back();
    reqs.pop_back();
  }
}

void UcxTransport::Impl::ReapPending() {
  for (auto it = pending_sends.begin(); it != pending_sends.end();) {
    if (ucp_request_check_status((*it)->req) == UCS_INPROGRESS) {
      ++it;
      continue;
    }
    ucp_request_free((*it)->req);
    it = pending_sends.erase(it);
  }
  for (size_t i = 0; i < closing.size();) {
    if (ucp_request_check_status(closing[i]) == UCS_INPROGRESS) {
      ++i;
      continue;
    }
    ucp_request_free(closing[i]);
    closing[i] = closing.back();
    closing.pop_back();
  }
}

void UcxTransport::Impl::DropConn(const std::string& node) {
  auto it = conns.find(node);
  if (it == conns.end()) return;
  CloseEp(it->second->ep, /*force=*/it->second->failed);
  dropped.push_back(std::move(it->second));
  conns.erase(it);
}

absl::StatusOr<UcxPeerConn*> UcxTransport::Impl::ConnFor(const PeerAddress& dst) {
  TANDEM_RETURN_IF_ERROR(peer_epochs.Admit(dst));
  auto it = conns.find(dst.node_id);
  if (it != conns.end() && (it->second->failed || it->second->epoch != dst.epoch ||
                            it->second->host != dst.host || it->second->port != dst.port)) {
    DropConn(dst.node_id);
    it = conns.end();
  }
  if (it != conns.end()) return it->second.get();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(dst.port);
  if (inet_pton(AF_INET, dst.host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("host '", dst.host, "' is not IPv4"));
  }
  auto c = std::make_unique<UcxPeerConn>();
  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
                 UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  p.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
  p.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
  p.sockaddr.addrlen = sizeof(addr);
  p.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  p.err_handler.cb = &OnClientEpError;
  p.err_handler.arg = c.get();
  if (ucs_status_t s = ucp_ep_create(worker, &p, &c->ep); s != UCS_OK) {
    return Ucs(s, absl::StrCat("connect node ", dst.node_id));
  }
  c->epoch = dst.epoch;
  c->host = dst.host;
  c->port = dst.port;
  UcxPeerConn* raw = c.get();
  conns[dst.node_id] = std::move(c);
  return raw;
}

void UcxTransport::Impl::Finish(const std::shared_ptr<UcxOutbound>& x, TransferState state,
                                absl::Status status) {
  absl::MutexLock lock(&mu);
  if (x->state == TransferState::kCancelled) return;
  x->state = state;
  x->status = std::move(status);
  finished.push_back(x->handle);
  while (finished.size() > kMaxFinished) {
    xfers.erase(finished.front());
    finished.pop_front();
  }
  cv.SignalAll();
}

void UcxTransport::Impl::SendCancel(Active& a) {
  auto p = std::make_unique<UcxPending>();
  FrameHeader h;
  h.type = FrameType::kCancel;
  h.id = a.x->desc.id;
  h.sender_epoch = options.epoch;
  h.receiver_epoch = a.x->desc.dst.epoch;
  p->head = EncodeFrameHeader(h);
  ucp_request_param_t rp{};
  rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  rp.flags = UCP_AM_SEND_FLAG_REPLY;
  ucs_status_ptr_t r =
      ucp_am_send_nbx(a.conn->ep, kAmFrame, p->head.data(), p->head.size(), nullptr, 0, &rp);
  if (IsRequest(r)) {
    p->req = r;
    pending_sends.push_back(std::move(p));
  }
}

void UcxTransport::Impl::EndActive(TransferState state, absl::Status status) {
  for (void* r : active->reqs) {
    auto p = std::make_unique<UcxPending>();
    p->req = r;
    p->keep = active->x;
    pending_sends.push_back(std::move(p));
  }
  Finish(active->x, state, std::move(status));
  active.reset();
}

bool UcxTransport::Impl::DriveSender() {
  if (!active) {
    std::shared_ptr<UcxOutbound> x;
    {
      absl::MutexLock lock(&mu);
      while (!queue.empty() && !x) {
        x = queue.front();
        queue.pop_front();
        if (x->state != TransferState::kPending) x.reset();
      }
      if (!x) return false;
      x->state = TransferState::kInProgress;
    }
    const TransferDesc& d = x->desc;
    if (absl::Now() >= d.deadline) {
      Finish(x, TransferState::kFailed, absl::DeadlineExceededError("transfer deadline passed"));
      return true;
    }
    absl::StatusOr<UcxPeerConn*> c = ConnFor(d.dst);
    if (!c.ok()) {
      Finish(x, TransferState::kFailed, c.status());
      return true;
    }
    FrameHeader h;
    h.id = d.id;
    h.sender_epoch = options.epoch;
    h.receiver_epoch = d.dst.epoch;
    x->begin = EncodeBeginBody(d.meta, d.reservation);
    x->end = EncodeEndBody(d.blocks.size());
    x->heads.clear();
    h.type = FrameType::kBegin;
    h.body_bytes = x->begin.size();
    x->heads.push_back(EncodeFrameHeader(h));
    for (const KvBlock& b : d.blocks) {
      h.type = FrameType::kBlock;
      h.body_bytes = b.size();
      x->heads.push_back(EncodeFrameHeader(h));
    }
    h.type = FrameType::kEnd;
    h.body_bytes = x->end.size();
    x->heads.push_back(EncodeFrameHeader(h));
    active = Active{x, *c, 0, {}, std::nullopt};
  }
  Active& a = *active;
  const TransferDesc& d = a.x->desc;
  const std::string peer =
      absl::StrCat("node ", d.dst.node_id, " at ", d.dst.host, ":", d.dst.port);
  bool send_error = false;
  Reap(a.reqs, &send_error);
  if (a.conn->failed || send_error) {
    const std::string why = a.conn->failed ? a.conn->error : "send failed";
    a.conn->failed = true;
    DropConn(d.dst.node_id);
    EndActive(TransferState::kFailed, absl::UnavailableError(absl::StrCat(peer, ": ", why)));
    return true;
  }
  if (a.reply) {
    absl::Status r = *a.reply;
    if (r.ok() && a.next < a.x->heads.size()) r = absl::InternalError("ACK before END");
    if (absl::IsAborted(r)) DropConn(d.dst.node_id);
    EndActive(r.ok() ? TransferState::kDone : TransferState::kFailed, r);
    return true;
  }
  if (a.x->cancel) {
    SendCancel(a);
    EndActive(TransferState::kCancelled, absl::CancelledError("transfer cancelled"));
    return true;
  }
  if (absl::Now() >= d.deadline) {
    SendCancel(a);
    EndActive(TransferState::kFailed,
              absl::DeadlineExceededError(absl::StrCat("no ACK from ", peer, " by the deadline")));
    return true;
  }
  if (hard_stop) {
    DropConn(d.dst.node_id);
    EndActive(TransferState::kFailed, absl::UnavailableError("transport shut down mid-transfer"));
    return true;
  }
  if (options.secret != nullptr && a.conn->auth != UcxPeerConn::Auth::kProven) {
    // Nothing of the transfer leaves before the receiver proved it holds the cluster secret.
    if (a.conn->auth == UcxPeerConn::Auth::kNone) {
      SecureRandomBytes(a.conn->nonce.data(), a.conn->nonce.size());
      const auto hello = EncodeHello(a.conn->nonce);
      a.conn->auth = UcxPeerConn::Auth::kHelloSent;
      if (!SendSmall(a.conn->ep, kAmHello,
                     std::string(reinterpret_cast<const char*>(hello.data()), hello.size()))) {
        a.conn->failed = true;
        a.conn->error = "handshake send failed";
      }
      return true;
    }
    if (a.conn->auth == UcxPeerConn::Auth::kRefused) {
      a.conn->failed = true;
      DropConn(d.dst.node_id);
      EndActive(TransferState::kFailed,
                absl::UnauthenticatedError(absl::StrCat(
                    "node ", d.dst.node_id,
                    ": data-plane handshake: the receiver does not hold the cluster secret")));
      return true;
    }
    return false;  // waiting for the CHALLENGE (the deadline check above bounds the wait)
  }
  bool busy = false;
  while (a.next < a.x->heads.size() && a.reqs.size() < kSendWindow) {
    const size_t i = a.next++;
    const void* body = nullptr;
    size_t len = 0;
    if (i == 0) {
      body = a.x->begin.data();
      len = a.x->begin.size();
    } else if (i == a.x->heads.size() - 1) {
      body = a.x->end.data();
      len = a.x->end.size();
    } else {
      const KvBlock& b = d.blocks[i - 1];
      body = b.bytes().data();
      len = b.size();
    }
    ucp_request_param_t rp{};
    rp.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    rp.flags = UCP_AM_SEND_FLAG_REPLY;
    ucs_status_ptr_t r = ucp_am_send_nbx(a.conn->ep, kAmFrame, a.x->heads[i].data(),
                                         kFrameHeaderBytes, body, len, &rp);
    if (UCS_PTR_IS_ERR(r)) {
      a.conn->failed = true;
      a.conn->error = ucs_status_string(UCS_PTR_STATUS(r));
      break;
    }
    if (r != nullptr) a.reqs.push_back(r);
    busy = true;
  }
  return busy || !a.reqs.empty();
}

// Longest sleep of an idle progress thread armed on the worker's wakeup fd.
constexpr int kIdlePollMs = 5;
// How long the worker must have had nothing to do before the thread sleeps on the wakeup fd.
constexpr absl::Duration kQuietBeforeArm = absl::Milliseconds(50);

void UcxTransport::Impl::Loop() {
  int idle = 0;
  absl::Time quiet_since = absl::InfiniteFuture();
  while (!exit) {
    unsigned n = 0;
    for (int i = 0; i < 64; ++i) {
      const unsigned k = ucp_worker_progress(worker);
      if (k == 0) break;
      n += k;
    }
    AcceptConnections();
    bool busy = ProcessInbound();
    ReapPending();
    busy |= DriveSender();
    if (n > 0 || busy) {
      idle = 0;
    } else if (++idle > 1000) {
      // Short naps while traffic may still be in flight (not every transport signals the
      // wakeup fd for every step of a rendezvous, and a nap costs no latency); once the worker
      // has been quiet for kQuietBeforeArm, sleep on the fd so an idle node costs no CPU.
      const absl::Time now = absl::Now();
      if (quiet_since == absl::InfiniteFuture()) quiet_since = now;
      int fd = -1;
      {
        absl::MutexLock lock(&mu);
        fd = event_fd;
      }
      // A sender waiting for its ACK also naps: the reply may come on a lane that raises no
      // event.
      if (fd < 0 || active || now - quiet_since < kQuietBeforeArm) {
        absl::SleepFor(absl::Microseconds(200));
      } else if (const ucs_status_t armed = ucp_worker_arm(worker); armed == UCS_OK) {
        // Armed: UCX events and Wake() make the fd readable. The timeout bounds how late the
        // thread notices what signals nothing (a transfer's deadline passing).
        pollfd p{fd, POLLIN, 0};
        poll(&p, 1, kIdlePollMs);
      } else if (armed != UCS_ERR_BUSY) {  // BUSY: events arrived meanwhile; progress at once
        LOG(WARNING) << "kv transfer: ucp_worker_arm failed (" << ucs_status_string(armed)
                     << "); the UCX progress thread falls back to polling";
        absl::MutexLock lock(&mu);
        event_fd = -1;
      }
    }
    if (idle == 0) quiet_since = absl::InfiniteFuture();
  }
  // Teardown, still on the progress thread, which owns the worker.
  if (active) {
    DropConn(active->x->desc.dst.node_id);
    EndActive(TransferState::kFailed, absl::UnavailableError("transport shut down mid-transfer"));
  }
  if (listener != nullptr) ucp_listener_destroy(listener);
  for (auto& [ep, c] : inconns) {
    if (c->closed) continue;
    c->session->OnLost(absl::UnavailableError("receiver shutting down mid-transfer"));
    c->closed = true;
    CloseEp(ep);
  }
  for (auto& [node, c] : conns) CloseEp(c->ep, /*force=*/c->failed);
  const absl::Time until = absl::Now() + absl::Seconds(1);
  while ((!closing.empty() || !pending_sends.empty()) && absl::Now() < until) {
    ucp_worker_progress(worker);
    ReapPending();
  }
  // Whatever is still pending is released with the worker.
  for (void* data : unread_rndv) ucp_am_data_release(worker, data);
  unread_rndv.clear();
  for (auto& p : pending_sends) ucp_request_free(p->req);
  for (void* r : closing) ucp_request_free(r);
  pending_sends.clear();
  closing.clear();
  {
    absl::MutexLock lock(&mu);
    event_fd = -1;  // no Wake() may signal the worker from here on
  }
  // Destroying the worker closes its sockets, so peers see the close even over shm lanes.
  ucp_worker_destroy(worker);
  worker = nullptr;
  // The worker is gone, so no receive can still complete into these.
  orphan_frames.clear();
  for (auto& [ep, c] : inconns) c->pending.clear();
}

}  // namespace tandem::kv
