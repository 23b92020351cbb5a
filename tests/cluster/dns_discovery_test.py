"""DNS discovery: the router finds nodes by name while it runs, and requests succeed throughout.

The router runs in its own mount namespace (`unshare -m`) with a temp file bind-mounted on
/etc/hosts, so the system resolver it calls (getaddrinfo, the same call that reads a Kubernetes
headless Service's records) answers from a file this test rewrites. Nodes listen on loopback
addresses of their own (127.0.0.2, .3, ... share one port per role, as pods behind a headless
Service do), and the router is started with --prefill_nodes=dns:tandem-prefill.test:P
--decode_nodes=dns:tandem-decode.test:Q --router_dns_refresh_ms=200.

While a client sends requests back to back (streaming and not), the test adds a second prefill
and a second decode node to the names, sees the router poll and use them, then removes the first
ones and sees them dropped (no new request lands on them) before it stops them. Every request of
the client must succeed.

Run: .venv-test/bin/python tests/cluster/dns_discovery_test.py --tandem build/cli/tandem
"""

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
MODEL_NAME = "SmolLM2-135M-Instruct"
PREFILL_NAME, DECODE_NAME = "tandem-prefill.test", "tandem-decode.test"


def port_free_on(addresses):
    """A port that is free on every address (nodes of one role share it, one address each)."""
    for _ in range(100):
        port = random.randint(20000, 60000)
        try:
            for a in addresses:
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


def can_unshare():
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class DnsDiscoveryTest(unittest.TestCase):
    def setUp(self):
        if not can_unshare():
            reason = "unshare -m is not permitted here (needs CAP_SYS_ADMIN)"
            if os.environ.get("CI") == "true":
                self.fail(reason)
            self.skipTest(reason)
        self.dir = tempfile.mkdtemp(prefix="tandem-dns-")
        self.hosts = os.path.join(self.dir, "hosts")
        self.names = {PREFILL_NAME: [], DECODE_NAME: []}
        self.write_hosts()
        self.p_port = port_free_on(["127.0.0.2", "127.0.0.3"])
        self.d_port = port_free_on(["127.0.0.4", "127.0.0.5"])
        self.d_data = port_free_on(["127.0.0.4", "127.0.0.5"])
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write_hosts(self):
        # In place: the bind mount refers to this inode, so a rename would not be seen.
        lines = ["127.0.0.1 localhost"]
        for name, addresses in self.names.items():
            lines += [f"{a} {name}" for a in addresses]
        with open(self.hosts, "r+" if os.path.exists(self.hosts) else "w") as f:
            f.seek(0)
            f.truncate()
            f.write("\n".join(lines) + "\n")

    def node(self, role, address):
        if role == "prefill":
            args = [f"--host={address}", f"--prefill_port={self.p_port}"]
        else:
            args = [f"--host={address}", f"--decode_port={self.d_port}",
                    f"--decode_data_port={self.d_data}"]
        p = tc.TandemProcess(TANDEM, role, args + ["--threads=1", f"--node_id={role}-{address}"],
                             name=f"{role}-{address}")
        self.procs.append(p)
        return p.wait_ready()

    def router_metric(self, name, role):
        return tc.metric(self.router.url(), name, {"role": role})

    def wait_nodes(self, role, known, usable, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if (self.router_metric("tandem_router_nodes", role) == known and
                    self.router_metric("tandem_router_usable_nodes", role) == usable):
                return time.time()
            time.sleep(0.05)
        self.fail(f"{role}: not {known} known / {usable} usable nodes in {timeout} s:\n"
                  f"{self.router.tail()}")

    def test_nodes_come_and_go_while_requests_succeed(self):
        self.node("prefill", "127.0.0.2")
        self.node("decode", "127.0.0.4")
        self.names = {PREFILL_NAME: ["127.0.0.2"], DECODE_NAME: ["127.0.0.4"]}
        self.write_hosts()
        # exec: the router keeps the pid that unshare started, so the test stops it by pid.
        prefix = ["unshare", "-m", "sh", "-c",
                  f'mount --bind "{self.hosts}" /etc/hosts && exec "$@"', "sh"]
        self.router = tc.TandemProcess(
            TANDEM, "router",
            ["--host=127.0.0.1", "--router_port=0", "--router_policy=round_robin",
             f"--prefill_nodes=dns:{PREFILL_NAME}:{self.p_port}",
             f"--decode_nodes=dns:{DECODE_NAME}:{self.d_port}", "--router_dns_refresh_ms=200"],
            name="router", prefix=prefix)
        self.procs.insert(0, self.router)
        self.router.wait_ready()
        tc.wait_http_ok(self.router.url("/ready"))
        client = openai.OpenAI(base_url=self.router.url("/v1"), api_key="none", max_retries=0,
                               timeout=120)

        served, failures, stop = [], [], threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                i += 1
                started = time.time()
                try:
                    kw = dict(model=MODEL_NAME, max_tokens=12, temperature=0,
                              messages=[{"role": "user", "content": f"Count to {i % 7 + 2}."}])
                    if i % 2:
                        res = client.chat.completions.create(**kw)
                        t = res.model_extra["tandem"]
                        ok = res.choices[0].finish_reason in ("stop", "length")
                    else:
                        t, ok = None, False
                        for ch in client.chat.completions.create(
                                stream=True, stream_options={"include_usage": True}, **kw):
                            if ch.choices and ch.choices[0].finish_reason:
                                ok = ch.choices[0].finish_reason in ("stop", "length")
                            if ch.model_extra.get("tandem"):
                                t = ch.model_extra["tandem"]
                    if not ok or t is None:
                        failures.append(f"request {i}: no normal finish")
                    else:
                        served.append((started, t["prefill_node"], t["decode_node"]))
                except Exception as e:  # noqa: BLE001 - every failure is the test's finding
                    failures.append(f"request {i}: {e!r}")

        def wait_served(what, count, since=0.0, nodes=()):
            # Served requests, not wall time, pace the phases: a slow machine only makes it longer.
            deadline = time.time() + 180
            while len([s for s in served if s[0] > since and
                       all(n in (s[1], s[2]) for n in nodes)]) < count:
                self.assertEqual(failures, [], self.router.tail())
                self.assertLess(time.time(), deadline, f"never served {count} requests {what}")
                time.sleep(0.05)

        client_thread = threading.Thread(target=load)
        client_thread.start()
        try:
            wait_served("before scaling", 2)
            # Scale up: a second node of each role appears in DNS.
            self.node("prefill", "127.0.0.3")
            self.node("decode", "127.0.0.5")
            self.names = {PREFILL_NAME: ["127.0.0.2", "127.0.0.3"],
                          DECODE_NAME: ["127.0.0.4", "127.0.0.5"]}
            self.write_hosts()
            self.wait_nodes("prefill", 2, 2)
            self.wait_nodes("decode", 2, 2)
            wait_served("by the new prefill node", 1, nodes=("prefill-127.0.0.3",))
            wait_served("by the new decode node", 1, nodes=("decode-127.0.0.5",))
            # Scale down: the first nodes leave DNS (a pod that is terminating leaves its
            # headless Service), are dropped from routing, and only then stop.
            self.names = {PREFILL_NAME: ["127.0.0.3"], DECODE_NAME: ["127.0.0.5"]}
            self.write_hosts()
            t_prefill = self.wait_nodes("prefill", 1, 1)
            t_decode = self.wait_nodes("decode", 1, 1)
            dropped_at = max(t_prefill, t_decode)
            wait_served("after the drop", 4, since=dropped_at + 0.5)
            for p in list(self.procs):
                if p.name in ("prefill-127.0.0.2", "decode-127.0.0.4"):
                    self.assertIn(p.stop(), (0, -signal.SIGTERM), p.tail())
            wait_served("after the old nodes stopped", 2, since=time.time())
        finally:
            stop.set()
            client_thread.join(timeout=120)

        self.assertEqual(failures, [], self.router.tail())
        by_prefill = {n for _, n, _ in served}
        by_decode = {n for _, _, n in served}
        print(f"{len(served)} requests served; prefill nodes {sorted(by_prefill)}, decode nodes "
              f"{sorted(by_decode)}")
        self.assertEqual(by_prefill, {"prefill-127.0.0.2", "prefill-127.0.0.3"})
        self.assertEqual(by_decode, {"decode-127.0.0.4", "decode-127.0.0.5"})
        # A request sent after the drop was visible in the router's metrics (plus half a second for
        # the hop to the router) went to the remaining nodes: requests are timed by when they
        # started, since one routed just before the drop may finish long after it.
        late = [s for s in served if s[0] > dropped_at + 0.5 and
                (s[1] == "prefill-127.0.0.2" or s[2] == "decode-127.0.0.4")]
        self.assertEqual(late, [])
        self.assertGreater(len([s for s in served if s[0] > dropped_at + 0.5]), 3)
        self.assertGreater(tc.metric(self.router.url(), "tandem_router_dns_resolutions_total"), 10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
