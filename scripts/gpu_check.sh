#!/usr/bin/env bash
# The GPU checks of the prefill attention kernels, in two halves (platform.md §7, recipe B):
#
#   scripts/gpu_check.sh prepare   # here: build into build-cuda, stage binaries + their .so files
#                                  #   (not CUDA's: cudart is static, libcuda comes from the driver)
#                                  #   in build-cuda/gpu-check (ignored by git; well under 64 MiB)
#   scripts/gpu_check.sh run       # on the GPU machine, in the repo root: everything, into $OUT
#
# Device call: run(command="scripts/gpu_check.sh run", carry=["build-cuda/gpu-check"],
#                  timeout_s=540). Budget (H100, estimated, not measured): harness cases < 30 s,
#   flash_prefill_test + cuda_smoke_test < 30 s, our bench at 16K..128K ~ 1-2 min, SDPA ~ 1-2 min.
# Every step has its own timeout so one hang cannot eat the lease; results land in $OUT/*.txt.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STAGE=build-cuda/gpu-check
cd "$ROOT"

prepare() {
  set -e
  nice -n 19 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_WERROR=ON \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DTANDEM_USE_CUDA=ON -DTANDEM_CUDA_ARCHS=90 \
    -DTANDEM_BUILD_BENCH=ON >/dev/null
  nice -n 19 ninja -C build-cuda -j2 backend_ops_test cuda_smoke_test flash_prefill_test \
    gpu_prefill_attention_bench
  rm -rf "$STAGE"
  mkdir -p "$STAGE/lib"
  for b in tests/consistency/backend_ops_test tests/gpu/cuda_smoke_test tests/gpu/flash_prefill_test \
           bench/gpu_prefill_attention_bench; do
    cp "build-cuda/$b" "$STAGE/"
    strip --strip-debug "$STAGE/$(basename "$b")"
    ldd "build-cuda/$b" | awk '$3 ~ /^\//{print $3}' |
      grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s|libcuda)\.so' |
      xargs -r -I{} cp -Ln {} "$STAGE/lib/"
  done
  du -sh "$STAGE"
}

run() {
  : "${OUT:=/tmp/gpu-check-out}"
  mkdir -p "$OUT"
  export LD_LIBRARY_PATH="$ROOT/$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export TANDEM_SOURCE_DIR="$ROOT"
  nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv >"$OUT/device.txt" 2>&1
  timeout 120 "$STAGE/backend_ops_test" --backends=cuda:0 --ops=attention_prefill \
    >"$OUT/backend_ops.txt" 2>&1
  echo "backend_ops_test rc=$?" | tee -a "$OUT/summary.txt"
  { timeout 60 "$STAGE/flash_prefill_test"; echo "flash_prefill_test rc=$?"; \
    timeout 60 "$STAGE/cuda_smoke_test"; echo "cuda_smoke_test rc=$?"; } >"$OUT/gpu_tests.txt" 2>&1
  grep -E "rc=|nmse|density" "$OUT/gpu_tests.txt" | tee -a "$OUT/summary.txt"
  timeout 240 "$STAGE/gpu_prefill_attention_bench" >"$OUT/bench_ours.txt" 2>&1
  echo "gpu_prefill_attention_bench rc=$?" | tee -a "$OUT/summary.txt"
  timeout 180 python3 bench/gpu_prefill_sdpa.py >"$OUT/bench_sdpa.txt" 2>&1
  echo "gpu_prefill_sdpa rc=$?" | tee -a "$OUT/summary.txt"
  grep -h -E "^(device|BENCH)" "$OUT/bench_ours.txt" "$OUT/bench_sdpa.txt" | tee -a "$OUT/summary.txt"
  grep -E "FAILED|PASSED|SKIPPED \]" "$OUT/backend_ops.txt" | tail -5 | tee -a "$OUT/summary.txt"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
