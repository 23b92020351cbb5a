#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs, as root: packages, the model, the build.
# Idempotent: a second run checks and returns quickly.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/install_deps.sh"
"$ROOT/scripts/fetch_model.sh"
"$ROOT/scripts/setup_test_python.sh"
"$ROOT/scripts/setup_deploy_tools.sh"
"$ROOT/scripts/build.sh" "$@"
