// kv_store/transfer/frame.cc: §5.3 frame header and bodies.
#include "kv_store/transfer/frame.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/little_endian.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace tandem::kv {
namespace {
constexpr char kMagic[4] = {'T', 'X', 'F', 'R'};
}  // namespace

std::string_view FrameTypeName(FrameType type) {
  switch (type) {
    case FrameType::kBegin:
      return "BEGIN";
    case FrameType::kBlock:
      return "BLOCK";
    case FrameType::kEnd:
      return "END";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kNack:
      return "NACK";
    case FrameType::kCancel:
      return "CANCEL";
  }
  return "UNKNOWN";
}

uint64_t MaxBodyFor(FrameType type) {
  switch (type) {
    case FrameType::kBegin:
    case FrameType::kAck:
    case FrameType::kNack:
      return kMaxControlBody;
    case FrameType::kBlock:
      return kMaxBlockBody;
    case FrameType::kEnd:
      return 8;
    case FrameType::kCancel:
      return 0;
  }
  return 0;
}

std::array<uint8_t, kFrameHeaderBytes> EncodeFrameHeader(const FrameHeader& h) {
  std::array<uint8_t, kFrameHeaderBytes> out{};
  std::memcpy(out.data(), kMagic, 4);
  StoreLe<uint16_t>(out.data(), 4, kFrameVersion);
  StoreLe<uint16_t>(out.data(), 6, static_cast<uint16_t>(h.type));
  std::memcpy(out.data() + 8, h.id.bytes.data(), 16);
  StoreLe<uint64_t>(out.data(), 24, h.sender_epoch);
  StoreLe<uint64_t>(out.data(), 32, h.receiver_epoch);
  StoreLe<uint64_t>(out.data(), 40, h.body_bytes);
  return out;
}

absl::StatusOr<FrameHeader> DecodeFrameHeader(absl::Span<const uint8_t> bytes, uint64_t max_body) {
  if (bytes.size() < kFrameHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("frame header: ", bytes.size(), " bytes, need ", kFrameHeaderBytes));
  }
  const uint8_t* p = bytes.data();
  if (std::memcmp(p, kMagic, 4) != 0) return absl::InvalidArgumentError("frame header: bad magic");
  const uint16_t version = LoadLe<uint16_t>(p, 4);
  if (version != kFrameVersion) {
    return absl::InvalidArgumentError(absl::StrCat("frame header: version ", version));
  }
  const uint16_t type = LoadLe<uint16_t>(p, 6);
  if (type < 1 || type > 6) {
    return absl::InvalidArgumentError(absl::StrCat("frame header: type ", type));
  }
  FrameHeader h;
  h.type = static_cast<FrameType>(type);
  std::memcpy(h.id.bytes.data(), p + 8, 16);
  h.sender_epoch = LoadLe<uint64_t>(p, 24);
  h.receiver_epoch = LoadLe<uint64_t>(p, 32);
  h.body_bytes = LoadLe<uint64_t>(p, 40);
  const uint64_t cap = std::min(max_body, MaxBodyFor(h.type));
  if (h.body_bytes > cap) {
    return absl::InvalidArgumentError(absl::StrCat("frame header: body_bytes ", h.body_bytes,
                                                   " over ", cap, " for ",
                                                   AV(FrameTypeName(h.type))));
  }
  return h;
}

std::string EncodeBeginBody(const TransferMeta& meta, ReservationId reservation) {
  nlohmann::json keys = nlohmann::json::array();
  for (const BlockKey& k : meta.keys) keys.push_back(k.Hex());
  nlohmann::json j = {{"request_id", meta.request_id},   {"first_token", meta.first_token},
                      {"block_count", meta.block_count}, {"total_bytes", meta.total_bytes},
                      {"reservation", reservation},      {"keys", keys},
                      {"token", meta.transfer_token}};
  if (meta.deadline != absl::InfiniteFuture()) {
    // The receiver is told a little less than the sender's time left, so it
    // gives up first: a receiver that completes then ACKs before the sender's
    // deadline, and one that would complete too late NACKs instead of ACKing
    // into a connection the sender already abandoned.
    const absl::Duration left = std::max(absl::ZeroDuration(), meta.deadline - absl::Now());
    j["timeout_ms"] = absl::ToInt64Milliseconds(left - std::min(left / 5, absl::Milliseconds(100)));
  }
  return j.dump();
}

absl::Status DecodeBeginBody(std::string_view body, TransferMeta* meta,
                             ReservationId* reservation) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("BEGIN body: not a JSON object");
  }
  auto rid = j.find("request_id");
  auto first = j.find("first_token");
  auto count = j.find("block_count");
  auto total = j.find("total_bytes");
  auto res = j.find("reservation");
  auto keys = j.find("keys");
  const auto end = j.end();
  if (rid == end || !rid->is_string() || first == end || !first->is_number_integer() ||
      count == end || !count->is_number_unsigned() || total == end ||
      !total->is_number_unsigned() || res == end || !res->is_number_unsigned() || keys == end ||
      !keys->is_array()) {
    return absl::InvalidArgumentError("BEGIN body: missing or mistyped field");
  }
  meta->request_id = rid->get<std::string>();
  meta->first_token = first->get<int32_t>();
  if (count->get<uint64_t>() > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("BEGIN body: block_count ", count->get<uint64_t>(), " over ", UINT32_MAX));
  }
  meta->block_count = count->get<uint32_t>();
  meta->total_bytes = total->get<uint64_t>();
  *reservation = res->get<uint64_t>();
  meta->transfer_token.clear();
  if (auto token = j.find("token"); token != end && token->is_string()) {
    meta->transfer_token = token->get<std::string>();
  }
  meta->deadline = absl::InfiniteFuture();
  if (auto t = j.find("timeout_ms"); t != j.end()) {
    if (!t->is_number_integer()) return absl::InvalidArgumentError("BEGIN body: timeout_ms");
    meta->deadline = absl::Now() + absl::Milliseconds(t->get<int64_t>());
  }
  meta->keys.clear();
  for (const auto& k : *keys) {
    if (!k.is_string()) return absl::InvalidArgumentError("BEGIN body: key not a string");
    absl::StatusOr<BlockKey> key = BlockKey::FromHex(k.get<std::string>());
    if (!key.ok())
      return absl::InvalidArgumentError(absl::StrCat("BEGIN body: ", key.status().message()));
    meta->keys.push_back(*key);
  }
  if (meta->keys.size() != meta->block_count) {
    return absl::InvalidArgumentError(absl::StrCat("BEGIN body: ", meta->keys.size(),
                                                   " keys for block_count ", meta->block_count));
  }
  return absl::OkStatus();
}

std::string EncodeEndBody(uint64_t block_count) {
  std::string out;
  AppendLe<uint64_t>(&out, block_count);
  return out;
}

absl::StatusOr<uint64_t> DecodeEndBody(std::string_view body) {
  if (body.size() != 8) {
    return absl::InvalidArgumentError(absl::StrCat("END body: ", body.size(), " bytes, need 8"));
  }
  return LoadLe<uint64_t>(reinterpret_cast<const uint8_t*>(body.data()), 0);
}

std::string EncodeReplyBody(const absl::Status& status, std::string_view reason) {
  nlohmann::json j = {{"code", static_cast<int>(status.code())},
                      {"reason", std::string(reason)},
                      {"message", std::string(status.message())}};
  return j.dump();
}

absl::StatusOr<Reply> DecodeReplyBody(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("reply body: not a JSON object");
  }
  auto code = j.find("code");
  auto reason = j.find("reason");
  auto message = j.find("message");
  if (code == j.end() || !code->is_number_integer() || reason == j.end() || !reason->is_string() ||
      message == j.end() || !message->is_string()) {
    return absl::InvalidArgumentError("reply body: missing or mistyped field");
  }
  const int c = code->get<int>();
  if (c < 0 || c > 16) return absl::InvalidArgumentError(absl::StrCat("reply body: code ", c));
  Reply r;
  r.status = absl::Status(static_cast<absl::StatusCode>(c), message->get<std::string>());
  r.reason = reason->get<std::string>();
  return r;
}

}  // namespace tandem::kv
