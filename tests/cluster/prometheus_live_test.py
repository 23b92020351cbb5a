"""A real Prometheus scrapes a live `tandem serve`; every dashboard panel and rule returns data.

Starts `tandem serve` with a RocksDB tier and a Redis tier (a local redis-server), so every KV tier
reports, and Debian's `prometheus`
(scrape and rule evaluation every second, deploy/prometheus/rules.yaml and alerts.yaml loaded),
runs through Prometheus's HTTP API, once on the idle cluster and once after a short load through
the openai client (chat and completions, streaming and not, a repeated long prompt so KV is reused,
a bad request):
- every PromQL expression of every panel of every dashboard in deploy/grafana/dashboards/,
- every recording and alerting rule Prometheus loaded (its own /api/v1/rules list),
and fails naming each one that returns no sample, and each metric name a panel or rule reads that
no process exports. Idle, before any request, this is what an operator sees on a healthy cluster
that has had no traffic (or no failures) yet: 0, not "no data", because every counter and histogram
the dashboards and rules read exists from process start.

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
    maxDiff = None  # name every expression that returned nothing
    def setUp(self):
        for tool in ("prometheus", "redis-server"):
            if shutil.which(tool) is None:
                reason = f"{tool} is not installed (scripts/install_deps.sh installs it)"
                if os.environ.get("CI") == "true":
                    self.fail(reason)
                self.skipTest(reason)
        self.dir = tempfile.mkdtemp(prefix="tandem-prom-")
        self.prom = None
        redis_port = free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.addCleanup(self.redis.wait, timeout=30)  # cleanups run last-in first-out
        self.addCleanup(self.redis.terminate)
        deadline = time.time() + 30
        while True:  # accepting connections before the prefill node opens its Redis tier
            try:
                socket.create_connection(("127.0.0.1", redis_port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or self.redis.poll() is not None:
                    raise
                time.sleep(0.05)
        self.serve = tc.TandemProcess(
            TANDEM, "serve", ["--serve_port=0", "--threads=1",
                              f"--kv_disk_path={os.path.join(self.dir, 'kv')}",
                              f"--redis_url=redis://127.0.0.1:{redis_port}"],
            name="serve-prom")

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

    def expressions_without_data(self):
        """(unknown metric names, expressions that return nothing, number checked)."""
        live = set(self.api("label/__name__/values"))
        rules = [r for g in self.api("rules")["groups"] for r in g["rules"]]
        self.assertGreaterEqual(len(rules), 30, "rules.yaml and alerts.yaml were not loaded")
        checked = panel_expressions()
        for r in rules:
            checked.append((f"rule {r.get('name')}", r["query"]))
            if r["type"] == "recording":
                checked.append((f"recorded series {r['name']}", r["name"]))
            self.assertEqual(r.get("health"), "ok", r)
        alerts = {r["name"] for r in rules if r["type"] == "alerting"}
        empty, unknown = [], []
        for where, expr in checked:
            unknown += [f"{where}: {name}" for name in metric_names(expr)
                        if not name.startswith("tandem:") and name not in live]
            if where.startswith("rule ") and where[5:] in alerts:
                # An alert's condition is empty on a healthy cluster; its expression without the
                # comparison must still return data. Evaluate the left-hand side.
                expr = re.split(r"\s(?:>|<|==|and)\s", expr)[0]
            if not self.query(expr):
                empty.append(f"{where}: {expr}")
        return unknown, empty, len(checked)

    def check_every_expression(self, when, settle_s):
        # Rules evaluate every second, after two scrapes a rate has a value: retry a few times.
        deadline = time.time() + settle_s
        while True:
            unknown, empty, n = self.expressions_without_data()
            if (not unknown and not empty) or time.time() > deadline:
                break
            time.sleep(1)
        print(f"{when}: {n} expressions checked, {len(unknown)} unknown names, {len(empty)} empty")
        self.assertEqual(unknown, [], f"{when}: metric names that no process exports")
        self.assertEqual(empty, [], f"{when}: expressions that returned no data")

    def test_every_panel_and_rule_returns_data(self):
        self.serve.wait_ready(timeout=240)
        self.start_prometheus(self.serve.ports)
        self.wait_for('up{job="tandem-decode"} == 1')
        self.wait_for('count(up{job=~"tandem-.*"} == 1) == 3')
        # Idle: no request yet, so every series is one the processes made at start.
        self.check_every_expression("idle, before any request", settle_s=20)
        firing = [a for a in self.api("alerts")["alerts"] if a["state"] == "firing"]
        self.assertEqual(firing, [])

        self.load(self.serve.url("/v1"))
        # Rates need two scrapes after the load, and rules a few evaluations after that.
        self.wait_for("tandem:router_ttft_seconds:p99 > 0")
        self.wait_for("sum(tandem:kv_hit_ratio:rate5m) > 0")
        time.sleep(3)
        self.check_every_expression("after the load", settle_s=10)
        # Healthy: the alerts Prometheus evaluated did not fire.
        firing = [a for a in self.api("alerts")["alerts"] if a["state"] == "firing"]
        self.assertEqual(firing, [])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
