"""Issue 13 on live processes: the cluster secret guards every internal endpoint and the data plane.

A prefill node, a decode node and a router start with --cluster_secret_file. The test then plays a
stranger on the same network: every /internal/ call without the secret (or with a forged, stale
or replayed signature) gets 401 and is counted, the cluster keeps serving while a client hammers
those endpoints, a prefill request naming a target that is not an authenticated decode node ships
nothing (and its error names no address), and a data-plane BEGIN without the reservation's
transfer token is refused. The test signs its own calls the way the router does (HMAC-SHA256 of
the request under a key derived from the secret) as the positive control.
"""

import argparse
import hashlib
import hmac
import json
import os
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
TRANSPORT = "tcp"


def sign(secret, method, target, body):
    """The X-Tandem-Auth value common/http_auth.cc expects."""
    key = hmac.new(secret, b"tandem-key-v1/control_plane", hashlib.sha256).digest()
    ms = str(int(time.time() * 1000))
    nonce = os.urandom(16).hex()
    digest = hashlib.sha256(body).hexdigest()
    parts = [b"tandem-http-v1", method.encode(), target.encode(), ms.encode(), nonce.encode(),
             digest.encode()]
    msg = b"".join(struct.pack("<Q", len(p)) + p for p in parts)
    mac = hmac.new(key, msg, hashlib.sha256).hexdigest()
    return f"v1 {ms} {nonce} {digest} {mac}"


def call(port, method, path, body=None, header=None, timeout=30):
    """(status, parsed body) of one raw call, with exactly the auth header given (or none)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if header is not None:
        req.add_header("X-Tandem-Auth", header)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class SecurityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tandem-security-")
        cls.secret_path = os.path.join(cls.dir, "cluster_secret")
        fd = os.open(cls.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        with open(cls.secret_path, "rb") as f:
            cls.secret = f.read().strip()
        common = ["--host=127.0.0.1", "--threads=1", f"--transport={TRANSPORT}",
                  f"--cluster_secret_file={cls.secret_path}"]
        cls.prefill = tc.TandemProcess(TANDEM, "prefill", common + [
            "--prefill_port=0", "--node_id=prefill-0"], name="prefill")
        cls.decode = tc.TandemProcess(TANDEM, "decode", common + [
            "--decode_port=0", "--decode_data_port=0", "--node_id=decode-0"], name="decode")
        cls.prefill.wait_ready()
        cls.decode.wait_ready()
        cls.router = tc.TandemProcess(TANDEM, "router", [
            "--host=127.0.0.1", "--router_port=0", f"--cluster_secret_file={cls.secret_path}",
            f"--prefill_nodes=127.0.0.1:{cls.prefill.http_port}",
            f"--decode_nodes=127.0.0.1:{cls.decode.http_port}"], name="router")
        cls.router.wait_ready()
        tc.wait_http_ok(cls.router.url("/ready"), timeout=120)
        cls.client = openai.OpenAI(base_url=cls.router.url("/v1"), api_key="none",
                                   max_retries=0, timeout=120)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.router, cls.prefill, cls.decode):
            p.stop()

    def ask(self, text="Name a colour.", max_tokens=8):
        r = self.client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": text}],
            max_tokens=max_tokens, temperature=0)
        return r.choices[0].message.content

    def signed(self, port, method, path, body=None):
        raw = b"" if body is None else json.dumps(body).encode()
        header = sign(self.secret, method, path, raw)
        return call(port, method, path, body, header)

    def assert_alive(self):
        for p in (self.router, self.prefill, self.decode):
            self.assertIsNone(p.proc.poll(), f"{p.name} died:\n{p.tail()}")

    ENDPOINTS = {
        "prefill": [("POST", "/internal/v1/prefill"), ("POST", "/internal/v1/cancel"),
                    ("POST", "/internal/v1/drain"), ("GET", "/internal/v1/status?since=0")],
        "decode": [("POST", "/internal/v1/reserve"), ("POST", "/internal/v1/decode"),
                   ("POST", "/internal/v1/cancel"), ("POST", "/internal/v1/drain"),
                   ("GET", "/internal/v1/status?since=0")],
    }

    def test_every_internal_endpoint_refuses_a_caller_without_the_secret(self):
        other = os.urandom(32).hex().encode()
        for role, node in (("prefill", self.prefill), ("decode", self.decode)):
            before = tc.metric(node.url(), "tandem_auth_refusals_total",
                               {"plane": "control", "reason": "missing"})
            for method, path in self.ENDPOINTS[role]:
                body = None if method == "GET" else {"request_id": "x", "reservation_id": "1"}
                raw = b"" if body is None else json.dumps(body).encode()
                for header in (None, sign(other, method, path, raw), "v1 1 2 3 4",
                               sign(self.secret, method, "/internal/v1/other", raw)):
                    status, reply = call(node.http_port, method, path, body, header)
                    self.assertEqual(status, 401, f"{role} {path} header={header}: {reply}")
                    self.assertEqual(reply["error"]["type"], "authentication_error")
                    self.assertNotIn("127.0.0.1", json.dumps(reply))
            after = tc.metric(node.url(), "tandem_auth_refusals_total",
                              {"plane": "control", "reason": "missing"})
            self.assertEqual(after - before, len(self.ENDPOINTS[role]))
            # Replaying a captured, valid request is refused too.
            header = sign(self.secret, "GET", "/internal/v1/status?since=0", b"")
            self.assertEqual(call(node.http_port, "GET", "/internal/v1/status?since=0", None,
                                  header)[0], 200)
            self.assertEqual(call(node.http_port, "GET", "/internal/v1/status?since=0", None,
                                  header)[0], 401)
        self.assert_alive()
        # The drains above were refused: both nodes still serve.
        self.assertTrue(self.ask())

    def test_cluster_keeps_serving_while_strangers_hammer_the_internal_apis(self):
        baseline = self.ask()
        stop = threading.Event()
        refused = [0]

        def hammer(port, method, path):
            while not stop.is_set():
                try:
                    status, _ = call(port, method, path, None if method == "GET" else {},
                                     timeout=5)
                    if status == 401:
                        refused[0] += 1
                except OSError:
                    pass

        targets = [(self.prefill.http_port, m, p) for m, p in self.ENDPOINTS["prefill"]] + \
                  [(self.decode.http_port, m, p) for m, p in self.ENDPOINTS["decode"]]
        threads = [threading.Thread(target=hammer, args=t, daemon=True) for t in targets]
        for t in threads:
            t.start()
        try:
            answers = [self.ask() for _ in range(3)]
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
        self.assertEqual(answers, [baseline] * 3)
        self.assertGreater(refused[0], 20)
        self.assert_alive()

    def _reserve(self):
        status, reply = self.signed(self.decode.http_port, "POST", "/internal/v1/reserve", {
            "request_id": f"sec-{time.time()}", "prompt_tokens": 8, "max_tokens": 4,
            "deadline_ms": int(time.time() * 1000) + 30000})
        self.assertEqual(status, 200, reply)
        return reply["target"]

    def _prefill(self, target):
        return self.signed(self.prefill.http_port, "POST", "/internal/v1/prefill", {
            "request_id": f"sec-{time.time()}", "tokens": [1, 2, 3, 4, 5, 6, 7, 8],
            "store_kv": False, "target": target,
            "deadline_ms": int(time.time() * 1000) + 30000})

    def test_reservations_are_unguessable_and_carry_a_token(self):
        a, b = self._reserve(), self._reserve()
        self.assertNotEqual(int(b["reservation_id"]) - int(a["reservation_id"]), 1)
        self.assertEqual(len(a["transfer_token"]), 32)
        self.assertNotEqual(a["transfer_token"], b["transfer_token"])
        for t in (a, b):
            self.signed(self.decode.http_port, "POST", "/internal/v1/cancel",
                        {"request_id": "x", "reservation_id": t["reservation_id"]})

    def test_begin_without_the_reservation_token_is_refused(self):
        target = self._reserve()
        good_token = target["transfer_token"]
        before = tc.metric(self.decode.url(), "tandem_auth_refusals_total",
                           {"plane": "data", "reason": "bad_transfer_token"})
        for token in ("", "0" * 32):
            target["transfer_token"] = token
            status, reply = self._prefill(target)
            self.assertNotEqual(status, 200, reply)
        after = tc.metric(self.decode.url(), "tandem_auth_refusals_total",
                          {"plane": "data", "reason": "bad_transfer_token"})
        self.assertEqual(after - before, 2)
        # The same reservation with its token: the positive control.
        target["transfer_token"] = good_token
        status, reply = self._prefill(target)
        self.assertEqual(status, 200, reply)
        self.signed(self.decode.http_port, "POST", "/internal/v1/cancel",
                    {"request_id": "x", "reservation_id": target["reservation_id"]})

    def test_prefill_to_a_target_that_is_not_an_authenticated_decode_node_ships_nothing(self):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        received = []

        def impostor():
            listener.settimeout(20)
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.settimeout(3)
            total = 0
            answered = False
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    total += len(chunk)
                    if not answered:  # a fake CHALLENGE: right magic, no valid proof
                        answered = True
                        conn.sendall(b"TXHS" + b"\x01\x00\x00\x00" + os.urandom(64))
            except OSError:
                pass
            received.append(total)
            conn.close()

        thread = threading.Thread(target=impostor, daemon=True)
        thread.start()
        # A node id the prefill node has not met (a known one at an older epoch is refused
        # before any connection, which would prove less).
        target = {"transport": "tcp", "host": "127.0.0.1", "port": port,
                  "node_id": f"impostor-{os.getpid()}",
                  "epoch": "1", "reservation_id": "5", "transfer_token": "ab" * 16}
        status, reply = self._prefill(target)
        thread.join(timeout=30)
        listener.close()
        self.assertNotEqual(status, 200, reply)
        self.assertEqual(received, [40], "only the 40-byte HELLO may reach an impostor")
        text = json.dumps(reply)
        self.assertNotIn(str(port), text, "the error must not name the address")
        self.assertNotIn("127.0.0.1", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    parser.add_argument("--transport", default="tcp")
    args, rest = parser.parse_known_args()
    TANDEM = args.tandem
    TRANSPORT = args.transport
    unittest.main(argv=[sys.argv[0]] + rest)
