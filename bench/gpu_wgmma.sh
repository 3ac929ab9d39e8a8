#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The GPU run for the nvidia-wgmma variants (issue 10): `checks` builds them and runs the suites
# that walk every variant, then sweeps dense; `times` sweeps the PSA attend on the target shape,
# times the estimate and budget measurement variants and budget mode, and runs the peers in the
# same call; `simt` times the portable-simt shapes (fp32, the vendor path off) and fp32 SDPA. Carry .gpu, .peers and build-rel;
# run `. .gpu/env.sh; bash bench/gpu_wgmma.sh build-rel checks|times|simt` (or a comma list,
# e.g. checks,simt, run in that order).
set -uo pipefail
build=${1:-build-rel}
modes=",${2:-checks},"
wants() { [[ $modes == *,$1,* ]]; }
OUT=${CLPSA_GPU_LOGS:-/tmp/clpsa-gpu}
mkdir -p "$OUT"
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA} CLPSA_CACHE_DIR=${CLPSA_CACHE_DIR:-/tmp/clpsa-cache}
stage() { echo "== $* ($(date -u +%H:%M:%S))"; }
dense() { # $1: parameters, rest: bench options
    local p=$1
    shift
    line=$(CLPSA_PARAMS=$p timeout 60 "$build/bench/clpsa_bench_dense" --heads 12 --dim 128 \
        --dtype bf16 --reps 10 --check-rows 8 "$@" 2>&1 | tail -1)
    echo "$p $*: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+')"
}
psa() { # $1: parameters, rest: bench options
    local p=$1
    shift
    CLPSA_PARAMS=$p timeout 120 "$build/bench/clpsa_bench_psa" --grid 18,45,80 --heads 12 \
        --dim 128 --dtype bf16 --order hilbert --reps 10 "$@" >"$OUT/psa.txt" 2>&1
    echo "$p $* (rc $?):"
    grep -E "^(dense|psa|binary) |estimate\+assign|pipeline|budget" "$OUT/psa.txt" | sed 's/^/    /'
}

if wants checks; then
    stage "variants here"
    "$build/clpsa" devices --device "$CLPSA_DEVICE" 2>&1 | grep -E "variants:" | head -6
    stage "build (register report)"
    for dt in bf16 fp16; do
        for d in 64 128; do
            CLPSA_LOG=debug timeout 120 "$build/clpsa" bench --workload random \
                --shapes "1x2x1000x$d" --dtype $dt --tau 0.4,0.5,0.6,0.8 --reps 1 --no-clblast \
                >"$OUT/build_${dt}_$d.txt" 2>&1
            echo "$dt D=$d: rc $?; $(grep -oE '(dense|attend)\.VARIANT=[0-9] [a-z-]+' \
                "$OUT/build_${dt}_$d.txt" | sort -u | tr '\n' ' ')"
            grep -E "ptxas info *: Used|spill|falling back|error|serializ" \
                "$OUT/build_${dt}_$d.txt" | sed 's/^/    /' | sort -u | head -8
        done
    done
    stage "suites (every variant that runs here, wgmma included)"
    for suite in ${CLPSA_GPU_SUITES:-test_dense test_psa test_video test_nonfinite test_budget}; do
        CLPSA_TEST_VERBOSE=1 timeout "${CLPSA_GPU_SUITE_TIMEOUT:-120}" "$build/tests/$suite" \
            >"$OUT/$suite.log" 2>&1
        echo "$suite rc $? ($(grep -c '^\[       OK' "$OUT/$suite.log") ok," \
            "$(grep -c '^\[  FAILED  \] ' "$OUT/$suite.log") failed)"
        grep -E "^\[  FAILED|ERROR|error:" "$OUT/$suite.log" | head -8 | sed 's/^/    /'
        grep -E "nvidia-wgmma" "$OUT/$suite.log" | head -3 | sed 's/^/    /'
    done
    if [ "${CLPSA_GPU_SWEEP:-1}" = 1 ]; then
        stage "sweep: dense bf16 B1 H12 N32768 D128"
        dense "dense.VARIANT=2" --seq 32768
        for warps in 4 8; do
            for ts in 32,1 32,2 64,1; do
                dense "dense.VARIANT=5,dense.NV_WARPS=$warps,dense.NV_TILE_N=${ts%,*},dense.NV_STAGES=${ts#*,}" \
                    --seq 32768
            done
        done
    fi
fi

if wants times; then
    stage "sweep: PSA pipeline, video-hilbert 18x45x80 H12 D128 bf16, release shares"
    for p in ""; do
        psa "$p" --mode quantile --tau 0.10,0.15,0.15,0.35
    done
    stage "sampled estimate variants (threshold pipeline, release shares)"
    for p in "estimate.VARIANT=5" "estimate.VARIANT=5,estimate.NV_WARPS=4" \
        "estimate.VARIANT=5,estimate.NV_TILE_N=32" "estimate.VARIANT=3,estimate.NV_WARPS=4"; do
        psa "$p" --mode quantile --tau 0.10,0.15,0.15,0.35
    done
    stage "budget mode, density 0.15: measurement variants"
    for p in "" "budget.VARIANT=4" "budget.VARIANT=4,budget.NV_WARPS=8"; do
        psa "$p" --density 0.15
    done
    stage "dense, defaults"
    dense "" --seq 32768
    dense "" --seq 16384
    dense "" --seq 16384 --causal
    stage peers
    timeout 200 python3 .peers/peer_bench.py --shape 1,12,64800,128 --dtypes bf16 --psa 2>&1 |
        grep peer=
    timeout 60 python3 .peers/peer_bench.py --shape 1,12,32768,128 --dtypes bf16 2>&1 | grep peer=
fi

if wants simt; then
    stage "portable-simt dense fp32 B1 H12 N16384 D128"
    # The built-in row, then 8 rows per work-item (SIMT_RPW=8: 64-key tiles, D in two parts).
    simt_dense="dense.VARIANT=4,dense.SIMT_RPW=8,dense.SIMT_TILE_N=64,dense.SIMT_DSPLIT=2"
    for p in "dense.VARIANT=4" "$simt_dense,dense.SIMT_ROWS=32,dense.SIMT_QSTAGE=1" \
        "$simt_dense,dense.SIMT_ROWS=32,dense.SIMT_QSTAGE=2" \
        "$simt_dense,dense.SIMT_ROWS=64,dense.SIMT_QSTAGE=2"; do
        CLPSA_PARAMS=$p CLPSA_LOG=debug CLPSA_BUILD_OPTIONS=-cl-nv-verbose timeout 60 \
            "$build/bench/clpsa_bench_dense" --heads 12 --dim 128 --dtype fp32 --reps 5 \
            --check-rows 8 --seq 16384 >"$OUT/simt_dense.txt" 2>&1
        line=$(grep -E 'time_ms=' "$OUT/simt_dense.txt" | tail -1)
        echo "$p: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+')" \
            "$(grep -A3 'Function properties for dense_attention' "$OUT/simt_dense.txt" |
                grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')"
    done
    stage "portable-simt attend fp32, video 16x32x32 H12 D128, release shares"
    simt_attend="attend.VARIANT=4,attend.SIMT_RPW=8,attend.SIMT_TILE_N=64,attend.SIMT_DSPLIT=2"
    for p in "attend.VARIANT=4" "$simt_attend,attend.SIMT_ROWS=32,attend.SIMT_QSTAGE=1" \
        "$simt_attend,attend.SIMT_ROWS=32,attend.SIMT_QSTAGE=2" \
        "$simt_attend,attend.SIMT_ROWS=64,attend.SIMT_QSTAGE=2"; do
        CLPSA_PARAMS=$p CLPSA_LOG=debug CLPSA_BUILD_OPTIONS=-cl-nv-verbose timeout 120 \
            "$build/bench/clpsa_bench_psa" --grid 16,32,32 --heads 12 --dim 128 --dtype fp32 \
            --order hilbert --reps 5 --mode quantile --tau 0.10,0.15,0.15,0.35 \
            >"$OUT/simt_psa.txt" 2>&1
        echo "$p (rc $?): $(grep -E '^psa ' "$OUT/simt_psa.txt")" \
            "$(grep -A3 'Function properties for psa_attend' "$OUT/simt_psa.txt" |
                grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')"
    done
    stage "peer: SDPA fp32"
    timeout 90 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes fp32 2>&1 | grep peer=
fi
