#!/usr/bin/env bash
# The GPU checks of the prefill attention kernels, in two halves (platform.md §7, recipe B):
#
#   scripts/gpu_check.sh prepare   # here: build into build-cuda, stage binaries + their .so files
#                                  #   (not CUDA's: cudart is static, libcuda comes from the driver)
#                                  #   in build-cuda/gpu-check (ignored by git; well under 64 MiB)
#   scripts/gpu_check.sh run       # on the GPU machine, in the repo root: tests, benches, memcheck
#   scripts/gpu_check.sh profile   # on the GPU machine: ncu of the dense and SALE-estimate kernels
#
# Device calls: run(command="scripts/gpu_check.sh run", carry=["build-cuda/gpu-check"],
#   timeout_s=540): step timeouts add up to 495 s (a hung flash kernel skips the steps that would
#   hang with it); measured on an H100 the whole run takes ~40 s. `profile` (2 x 90 s at most,
#   ~15 s measured) in the same call or its own. Results land in $OUT/*.txt.
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
    model_forward_cuda_test gpu_prefill_attention_bench
  rm -rf "$STAGE"
  mkdir -p "$STAGE/lib"
  for b in tests/consistency/backend_ops_test tests/gpu/cuda_smoke_test tests/gpu/flash_prefill_test \
           tests/gpu/model_forward_cuda_test bench/gpu_prefill_attention_bench; do
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
  timeout 90 "$STAGE/backend_ops_test" --backends=cuda:0 >"$OUT/backend_ops.txt" 2>&1
  echo "backend_ops_test rc=$?" | tee -a "$OUT/summary.txt"
  timeout 45 "$STAGE/flash_prefill_test" >"$OUT/gpu_tests.txt" 2>&1
  local flash_rc=$?
  echo "flash_prefill_test rc=$flash_rc" >>"$OUT/gpu_tests.txt"
  { timeout 45 "$STAGE/cuda_smoke_test"; echo "cuda_smoke_test rc=$?"; } >>"$OUT/gpu_tests.txt" 2>&1
  { timeout 90 "$STAGE/model_forward_cuda_test"; echo "model_forward_cuda_test rc=$?"; } \
    >>"$OUT/gpu_tests.txt" 2>&1
  grep -E "rc=|nmse|NMSE|density|FAILED|Failure|Expected" "$OUT/gpu_tests.txt" | tee -a "$OUT/summary.txt"
  if [[ $flash_rc == 124 ]]; then  # a hung kernel would hang the bench too: keep the lease
    echo "flash_prefill_test timed out: bench and memcheck skipped" | tee -a "$OUT/summary.txt"
  else
    timeout 120 "$STAGE/gpu_prefill_attention_bench" >"$OUT/bench_ours.txt" 2>&1
    echo "gpu_prefill_attention_bench rc=$?" | tee -a "$OUT/summary.txt"
  fi
  timeout 60 python3 bench/gpu_prefill_sdpa.py >"$OUT/bench_sdpa.txt" 2>&1
  echo "gpu_prefill_sdpa rc=$?" | tee -a "$OUT/summary.txt"
  grep -h -E "^(device|BENCH)" "$OUT/bench_ours.txt" "$OUT/bench_sdpa.txt" | tee -a "$OUT/summary.txt"
  grep -E "^\[  (PASSED|FAILED)|tests ran" "$OUT/backend_ops.txt" | tail -40 | tee -a "$OUT/summary.txt"
  # Out-of-bounds accesses and uninitialised reads of the tensor-core kernels, at the test's sizes.
  if [[ $flash_rc != 124 ]] && command -v compute-sanitizer >/dev/null; then
    timeout 45 compute-sanitizer --tool memcheck --error-exitcode 3 "$STAGE/flash_prefill_test" \
      >"$OUT/memcheck.txt" 2>&1
    echo "memcheck flash_prefill_test rc=$?" | tee -a "$OUT/summary.txt"
    grep -m5 -E "ERROR SUMMARY|Invalid" "$OUT/memcheck.txt" | tee -a "$OUT/summary.txt"
  fi
}

# Nsight Compute on the first launch of the dense kernel and of SALE's estimate at 16K tokens:
# throughput against the card's peaks, occupancy, and where warps stall.
profile() {
  : "${OUT:=/tmp/gpu-check-out}"
  mkdir -p "$OUT"
  export LD_LIBRARY_PATH="$ROOT/$STAGE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local kernel
  for kernel in FlashPrefillKernel SaleEstimateKernel; do
    timeout 90 ncu -k "regex:$kernel" -c 1 --section SpeedOfLight --section Occupancy \
      --section WarpStateStats --section ComputeWorkloadAnalysis \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
      "$STAGE/gpu_prefill_attention_bench" --tokens=16384 --reps=1 >"$OUT/ncu_$kernel.txt" 2>&1
    echo "ncu $kernel rc=$?" | tee -a "$OUT/summary.txt"
    grep -E "Compute \(SM\) Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Executed Ipc A|Duration" \
      "$OUT/ncu_$kernel.txt" | tee -a "$OUT/summary.txt"
    grep -E "issue_stalled" "$OUT/ncu_$kernel.txt" | sort -k3 -g -r | head -6 | tee -a "$OUT/summary.txt"
  done
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  profile) profile ;;
  *) echo "usage: $0 prepare|run|profile" >&2; exit 2 ;;
esac
