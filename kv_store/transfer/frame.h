// kv_store/transfer/frame.h
//
// The data-plane frame of ARCHITECTURE.md §5.3, shared by every transport: a
// 48-byte little-endian header (magic "TXFR", version, type, transfer id,
// sender epoch, receiver epoch as the sender knows it, body length) followed by
// the body. BEGIN carries JSON TransferMeta + reservation id, BLOCK one §5.1
// KvBlock, END the block count, ACK/NACK JSON {code, reason, message}. Decoding
// fails closed with InvalidArgument naming the bad field, so a truncated or
// garbage frame is an error and never a crash. Pure functions and value types;
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kv_store/transfer/transport.h"

namespace tandem::kv {

inline constexpr size_t kFrameHeaderBytes = 48;
inline constexpr uint16_t kFrameVersion = 1;
// The largest body a receiver accepts; a bigger length is a garbage header, not
// an allocation.
inline constexpr uint64_t kMaxFrameBody = uint64_t{1} << 32;
// Per-type caps, checked by DecodeFrameHeader before anyone allocates a body:
// BEGIN/ACK/NACK are small JSON, END is a u64, CANCEL empty, and a BLOCK is
// one §5.1 block (KvFormat does not fix its size, so a global cap).
inline constexpr uint64_t kMaxControlBody = uint64_t{1} << 20;
inline constexpr uint64_t kMaxBlockBody = uint64_t{256} << 20;

enum class FrameType : uint16_t {
  kBegin = 1,
  kBlock = 2,
  kEnd = 3,
  kAck = 4,
  kNack = 5,
  kCancel = 6,
};
// The largest body a frame of `type` may carry (see the caps above).
uint64_t MaxBodyFor(FrameType type);
std::string_view FrameTypeName(FrameType type);  // "BEGIN", ...

struct FrameHeader {
  FrameType type = FrameType::kBegin;
  TransferId id;
  uint64_t sender_epoch = 0;
  uint64_t receiver_epoch = 0;
  uint64_t body_bytes = 0;
};

std::array<uint8_t, kFrameHeaderBytes> EncodeFrameHeader(const FrameHeader& h);
// InvalidArgument for a short buffer, bad magic, unknown version or type, or a
// body longer than `max_body` or than MaxBodyFor(type).
absl::StatusOr<FrameHeader> DecodeFrameHeader(absl::Span<const uint8_t> bytes,
                                              uint64_t max_body = kMaxFrameBody);

// BEGIN body: JSON TransferMeta (keys as hex; the deadline as timeout_ms left
// now) + reservation.
std::string EncodeBeginBody(const TransferMeta& meta, ReservationId reservation);
absl::Status DecodeBeginBody(std::string_view body, TransferMeta* meta, ReservationId* reservation);
// END body: u64le block count.
std::string EncodeEndBody(uint64_t block_count);
absl::StatusOr<uint64_t> DecodeEndBody(std::string_view body);

// ACK/NACK body. `reason` is a short label (e.g. "stale_epoch", "checksum");
// the status's code and message travel as they are.
std::string EncodeReplyBody(const absl::Status& status, std::string_view reason);
struct Reply {
  absl::Status status;
  std::string reason;
};
absl::StatusOr<Reply> DecodeReplyBody(std::string_view body);

}  // namespace tandem::kv
