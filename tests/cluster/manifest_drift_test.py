"""The Kubernetes manifests cannot drift from the binary: an overlay, rendered, runs as it is.

`kubectl kustomize deploy/kubernetes/overlays/<overlay>` renders the manifests; every container of
every workload (one pod each) is started here as a local process with what the kubelet would give
it: its command and args, its env and envFrom (ConfigMaps and Secrets of the rendered output, the
Secrets' placeholder passwords swapped for a test value), $(VAR) expanded the kubelet's way, the
downward API (pod name, pod IP), and its volumes as local directories (ConfigMap and Secret items
written as files, emptyDir and volume claims empty). Only addresses, ports and paths change:
- a Service name (with its port) becomes 127.0.0.1 and the free local port of the container port
  the Service targets; a reference to a port the Service does not expose fails the test;
- a container's own containerPort numbers become that container's free local ports, and the pod
  IP is 127.0.0.1 (Tandem processes get TANDEM_HOST=127.0.0.1, Redis `bind 127.0.0.1`: they would
  listen on the pod's address; here nothing listens beyond loopback);
- mount paths become their local directories, and the image's paths (the binary on PATH, the model
  under /opt/tandem/models, deploy/docker/Dockerfile) become the built binary and models/.
Everything else is exactly as rendered, so a flag renamed or removed in the binary, a ConfigMap key
that names no flag, a probe path or port that does not answer, or a Secret the processes cannot
use fails the test. Then every startup, liveness and readiness probe (httpGet, tcpSocket, exec)
must succeed on its port, a chat completion goes through the router's Service with the official
openai client, and the prefill node must have used the Redis tier with the Secret's password.
What the cluster's other readers expect is there too: the PodMonitor's port and path answer on
every pod it selects, each autoscaler's metric is exported by the pods it scales, and the
InferencePool's target port and its endpoint picker's metric names (tandem-epp-config) are the
router's.

The gpu overlay runs the same way where a CUDA device is present (ctest manifest_drift_test_gpu,
label gpu; skipped without a device).

Run: .venv-test/bin/python tests/cluster/manifest_drift_test.py --tandem build/cli/tandem \
         [--overlay cpu|gpu]
"""

import argparse
import base64
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import openai
import yaml

sys.path.insert(0, os.path.dirname(__file__))
import tandem_cluster as tc  # noqa: E402

TANDEM = None
OVERLAY = "cpu"
KUBE = os.path.join(tc.SOURCE_DIR, "deploy", "kubernetes")
DOCKERFILE = os.path.join(tc.SOURCE_DIR, "deploy", "docker", "Dockerfile")
# Where deploy/docker/Dockerfile puts the model in the image; the test checks that it still does.
IMAGE_MODEL_DIR = "/opt/tandem/models"
# Images the test can run here: the repository's build, and Debian's redis-server for the Redis
# image (the manifest pins redis:7.0.15, Debian 12 ships 7.0.x).
IMAGE_BINARIES = {"tandem": lambda: TANDEM, "redis": lambda: shutil.which("redis-server")}
IMAGE_WORKDIRS = {"redis": "/data"}  # the images' WORKDIR where the manifest sets no workingDir
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
PROBE_BUDGET_S = 150  # the longest any probe may take here to first succeed


def required(tool):
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (scripts/install_deps.sh installs it)"
        if os.environ.get("CI") == "true":
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand_vars(text, env):
    """The kubelet's $(VAR) expansion of command, args and env values: $$ is a literal $, and a
    reference to an undefined variable stays as written."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


def image_name(image):
    """'tandem:0.1.0-cpu' -> 'tandem', 'docker.io/library/redis:7.0.15' -> 'redis'."""
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


class Pod:
    """One replica of a workload: its name, containers and local ports."""

    def __init__(self, workload):
        self.workload = workload
        kind, name = workload["kind"], workload["metadata"]["name"]
        # The names the controllers give: <sts>-0, <deploy>-<template hash>-<suffix>.
        self.name = f"{name}-0" if kind == "StatefulSet" else f"{name}-5d8f6c7b9-x7k2p"
        self.namespace = workload["metadata"].get("namespace", "default")
        self.template = workload["spec"]["template"]
        self.labels = self.template["metadata"].get("labels", {})
        self.containers = self.template["spec"]["containers"]
        # containerPort number and name -> local port, per container.
        self.ports = {}
        for c in self.containers:
            for p in c.get("ports", []):
                local = free_port()
                self.ports[(c["name"], p["containerPort"])] = local
                if "name" in p:
                    self.ports[(c["name"], p["name"])] = local

    def local_port(self, port):
        """A port number or name of any container of the pod (Services and probes refer to
        both) -> its local port."""
        for (_, key), local in self.ports.items():
            if key == port:
                return local
        raise AssertionError(f"pod {self.name}: no container port {port!r}")


class ManifestDriftTest(unittest.TestCase):
    def setUp(self):
        self.kubectl = required("kubectl")
        self.dir = tempfile.mkdtemp(prefix="tandem-drift-")
        self.procs = []  # (name, Popen, log path)

    def tearDown(self):
        for name, proc, log in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- The rendered overlay ----

    def render(self):
        run = subprocess.run([self.kubectl, "kustomize", os.path.join(KUBE, "overlays", OVERLAY)],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, f"kubectl kustomize {OVERLAY}: {run.stderr}")
        docs = [d for d in yaml.safe_load_all(run.stdout) if d]
        self.objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        self.pods = [Pod(d) for d in docs if d["kind"] in WORKLOAD_KINDS]
        self.assertTrue(self.pods, "the overlay has no workloads")
        self.swap_secret_test_values()
        # Service name -> {service port: local port of the pod it selects}.
        self.services = {}
        for d in docs:
            if d["kind"] != "Service":
                continue
            selector = d["spec"].get("selector", {})
            pods = [p for p in self.pods
                    if selector and all(p.labels.get(k) == v for k, v in selector.items())]
            self.assertEqual(len(pods), 1, f"Service {d['metadata']['name']} selects "
                             f"{[p.name for p in pods]}, not one workload")
            self.services[d["metadata"]["name"]] = {
                sp["port"]: pods[0].local_port(sp.get("targetPort", sp["port"]))
                for sp in d["spec"]["ports"]}

    def swap_secret_test_values(self):
        """Each Secret's password placeholder (the value of a key named *password*) becomes a
        random test value wherever that Secret holds it (URLs and flag files included)."""
        self.secret_data = {}
        for (kind, name), d in self.objects.items():
            if kind != "Secret":
                continue
            data = {k: base64.b64decode(v).decode() for k, v in d.get("data", {}).items()}
            data.update(d.get("stringData", {}))
            for key, value in list(data.items()):
                if "password" in key.lower() and value.strip():
                    test_value = "test-" + secrets.token_hex(8)
                    data = {k: v.replace(value.strip(), test_value) for k, v in data.items()}
            self.secret_data[name] = data

    def source_data(self, kind, name):
        if kind == "ConfigMap":
            obj = self.objects.get(("ConfigMap", name))
            self.assertIsNotNone(obj, f"ConfigMap {name} is not in the rendered overlay")
            return obj.get("data", {})
        self.assertIn(name, self.secret_data, f"Secret {name} is not in the rendered overlay")
        return self.secret_data[name]

    # ---- Addresses, ports and paths: the only rewrites ----

    def rewrite(self, text, pod, container, mounts):
        """Service references, the container's own ports and the mount/image paths in `text`."""
        names = "|".join(re.escape(s) for s in sorted(self.services, key=len, reverse=True))
        ns = re.escape(pod.namespace)

        def service(m):
            ports = self.services[m.group(1)]
            port = int(m.group(2))
            self.assertIn(port, ports, f"{container['name']}: {m.group(0)} is not a port of "
                          f"Service {m.group(1)} ({sorted(ports)})")
            return f"127.0.0.1:{ports[port]}"

        if names:
            text = re.sub(rf"(?<![\w.-])({names})(?:\.{ns}(?:\.svc(?:\.cluster\.local)?)?)?"
                          r":(\d+)\b", service, text)
        for (cname, port), local in pod.ports.items():
            if cname == container["name"] and isinstance(port, int):
                text = re.sub(rf"(?<![\w.:/-]){port}(?![\w.])", str(local), text)
        # Paths in one pass (a local directory may itself start with a mount path such as /tmp).
        paths = dict(mounts)
        paths[IMAGE_MODEL_DIR] = os.path.dirname(tc.MODEL)
        alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        return re.sub(rf"(?<![\w.-])({alternatives})(?=/|$|[\s\"'])",
                      lambda m: paths[m.group(1)], text)

    # ---- One container as a local process ----

    def volumes(self, pod, container):
        """mountPath -> a local directory holding what the volume would."""
        by_name = {v["name"]: v for v in pod.template["spec"].get("volumes", [])}
        claims = {c["metadata"]["name"] for c in
                  pod.workload["spec"].get("volumeClaimTemplates", [])}
        mounts, files = {}, []
        for m in container.get("volumeMounts", []):
            local = os.path.join(self.dir, pod.name, container["name"], m["mountPath"].lstrip("/"))
            os.makedirs(local, exist_ok=True)
            mounts[m["mountPath"]] = local
            v = by_name.get(m["name"])
            if v is None:
                self.assertIn(m["name"], claims, f"{pod.name}: volumeMount {m['name']} has no "
                              "volume or claim template")
                continue  # a PersistentVolumeClaim: an empty directory at first start
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key not in v:
                    continue
                source = v[key]
                data = self.source_data(kind, source.get("name") or source.get("secretName"))
                items = source.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    self.assertIn(item["key"], data, f"{pod.name}: {kind} has no {item['key']}")
                    files.append((os.path.join(local, item["path"]), data[item["key"]]))
            self.assertTrue(any(k in v for k in ("configMap", "secret", "emptyDir")),
                            f"{pod.name}: volume {m['name']} of a kind this test cannot make")
        # Files after every mount is known: their contents refer to ports and paths too.
        for path, content in files:
            with open(path, "w") as f:
                f.write(self.rewrite(content, pod, container, mounts))
        return mounts

    def environment(self, pod, container, mounts):
        """The container's environment, as the kubelet builds it (envFrom, then env in order)."""
        env = {}
        for source in container.get("envFrom", []):
            for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                if key in source:
                    for k, v in self.source_data(kind, source[key]["name"]).items():
                        env[source.get("prefix", "") + k] = v
        fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace,
                  "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1",
                  "spec.nodeName": "local-node"}
        for e in container.get("env", []):
            if "value" in e:
                env[e["name"]] = expand_vars(e["value"], env)
                continue
            ref = e["valueFrom"]
            if "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                self.assertIn(path, fields, f"{pod.name}: downward API field {path}")
                env[e["name"]] = fields[path]
            elif "configMapKeyRef" in ref or "secretKeyRef" in ref:
                kind, key = (("ConfigMap", "configMapKeyRef") if "configMapKeyRef" in ref
                             else ("Secret", "secretKeyRef"))
                data = self.source_data(kind, ref[key]["name"])
                self.assertIn(ref[key]["key"], data, f"{pod.name}: env {e['name']}")
                env[e["name"]] = data[ref[key]["key"]]
            else:
                self.fail(f"{pod.name}: env {e['name']}: valueFrom {sorted(ref)} not supported")
        return {k: self.rewrite(v, pod, container, mounts) for k, v in env.items()}

    def start(self, pod, container):
        image = image_name(container["image"])
        self.assertIn(image, IMAGE_BINARIES, f"{pod.name}: image {container['image']}")
        binary = IMAGE_BINARIES[image]()
        if binary is None:
            required(f"{image} (for image {container['image']})")
        mounts = self.volumes(pod, container)
        env = self.environment(pod, container, mounts)
        if image == "tandem":
            # Tandem binds loopback by default, so a pod must ask for every interface or no other
            # pod reaches it; here the pod's address is loopback, so that is what it binds.
            self.assertEqual(env.get("TANDEM_HOST"), "0.0.0.0",
                             f"{pod.name}: TANDEM_HOST (pods must listen beyond loopback)")
            env["TANDEM_HOST"] = "127.0.0.1"
            self.check_env_names_flags(pod, env)
        else:
            for path in mounts.values():  # Redis: listen on loopback only (a config file line)
                conf = os.path.join(path, "redis.conf")
                if os.path.exists(conf):
                    with open(conf, "a") as f:
                        f.write("bind 127.0.0.1\n")
        argv = [expand_vars(a, env) for a in container.get("command", [])] + \
               [expand_vars(a, env) for a in container.get("args", [])]
        self.assertTrue(argv, f"{pod.name}/{container['name']}: no command")
        argv = [self.rewrite(a, pod, container, mounts) for a in argv]
        # The image's PATH: its own binary; the shell and coreutils of this machine.
        if os.path.basename(argv[0]) in (image, "tandem", "redis-server"):
            argv[0] = binary
        # The read-only root filesystem: the working directory (and HOME, / for a user without a
        # passwd entry) is a directory the process cannot write unless the image's WORKDIR is a
        # volume; only the mounted volumes are writable (see as_pod_user).
        rootfs = os.path.join(self.dir, "rootfs")
        os.makedirs(rootfs, mode=0o555, exist_ok=True)
        process_env = {"PATH": f"{os.path.dirname(binary)}:/usr/bin:/bin", "LANG": "C.UTF-8",
                       "HOME": rootfs}
        process_env.update(env)
        workdir = container.get("workingDir", IMAGE_WORKDIRS.get(image, "/"))
        cwd = mounts.get(workdir, rootfs)
        user = self.as_pod_user(pod, container, mounts)
        log_path = os.path.join(self.dir, f"{pod.name}.{container['name']}.log")
        log = open(log_path, "wb")
        if binary != argv[0]:  # a shell wrapper: the image's binary by name on PATH
            process_env["PATH"] = f"{os.path.dirname(binary)}:" + process_env["PATH"]
        proc = subprocess.Popen(argv, env=process_env, cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, **user)
        self.procs.append((f"{pod.name}/{container['name']}", proc, log))
        print(f"started {pod.name}/{container['name']} as uid {user.get('user', os.geteuid())}")
        return {"pod": pod, "container": container, "env": process_env, "mounts": mounts,
                "proc": proc, "log": log_path, "argv": argv, "user": user}

    def as_pod_user(self, pod, container, mounts):
        """Popen arguments that run the process as the securityContext's user and group, owning
        its volumes (fsGroup), when this test runs as root; {} (as this user) otherwise."""
        sc = dict(pod.template["spec"].get("securityContext", {}))
        sc.update(container.get("securityContext", {}))
        uid, gid, fs_group = sc.get("runAsUser"), sc.get("runAsGroup"), sc.get("fsGroup")
        if sc.get("runAsNonRoot"):
            self.assertNotIn(uid, (None, 0), f"{pod.name}: runAsNonRoot needs a non-zero runAsUser")
        if os.geteuid() != 0 or uid is None:
            return {}
        os.chmod(self.dir, 0o755)
        for local in mounts.values():  # the volumes: owned by the pod's user and fsGroup
            for root, dirs, files in os.walk(local):
                for path in [root] + [os.path.join(root, f) for f in files]:
                    os.chown(path, uid, fs_group if fs_group is not None else (gid or uid))
        groups = [fs_group] if fs_group is not None else []
        return {"user": uid, "group": gid if gid is not None else uid, "extra_groups": groups}

    def check_env_names_flags(self, pod, env):
        """A TANDEM_* variable that names no flag is ignored by the binary: a typo or a removed
        flag in a ConfigMap would pass silently. `tandem --help` lists every flag's variable."""
        if not hasattr(self, "flag_env_names"):
            out = subprocess.run([TANDEM, "--help"], capture_output=True, text=True, timeout=30)
            self.flag_env_names = set(re.findall(r"env: (TANDEM_[A-Z0-9_]+)",
                                                 out.stdout + out.stderr))
            self.assertIn("TANDEM_MODEL", self.flag_env_names, out.stdout + out.stderr)
        unknown = sorted(k for k in env if k.startswith("TANDEM_") and
                         k not in self.flag_env_names)
        self.assertEqual(unknown, [], f"{pod.name}: variables that name no flag of the binary")

    # ---- Probes ----

    def probe_once(self, running, probe):
        pod, container = running["pod"], running["container"]
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = pod.local_port(get["port"])
            url = f"http://127.0.0.1:{port}{get.get('path', '/')}"
            try:
                with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds", 1) + 2) as r:
                    return 200 <= r.status < 400, f"GET {get.get('path')}: {r.status}"
            except urllib.error.HTTPError as e:
                if e.code in (404, 405):  # not "not ready yet": the binary has no such path
                    self.fail(f"{pod.name} {get.get('path')} on {get['port']}: HTTP {e.code}")
                return 200 <= e.code < 400, f"GET {get.get('path')}: HTTP {e.code}"
            except OSError as e:
                return False, f"GET {get.get('path')} on {get['port']}: {e}"
        if "tcpSocket" in probe:
            port = pod.local_port(probe["tcpSocket"]["port"])
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return True, "tcp"
            except OSError as e:
                return False, f"tcp {probe['tcpSocket']['port']}: {e}"
        if "exec" in probe:
            argv = [self.rewrite(a, pod, container, running["mounts"])
                    for a in probe["exec"]["command"]]
            # redis-cli's port is implicit (the container's 6379): name the local one.
            argv = [re.sub(r"\bredis-cli\b", f"redis-cli -p {pod.local_port('redis')}", a)
                    if image_name(container["image"]) == "redis" else a for a in argv]
            run = subprocess.run(argv, env=running["env"], capture_output=True, text=True,
                                 timeout=probe.get("timeoutSeconds", 1) + 10, **running["user"])
            return run.returncode == 0, f"exec {argv}: rc {run.returncode} {run.stderr[-300:]}"
        self.fail(f"{pod.name}: a probe of a kind this test does not know: {sorted(probe)}")

    def check_alive(self):
        for r in self.running:
            if r["proc"].poll() is not None:
                self.fail(f"{r['pod'].name}/{r['container']['name']} exited with "
                          f"{r['proc'].returncode}; its command line {r['argv']}:\n"
                          + tail(r["log"]))

    def wait_probe(self, running, kind, budget):
        probe = running["container"].get(kind)
        if probe is None:
            return None
        deadline = time.time() + budget
        while True:
            ok, what = self.probe_once(running, probe)
            if ok:
                return what
            self.check_alive()
            if time.time() > deadline:
                self.fail(f"{running['pod'].name} {kind} never succeeded: {what}\n"
                          + tail(running["log"]))
            time.sleep(0.2)

    # ---- What Prometheus, the autoscalers and the gateway read from the pods ----

    def pods_selected(self, selector):
        labels = selector.get("matchLabels", {})
        exprs = selector.get("matchExpressions", [])

        def match(pod):
            if any(pod.labels.get(k) != v for k, v in labels.items()):
                return False
            for e in exprs:
                value = pod.labels.get(e["key"])
                if e["operator"] == "In" and value not in e["values"]:
                    return False
                if e["operator"] == "NotIn" and value in e["values"]:
                    return False
                if e["operator"] == "Exists" and value is None:
                    return False
                if e["operator"] == "DoesNotExist" and value is not None:
                    return False
            return True
        return [p for p in self.pods if match(p)]

    def scrape(self, pod, port, path="/metrics"):
        status, text = tc.http_json(f"http://127.0.0.1:{pod.local_port(port)}{path}", timeout=10)
        self.assertEqual(status, 200, f"{pod.name} {path} on {port}")
        return {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                if line and not line.startswith("#")}

    def check_monitoring_and_scaling(self):
        """The PodMonitor's port and path answer on every pod it selects; each autoscaler's metric
        is exported by the pods it scales; the InferencePool's target port is the selected pods'
        and the endpoint picker's metric names (tandem-epp-config) are the router's."""
        checked = []
        for (kind, name), d in self.objects.items():
            if kind == "PodMonitor":
                pods = self.pods_selected(d["spec"]["selector"])
                self.assertTrue(pods, f"PodMonitor {name} selects no pod")
                for pod in pods:
                    for ep in d["spec"]["podMetricsEndpoints"]:
                        names = self.scrape(pod, ep["port"], ep.get("path", "/metrics"))
                        self.assertIn("process_cpu_seconds_total", names, pod.name)
                        checked.append(f"PodMonitor {pod.name}")
            elif kind == "HorizontalPodAutoscaler":
                target = d["spec"]["scaleTargetRef"]
                pods = [p for p in self.pods if p.workload["kind"] == target["kind"]
                        and p.workload["metadata"]["name"] == target["name"]]
                self.assertEqual(len(pods), 1, f"HPA {name}: target {target}")
                names = self.scrape(pods[0], "http")
                for m in d["spec"]["metrics"]:
                    self.assertEqual(m["type"], "Pods", f"HPA {name}: a metric this test reads")
                    self.assertIn(m["pods"]["metric"]["name"], names, f"HPA {name}")
                    checked.append(f"HPA {name}: {m['pods']['metric']['name']}")
            elif kind == "InferencePool":
                pods = self.pods_selected(d["spec"]["selector"])
                self.assertTrue(pods, f"InferencePool {name} selects no pod")
                for pod in pods:
                    for tp in d["spec"]["targetPorts"]:
                        pod.local_port(tp["number"])  # fails when no container has that port
                    names = self.scrape(pod, d["spec"]["targetPorts"][0]["number"])
                    epp = yaml.safe_load(self.source_data("ConfigMap", "tandem-epp-config")
                                         ["epp-config.yaml"])
                    specs = [v for plugin in epp["plugins"]
                             for engine in plugin.get("parameters", {}).get("engineConfigs", [])
                             for k, v in engine.items() if k.endswith("Spec")]
                    self.assertGreaterEqual(len(specs), 3, epp)
                    for spec in specs:
                        self.assertIn(spec.split("{")[0], names, f"InferencePool {name} EPP")
                    checked.append(f"InferencePool {name}: {specs}")
        self.assertTrue(any(c.startswith("HPA") for c in checked))
        print("monitoring and scaling:\n  " + "\n  ".join(checked))

    # ---- The test ----

    def test_rendered_overlay_runs_and_serves(self):
        with open(DOCKERFILE) as f:
            self.assertIn(IMAGE_MODEL_DIR + "/", f.read(), "the image's model path moved")
        required("redis-cli")
        started = time.time()
        self.render()
        backends = {c.get("name"): e.get("value") for p in self.pods for c in p.containers
                    for e in c.get("env", []) if e.get("name") == "TANDEM_BACKEND"}
        if any(str(b).startswith("cuda") for b in backends.values()) and not gpu_present():
            # Like the gpu-labelled tests: no device is not a missing tool.
            self.skipTest(f"overlay {OVERLAY} runs {backends} and this machine has no CUDA device")
        self.running = running = []
        for p in self.pods:
            for c in p.containers:
                running.append(self.start(p, c))
        checked = []
        # Kubernetes runs liveness and readiness only after the startup probe succeeded; the
        # router is ready only once it reaches the nodes, so every pod's startup comes first.
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            for r in running:
                what = self.wait_probe(r, kind, PROBE_BUDGET_S)
                if what is not None:
                    checked.append(f"{r['pod'].name} {kind}: {what}")
        for r in running:
            self.assertIsNotNone(r["container"].get("livenessProbe"), r["pod"].name)
            self.assertIsNotNone(r["container"].get("readinessProbe"), r["pod"].name)
        print(f"probes answered {time.time() - started:.1f} s after start:\n  " +
              "\n  ".join(checked))

        router = self.services["tandem-router"]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{router[8000]}/v1", api_key="unused",
                               max_retries=0, timeout=120)
        model = client.models.list().data[0].id
        # Over one KV block (TANDEM_KV_BLOCK_TOKENS), so the prefill node looks its KV up in
        # every tier and writes it back, Redis included.
        facts = " ".join(f"Fact {i}: the river flows east past the old mill." for i in range(40))
        chat = client.chat.completions.create(
            model=model, max_tokens=16,
            messages=[{"role": "system", "content": facts},
                      {"role": "user", "content": "Name three colors."}])
        text = chat.choices[0].message.content
        self.assertTrue(text and text.strip(), chat)
        print(f"chat through the router's Service ({model}): {text!r}")

        # The Secret reached both sides: the prefill node looked its blocks up in Redis and stored
        # them there (write-behind), authenticated with the password Redis was started with.
        prefill = [r for r in running if r["pod"].labels.get("llm-d.ai/role") == "prefill"][0]
        url = f"http://127.0.0.1:{prefill['pod'].local_port('http')}"
        self.assertGreater(tc.metric(url, "tandem_kv_lookups_total", {"tier": "redis"}), 0,
                           "the prefill node has no Redis tier (its --flagfile)")
        deadline = time.time() + 30
        while tc.metric(url, "tandem_kv_tier_written_bytes_total", {"tier": "redis"}) == 0:
            unavailable = sum(tc.metric(url, "tandem_kv_misses_total",
                                        {"tier": "redis", "reason": reason})
                              for reason in ("tier_unavailable", "timeout"))
            if unavailable or time.time() > deadline:
                self.fail("the prefill node could not use Redis:\n" + tail(prefill["log"]))
            time.sleep(0.2)
        self.check_monitoring_and_scaling()
        self.check_alive()
        print(f"overlay {OVERLAY}: {len(running)} containers, {len(checked)} probes, "
              f"{time.time() - started:.1f} s")


def gpu_present():
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def tail(path, n=3000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tandem", required=True)
    parser.add_argument("--overlay", default=OVERLAY)
    args, rest = parser.parse_known_args()
    TANDEM = os.path.abspath(args.tandem)
    OVERLAY = args.overlay
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
