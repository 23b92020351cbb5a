// kv_store/transfer/ucx_transport.h
//
// UcxTransport: the Transport over UCX ucp active messages (ARCHITECTURE.md §4.6, §5.3), with the
// same frames and semantics as TcpTransport: the 48-byte frame header is the AM header and the
// body its data (eager below UCX_RNDV_THRESH, rendezvous above). Connections are client/server
// endpoints from a ucp_listener, cached by (node id, epoch, host, port); peer failure reaches the
// waiting side through the endpoints' error handlers (UCP_ERR_HANDLING_MODE_PEER). One progress
// thread owns the worker and drives everything; API calls hand work to it through a queue.
// UCX reads UCX_TLS / UCX_NET_DEVICES at Create(); tests use UCX_TLS=tcp,sm,self,
// UCX_NET_DEVICES=lo.
//
// Thread-safe. UCX headers stay out of this header (UCX is a private dependency).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "kv_store/transfer/transport.h"

namespace tandem::kv {

class UcxTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<Transport>> Create(const TransportOptions& options);
  ~UcxTransport() override;

  std::string_view Name() const override { return "ucx"; }
  absl::StatusOr<uint16_t> Listen(const ListenOptions& o, TransferSink* sink) override;
  absl::StatusOr<TransferHandle> Post(TransferDesc desc) override;
  std::pair<TransferState, absl::Status> Poll(TransferHandle h) override;
  absl::Status Wait(TransferHandle h, absl::Time deadline) override;
  void Cancel(TransferHandle h) override;
  absl::Status Shutdown(absl::Duration grace) override;

  struct Impl;

 private:
  explicit UcxTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::kv
