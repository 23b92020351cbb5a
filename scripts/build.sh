#!/usr/bin/env bash
# Configures and builds Tandem into build/ (Release with debug info, Ninja, ccache when present).
# Extra arguments go to cmake at configure time. Idempotent: a second run rebuilds only what changed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${TANDEM_BUILD_DIR:-$ROOT/build}
if [ ! -f "$BUILD/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
cmake --build "$BUILD" -j "$(nproc)"
