#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A short GPU run for what bench/gpu.sh's last run could not see (bench/NOTES.md, "H200,
# 18:30 UTC"): the budget measurement's matrix-unit variant (checks, then its share of the
# pipeline), the suites touched since, causal against non-causal PSA, and SDPA in the same run.
# Carry .gpu, .peers and build-rel; run `. .gpu/env.sh; bash bench/gpu_final.sh build-rel`.
set -uo pipefail
build=${1:-build-rel}
OUT=${CLPSA_GPU_LOGS:-/tmp/clpsa-gpu}
mkdir -p "$OUT"
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA} CLPSA_CACHE_DIR=${CLPSA_CACHE_DIR:-/tmp/clpsa-cache}
stage() { echo "== $* ($(date -u +%H:%M:%S))"; }
stage "budget variants here"
"$build/clpsa" devices --device "$CLPSA_DEVICE" 2>&1 | grep -oE "budget variants:.*" | head -1
stage "suites"
for suite in test_budget test_nonfinite test_psa; do
    CLPSA_TEST_VERBOSE=1 timeout 100 "$build/tests/$suite" >"$OUT/$suite.log" 2>&1
    echo "$suite rc $? ($(grep -c '^\[       OK' "$OUT/$suite.log") ok," \
        "$(grep -c '^\[  FAILED  \] ' "$OUT/$suite.log") failed)"
    grep -E "^\[  FAILED|ERROR|error:" "$OUT/$suite.log" | head -6 | sed 's/^/    /'
done
stage "budget mode, 18x45x80 H12 D128 bf16, density 0.15"
CLPSA_LOG=info timeout 120 "$build/bench/clpsa_bench_psa" --grid 18,45,80 --heads 12 --dim 128 \
    --dtype bf16 --order hilbert --density 0.15 --reps 10 >"$OUT/budget_64800.txt" 2>&1
echo "rc $?"; grep -E "budget kernel|^(method|dense|psa|binary) |pipeline" "$OUT/budget_64800.txt"
stage "causal against non-causal PSA (threshold rule), video 16x32x32 H12 D128 bf16"
for c in "" --causal; do
    timeout 120 "$build/clpsa" bench --workload video --grid 16,32,32 --shapes 1x12x16384x128 \
        --dtype bf16 --tau 0.4,0.5,0.6,0.8 --reps 5 --no-clblast $c >"$OUT/bench_video$c.txt" 2>&1
    echo "video ${c:-non-causal} rc $?"; tail -8 "$OUT/bench_video$c.txt"
done
stage peers
timeout 60 python3 .peers/peer_bench.py --shape 1,12,64800,128 --dtypes bf16 2>&1 | grep peer=
timeout 60 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes bf16 --causal 2>&1 |
    grep peer=
timeout 60 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes bf16 2>&1 | grep peer=
