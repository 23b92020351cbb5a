#include "prefill_node/flags.h"

#include <optional>
#include <string>

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

TANDEM_FLAG(double, blend_recompute_ratio, runtime::BlendOptions{}.recompute_ratio,
            "CacheBlend: fraction of reused document tokens recomputed after the check layer, "
            "[0, 1] (0 = plain reuse of stored document KV, 1 = full prefill).");
TANDEM_FLAG(int32_t, blend_check_layer, runtime::BlendOptions{}.check_layer,
            "CacheBlend: the layer whose K/V deviation picks the recomputed tokens; layers up to "
            "it run over every token.");
TANDEM_FLAG(std::string, blend_deviation,
            std::string(runtime::BlendDeviationName(runtime::BlendOptions{}.deviation)),
            "CacheBlend: value | key, the stored tensor whose deviation ranks tokens.");
TANDEM_FLAG(int32_t, blend_min_tokens, runtime::BlendOptions{}.min_blend_tokens,
            "CacheBlend: prompts with fewer reused document tokens are prefilled in full.");

absl::StatusOr<PrefillOptions> PrefillOptionsFromFlags() {
  PrefillOptions o;
  TANDEM_ASSIGN_OR_RETURN(o.model, runtime::ModelOptionsFromFlags());
  o.kv_store = kv::KvStoreOptionsFromFlags();
  TANDEM_ASSIGN_OR_RETURN(kv::DataPlaneOptions data_plane, kv::DataPlaneOptionsFromFlags());
  o.transfer_timeout = data_plane.transfer_timeout;
  o.max_waiting = GetFlag(FLAGS_prefill_max_waiting);
  o.blend.recompute_ratio = GetFlag(FLAGS_blend_recompute_ratio);
  o.blend.check_layer = GetFlag(FLAGS_blend_check_layer);
  const std::optional<runtime::BlendDeviation> deviation =
      runtime::ParseBlendDeviation(GetFlag(FLAGS_blend_deviation));
  if (!deviation.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--blend_deviation: '", GetFlag(FLAGS_blend_deviation), "' is not value or key"));
  }
  o.blend.deviation = *deviation;
  o.blend.min_blend_tokens = GetFlag(FLAGS_blend_min_tokens);
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
