// kv_store/transfer/transport.cc: transfer ids, state names and the transport
// factory.
#include "kv_store/transfer/transport.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/status.h"
#include "kv_store/transfer/tcp_transport.h"
#ifdef TANDEM_HAVE_UCX
#include "kv_store/transfer/ucx_transport.h"
#endif

namespace tandem::kv {

TransferId TransferId::Random() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  TransferId id;
  for (size_t i = 0; i < id.bytes.size(); i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8; ++j) id.bytes[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return id;
}

std::string TransferId::Hex() const { return HexEncode(bytes); }

std::string_view TransferStateName(TransferState s) {
  switch (s) {
    case TransferState::kPending:
      return "pending";
    case TransferState::kInProgress:
      return "in_progress";
    case TransferState::kDone:
      return "done";
    case TransferState::kFailed:
      return "failed";
    case TransferState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<Transport>> NewTransport(std::string_view name,
                                                        const TransportOptions& options) {
  if (name == "tcp") return std::unique_ptr<Transport>(new TcpTransport(options));
  if (name == "ucx") {
#ifdef TANDEM_HAVE_UCX
    return UcxTransport::Create(options);
#else
    return absl::UnimplementedError("transport 'ucx': this build has no UCX");
#endif
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--transport '", AV(name), "': expected tcp or ucx"));
}

std::vector<std::string> AvailableTransports() {
#ifdef TANDEM_HAVE_UCX
  return {"tcp", "ucx"};
#else
  return {"tcp"};
#endif
}

absl::Status PrepareTransferDesc(TransferDesc& desc) {
  if (desc.deadline == absl::InfinitePast()) {
    return absl::InvalidArgumentError("TransferDesc.deadline is mandatory");
  }
  if (desc.blocks.empty()) return absl::InvalidArgumentError("TransferDesc.blocks is empty");
  if (desc.dst.port == 0) return absl::InvalidArgumentError("TransferDesc.dst.port is 0");
  desc.meta.id = desc.id;
  desc.meta.block_count = static_cast<uint32_t>(desc.blocks.size());
  desc.meta.total_bytes = 0;
  desc.meta.keys.clear();
  desc.meta.deadline = desc.deadline;
  for (const KvBlock& b : desc.blocks) {
    if (b.size() == 0) {
      return absl::InvalidArgumentError("TransferDesc.blocks holds an empty block");
    }
    desc.meta.total_bytes += b.size();
    desc.meta.keys.push_back(b.key());
  }
  return absl::OkStatus();
}

absl::Status PeerEpochs::Admit(const PeerAddress& dst) {
  uint64_t& newest = newest_[dst.node_id];
  if (dst.epoch < newest) {
    return absl::AbortedError(absl::StrCat("peer epoch changed: node ", dst.node_id,
                                           " is at epoch ", newest, ", transfer addressed to ",
                                           dst.epoch));
  }
  newest = dst.epoch;
  return absl::OkStatus();
}

std::string_view TransferFailureReason(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline";
    case absl::StatusCode::kAborted:
      return "aborted";
    case absl::StatusCode::kCancelled:
      return "cancelled";
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kDataLoss:
      return "rejected";
    default:
      return "other";
  }
}

}  // namespace tandem::kv
