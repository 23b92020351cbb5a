// router/options.cc: RouterOptions::Validate and the node-list parser.
#include "router/options.h"

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status.h"
#include "router/policy/routing_policy.h"

namespace tandem::router {

absl::StatusOr<NodeList> ParseNodeList(std::string_view flag_name, std::string_view list) {
  NodeList out;
  for (absl::string_view item : absl::StrSplit(AV(list), ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const bool dns = absl::ConsumePrefix(&item, "dns:");
    const size_t colon = item.rfind(':');
    int port = 0;
    if (colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(item.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", AV(flag_name), ": '", dns ? "dns:" : "", item, "' is not ",
                       dns ? "dns:name:port" : "host:port", " with a port 1..65535"));
    }
    const std::string host(item.substr(0, colon));
    if (dns) {
      out.dns_names.push_back(DnsNodeName{host, port});
    } else {
      out.endpoints.push_back(HttpEndpoint{host, port});
    }
  }
  return out;
}

absl::Status RouterOptions::Validate() const {
  auto bad = [](std::string_view flag, auto value, std::string_view want) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", AV(flag), ": ", value, " ", AV(want)));
  };
  if (port < 0 || port > 65535) return bad("router_port", port, "is not a port (0..65535)");
  if (http_threads < 1) return bad("http_threads", http_threads, "must be at least 1");
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both or neither");
  }
  if (max_body_bytes < 1024) return bad("router_max_body_bytes", max_body_bytes, "must be >= 1024");
  if (max_queued_connections < 0) {
    return bad("router_max_queued_connections", max_queued_connections, "must be >= 0");
  }
  if (key_limits.max_concurrent < 0) {
    return bad("api_key_max_concurrent", key_limits.max_concurrent, "must be >= 0");
  }
  if (key_limits.tokens_per_minute < 0) {
    return bad("api_key_tokens_per_minute", key_limits.tokens_per_minute, "must be >= 0");
  }
  if (model_path.empty()) {
    return absl::InvalidArgumentError("--model: the GGUF file is required");
  }
  if (service.served_model_name.empty()) {
    return absl::InvalidArgumentError("--served_model_name: must not be empty");
  }
  bool known_policy = false;
  for (std::string_view n : kRoutingPolicyNames) known_policy |= n == policy;
  if (!known_policy) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--router_policy: '", policy, "' is not kv_aware, least_loaded or round_robin"));
  }
  if (service.max_retries < 0)
    return bad("router_max_retries", service.max_retries, "must be >= 0");
  if (service.max_queue < absl::ZeroDuration()) {
    return bad("router_max_queue_ms", absl::ToInt64Milliseconds(service.max_queue), "must be >= 0");
  }
  if (poll_interval < absl::Milliseconds(10)) {
    return bad("router_poll_ms", absl::ToInt64Milliseconds(poll_interval), "must be >= 10");
  }
  if (service.prefill_timeout < absl::Milliseconds(100)) {
    return bad("router_prefill_timeout_ms", absl::ToInt64Milliseconds(service.prefill_timeout),
               "must be >= 100");
  }
  if (service.decode_timeout < absl::Milliseconds(100)) {
    return bad("router_decode_timeout_ms", absl::ToInt64Milliseconds(service.decode_timeout),
               "must be >= 100");
  }
  if (service.control_timeout < absl::Milliseconds(10)) {
    return bad("router_control_timeout_ms", absl::ToInt64Milliseconds(service.control_timeout),
               "must be >= 10");
  }
  const GenerationDefaults& g = service.generation_defaults;
  if (!(g.temperature >= 0 && g.temperature <= 2)) {
    return bad("default_temperature", g.temperature, "is not in [0, 2]");
  }
  if (!(g.top_p > 0 && g.top_p <= 1)) return bad("default_top_p", g.top_p, "is not in (0, 1]");
  if (g.top_k < 0) return bad("default_top_k", g.top_k, "must be >= 0 (0 = off)");
  if (g.max_tokens < 0) {
    return bad("default_max_tokens", g.max_tokens, "must be >= 0 (0 = the rest of the context)");
  }
  if (dns_refresh < absl::Milliseconds(100)) {
    return bad("router_dns_refresh_ms", absl::ToInt64Milliseconds(dns_refresh), "must be >= 100");
  }
  if (service.queue_retry_interval < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("queue_retry_interval must be at least 1 ms");
  }
  return absl::OkStatus();
}

}  // namespace tandem::router
