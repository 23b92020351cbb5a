#include "decode_node/options.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tandem::decode {

absl::Status DecodeOptions::Validate() const {
  auto bad = [](const char* what, const auto& value, const char* rule) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", value, " ", rule));
  };
  if (model.kv.capacity_tokens <= 0) {
    return bad("model.kv.capacity_tokens (--decode_kv_capacity_tokens)", model.kv.capacity_tokens,
               "must be positive");
  }
  if (reservation_ttl <= absl::ZeroDuration()) {
    return bad("reservation_ttl (--decode_reservation_ttl_ms)",
               absl::ToInt64Milliseconds(reservation_ttl), "must be positive");
  }
  if (data_port < 0 || data_port > 65535) {
    return bad("data_port (--decode_data_port)", data_port, "must be in 0..65535");
  }
  if (advertise_host.empty()) {
    return absl::InvalidArgumentError("advertise_host (--decode_advertise_host) is empty");
  }
  if (node_id.empty()) return absl::InvalidArgumentError("node_id (--node_id) is empty");
  TANDEM_RETURN_IF_ERROR(model.Validate());
  return absl::OkStatus();
}

}  // namespace tandem::decode
