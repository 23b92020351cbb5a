// router/options.h
//
// RouterOptions: everything a router process is configured with (ARCHITECTURE.md §6). Filled from
// flags by RouterOptionsFromFlags() (router/flags.h) and handed to RunRouter's pieces; libraries
// never read flags. Plain value; Validate() names the bad flag.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/cluster_secret.h"
#include "common/http_client.h"
#include "router/api_keys.h"
#include "router/dns_resolver.h"
#include "router/openai_api.h"

namespace tandem::router {

struct RouterServiceOptions {
  // The model name responses carry. Default: SmolLM2-135M-Instruct. Flag: --served_model_name
  std::string served_model_name = "SmolLM2-135M-Instruct";
  // Extra attempts on other nodes after a retryable failure before the first decoded token
  // (prefill errors, failed transfers, decode streams that broke before their first token).
  // Default: 2. Flag: --router_max_retries
  int max_retries = 2;
  // How long a request waits for a decode reservation while every decode node is full, counted
  // from its arrival; then 503 + Retry-After. Default: 30 s. Flag: --router_max_queue_ms
  absl::Duration max_queue = absl::Seconds(30);
  // How often a request waiting for a decode reservation asks the nodes again. Shorter reacts
  // sooner to freed capacity at the cost of more reserve calls. Default: 50 ms. No flag: the
  // default suits every deployment; tests shorten it.
  absl::Duration queue_retry_interval = absl::Milliseconds(50);
  // Longest wait for one prefill answer. Default: 300 s. Flag: --router_prefill_timeout_ms
  absl::Duration prefill_timeout = absl::Seconds(300);
  // Longest silence on a decode stream. Default: 60 s. Flag: --router_decode_timeout_ms
  absl::Duration decode_timeout = absl::Seconds(60);
  // Sampling a request gets for the fields it does not send. Here the OpenAI API's own; a router
  // process uses RouterOptions's, which suit the served model. Flags: --default_temperature,
  // --default_top_p, --default_top_k, --default_max_tokens
  GenerationDefaults generation_defaults;
  // Connect timeout of every node call, and the whole budget of reserve calls: they are quick,
  // so a node that takes longer is treated as down. Default: 5 s.
  // Flag: --router_control_timeout_ms
  absl::Duration control_timeout = absl::Seconds(5);
  // Signs every call to a node with the cluster secret; nullptr sends them unsigned (nodes
  // without a secret). Set by Router::Start from RouterOptions::cluster_secret.
  std::shared_ptr<const ControlPlaneAuth> cluster_auth{};
};

// The generation defaults of a router process (vLLM's generation config; the GGUF carries no
// sampling keys). They suit SmolLM2-135M-Instruct, measured on its chat answers: the OpenAI API's
// temperature 1.0 without top-p/top-k drifts into invented words and has no length limit; the
// model card's temperature 0.2 / top-p 0.9 falls into loops (9 of 30 seeded haikus still looped at
// 0.7); 0.9 / top-p 0.9 / top-k 40 (llama.cpp's top-k) looped in 3 of 30, and 256 tokens bounds a
// loop when one happens (deploy/README.md, "Serving defaults").
inline constexpr GenerationDefaults kServedModelGenerationDefaults = {0.9, 0.9, 40, 256};

// RouterServiceOptions as a router process starts with: the library's, with the served model's
// generation defaults.
inline RouterServiceOptions ProcessServiceOptions() {
  RouterServiceOptions o;
  o.generation_defaults = kServedModelGenerationDefaults;
  return o;
}

struct RouterOptions {
  // Address and port of the OpenAI API. Default: 127.0.0.1:8000 (loopback until told otherwise).
  // Flags: --host, --router_port
  std::string host = "127.0.0.1";
  int port = 8000;
  // HTTP worker threads; each streaming request holds one for its whole life.
  // Default: 64. Flag: --http_threads
  int http_threads = 64;
  // The GGUF whose tokenizer, chat template, context length and fingerprints the router uses.
  // Flag: --model
  std::string model_path;
  // The nodes: static addresses, and DNS names re-resolved every dns_refresh (a Kubernetes
  // headless Service: one A/AAAA record per ready pod). Flags: --prefill_nodes, --decode_nodes
  // (comma-separated host:port or dns:name:port items)
  std::vector<HttpEndpoint> prefill_nodes;
  std::vector<HttpEndpoint> decode_nodes;
  std::vector<DnsNodeName> prefill_dns;
  std::vector<DnsNodeName> decode_dns;
  // How often the dns: names are resolved again. Shorter finds new pods sooner at the cost of
  // more DNS queries (one per name and period). Default: 5 s. Flag: --router_dns_refresh_ms
  absl::Duration dns_refresh = absl::Seconds(5);
  // When not empty, every /v1/* call needs "Authorization: Bearer <api_key>". Flag: --api_key
  std::string api_key;
  // Named keys, `name:key` per line; names appear in logs and metrics, keys never. api_key, when
  // set, joins them under the name "default". Flag: --api_keys_file
  std::vector<ApiKey> api_keys;
  // Per-key concurrency and token-rate limits. Flags: --api_key_max_concurrent,
  // --api_key_tokens_per_minute
  KeyLimits key_limits;
  // Largest request body; a larger Content-Length is 413 before the body is read. Default: 4 MiB.
  // Flag: --router_max_body_bytes
  int64_t max_body_bytes = 4 << 20;
  // Connections waiting for a worker beyond --http_threads before new ones get 503 + Retry-After.
  // Default: 256. Flag: --router_max_queued_connections
  int max_queued_connections = 256;
  // Serve the OpenAI API over HTTPS with this PEM certificate chain and key. Flags: --tls_cert,
  // --tls_key (both or neither)
  std::string tls_cert;
  std::string tls_key;
  // The cluster secret the nodes require on /internal/ calls; nullptr when none is configured.
  // Flag: --cluster_secret_file
  std::shared_ptr<const ClusterSecret> cluster_secret{};
  // kv_aware | least_loaded | round_robin. Default: kv_aware. Flag: --router_policy
  std::string policy = "kv_aware";
  // Status poll period per node. Default: 200 ms. Flag: --router_poll_ms
  absl::Duration poll_interval = absl::Milliseconds(200);
  // The request pipeline: served model name, retries, queueing, timeouts, and the generation
  // defaults (kServedModelGenerationDefaults here). Flags: see RouterServiceOptions.
  RouterServiceOptions service = ProcessServiceOptions();

  // InvalidArgument naming the flag and value.
  absl::Status Validate() const;
};

// One parsed --prefill_nodes / --decode_nodes value.
struct NodeList {
  std::vector<HttpEndpoint> endpoints;  // host:port items
  std::vector<DnsNodeName> dns_names;   // dns:name:port items
};

// "host:port,dns:name:port,..." (spaces around items ignored, empty items skipped). A `dns:` item
// names a DNS name whose every address is a node listening on `port`. InvalidArgument naming
// `flag_name` and the bad item.
absl::StatusOr<NodeList> ParseNodeList(std::string_view flag_name, std::string_view list);

}  // namespace tandem::router
