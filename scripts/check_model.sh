#!/usr/bin/env bash
# ctest fixture `model_present`: fails with the fix when the GGUF is missing.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${TANDEM_MODEL:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -f "$MODEL" ]; then
  echo "model_present: $MODEL is missing: run scripts/setup.sh (or set TANDEM_MODEL)" >&2
  exit 1
fi
echo "model_present: $MODEL"
