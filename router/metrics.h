// router/metrics.h
//
// RouterMetrics: every metric the router exports (ARCHITECTURE.md §7), registered once here so the
// names, help texts and buckets live in one place. Request threads and the registry's pollers
// update them. The families are owned by the MetricsRegistry, which must outlive this struct.
// Thread-safe (prometheus-cpp metrics are atomic); Labels() locks, so hot paths keep the result.
#pragma once

#include <string>
#include <string_view>

#include "common/metrics.h"

namespace tandem::router {

struct RouterMetrics {
  explicit RouterMetrics(MetricsRegistry& registry);

  // tandem_router_requests_total{endpoint, code}; endpoint "chat" | "completions" | "models".
  void CountRequest(std::string_view endpoint, int http_code);
  void CountKeyRequest(std::string_view key_name, int http_code);
  void ObservePhase(std::string_view phase, double seconds);
  void CountRetry(std::string_view reason);

  HistogramFamily* ttft;
  HistogramFamily* itl;
  HistogramFamily* tpot;
  HistogramFamily* e2e;
  HistogramFamily* phase;
  CounterFamily* requests;
  // Finished requests by API key *name* (never the key) and code; "anonymous" without keys.
  CounterFamily* key_requests;
  CounterFamily* prompt_tokens;
  CounterFamily* generation_tokens;
  CounterFamily* cached_prompt_tokens;
  CounterFamily* retries;
  CounterFamily* migrations;
  GaugeFamily* requests_running;
  GaugeFamily* requests_waiting;
  GaugeFamily* index_stale_nodes;
  GaugeFamily* incompatible_nodes;
  GaugeFamily* nodes;         // {role}: static plus discovered
  GaugeFamily* usable_nodes;  // {role}
  // Mean KV usage (0..1) of the usable decode nodes: what an endpoint picker reads as the KV
  // cache utilisation of this router (deploy/README.md).
  GaugeFamily* kv_usage;
  CounterFamily* dns_resolutions;
  CounterFamily* dns_failures;
};

}  // namespace tandem::router
