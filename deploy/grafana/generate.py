#!/usr/bin/env python3
"""Writes Tandem's Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists below.

Adding a panel is one line in a list: (title, unit, [(PromQL, legend), ...]). Rates and
percentiles that alerts also use come from the recording rules in deploy/prometheus/rules.yaml
(tandem:*), so a dashboard and an alert never disagree. Every counter and histogram a panel reads
has its series from process start (0, not "no data", on an idle cluster), so no expression needs
`or vector(0)`; tests/cluster/prometheus_live_test.py runs every expression against a live
`tandem serve`, idle and under load, and `generate.py --check` (a unit test)
fails when the JSON in the repository differs from what this script writes.

Usage: deploy/grafana/generate.py [--check]
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "dashboards")
# Scrape jobs of Tandem processes: PodMonitor jobs are "<namespace>/<name>" (deploy/kubernetes),
# the static configs of deploy/prometheus/prometheus.yml are "tandem-<role>".
JOB = 'job=~".*tandem.*"'


def quantiles(metric, qs=(0.5, 0.9, 0.99), by=""):
    grouping = f"le{', ' + by if by else ''}"
    return [(f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket[5m])))",
             f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else "")) for q in qs]


OVERVIEW = ("tandem-overview", "Tandem / cluster overview", [
    ("Requests/s by code", "reqps",
     [("sum by (code) (rate(tandem_router_requests_total[5m]))", "{{code}}")]),
    ("Error ratio (5xx)", "percentunit",
     [("tandem:router_request_errors:ratio_rate5m", "5xx / all")]),
    ("Time to first token", "s",
     [("tandem:router_ttft_seconds:p50", "p50"), ("tandem:router_ttft_seconds:p90", "p90"),
      ("tandem:router_ttft_seconds:p99", "p99")]),
    ("TTFT by phase (mean seconds per request)", "s",
     [("tandem:router_phase_seconds:mean_rate5m", "{{phase}}")]),
    ("Inter-token latency", "s",
     [("tandem:router_itl_seconds:p50", "p50"), ("tandem:router_itl_seconds:p99", "p99")]),
    ("Time per output token", "s",
     quantiles("tandem_router_time_per_output_token_seconds", (0.5, 0.99))),
    ("End-to-end latency", "s",
     [("tandem:router_e2e_seconds:p50", "p50"), ("tandem:router_e2e_seconds:p99", "p99")]),
    ("Tokens/s", "short",
     [("tandem:router_generation_tokens:rate5m", "generated"),
      ("tandem:router_prompt_tokens:rate5m", "prompt"),
      ("sum(rate(tandem_router_cached_prompt_tokens_total[5m]))", "prompt, KV reused")]),
    ("Requests in the router", "short",
     [("sum(tandem_router_requests_running)", "running"),
      ("sum(tandem_router_requests_waiting)", "waiting for a decode slot")]),
    ("Usable nodes", "short",
     [("min by (role) (tandem_router_usable_nodes)", "usable {{role}}"),
      ("max by (role) (tandem_router_nodes)", "known {{role}}")]),
    ("Retries/s by reason", "short",
     [("sum by (reason) (rate(tandem_router_retries_total[5m]))", "{{reason}}")]),
])

KV = ("tandem-kv", "Tandem / KV tiers and transfer", [
    ("Hit ratio by tier (tokens)", "percentunit",
     [("tandem:kv_hit_ratio:rate5m", "{{tier}}")]),
    ("Misses/s by reason", "short",
     [("sum by (tier, reason) (tandem:kv_misses:rate5m)", "{{tier}} {{reason}}")]),
    ("Bytes held / budget", "bytes",
     [("sum by (tier) (tandem_kv_tier_used_bytes)", "used {{tier}}"),
      ("sum by (tier) (tandem_kv_tier_capacity_bytes)", "budget {{tier}}")]),
    ("Tier read / write bytes/s", "Bps",
     [("sum by (tier) (rate(tandem_kv_tier_read_bytes_total[5m]))", "read {{tier}}"),
      ("sum by (tier) (rate(tandem_kv_tier_written_bytes_total[5m]))", "written {{tier}}")]),
    ("Circuit breaker open (remote tiers)", "short",
     [("max by (instance, tier) (tandem_kv_tier_circuit_open)", "{{tier}} {{instance}}")]),
    ("Evictions/s", "short",
     [("sum by (tier) (rate(tandem_kv_evictions_total[5m]))", "{{tier}}")]),
    ("Dropped write-behind puts/s", "short",
     [("sum by (tier, reason) (rate(tandem_kv_put_dropped_total[5m]))",
       "{{tier}} {{reason}}")]),
    ("Tier get latency p99", "s",
     quantiles("tandem_kv_get_seconds", (0.99,), by="tier")),
    ("KV transfer GB/s", "short",
     [("sum by (transport, direction) (tandem:kv_transfer_bytes:rate5m) / 1e9",
       "{{transport}} {{direction}}")]),
    ("KV transfer latency", "s", quantiles("tandem_kv_transfer_seconds", (0.5, 0.99))),
    ("KV transfer failures", "short",
     [("tandem:kv_transfer_failures:ratio_rate5m", "failed / all"),
      ("sum by (transport, reason) (rate(tandem_kv_transfer_failures_total[5m]))",
       "{{transport}} {{reason}}/s")]),
])

NODES = ("tandem-nodes", "Tandem / nodes", [
    ("Prefill queue", "short",
     [("sum by (instance) (tandem_prefill_requests_waiting)", "waiting {{instance}}"),
      ("sum by (instance) (tandem_prefill_requests_running)", "running {{instance}}")]),
    ("Prefill tokens/s (computed vs reused KV)", "short",
     [("sum by (kind) (rate(tandem_prefill_tokens_total[5m]))", "{{kind}}")]),
    ("Sparse prefill density (median)", "percentunit",
     quantiles("tandem_prefill_sparse_attention_density", (0.5,), by="method")),
    ("Prefill attention seconds/s", "short",
     [("sum by (method) (rate(tandem_prefill_attention_seconds_sum[5m]))", "{{method}}")]),
    ("Decode slots", "short",
     [("sum by (instance) (tandem_decode_requests_running)", "running {{instance}}"),
      ("sum by (instance) (tandem_decode_requests_waiting)", "waiting {{instance}}")]),
    ("Decode KV usage", "percentunit",
     [("max by (instance) (tandem_decode_kv_usage_ratio)", "{{instance}}")]),
    ("Decode step time", "s", quantiles("tandem_decode_step_seconds", (0.5, 0.99))),
    ("Decode batch size (mean)", "short",
     [("sum(rate(tandem_decode_batch_size_sum[5m])) / sum(rate(tandem_decode_batch_size_count[5m]))",
       "sequences per step")]),
    ("Process CPU (cores)", "short",
     [(f"sum by (instance) (rate(process_cpu_seconds_total{{{JOB}}}[5m]))", "{{instance}}")]),
    ("Process resident memory", "bytes",
     [(f"sum by (instance) (process_resident_memory_bytes{{{JOB}}})", "{{instance}}")]),
])

DASHBOARDS = [OVERVIEW, KV, NODES]


def panel(i, title, unit, targets):
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + k), "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}
                    for k, (expr, legend) in enumerate(targets)],
    }


def dashboard(uid, title, panels):
    return {
        "uid": uid,
        "title": title,
        "tags": ["tandem"],
        "editable": True,
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "type": "datasource",
                                 "query": "prometheus", "label": "Prometheus"}]},
        "panels": [panel(i, *p) for i, p in enumerate(panels)],
    }


def render():
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
            for uid, title, panels in DASHBOARDS}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = os.path.join(OUT, name)
        if check:
            try:
                with open(path) as f:
                    if f.read() != text:
                        stale.append(name)
            except OSError:
                stale.append(name)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run deploy/grafana/generate.py", file=sys.stderr)
        return 1
    print(("checked " if check else "wrote ") + ", ".join(sorted(render())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
