#!/usr/bin/env bash
# Installs the Python packages the cluster tests drive Tandem with (the official `openai` client
# from PyPI, and PyYAML for the rendered Kubernetes manifests that manifest_drift_test starts) into
# .venv-test/ (git-ignored). Idempotent: returns at once when the venv has them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-test"
OPENAI_VERSION=3.57.0
PYYAML_VERSION=6.0.2
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c "import openai, sys, yaml
sys.exit(openai.__version__ != '$OPENAI_VERSION' or yaml.__version__ != '$PYYAML_VERSION')" 2>/dev/null; then
  echo "setup_test_python: $VENV ready"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" \
  "PyYAML==$PYYAML_VERSION"
echo "setup_test_python: installed openai $OPENAI_VERSION and PyYAML $PYYAML_VERSION into $VENV"
