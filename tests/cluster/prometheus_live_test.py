"""A real Prometheus scrapes a live `tandem serve`; every dashboard panel and rule returns data.

Starts `tandem serve` (with a RocksDB tier, so two KV tiers report) and Debian's `prometheus`
(scrape and rule evaluation every second, deploy/prometheus/rules.yaml and alerts.yaml loaded),
sends a short load through the openai client (chat and completions, streaming and not, a repeated
long prompt so KV is reused, a bad request), then runs through Prometheus's HTTP API:
- every PromQL expression of every panel of every dashboard in deploy/grafana/dashboards/,
- every recording and alerting rule Prometheus loaded (its own /api/v1/rules list),
and fails naming each one that returns no sample. Every metric name a panel or rule reads must
also be in the live scrape, except the two counters that have no series before their first event
(tandem_kv_put_dropped_total, tandem_kv_transfer_failures_total): those must at least be
registered under that name in the C++ sources, and their panels read 0 until then.

Run: .venv-test/bin/python tests/cluster/prometheus_live_test.py --tandem build/cli/tandem
"""

import argparse
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
MODEL_NAME = "SmolLM2-135M-Instruct"
DEPLOY = os.path.join(tc.SOURCE_DIR, "deploy")
EVENT_ONLY = {"tandem_kv_put_dropped_total", "tandem_kv_transfer_failures_total"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def panel_expressions():
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
        with open(path) as f:
            board = json.load(f)
        for p in board["panels"]:
            for t in p.get("targets", []):
                out.append((f"{os.path.basename(path)} / {p['title']} / {t['refId']}", t["expr"]))
    return out


def metric_names(expr):
    # Series names as exported (a histogram's _bucket/_sum/_count), never a label value.
    return set(re.findall(r"\b((?:tandem|process)_[a-z0-9_]+|up)\b(?![\"=])", expr))


class PrometheusLiveTest(unittest.TestCase):
    def setUp(self):
        if shutil.which("prometheus") is None:
            reason = "prometheus is not installed (scripts/install_deps.sh installs it)"
            if os.environ.get("CI") == "true":
                self.fail(reason)
            self.skipTest(reason)
        self.dir = tempfile.mkdtemp(prefix="tandem-prom-")
        self.serve = tc.TandemProcess(
            TANDEM, "serve", ["--serve_port=0", "--threads=1",
                              f"--kv_disk_path={os.path.join(self.dir, 'kv')}"],
            name="serve-prom")
        self.prom = None

    def tearDown(self):
        if self.prom and self.prom.poll() is None:
            self.prom.terminate()
            self.prom.wait(timeout=30)
        if self.prom:
            self.prom_log.close()
        self.serve.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_prometheus(self, ports):
        self.prom_port = free_port()
        targets = {"tandem-router": ports["http"], "tandem-prefill": ports["prefill"],
                   "tandem-decode": ports["decode"]}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [os.path.join(DEPLOY, "prometheus", "rules.yaml"),
                           os.path.join(DEPLOY, "prometheus", "alerts.yaml")],
            "scrape_configs": [{"job_name": job, "static_configs": [
                {"targets": [f"127.0.0.1:{port}"]}]} for job, port in targets.items()],
        }
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        self.prom_log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.prom = subprocess.Popen(
            ["prometheus", f"--config.file={path}",
             f"--storage.tsdb.path={os.path.join(self.dir, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.prom_port}", "--log.level=warn"],
            stdout=self.prom_log, stderr=subprocess.STDOUT)
        tc.wait_http_ok(f"http://127.0.0.1:{self.prom_port}/-/ready", timeout=60)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, body = tc.http_json(url, timeout=30)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "success", body)
        return body["data"]

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def wait_for(self, expr, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.query(expr):
                return
            time.sleep(0.5)
        self.fail(f"{expr} returned nothing in {timeout} s")

    def load(self, base_url):
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120)
        long_prompt = " ".join(f"Fact {i}: the river flows east past the old mill." for i in
                               range(40))  # > 256 tokens: a full KV block, reused the 2nd time
        for i in range(2):
            client.completions.create(model=MODEL_NAME, prompt=long_prompt, max_tokens=8,
                                      temperature=0)
            client.chat.completions.create(
                model=MODEL_NAME, max_tokens=24,
                messages=[{"role": "user", "content": f"Name {i + 2} colors."}])
            for _ in client.chat.completions.create(
                    model=MODEL_NAME, max_tokens=24, stream=True,
                    messages=[{"role": "user", "content": "Write a haiku about the sea."}]):
                pass
        with self.assertRaises(openai.BadRequestError):
            client.chat.completions.create(model=MODEL_NAME, messages=[], max_tokens=4)

    def test_every_panel_and_rule_returns_data(self):
        self.serve.wait_ready(timeout=240)
        self.start_prometheus(self.serve.ports)
        self.wait_for('up{job="tandem-decode"} == 1')
        self.wait_for('count(up{job=~"tandem-.*"} == 1) == 3')
        self.load(self.serve.url("/v1"))
        # Rates need two scrapes after the load, and rules a few evaluations after that.
        self.wait_for("tandem:router_ttft_seconds:p99 > 0")
        self.wait_for("sum(tandem:kv_hit_ratio:rate5m) > 0")
        time.sleep(3)

        live = set(self.api("label/__name__/values"))
        sources = ""
        for pattern in ("**/*.cc",):
            for path in glob.glob(os.path.join(tc.SOURCE_DIR, pattern), recursive=True):
                if "/build" not in path and "/tests/" not in path:
                    with open(path, errors="replace") as f:
                        sources += f.read()

        empty, unknown = [], []
        checked = panel_expressions()
        groups = self.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        self.assertGreaterEqual(len(rules), 30, "rules.yaml and alerts.yaml were not loaded")
        for r in rules:
            checked.append((f"rule {r.get('name')}", r["query"]))
            if r["type"] == "recording":
                checked.append((f"recorded series {r['name']}", r["name"]))
            self.assertEqual(r.get("health"), "ok", r)
        for where, expr in checked:
            for name in metric_names(expr):
                if name.startswith("tandem:"):
                    continue
                if name not in live and not (name in EVENT_ONLY and f'"{name}"' in sources):
                    unknown.append(f"{where}: {name}")
            if where.startswith("rule ") and any(r["name"] == where[5:] and r["type"] == "alerting"
                                                 for r in rules):
                # An alert's condition is empty on a healthy cluster; its expression without the
                # comparison must still return data. Evaluate the left-hand side.
                expr = re.split(r"\s(?:>|<|==|and)\s", expr)[0]
            if not self.query(expr):
                empty.append(f"{where}: {expr}")
        print(f"{len(checked)} expressions checked ({len(panel_expressions())} panel targets, "
              f"{len(rules)} rules); {len(live)} metric names live")
        self.assertEqual(unknown, [], "metric names that no process exports")
        self.assertEqual(empty, [], "expressions that returned no data")
        # Healthy: the alerts Prometheus evaluated did not fire.
        firing = [a for a in self.api("alerts")["alerts"] if a["state"] == "firing"]
        self.assertEqual(firing, [])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
