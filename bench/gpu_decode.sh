#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ONE run on the GPU machine for decode (bench/NOTES.md, "Decode (issue 16)"): builds nothing
# there. Checks first (test_decode on the GPU, every decode variant that runs there), then
# decode step times against Nk for the portable split-K kernel, the dense kernels on the same
# plans (dense.VARIANT=1 portable, 2 nvidia-mma), a tuning of the decode family and the step
# times again with the tuned values. Run there, carrying .gpu and build-rel (../shared/GPU.md):
#   . .gpu/env.sh; bash bench/gpu_decode.sh build-rel
# Logs go to $OUT (or /tmp/clpsa-gpu-decode).
set -uo pipefail
build=${1:-build-rel}
out=${OUT:-/tmp/clpsa-gpu-decode}
mkdir -p "$out"
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA}
export CLPSA_CACHE_DIR=${CLPSA_CACHE_DIR:-/tmp/clpsa-cache-decode}
stage() { echo "== $* ($(date -u +%H:%M:%S))"; }
lengths=1024,2048,4096,8192,16384,32768,65536
shape="--heads-q 32 --heads-kv 8 --dim 128 --dtype fp16 --causal --reps 20 --lengths $lengths"

stage device
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null

stage "correctness: test_decode on the GPU"
timeout 300 "$build/tests/test_decode" >"$out/test_decode.log" 2>&1
echo "test_decode rc $?: $(grep -E '^\[  (PASSED|FAILED)' "$out/test_decode.log" | tr '\n' ' ')"
grep -E "ERROR|FAILED" "$out/test_decode.log" | head -5

stage "decode step times (defaults), Nq = 1 and 16"
for rows in 1 16; do
    timeout 240 "$build/bench/clpsa_bench_decode" $shape --rows $rows | tee "$out/decode_r$rows.txt"
done
stage "the dense kernels on the same plans"
for v in 1 2; do
    timeout 240 "$build/bench/clpsa_bench_decode" $shape --rows 1 --dense \
        --params dense.VARIANT=$v | tee "$out/dense_v${v}_r1.txt"
done

stage "tune the decode family"
timeout 200 "$build/clpsa" tune --kernels decode --shape 1,32,16384,128 --dtype fp16 \
    --budget 120 --json >"$out/tune_decode.json" 2>"$out/tune_decode.err"
echo "tune rc $?"; cat "$out/tune_decode.json"; echo
stage "decode step times (tuned values)"
for rows in 1 16; do
    timeout 240 "$build/bench/clpsa_bench_decode" $shape --rows $rows | tee "$out/tuned_r$rows.txt"
done
stage done
