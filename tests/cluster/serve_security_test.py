"""Issue 13 through `tandem serve` with a password-protected Redis as its only KV tier.

- Signed KV at rest: after a prompt's blocks reach Redis (sealed), every one of them is replaced
  under its real key by a block with valid §5.1 bytes and valid XXH3 checksums but zeroed KV and no
  valid MAC, as a writer without the cluster secret could. The next answer equals the first (full
  prefill's), and each planted block is counted as a miss `auth` and erased.
- Per-key limits: with --api_key_max_concurrent=1, a second request of one key while its first
  streams gets 429 + Retry-After; another key is served meanwhile. Key names appear in metrics and
  logs, never keys.
- Secrets never printed: the API keys, the Redis password and the cluster secret appear in no log
  line, no error body and no /proc/<pid>/cmdline of serve or its children.
"""

import argparse
import ctypes
import json
import os
import re
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
# Long enough for two full 256-token blocks (only full blocks are stored).
PROMPT = " ".join(f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}."
                  for i in range(70)) + " Which fact is about the number 7?"

_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def xxh3(data):
    return _xxh.XXH3_64bits(bytes(data), len(data))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resp:
    """A minimal RESP client (the test venv has no redis package)."""

    def __init__(self, port, password):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        assert self.cmd("AUTH", password) == "OK"

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(1 << 20)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 20)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError(f"bad RESP line {line!r}")


def plant(sealed):
    """A block a writer without the secret could make from a sealed one: version 1, seal fields
    cleared, KV zeroed, every XXH3 checksum valid."""
    b = bytearray(sealed)
    assert b[:4] == b"TKVB" and b[4] == 3, "redis must hold sealed (version 3) blocks"
    b[4:6] = (1).to_bytes(2, "little")
    b[192:248] = bytes(56)
    payload_offset = int.from_bytes(b[168:176], "little")
    b[payload_offset:] = bytes(len(b) - payload_offset)
    b[184:192] = xxh3(b[256:]).to_bytes(8, "little")
    b[248:256] = xxh3(b[:248]).to_bytes(8, "little")
    return bytes(b)


class ServeSecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tandem-serve-sec-")
        cls.redis_password = "redispw-" + os.urandom(12).hex()
        cls.redis_port = free_port()
        cls.redis = subprocess.Popen(
            ["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(cls.redis_port),
             "--save", "", "--appendonly", "no", "--dir", cls.dir, "--requirepass",
             cls.redis_password, "--logfile", os.path.join(cls.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                cls.resp = Resp(cls.redis_port, cls.redis_password)
                break
            except (OSError, RuntimeError, AssertionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        cls.keys = {"alice": "alice-" + os.urandom(16).hex(), "bob": "bob-" + os.urandom(16).hex()}
        cls.env_key = "envkey-" + os.urandom(16).hex()
        keys_file = os.path.join(cls.dir, "api_keys")
        with open(keys_file, "w") as f:
            f.write("# test keys\n" + "".join(f"{n}:{k}\n" for n, k in cls.keys.items()))
        env = dict(os.environ)
        env["TANDEM_API_KEY"] = cls.env_key  # the key named "default", given by environment
        cls.serve = tc.TandemProcess(TANDEM, "serve", [
            "--serve_port=0", "--threads=1", f"--api_keys_file={keys_file}",
            "--api_key_max_concurrent=1", "--kv_memory_bytes=0",
            f"--redis_url=redis://:{cls.redis_password}@127.0.0.1:{cls.redis_port}",
            "--redis_timeout_ms=2000"], name="serve", env=env)
        cls.serve.wait_ready(timeout=300)
        cls.client = {n: openai.OpenAI(base_url=cls.serve.url("/v1"), api_key=k, max_retries=0,
                                       timeout=120) for n, k in cls.keys.items()}

    @classmethod
    def tearDownClass(cls):
        cls.serve.stop(grace=60)
        cls.redis.send_signal(signal.SIGTERM)
        cls.redis.wait(timeout=20)

    def ask(self, who="alice", text=PROMPT):
        r = self.client[who].chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": text}],
            max_tokens=12, temperature=0)
        return r.choices[0].message.content

    def prefill_metric(self, name, labels):
        return tc.metric(f"http://127.0.0.1:{self.serve.ports['prefill']}", name, labels)

    def descendants(self):
        pids = {self.serve.pid}
        for _ in range(3):
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        continue
                    if ppid in pids:
                        pids.add(int(entry))
        return pids

    def secret_path(self):
        for pid in self.descendants():
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                for arg in f.read().decode(errors="replace").split("\0"):
                    if arg.startswith("--cluster_secret_file="):
                        return arg.split("=", 1)[1]
        raise AssertionError("no child names its --cluster_secret_file")

    def kv_verify(self):
        """`tandem kv verify` of the Redis tier with the cluster secret: its stdout."""
        env = dict(os.environ)
        env["TANDEM_REDIS_URL"] = f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}"
        out = subprocess.run([TANDEM, "kv", "verify", f"--cluster_secret_file={self.secret_path()}"],
                             capture_output=True, env=env, timeout=120)
        return out.stdout.decode()

    def block_keys(self):
        return [k for k in self.resp.cmd("KEYS", "tandem:*:kv:*")]

    def test_1_planted_blocks_are_refused_counted_erased_and_the_answer_is_unchanged(self):
        first = self.ask()  # full prefill; its blocks go to Redis behind the answer
        deadline = time.time() + 30
        while not self.block_keys() and time.time() < deadline:
            time.sleep(0.2)
        keys = self.block_keys()
        self.assertTrue(keys, "the prompt's blocks never reached Redis")
        hits_before = self.prefill_metric("tandem_kv_hits_total", {"tier": "redis"})
        self.assertEqual(self.ask(), first)  # sealed blocks verify and are used
        self.assertGreater(self.prefill_metric("tandem_kv_hits_total", {"tier": "redis"}),
                           hits_before)
        # The operator tool opens the seals: every block verifies, then every planted one fails.
        counts = lambda text: tuple(int(x) for x in re.search(  # noqa: E731
            r"(\d+) ok, (\d+) bad", text).groups())
        ok, bad = counts(self.kv_verify())
        self.assertGreaterEqual(ok, len(keys))
        self.assertEqual(bad, 0)
        for k in keys:
            self.resp.cmd("SET", k, plant(self.resp.cmd("GET", k)))
        report = self.kv_verify()
        self.assertEqual(counts(report)[1], len(keys), report)
        self.assertIn(": auth: ", report)
        auth_before = self.prefill_metric("tandem_kv_misses_total",
                                          {"tier": "redis", "reason": "auth"})
        self.assertEqual(self.ask(), first, "a planted block changed the answer")
        refused = self.prefill_metric("tandem_kv_misses_total",
                                      {"tier": "redis", "reason": "auth"}) - auth_before
        self.assertEqual(refused, len(keys))
        # Erased, then stored again sealed by the recomputation.
        deadline = time.time() + 30
        while time.time() < deadline:
            values = [self.resp.cmd("GET", k) for k in keys]
            if all(v is not None and v[4] == 3 for v in values):
                break
            time.sleep(0.2)
        self.assertTrue(all(v is not None and v[4] == 3 for v in values))

    def test_2_per_key_concurrency_gives_429_and_spares_other_keys(self):
        stream = self.client["alice"].chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": "Tell a story."}],
            max_tokens=200, temperature=0, stream=True, extra_body={"ignore_eos": True})
        next(iter(stream))  # alice's first request is running
        try:
            status, body = tc.http_json(
                self.serve.url("/v1/chat/completions"),
                {"model": "SmolLM2-135M-Instruct", "max_tokens": 4,
                 "messages": [{"role": "user", "content": "Hi"}]},
                headers={"Authorization": f"Bearer {self.keys['alice']}"})
            self.assertEqual(status, 429, body)
            self.assertEqual(body["error"]["code"], "rate_limit_exceeded")
            self.assertIn("alice", body["error"]["message"])
            self.assertTrue(self.ask("bob", "Hi"))  # bob is not affected
        finally:
            stream.close()
        # The limit is a concurrency limit: alice is served again once her stream ended.
        deadline = time.time() + 60
        while True:
            try:
                self.assertTrue(self.ask("alice", "Hi"))
                break
            except openai.RateLimitError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        # The env-given key works too.
        status, _ = tc.http_json(self.serve.url("/v1/models"),
                                 headers={"Authorization": f"Bearer {self.env_key}"})
        self.assertEqual(status, 200)

    def test_3_no_secret_in_logs_errors_or_command_lines(self):
        with open(os.path.join(self.dir, "api_keys")) as f:
            del f  # the keys file itself is where the keys belong
        secrets = list(self.keys.values()) + [self.env_key, self.redis_password]
        # Error bodies: a wrong key, a near-miss of a real key, a bad request with a real key.
        bodies = []
        for auth in ("Bearer wrong-key-0123456789abcdef", f"Bearer {self.keys['bob']}x"):
            status, body = tc.http_json(self.serve.url("/v1/models"),
                                        headers={"Authorization": auth})
            self.assertEqual(status, 401)
            bodies.append(json.dumps(body))
        status, body = tc.http_json(self.serve.url("/v1/chat/completions"), {"model": 3},
                                    headers={"Authorization": f"Bearer {self.keys['bob']}"})
        self.assertEqual(status, 400)
        bodies.append(json.dumps(body))
        # Command lines of serve and every descendant.
        pids = {self.serve.pid}
        for _ in range(3):
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        continue
                    if ppid in pids:
                        pids.add(int(entry))
        self.assertGreaterEqual(len(pids), 4, "serve and its three children")
        cmdlines = []
        for pid in pids:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdlines.append(f.read().decode(errors="replace"))
        self.assertTrue(any("--cluster_secret_file=" in c for c in cmdlines))
        # The cluster secret, from the file serve made for this run.
        secret_path = next(c.split("--cluster_secret_file=")[1].split("\0")[0]
                           for c in cmdlines if "--cluster_secret_file=" in c)
        self.assertEqual(os.stat(secret_path).st_mode & 0o777, 0o600)
        with open(secret_path) as f:
            secrets.append(f.read().strip())
        # Metrics name keys, never show them.
        metrics = tc.http_json(self.serve.url("/metrics"))[1]
        log = self.serve.tail(n=10 ** 8)
        for s in secrets:
            for where, text in [("log", log), ("metrics", metrics)] + \
                               [("error body", b) for b in bodies] + \
                               [("cmdline", c) for c in cmdlines]:
                self.assertNotIn(s, text, f"a secret appears in a {where}")
        self.assertIn("tandem_router_requests_total", metrics)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = args.tandem
    unittest.main(argv=[sys.argv[0]] + rest)
