#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (or the ctest labels given, e.g.
# `scripts/test.sh unit`). CI runs exactly this through .ci/run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXTRA=()
[ "${CI:-}" = "true" ] && EXTRA+=(-DTANDEM_WERROR=ON)
"$ROOT/scripts/setup.sh" "${EXTRA[@]}"
BUILD=${TANDEM_BUILD_DIR:-$ROOT/build}
LABELS=${1:-}
if [ -n "$LABELS" ]; then
  ctest --test-dir "$BUILD" --output-on-failure -j 2 -L "$LABELS"
else
  ctest --test-dir "$BUILD" --output-on-failure -j 2
fi
