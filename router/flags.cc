// router/flags.cc: the router's flags and RouterOptionsFromFlags.
#include "router/flags.h"

#include <string>

#include "common/flags.h"
#include "common/model_format/flags.h"
#include "common/process.h"
#include "common/status.h"

namespace tandem::router {

namespace {
// The flags' defaults are the options' own, written once in router/options.h.
const RouterOptions& Defaults() {
  static const RouterOptions* defaults = new RouterOptions();
  return *defaults;
}
int64_t Ms(absl::Duration d) { return absl::ToInt64Milliseconds(d); }
}  // namespace

TANDEM_FLAG(int32_t, router_port, Defaults().port,
            "Port of the router's OpenAI API (0 binds a free port).");
TANDEM_FLAG(std::string, prefill_nodes, "",
            "Prefill nodes' HTTP addresses, comma-separated host:port or dns:name:port (every "
            "address of the name, re-resolved every --router_dns_refresh_ms).");
TANDEM_FLAG(std::string, decode_nodes, "",
            "Decode nodes' HTTP addresses, comma-separated host:port or dns:name:port.");
TANDEM_FLAG(int64_t, router_dns_refresh_ms, Ms(Defaults().dns_refresh),
            "Period of resolving the dns: names of --prefill_nodes and --decode_nodes again.");
TANDEM_SECRET_FLAG(std::string, api_key, "",
                   "When set, every /v1/* call needs 'Authorization: Bearer <api_key>'.");
TANDEM_FLAG(std::string, api_keys_file, "",
            "File of API keys, one name:key per line ('#' comments); each /v1/* call needs "
            "'Authorization: Bearer <key>' of one of them. Names show in logs and metrics.");
TANDEM_FLAG(int32_t, api_key_max_concurrent, Defaults().key_limits.max_concurrent,
            "Requests one API key may have in flight; more get 429 + Retry-After. 0 = no limit.");
TANDEM_FLAG(int64_t, api_key_tokens_per_minute, Defaults().key_limits.tokens_per_minute,
            "Prompt + max_tokens one API key may start per minute; more get 429 + Retry-After. "
            "0 = no limit.");
TANDEM_FLAG(int64_t, router_max_body_bytes, Defaults().max_body_bytes,
            "Largest request body the router reads; larger gets 413 before it is read.");
TANDEM_FLAG(int32_t, router_max_queued_connections, Defaults().max_queued_connections,
            "Connections waiting for a worker beyond --http_threads; more get 503 + Retry-After.");
TANDEM_FLAG(std::string, tls_cert, "",
            "PEM certificate chain: the router serves HTTPS (needs --tls_key).");
TANDEM_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
TANDEM_FLAG(std::string, served_model_name, Defaults().service.served_model_name,
            "The model name clients send and /v1/models lists.");
TANDEM_FLAG(std::string, router_policy, Defaults().policy,
            "Routing policy: kv_aware, least_loaded or round_robin.");
TANDEM_FLAG(double, default_temperature, kServedModelGenerationDefaults.temperature,
            "Sampling temperature of requests that send none (0 = greedy). The default suits "
            "SmolLM2-135M-Instruct; see kServedModelGenerationDefaults (router/options.h).");
TANDEM_FLAG(double, default_top_p, kServedModelGenerationDefaults.top_p,
            "top_p of requests that send none (1 = off).");
TANDEM_FLAG(int32_t, default_top_k, static_cast<int32_t>(kServedModelGenerationDefaults.top_k),
            "top_k of requests that send none (0 = off).");
TANDEM_FLAG(int32_t, default_max_tokens,
            static_cast<int32_t>(kServedModelGenerationDefaults.max_tokens),
            "max_tokens of requests that send none (0 = the rest of the context).");
TANDEM_FLAG(int32_t, router_max_retries, Defaults().service.max_retries,
            "Extra attempts on other nodes after a retryable failure before the first token.");
TANDEM_FLAG(int64_t, router_max_queue_ms, Ms(Defaults().service.max_queue),
            "How long a request waits for a free decode node before 503 + Retry-After.");
TANDEM_FLAG(int64_t, router_poll_ms, Ms(Defaults().poll_interval),
            "Period of the status poll of each node.");
TANDEM_FLAG(int64_t, router_prefill_timeout_ms, Ms(Defaults().service.prefill_timeout),
            "Longest wait for a prefill node's answer (its queue plus the prompt's compute).");
TANDEM_FLAG(int64_t, router_decode_timeout_ms, Ms(Defaults().service.decode_timeout),
            "Longest silence on a decode stream before the router gives up on it.");
TANDEM_FLAG(int64_t, router_control_timeout_ms, Ms(Defaults().service.control_timeout),
            "Timeout of reserve and cancel calls to nodes (and the connect timeout of every node "
            "call); a slower node is treated as down.");

absl::StatusOr<RouterOptions> RouterOptionsFromFlags() {
  RouterOptions o;
  o.host = GetFlag(FLAGS_host);
  o.port = GetFlag(FLAGS_router_port);
  if (const std::string secret_file = GetFlag(FLAGS_cluster_secret_file); !secret_file.empty()) {
    TANDEM_ASSIGN_OR_RETURN(o.cluster_secret, ClusterSecret::ReadFile(secret_file));
  }
  o.http_threads = GetFlag(FLAGS_http_threads);
  o.model_path = GetFlag(format::FLAGS_model);
  TANDEM_ASSIGN_OR_RETURN(NodeList prefill,
                          ParseNodeList("prefill_nodes", GetFlag(FLAGS_prefill_nodes)));
  TANDEM_ASSIGN_OR_RETURN(NodeList decode,
                          ParseNodeList("decode_nodes", GetFlag(FLAGS_decode_nodes)));
  o.prefill_nodes = std::move(prefill.endpoints);
  o.prefill_dns = std::move(prefill.dns_names);
  o.decode_nodes = std::move(decode.endpoints);
  o.decode_dns = std::move(decode.dns_names);
  o.dns_refresh = absl::Milliseconds(GetFlag(FLAGS_router_dns_refresh_ms));
  o.api_key = GetFlag(FLAGS_api_key);
  if (const std::string file = GetFlag(FLAGS_api_keys_file); !file.empty()) {
    TANDEM_ASSIGN_OR_RETURN(o.api_keys, ReadApiKeysFile(file));
  }
  o.key_limits.max_concurrent = GetFlag(FLAGS_api_key_max_concurrent);
  o.key_limits.tokens_per_minute = GetFlag(FLAGS_api_key_tokens_per_minute);
  o.max_body_bytes = GetFlag(FLAGS_router_max_body_bytes);
  o.max_queued_connections = GetFlag(FLAGS_router_max_queued_connections);
  o.tls_cert = GetFlag(FLAGS_tls_cert);
  o.tls_key = GetFlag(FLAGS_tls_key);
  o.service.served_model_name = GetFlag(FLAGS_served_model_name);
  o.policy = GetFlag(FLAGS_router_policy);
  o.service.generation_defaults.temperature = GetFlag(FLAGS_default_temperature);
  o.service.generation_defaults.top_p = GetFlag(FLAGS_default_top_p);
  o.service.generation_defaults.top_k = GetFlag(FLAGS_default_top_k);
  o.service.generation_defaults.max_tokens = GetFlag(FLAGS_default_max_tokens);
  o.service.max_retries = GetFlag(FLAGS_router_max_retries);
  o.service.max_queue = absl::Milliseconds(GetFlag(FLAGS_router_max_queue_ms));
  o.poll_interval = absl::Milliseconds(GetFlag(FLAGS_router_poll_ms));
  o.service.prefill_timeout = absl::Milliseconds(GetFlag(FLAGS_router_prefill_timeout_ms));
  o.service.decode_timeout = absl::Milliseconds(GetFlag(FLAGS_router_decode_timeout_ms));
  o.service.control_timeout = absl::Milliseconds(GetFlag(FLAGS_router_control_timeout_ms));
  TANDEM_RETURN_IF_ERROR(o.Validate());
  return o;
}

}  // namespace tandem::router
