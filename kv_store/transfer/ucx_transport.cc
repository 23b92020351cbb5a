// kv_store/transfer/ucx_transport.cc: the Transport over UCX ucp active messages.
#include "kv_store/transfer/ucx_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "glog/logging.h"
#include "kv_store/transfer/frame.h"
#include "kv_store/transfer/receiver_session.h"
#include "kv_store/transfer/ucx_impl.h"

namespace tandem::kv {

absl::StatusOr<std::unique_ptr<Transport>> UcxTransport::Create(const TransportOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ucp_config_t* config = nullptr;
  if (ucs_status_t s = ucp_config_read(nullptr, nullptr, &config); s != UCS_OK) {
    return Ucs(s, "ucp_config_read");
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_MT_WORKERS_SHARED;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  params.mt_workers_shared = 1;
  ucs_status_t s = ucp_init(&params, config, &impl->ctx);
  ucp_config_release(config);
  if (s != UCS_OK) return Ucs(s, "ucp_init (check UCX_TLS / UCX_NET_DEVICES)");
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_MULTI;
  if (s = ucp_worker_create(impl->ctx, &wp, &impl->worker); s != UCS_OK) {
    ucp_cleanup(impl->ctx);
    return Ucs(s, "ucp_worker_create");
  }
  {
    int fd = -1;
    if (ucp_worker_get_efd(impl->worker, &fd) != UCS_OK) fd = -1;
    absl::MutexLock lock(&impl->mu);
    impl->event_fd = fd;
  }
  for (unsigned id : {kAmFrame, kAmReply, kAmHello, kAmChallenge}) {
    ucp_am_handler_param_t hp{};
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                    UCP_AM_HANDLER_PARAM_FIELD_ARG;
    hp.id = id;
    hp.cb = id == kAmFrame   ? &Impl::OnFrameAm
            : id == kAmReply ? &Impl::OnReplyAm
            : id == kAmHello ? &Impl::OnHelloAm
                             : &Impl::OnChallengeAm;
    hp.arg = impl.get();
    if (s = ucp_worker_set_am_recv_handler(impl->worker, &hp); s != UCS_OK) {
      ucp_worker_destroy(impl->worker);
      ucp_cleanup(impl->ctx);
      return Ucs(s, "ucp_worker_set_am_recv_handler");
    }
  }
  Impl* raw = impl.get();
  raw->progress = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<Transport>(new UcxTransport(std::move(impl)));
}

UcxTransport::UcxTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UcxTransport::~UcxTransport() {
  Shutdown(absl::ZeroDuration()).IgnoreError();
  if (impl_->worker != nullptr) ucp_worker_destroy(impl_->worker);
  if (impl_->ctx != nullptr) ucp_cleanup(impl_->ctx);
}

absl::StatusOr<uint16_t> UcxTransport::Listen(const ListenOptions& o, TransferSink* sink) {
  if (sink == nullptr) return absl::InvalidArgumentError("Listen: sink is null");
  if (absl::Status s = o.format.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("Listen: format: ", s.message()));
  }
  if (impl_->listener != nullptr) return absl::FailedPreconditionError("Listen: already listening");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(o.port);
  if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("Listen: host '", o.host, "' is not IPv4"));
  }
  impl_->listen = o;
  impl_->sink = sink;
  ucp_listener_params_t lp{};
  lp.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
  lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&addr);
  lp.sockaddr.addrlen = sizeof(addr);
  lp.conn_handler.cb = &Impl::OnConnRequest;
  lp.conn_handler.arg = impl_.get();
  ucp_listener_h listener = nullptr;
  if (ucs_status_t s = ucp_listener_create(impl_->worker, &lp, &listener); s != UCS_OK) {
    return Ucs(s, absl::StrCat("listen ", o.host, ":", o.port));
  }
  ucp_listener_attr_t attr{};
  attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
  if (ucs_status_t s = ucp_listener_query(listener, &attr); s != UCS_OK) {
    ucp_listener_destroy(listener);
    return Ucs(s, "ucp_listener_query");
  }
  impl_->listener = listener;
  return ntohs(reinterpret_cast<const sockaddr_in*>(&attr.sockaddr)->sin_port);
}

absl::StatusOr<TransferHandle> UcxTransport::Post(TransferDesc desc) {
  TANDEM_RETURN_IF_ERROR(PrepareTransferDesc(desc));
  auto x = std::make_shared<UcxOutbound>();
  x->desc = std::move(desc);
  absl::MutexLock lock(&impl_->mu);
  if (impl_->stopping) return absl::UnavailableError("transport is shutting down");
  x->handle = impl_->next_handle++;
  impl_->xfers[x->handle] = x;
  impl_->queue.push_back(x);
  impl_->Wake();
  return x->handle;
}

std::pair<TransferState, absl::Status> UcxTransport::Poll(TransferHandle h) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->xfers.find(h);
  if (it == impl_->xfers.end()) {
    return {TransferState::kFailed, absl::NotFoundError(absl::StrCat("transfer handle ", h))};
  }
  return {it->second->state, it->second->status};
}

absl::Status UcxTransport::Wait(TransferHandle h, absl::Time deadline) {
  absl::MutexLock lock(&impl_->mu);
  while (true) {
    auto it = impl_->xfers.find(h);
    if (it == impl_->xfers.end()) return absl::NotFoundError(absl::StrCat("transfer handle ", h));
    const TransferState s = it->second->state;
    if (s == TransferState::kDone) return absl::OkStatus();
    if (s == TransferState::kFailed || s == TransferState::kCancelled) return it->second->status;
    if (impl_->cv.WaitWithDeadline(&impl_->mu, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat("waiting for transfer handle ", h));
    }
  }
}

void UcxTransport::Cancel(TransferHandle h) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->xfers.find(h);
  if (it == impl_->xfers.end()) return;
  UcxOutbound& x = *it->second;
  x.cancel = true;
  if (x.state == TransferState::kPending) {
    x.state = TransferState::kCancelled;
    x.status = absl::CancelledError("transfer cancelled before it started");
    impl_->finished.push_back(h);
    impl_->cv.SignalAll();
  }
  impl_->Wake();  // the progress thread drops an in-flight transfer at its next turn
}

absl::Status UcxTransport::Shutdown(absl::Duration grace) {
  if (impl_->shut_down.exchange(true)) return absl::OkStatus();
  impl_->rx_stop = true;
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->stopping = true;
    for (auto& x : impl_->queue) {
      if (x->state != TransferState::kPending) continue;
      x->state = TransferState::kFailed;
      x->status = absl::UnavailableError("transport shut down before the transfer started");
      impl_->finished.push_back(x->handle);
    }
    impl_->queue.clear();
    impl_->cv.SignalAll();
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(impl_->mu) {
      for (const auto& [h, x] : impl_->xfers) {
        if (x->state == TransferState::kInProgress) return false;
      }
      return true;
    };
    impl_->mu.AwaitWithTimeout(absl::Condition(&idle), grace);
  }
  impl_->hard_stop = true;
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->exit = true;
    impl_->Wake();
  }
  if (impl_->progress.joinable()) impl_->progress.join();
  return absl::OkStatus();
}

}  // namespace tandem::kv
