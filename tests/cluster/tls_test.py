"""`tandem serve --tls_cert --tls_key`: the official openai client talks HTTPS to the router and
verifies it against a CA the test makes (openssl CLI); a client that does not trust that CA is
refused by its own verification; plain HTTP to the TLS port fails cleanly and the router keeps
serving.
"""

import argparse
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

import httpx2
import openai

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_server_cert(d):
    """ca.pem signs server.pem for IP 127.0.0.1 and DNS localhost."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=tandem-test-ca", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)
    os.chmod(os.path.join(d, "server.key"), 0o600)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tandem-tls-")
        make_ca_and_server_cert(cls.dir)
        cls.serve = tc.TandemProcess(TANDEM, "serve", [
            "--serve_port=0", "--threads=1",
            f"--tls_cert={os.path.join(cls.dir, 'server.pem')}",
            f"--tls_key={os.path.join(cls.dir, 'server.key')}"], name="serve")
        cls.serve.wait_ready(timeout=300)
        cls.port = cls.serve.http_port
        ctx = ssl.create_default_context(cafile=os.path.join(cls.dir, "ca.pem"))
        cls.client = openai.OpenAI(base_url=f"https://127.0.0.1:{cls.port}/v1", api_key="none",
                                   max_retries=0, timeout=120,
                                   http_client=httpx2.Client(verify=ctx, timeout=120))

    @classmethod
    def tearDownClass(cls):
        cls.serve.stop(grace=60)

    def test_openai_client_over_https_with_the_test_ca(self):
        r = self.client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4, temperature=0)
        self.assertTrue(r.choices[0].message.content)
        chunks = list(self.client.chat.completions.create(
            model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4, temperature=0, stream=True))
        self.assertTrue(chunks)

    def test_a_client_without_the_ca_refuses_the_server(self):
        untrusting = openai.OpenAI(
            base_url=f"https://127.0.0.1:{self.port}/v1", api_key="none", max_retries=0,
            timeout=30, http_client=httpx2.Client(verify=ssl.create_default_context(), timeout=30))
        with self.assertRaises(openai.APIConnectionError):
            untrusting.models.list()

    def test_plain_http_to_the_tls_port_fails_cleanly(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                reply = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                reply = b""
        self.assertFalse(reply.startswith(b"HTTP/1.1 200"), reply)
        with self.assertRaises(openai.APIConnectionError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{self.port}/v1", api_key="none",
                          max_retries=0, timeout=15).models.list()
        # The router is unharmed.
        self.assertEqual([m.id for m in self.client.models.list().data], ["SmolLM2-135M-Instruct"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    args, rest = parser.parse_known_args()
    TANDEM = args.tandem
    unittest.main(argv=[sys.argv[0]] + rest)
