#!/usr/bin/env bash
# Installs the Python packages the cluster tests drive Tandem with (the official `openai` client
# from PyPI) into .venv-test/ (git-ignored). Idempotent: returns at once when the venv has them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-test"
OPENAI_VERSION=3.57.0
if [ -x "$VENV/bin/python" ] &&
   "$VENV/bin/python" -c "import openai, sys; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
  echo "setup_test_python: $VENV ready"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION"
echo "setup_test_python: installed openai $OPENAI_VERSION into $VENV"
