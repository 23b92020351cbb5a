#!/usr/bin/env bash
# Runs the CPU benchmarks and prints their BENCH lines. Needs a build (scripts/build.sh) and, for the
# llama.cpp baseline, scripts/setup_reference.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TANDEM_BUILD_DIR:-$ROOT/build}
THREADS=${THREADS:-$(nproc)}
"$BUILD/tests/consistency/backend_ops_test" --mode=perf 2>/dev/null | grep -E '^PERF|^BENCH' || true
if [ -x "$ROOT/.venv-ref/bin/python" ]; then
  "$ROOT/.venv-ref/bin/python" "$ROOT/bench/generate_bench.py" --binary "$BUILD/bench/decode_bench" \
    --threads "$THREADS"
else
  "$BUILD/bench/decode_bench" --threads "$THREADS"
  echo "run_all: llama.cpp baseline skipped: run scripts/setup_reference.sh first" >&2
fi
