"""deploy/kubernetes and deploy/docker, checked offline (no API server or container daemon here).

For each overlay (cpu, gpu): `kubectl kustomize` renders it; every object validates against the
Kubernetes 1.33 JSON schemas bundled in kubernetes-validate (strict: unknown fields fail), and the
two custom resources against the schemas in tests/deploy/schemas; checkov's Kubernetes checks find
nothing (the skips are annotations with their reasons in the manifests); and the operator-facing
invariants hold: every Tandem container has startup, liveness (/health) and readiness (/ready)
probes, resources, a non-root read-only root filesystem with all capabilities dropped; prefill and
decode pods carry llm-d.ai/role and the engine-type label; each workload has a
PodDisruptionBudget, each node role an autoscaler, and every pod a NetworkPolicy. The Dockerfiles
pass hadolint and checkov's Dockerfile checks.

Run: .venv-deploy/bin/python tests/deploy/manifests_test.py (scripts/setup_deploy_tools.sh)
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import jsonschema
import kubernetes_validate
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KUBE = os.path.join(ROOT, "deploy", "kubernetes")
VENV_BIN = os.path.dirname(sys.executable)
OVERLAYS = ["cpu", "gpu"]
CRD_SCHEMAS = {"InferencePool": "inferencepool-v1.json", "PodMonitor": "podmonitor-v1.json"}
TANDEM_WORKLOADS = {"tandem-router": None, "tandem-prefill": "prefill", "tandem-decode": "decode"}


def need(tool):
    path = shutil.which(tool) or (os.path.join(VENV_BIN, tool)
                                  if os.path.exists(os.path.join(VENV_BIN, tool)) else None)
    if path is None:
        reason = f"{tool} is not installed (scripts/install_deps.sh, scripts/setup_deploy_tools.sh)"
        if os.environ.get("CI") == "true":
            raise AssertionError(reason)
        raise unittest.SkipTest(reason)
    return path


def render(overlay):
    run = subprocess.run([need("kubectl"), "kustomize", os.path.join(KUBE, "overlays", overlay)],
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay}: {run.stderr}")
    return run.stdout, [d for d in yaml.safe_load_all(run.stdout) if d]


def checkov_failures(args):
    run = subprocess.run([need("checkov")] + args + ["--compact", "--quiet", "-o", "json"],
                         capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    passed = sum(r.get("summary", {}).get("passed", 0) for r in reports)
    return failed, passed


class ManifestsTest(unittest.TestCase):
    def test_overlays_render_and_validate(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                _, docs = render(overlay)
                kinds = sorted({d["kind"] for d in docs})
                print(f"{overlay}: {len(docs)} objects: {', '.join(kinds)}")
                for d in docs:
                    where = f"{overlay} {d['kind']}/{d['metadata']['name']}"
                    if d["kind"] in CRD_SCHEMAS:
                        with open(os.path.join(os.path.dirname(__file__), "schemas",
                                               CRD_SCHEMAS[d["kind"]])) as f:
                            jsonschema.validate(d, json.load(f))
                    else:
                        try:
                            kubernetes_validate.validate(d, "1.33", strict=True)
                        except kubernetes_validate.ValidationError as e:
                            self.fail(f"{where}: {e}")
                    self.assertEqual(d["metadata"].get("namespace", "tandem"), "tandem", where)

    def test_schema_validation_catches_a_bad_field(self):
        _, docs = render("cpu")
        router = next(d for d in docs if d["metadata"]["name"] == "tandem-router" and
                      d["kind"] == "Deployment")
        router["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(router, "1.33", strict=True)
        pool = next(d for d in docs if d["kind"] == "InferencePool")
        pool["spec"]["targetPorts"] = [{"number": 8000}, {"number": 8001}]
        with open(os.path.join(os.path.dirname(__file__), "schemas", CRD_SCHEMAS["InferencePool"])) as f:
            with self.assertRaises(jsonschema.ValidationError):
                jsonschema.validate(pool, json.load(f))

    def test_security_lint_is_clean(self):
        for overlay in OVERLAYS:
            text, _ = render(overlay)
            with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                f.write(text)
                f.flush()
                failed, passed = checkov_failures(["-f", f.name, "--framework", "kubernetes"])
            print(f"checkov {overlay}: {passed} checks passed, {len(failed)} failed")
            self.assertEqual(failed, [], overlay)
            self.assertGreater(passed, 100)

    def test_operator_invariants(self):
        for overlay in OVERLAYS:
            _, docs = render(overlay)
            by_kind = {}
            for d in docs:
                by_kind.setdefault(d["kind"], []).append(d)
            workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
            names = {w["metadata"]["name"] for w in workloads}
            self.assertTrue(set(TANDEM_WORKLOADS) <= names, names)
            pdb_selectors = [p["spec"]["selector"]["matchLabels"] for p in by_kind["PodDisruptionBudget"]]
            for w in workloads:
                name = w["metadata"]["name"]
                pod = w["spec"]["template"]
                labels = pod["metadata"]["labels"]
                spec = pod["spec"]
                self.assertTrue(spec["securityContext"]["runAsNonRoot"], name)
                self.assertFalse(spec.get("automountServiceAccountToken", True), name)
                for c in spec["containers"]:
                    sc = c["securityContext"]
                    self.assertTrue(sc["readOnlyRootFilesystem"], name)
                    self.assertFalse(sc["allowPrivilegeEscalation"], name)
                    self.assertEqual(sc["capabilities"]["drop"], ["ALL"], name)
                    self.assertIn("memory", c["resources"]["limits"], name)
                    self.assertIn("cpu", c["resources"]["requests"], name)
                    if name in TANDEM_WORKLOADS:
                        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/health", name)
                        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/ready", name)
                        self.assertIn("startupProbe", c, name)
                if name in TANDEM_WORKLOADS:
                    self.assertEqual(labels.get("inference.networking.k8s.io/engine-type"), "tandem")
                    if TANDEM_WORKLOADS[name]:
                        self.assertEqual(labels.get("llm-d.ai/role"), TANDEM_WORKLOADS[name])
                self.assertTrue(any(all(labels.get(k) == v for k, v in sel.items())
                                    for sel in pdb_selectors), f"{name}: no PodDisruptionBudget")
                self.assertTrue(any(all(labels.get(k) == v for k, v in
                                        np["spec"]["podSelector"].get("matchLabels", {}).items())
                                    and np["spec"]["podSelector"].get("matchLabels")
                                    for np in by_kind["NetworkPolicy"]), f"{name}: no NetworkPolicy")
            scaled = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind["HorizontalPodAutoscaler"]}
            self.assertEqual(scaled, {"tandem-prefill", "tandem-decode"})
            headless = {s["metadata"]["name"] for s in by_kind["Service"]
                        if s["spec"].get("clusterIP") == "None"}
            self.assertEqual(headless, {"tandem-prefill", "tandem-decode"})
            pool = by_kind["InferencePool"][0]
            self.assertEqual(pool["spec"]["selector"]["matchLabels"],
                             {"app.kubernetes.io/name": "tandem-router"})
            if overlay == "gpu":
                for w in workloads:
                    if w["metadata"]["name"] in ("tandem-prefill", "tandem-decode"):
                        c = w["spec"]["template"]["spec"]["containers"][0]
                        self.assertEqual(c["resources"]["limits"]["nvidia.com/gpu"], "1")

    def test_dockerfiles_lint_clean(self):
        files = [os.path.join(ROOT, "deploy", "docker", f) for f in ("Dockerfile", "Dockerfile.cuda")]
        run = subprocess.run([need("hadolint")] + files, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        failed, passed = checkov_failures(["-d", os.path.join(ROOT, "deploy", "docker"),
                                           "--framework", "dockerfile"])
        print(f"hadolint: clean; checkov dockerfile: {passed} passed, {len(failed)} failed")
        self.assertEqual(failed, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
