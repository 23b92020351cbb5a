// router/metrics.cc
#include "router/metrics.h"

namespace tandem::router {

RouterMetrics::RouterMetrics(MetricsRegistry& r)
    : ttft(r.Histogram("tandem_router_time_to_first_token_seconds",
                       "Accept to first token written to the client.", {}, kTtftBuckets)),
      itl(r.Histogram("tandem_router_inter_token_latency_seconds",
                      "Time between two consecutive tokens relayed to the client.", {},
                      kItlBuckets)),
      tpot(r.Histogram("tandem_router_time_per_output_token_seconds",
                       "(e2e - ttft) / (completion tokens - 1) per request.", {}, kItlBuckets)),
      e2e(r.Histogram("tandem_router_e2e_request_latency_seconds",
                      "Accept to the end of the response.", {}, kE2eBuckets)),
      phase(r.Histogram("tandem_router_request_phase_seconds",
                        "Request phases (ARCHITECTURE.md section 2) by phase.", {"phase"},
                        kTtftBuckets)),
      requests(r.Counter("tandem_router_requests_total", "Finished requests by endpoint and code.",
                         {"endpoint", "code"})),
      key_requests(r.Counter("tandem_router_key_requests_total",
                             "Finished requests by API key name (never the key) and code.",
                             {"key", "code"})),
      prompt_tokens(r.Counter("tandem_router_prompt_tokens_total", "Prompt tokens of requests.")),
      generation_tokens(r.Counter("tandem_router_generation_tokens_total",
                                  "Completion tokens relayed to clients.")),
      cached_prompt_tokens(
          r.Counter("tandem_router_cached_prompt_tokens_total",
                    "Prompt tokens whose KV a prefill node loaded from its store.")),
      retries(r.Counter("tandem_router_retries_total",
                        "Attempts of a request on another node, by reason.", {"reason"})),
      migrations(r.Counter("tandem_router_migrations_total",
                           "Streams moved to another decode node, by reason.", {"reason"})),
      requests_running(r.Gauge("tandem_router_requests_running",
                               "Requests that have a prefill node and are generating.")),
      requests_waiting(r.Gauge("tandem_router_requests_waiting",
                               "Requests waiting for a decode reservation or a prefill node.")),
      index_stale_nodes(r.Gauge("tandem_router_index_stale_nodes",
                                "Nodes that missed three or more status polls in a row.")),
      incompatible_nodes(r.Gauge("tandem_router_incompatible_nodes",
                                 "Nodes whose kv_format or vocabulary differ from the cluster's.")),
      nodes(r.Gauge("tandem_router_nodes",
                    "Nodes the router knows, static and found by DNS, by role.", {"role"})),
      usable_nodes(r.Gauge("tandem_router_usable_nodes",
                           "Nodes that get traffic (ready, compatible, answering), by role.",
                           {"role"})),
      kv_usage(r.Gauge("tandem_router_kv_usage_ratio",
                       "Mean KV usage (0..1) of the usable decode nodes.")),
      dns_resolutions(
          r.Counter("tandem_router_dns_resolutions_total",
                    "Resolutions of the dns: names of --prefill_nodes/--decode_nodes.")),
      dns_failures(r.Counter("tandem_router_dns_failures_total",
                             "Resolutions of dns: names that failed (the last nodes are kept).")) {
  // Zero series up front, so dashboards and alerts see the gauges before the first change.
  requests_running->Labels({});
  requests_waiting->Labels({});
  index_stale_nodes->Labels({});
  incompatible_nodes->Labels({});
  kv_usage->Labels({});
  dns_resolutions->Labels({});
  dns_failures->Labels({});
  // The reasons router_service.cc counts, so a dashboard shows 0 rather than no data.
  for (const char* reason :
       {"decode_unreachable", "decode_error", "prefill_error", "transfer_failed"}) {
    retries->Labels({reason});
  }
  for (const char* role : {"prefill", "decode"}) {
    nodes->Labels({role});
    usable_nodes->Labels({role});
  }
  prompt_tokens->Labels({});
  generation_tokens->Labels({});
  cached_prompt_tokens->Labels({});
  // The latency histograms and the phases of TimingsMs (router_service.cc, e2e has its own), so
  // the latency panels and the TTFT alert read a series (NaN percentiles, 0 rates) before the
  // first request rather than nothing.
  for (HistogramFamily* h : {ttft, itl, tpot, e2e}) h->Labels({});
  for (const char* name :
       {"queue", "kv_load", "prefill", "first_token", "transfer", "decode_queue", "decode"}) {
    phase->Labels({name});
  }
  // Each endpoint's successes: the request rate and error ratio read 0 on an idle router. Other
  // codes appear with their first answer (the error ratio treats "no 5xx series" as 0).
  for (const char* endpoint : {"chat", "completions", "models"}) {
    requests->Labels({endpoint, "200"});
  }
}

void RouterMetrics::CountRequest(std::string_view endpoint, int http_code) {
  requests->Labels({std::string(endpoint), std::to_string(http_code)}).Increment();
}

void RouterMetrics::CountKeyRequest(std::string_view key_name, int http_code) {
  key_requests->Labels({std::string(key_name), std::to_string(http_code)}).Increment();
}

void RouterMetrics::ObservePhase(std::string_view phase_name, double seconds) {
  phase->Labels({std::string(phase_name)}).Observe(seconds);
}

void RouterMetrics::CountRetry(std::string_view reason) {
  retries->Labels({std::string(reason)}).Increment();
}

}  // namespace tandem::router
