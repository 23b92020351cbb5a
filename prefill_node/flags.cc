#include "prefill_node/flags.h"

#include "absl/strings/str_cat.h"
#include "common/process.h"
#include "common/status.h"
#include "kv_store/options.h"
#include "runtime/flags.h"

namespace tandem::prefill {

TANDEM_FLAG(int32_t, prefill_port, 8100,
            "HTTP port of the prefill node (/internal/v1/*, /health, /ready, /metrics); 0 = free.");
TANDEM_FLAG(int32_t, prefill_max_waiting, PrefillOptions{}.max_waiting,
            "Prefill requests allowed to wait for the model; more are refused with 503.");

absl::StatusOr<PrefillOptions> PrefillOptionsFromFlags() {
  PrefillOptions o;
  TANDEM_ASSIGN_OR_RETURN(o.model, runtime::ModelOptionsFromFlags());
  o.kv_store = kv::KvStoreOptionsFromFlags();
  TANDEM_ASSIGN_OR_RETURN(kv::DataPlaneOptions data_plane, kv::DataPlaneOptionsFromFlags());
  o.transfer_timeout = data_plane.transfer_timeout;
  o.max_waiting = GetFlag(FLAGS_prefill_max_waiting);
  o.node_id = NodeIdFromFlags("prefill");
  o.epoch = NewProcessEpoch();
  TANDEM_ASSIGN_OR_RETURN(o.cluster_secret, ClusterSecretFromFlags());
  if (!o.kv_store.redis_url.empty() && o.cluster_secret == nullptr) {
    return absl::InvalidArgumentError(
        "--redis_url needs --cluster_secret_file: blocks in the shared tier are signed with the "
        "cluster secret, so that whoever can write to Redis cannot plant KV");
  }
  o.kv_store.seal_secret = o.cluster_secret;
  TANDEM_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<int> PrefillPortFromFlags() {
  const int32_t port = GetFlag(FLAGS_prefill_port);
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefill_port: ", port, " is outside 0..65535"));
  }
  return port;
}

}  // namespace tandem::prefill
