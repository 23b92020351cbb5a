// router/flags.cc: the router's flags and RouterOptionsFromFlags.
#include "router/flags.h"

#include <string>

#include "common/flags.h"
#include "common/model_format/flags.h"
#include "common/process.h"
#include "common/status.h"

namespace tandem::router {

TANDEM_FLAG(int32_t, router_port, 8000, "Port of the router's OpenAI API (0 binds a free port).");
TANDEM_FLAG(std::string, prefill_nodes, "",
            "Prefill nodes' HTTP addresses, comma-separated host:port or dns:name:port (every "
            "address of the name, re-resolved every --router_dns_refresh_ms).");
TANDEM_FLAG(std::string, decode_nodes, "",
            "Decode nodes' HTTP addresses, comma-separated host:port or dns:name:port.");
TANDEM_FLAG(int64_t, router_dns_refresh_ms, 5000,
            "Period of resolving the dns: names of --prefill_nodes and --decode_nodes again.");
TANDEM_FLAG(std::string, api_key, "",
            "When set, every /v1/* call needs 'Authorization: Bearer <api_key>'.");
TANDEM_FLAG(std::string, served_model_name, "SmolLM2-135M-Instruct",
            "The model name clients send and /v1/models lists.");
TANDEM_FLAG(std::string, router_policy, "kv_aware",
            "Routing policy: kv_aware, least_loaded or round_robin.");
TANDEM_FLAG(double, default_temperature, 0.9,
            "Sampling temperature of requests that send none (0 = greedy). The default suits "
            "SmolLM2-135M-Instruct; see RouterOptions::generation_defaults.");
TANDEM_FLAG(double, default_top_p, 0.9, "top_p of requests that send none (1 = off).");
TANDEM_FLAG(int32_t, default_top_k, 40, "top_k of requests that send none (0 = off).");
TANDEM_FLAG(int32_t, default_max_tokens, 256,
            "max_tokens of requests that send none (0 = the rest of the context).");
TANDEM_FLAG(int32_t, router_max_retries, 2,
            "Extra attempts on other nodes after a retryable failure before the first token.");
TANDEM_FLAG(int64_t, router_max_queue_ms, 30000,
            "How long a request waits for a free decode node before 503 + Retry-After.");
TANDEM_FLAG(int64_t, router_poll_ms, 200, "Period of the status poll of each node.");
TANDEM_FLAG(int64_t, router_prefill_timeout_ms, 300000,
            "Longest wait for a prefill node's answer (its queue plus the prompt's compute).");
TANDEM_FLAG(int64_t, router_decode_timeout_ms, 60000,
            "Longest silence on a decode stream before the router gives up on it.");
TANDEM_FLAG(int64_t, router_control_timeout_ms, 5000,
            "Timeout of reserve and cancel calls to nodes (and the connect timeout of every node "
            "call); a slower node is treated as down.");

absl::StatusOr<RouterOptions> RouterOptionsFromFlags() {
  RouterOptions o;
  o.host = GetFlag(FLAGS_host);
  o.port = GetFlag(FLAGS_router_port);
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
  o.served_model_name = GetFlag(FLAGS_served_model_name);
  o.policy = GetFlag(FLAGS_router_policy);
  o.generation_defaults.temperature = GetFlag(FLAGS_default_temperature);
  o.generation_defaults.top_p = GetFlag(FLAGS_default_top_p);
  o.generation_defaults.top_k = GetFlag(FLAGS_default_top_k);
  o.generation_defaults.max_tokens = GetFlag(FLAGS_default_max_tokens);
  o.max_retries = GetFlag(FLAGS_router_max_retries);
  o.max_queue = absl::Milliseconds(GetFlag(FLAGS_router_max_queue_ms));
  o.poll_interval = absl::Milliseconds(GetFlag(FLAGS_router_poll_ms));
  o.prefill_timeout = absl::Milliseconds(GetFlag(FLAGS_router_prefill_timeout_ms));
  o.decode_timeout = absl::Milliseconds(GetFlag(FLAGS_router_decode_timeout_ms));
  o.control_timeout = absl::Milliseconds(GetFlag(FLAGS_router_control_timeout_ms));
  TANDEM_RETURN_IF_ERROR(o.Validate());
  return o;
}

}  // namespace tandem::router
