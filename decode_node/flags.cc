#include "decode_node/flags.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "common/status.h"
#include "kv_store/options.h"
#include "runtime/flags.h"

namespace tandem::decode {

TANDEM_FLAG(int32_t, decode_port, 8200, "HTTP port of the decode node (0 = a free port).");
TANDEM_FLAG(int32_t, decode_data_port, DecodeOptions{}.data_port,
            "KV data-plane port of the decode node (0 = a free port).");
TANDEM_FLAG(int32_t, decode_max_seqs, DecodeNodeModelOptions().kv.max_seqs,
            "Sequences the decode node reserves and batches at once (see DecodeOptions).");
TANDEM_FLAG(int32_t, decode_kv_capacity_tokens, DecodeNodeModelOptions().kv.capacity_tokens,
            "KV tokens of the decode node's pool; 65536 = 1.4 GiB at f16 for SmolLM2.");
TANDEM_FLAG(int32_t, decode_reservation_ttl_ms,
            static_cast<int32_t>(absl::ToInt64Milliseconds(DecodeOptions{}.reservation_ttl)),
            "Longest an unclaimed decode reservation waits for its KV transfer, and is kept after "
            "it (ms). Keep it >= --router_prefill_timeout_ms + 5 s (the router's reserve "
            "deadline) so the router's deadline governs.");
TANDEM_FLAG(std::string, decode_advertise_host, "",
            "Host prefill nodes send KV to; default --host, or this machine's hostname when "
            "--host is a wildcard address.");
TANDEM_FLAG(int32_t, decode_drain_timeout_ms, 60000,
            "On drain (SIGTERM, POST /internal/v1/drain), how long to wait for running streams "
            "before ending them and exiting (ms). Default = --router_decode_timeout_ms, after "
            "which the router gives up on a stream anyway; tandem serve's --serve_stop_timeout_s "
            "(70 s) leaves ~10 s beyond it for the shutdown before it kills the node.");

namespace {

std::string AdvertiseHost(const std::string& listen_host) {
  std::string host = GetFlag(FLAGS_decode_advertise_host);
  if (!host.empty()) return host;
  if (!listen_host.empty() && listen_host != "0.0.0.0" && listen_host != "::") return listen_host;
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0') return name;
  return "127.0.0.1";
}

}  // namespace

absl::StatusOr<DecodeOptions> DecodeOptionsFromFlags() {
  DecodeOptions o;
  TANDEM_ASSIGN_OR_RETURN(o.model, runtime::ModelOptionsFromFlags());
  o.model.kv.max_seqs = GetFlag(FLAGS_decode_max_seqs);
  o.model.kv.capacity_tokens = GetFlag(FLAGS_decode_kv_capacity_tokens);
  const int32_t ttl_ms = GetFlag(FLAGS_decode_reservation_ttl_ms);
  if (ttl_ms <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--decode_reservation_ttl_ms: ", ttl_ms, " must be positive"));
  }
  o.reservation_ttl = absl::Milliseconds(ttl_ms);
  TANDEM_ASSIGN_OR_RETURN(kv::DataPlaneOptions data_plane, kv::DataPlaneOptionsFromFlags());
  o.transport = data_plane.transport;
  o.data_host = GetFlag(FLAGS_host);
  o.data_port = GetFlag(FLAGS_decode_data_port);
  o.advertise_host = AdvertiseHost(o.data_host);
  o.node_id = NodeIdFromFlags("decode");
  o.epoch = NewProcessEpoch();
  TANDEM_ASSIGN_OR_RETURN(o.cluster_secret, ClusterSecretFromFlags());
  if (absl::Status s = o.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("decode node flags: ", s.message()));
  }
  return o;
}

absl::StatusOr<int> DecodePortFromFlags() {
  const int32_t port = GetFlag(FLAGS_decode_port);
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--decode_port: ", port, " must be in 0..65535"));
  }
  return port;
}

absl::StatusOr<absl::Duration> DecodeDrainTimeoutFromFlags() {
  const int32_t ms = GetFlag(FLAGS_decode_drain_timeout_ms);
  if (ms < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--decode_drain_timeout_ms: ", ms, " must be >= 0"));
  }
  return absl::Milliseconds(ms);
}

}  // namespace tandem::decode
