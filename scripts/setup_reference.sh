#!/usr/bin/env bash
# Installs the independent reference implementation (llama.cpp through llama-cpp-python, and the
# gguf package) into .venv-ref/ (git-ignored). Needed only to regenerate tests/data/*reference* and to
# run the llama.cpp baselines in bench/; the test suite itself uses the checked-in data.
# Idempotent: returns at once when the venv already has both packages.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.venv-ref"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import llama_cpp, gguf, numpy" 2>/dev/null; then
  echo "setup_reference: $VENV ready"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet "llama-cpp-python==0.3.36" "gguf" "numpy"
echo "setup_reference: installed llama-cpp-python into $VENV"
