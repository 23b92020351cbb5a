"""Starts and stops real Tandem processes for the cluster tests.

Every process binds 127.0.0.1 on a free port (port 0, read back from its --ready_file), keeps its
files in a temp dir, and is stopped by its pid: SIGTERM, then SIGKILL after a grace period. The
`tandem` binary is the one ctest passes with --tandem.
"""

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SOURCE_DIR = os.environ.get("TANDEM_SOURCE_DIR", os.path.abspath(os.path.join(
    os.path.dirname(__file__), "..", "..")))
MODEL = os.environ.get("TANDEM_MODEL") or os.path.join(
    SOURCE_DIR, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


class TandemProcess:
    """One `tandem <command> ...` child with a ready file."""

    def __init__(self, tandem, command, args, name=None, log_dir=None, env=None, prefix=None):
        """`prefix`: a command line the process runs under (it must exec the tandem command in
        the same process, e.g. `unshare -m sh -c '... && exec "$@"' sh`)."""
        self.name = name or command
        self.dir = tempfile.mkdtemp(prefix=f"tandem-{self.name}-", dir=log_dir)
        self.ready_file = os.path.join(self.dir, "ready.json")
        self.log_path = os.path.join(self.dir, "log.txt")
        self.log = open(self.log_path, "wb")
        cmd = list(prefix or []) + [tandem, command, f"--ready_file={self.ready_file}",
                                    f"--model={MODEL}"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=SOURCE_DIR, env=env)
        self.pid = self.proc.pid
        self.ports = {}

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with open(self.ready_file) as f:
                    self.ports = json.load(f)["ports"]
                return self
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {timeout} s:\n{self.tail()}")

    @property
    def http_port(self):
        return self.ports["http"]

    def url(self, path=""):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        """SIGKILL: the crash a test simulates."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, grace=20):
        """SIGTERM (a drain), then SIGKILL after `grace` seconds. Returns the exit code."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def http_json(url, body=None, headers=None, timeout=60):
    """(status, parsed JSON or raw text) of a GET (body None) or POST."""
    data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))
    if isinstance(data, str):
        data = data.encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def wait_http_ok(url, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            status, body = http_json(url, timeout=5)
            if status == 200:
                return body
            last = (status, body)
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{url} not OK in {timeout} s: {last}")


def metric(base_url, name, labels=None):
    """Value of one sample of a process's /metrics (0.0 when absent): `name` with exactly the
    given labels, e.g. metric(url, "tandem_router_requests_total", {"code": "499", ...})."""
    status, text = http_json(base_url + "/metrics", timeout=10)
    if status != 200:
        raise RuntimeError(f"{base_url}/metrics: HTTP {status}")
    want = "" if not labels else "{" + ",".join(
        f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        if key.startswith(name + "{"):
            inner = key[len(name) + 1:-1]
            key = name + "{" + ",".join(sorted(inner.split(","))) + "}"
        if key == name + want:
            return float(value)
    return 0.0


def tandem_generate(tandem, args, timeout=300):
    """stdout of an in-process `tandem generate` (the single-process baseline), newline stripped."""
    out = subprocess.run([tandem, "generate", f"--model={MODEL}", "--stats=false"] + list(args),
                         capture_output=True, cwd=SOURCE_DIR, timeout=timeout, check=True)
    text = out.stdout.decode()
    return text[:-1] if text.endswith("\n") else text
