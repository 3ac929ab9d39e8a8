#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ONE run on the GPU machine (bench/NOTES.md, GPU section): builds nothing there; checks first
# (every kernel variant builds, with its register report; the correctness suites against the
# double-precision reference with the NVIDIA matrix-unit variants and with the portable ones),
# then times clpsa (dense, PSA and its stages, binary), then the peers through
# .peers/peer_bench.py in the same run, and prints a ratio table last.
# On the development machine (../shared/GPU.md): ../shared/gpu/fetch-debs.sh; copy
# ../shared/peers to .peers; cmake -B build-rel -DCMAKE_BUILD_TYPE=Release; build. Then run
# there, carrying .gpu, .peers and build-rel:
#   . .gpu/env.sh; bash bench/gpu.sh build-rel [checks|sweep|tune|simt|times|all]
# (all = checks + times; sweep times the matrix-unit variants' parameter grid at the target
# shapes; tune runs `clpsa tune` for the built-in table's row; simt checks, sweeps and tunes
# the SIMT-shaped portable variant with fp32 storage, the vendor path off.)
# Logs and JSON go to $CLPSA_GPU_LOGS (default /tmp/clpsa-gpu); pack them for the trip back.
set -uo pipefail
build=${1:-build-rel}
what=${2:-all}
OUT=${CLPSA_GPU_LOGS:-/tmp/clpsa-gpu}
mkdir -p "$OUT"
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA}
export CLPSA_CACHE_DIR=${CLPSA_CACHE_DIR:-/tmp/clpsa-cache}
clpsa=$build/clpsa
tests=$build/tests
benches=$build/bench
portable="dense.VARIANT=1,attend.VARIANT=1"
stage() { echo "== $* ($(date -u +%H:%M:%S))"; }

stage device
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null
timeout 60 "$clpsa" devices --device "$CLPSA_DEVICE" >"$OUT/devices.txt" 2>&1
grep -E "^\s+(name|key|driver)|variants" "$OUT/devices.txt" | head -8

stage "build every variant (register report from -cl-nv-verbose)"
for dt in bf16 fp16; do
    for d in 64 128; do
        CLPSA_LOG=debug timeout 120 "$clpsa" bench --workload random --shapes "1x2x1000x$d" \
            --dtype $dt --tau 0.4,0.5,0.6,0.8 --reps 1 --no-clblast >"$OUT/build_${dt}_$d.txt" 2>&1
        echo "$dt D=$d: rc $?; $(grep -oE '(dense|attend)\.VARIANT=[0-9] [a-z-]+' \
            "$OUT/build_${dt}_$d.txt" | sort -u | tr '\n' ' ')"
        grep -E "ptxas info *: Used|spill|falling back|error" "$OUT/build_${dt}_$d.txt" |
            sed 's/^/    /' | sort -u | head -8
    done
done

if [ "$what" = all ] || [ "$what" = checks ]; then
    stage "correctness: suites on the GPU, matrix-unit variants where they fit, then portable"
    for suite in ${CLPSA_GPU_SUITES:-test_dense test_psa test_video test_nonfinite test_budget test_decode}; do
        CLPSA_TEST_VERBOSE=1 timeout "${CLPSA_GPU_SUITE_TIMEOUT:-150}" "$tests/$suite" \
            >"$OUT/${suite}_auto.log" 2>&1
        a=$?
        p=skipped
        if [ "${CLPSA_GPU_CHECK_PORTABLE:-1}" != 0 ]; then
            CLPSA_PARAMS=$portable CLPSA_TEST_VERBOSE=1 timeout 240 "$tests/$suite" \
                >"$OUT/${suite}_portable.log" 2>&1
            p=$?
        fi
        echo "$suite: auto rc $a ($(grep -c '^\[       OK' "$OUT/${suite}_auto.log") ok," \
            "$(grep -c '^\[  FAILED  \] test' "$OUT/${suite}_auto.log") failed); portable rc $p"
        grep -E "^\[  (ERROR|FAILED)|error:" "$OUT/${suite}_auto.log" | head -6 | sed 's/^/    /'
    done
    python3 - "$OUT" <<'EOF'
import re, sys
out = sys.argv[1]
rx = re.compile(r"^\s+(.*) \[(.*)\]: rel L2 ([0-9.eE+-]+) \(limit")
def errors(path):
    got = {}
    try:
        for line in open(path, errors="replace"):
            m = rx.match(line)
            if m:
                got[(m.group(1), m.group(2))] = float(m.group(3))
    except OSError:
        pass
    return got
for suite in ("test_dense", "test_psa"):
    a, p = errors(f"{out}/{suite}_auto.log"), errors(f"{out}/{suite}_portable.log")
    common = [k for k in a if k in p]
    worse = [(a[k] / p[k] if p[k] > 0 else float("inf"), k) for k in common if a[k] > p[k]]
    worst = max(a.values()) if a else float("nan")
    print(f"{suite}: {len(common)} checks in both runs; worst rel L2 auto {worst:.3g}; "
          f"auto worse than portable in {len(worse)}")
    for r, k in sorted(worse, reverse=True)[:5]:
        print(f"    {k[1]} / {k[0]}: auto {a[k]:.3g} portable {p[k]:.3g} ({r:.2f}x)")
EOF
fi

if [ "$what" = sweep ]; then
    stage "sweep: dense bf16 B1 H12 N32768 D128"
    for warps in 4 8; do
        for tile in 32 64; do
            for stages in 1 2; do
                p="dense.VARIANT=2,dense.NV_WARPS=$warps,dense.NV_TILE_N=$tile,dense.NV_STAGES=$stages"
                line=$(CLPSA_PARAMS=$p timeout 60 "$benches/clpsa_bench_dense" --heads 12 \
                    --seq 32768 --dim 128 --dtype bf16 --reps 10 --check-rows 8 2>&1 | tail -1)
                echo "$p: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+')"
            done
        done
    done
    stage "sweep: PSA attend, video-hilbert 18x45x80 H12 D128 bf16, release shares (density 0.15)"
    for p in "attend.NV_WARPS=4,attend.NV_TILE_N=32,attend.NV_STAGES=2" \
        "attend.NV_WARPS=8,attend.NV_TILE_N=32,attend.NV_STAGES=2" \
        "attend.NV_WARPS=8,attend.NV_TILE_N=64,attend.NV_STAGES=1,estimate.NV_WARPS=4" \
        "attend.NV_WARPS=4,attend.NV_TILE_N=32,attend.NV_STAGES=2,estimate.NV_TILE_N=32"; do
        CLPSA_PARAMS=$p timeout 120 "$benches/clpsa_bench_psa" --grid 18,45,80 --heads 12 \
            --dim 128 --dtype bf16 --order hilbert --mode quantile --tau 0.10,0.15,0.15,0.35 \
            --reps 5 >"$OUT/sweep_psa.txt" 2>&1
        echo "$p:"
        grep -E "^(dense|psa|binary) |estimate\+assign" "$OUT/sweep_psa.txt" | sed 's/^/    /'
    done
fi

if [ "$what" = tune ]; then
    stage "tune: clpsa tune on this device (bf16, 1x12x8192x128)"
    timeout 400 "$clpsa" tune --shape 1,12,8192,128 --dtype bf16 --budget 200 --reps 3 \
        --json >"$OUT/tune_h200.json" 2>"$OUT/tune_h200.log"
    echo "tune rc $?"; cat "$OUT/tune_h200.json"
fi

if [ "$what" = simt ]; then
    # Issue 11 target 3: the SIMT-shaped portable variant (the path AMD and Intel GPUs take) on
    # this GPU with fp32 storage, where the matrix-unit variants do not apply.
    simt="dense.VARIANT=4,attend.VARIANT=4"
    stage "simt: build report, fp32 D=128"
    CLPSA_PARAMS=$simt CLPSA_LOG=debug timeout 120 "$clpsa" bench --workload random \
        --shapes 1x2x1000x128 --dtype fp32 --tau 0.4,0.5,0.6,0.8 --reps 1 --no-clblast \
        >"$OUT/build_simt_fp32.txt" 2>&1
    echo "rc $?: $(grep -oE '(dense|attend)\.VARIANT=[0-9] [a-z-]+' "$OUT/build_simt_fp32.txt" |
        sort -u | tr '\n' ' ')"
    grep -E "ptxas info *: Used|spill|falling back|error" "$OUT/build_simt_fp32.txt" |
        sed 's/^/    /' | sort -u | head -8
    stage "simt: correctness suites with the SIMT variants"
    for suite in test_dense test_psa; do
        CLPSA_PARAMS=$simt CLPSA_TEST_VERBOSE=1 timeout 200 "$tests/$suite" \
            >"$OUT/${suite}_simt.log" 2>&1
        echo "$suite simt: rc $? ($(grep -c '^\[       OK' "$OUT/${suite}_simt.log") ok," \
            "$(grep -c '^\[  FAILED  \] test' "$OUT/${suite}_simt.log") failed)"
        grep -E "^\[  (ERROR|FAILED)|error:" "$OUT/${suite}_simt.log" | head -6 | sed 's/^/    /'
    done
    stage "simt: dense fp32 B1 H12 N16384 D128 over SIMT_ROWS x SIMT_TILE_N"
    for rows in 32 64; do
        for tile in 32 64; do
            p="$simt,dense.SIMT_ROWS=$rows,dense.SIMT_TILE_N=$tile"
            line=$(CLPSA_PARAMS=$p timeout 60 "$benches/clpsa_bench_dense" --heads 12 \
                --seq 16384 --dim 128 --dtype fp32 --reps 5 --check-rows 8 2>&1 | tail -1)
            echo "$p: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+')"
        done
    done
    stage "simt: PSA fp32, video 16x32x32 H12 D128, release shares"
    for rows in 32 64; do
        for tile in 32 64; do
            p="$simt,attend.SIMT_ROWS=$rows,attend.SIMT_TILE_N=$tile"
            CLPSA_PARAMS=$p timeout 100 "$benches/clpsa_bench_psa" --grid 16,32,32 --heads 12 \
                --dim 128 --dtype fp32 --order hilbert --mode quantile --tau 0.10,0.15,0.15,0.35 \
                --reps 3 >"$OUT/simt_psa_${rows}_$tile.txt" 2>&1
            echo "$p: rc $?"
            grep -E "^(dense|psa|binary) |attend|estimate\+assign" "$OUT/simt_psa_${rows}_$tile.txt" |
                sed 's/^/    /'
        done
    done
    stage "simt: clpsa tune, fp32 (the matrix-unit variants need 16-bit storage: vendor path off)"
    timeout 240 "$clpsa" tune --shape 1,12,4096,128 --dtype fp32 --budget 80 --reps 3 \
        --json >"$OUT/tune_h200_fp32.json" 2>"$OUT/tune_h200_fp32.log"
    echo "tune rc $?"; cat "$OUT/tune_h200_fp32.json"; tail -5 "$OUT/tune_h200_fp32.log"
    stage "simt: peers, fp32"
    timeout 100 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes fp32 \
        >"$OUT/peers_16384.txt" 2>&1
    grep peer= "$OUT/peers_16384.txt"
fi

if [ "$what" = all ] || [ "$what" = times ]; then
    stage "times: clpsa (parameters: $(grep -c . "$CLPSA_CACHE_DIR"/params-*.txt 2>/dev/null || echo 0) tuned-cache lines)"
    # Target 1-2: the release's default level shares (quantile rule, density 0.150 exactly).
    timeout 200 "$benches/clpsa_bench_psa" --grid 18,45,80 --heads 12 --dim 128 --dtype bf16 \
        --order hilbert --mode quantile --tau 0.10,0.15,0.15,0.35 --reps 10 \
        >"$OUT/psa_64800.txt" 2>&1
    echo "psa 64800 rc $?"; cat "$OUT/psa_64800.txt"
    # Target 3: dense through the matrix path.
    timeout 100 "$benches/clpsa_bench_dense" --heads 12 --seq 32768 --dim 128 --dtype bf16 \
        --reps 10 --check-rows 16 >"$OUT/dense_32768.txt" 2>&1
    echo "dense 32768 rc $?"; cat "$OUT/dense_32768.txt"
    # Issue 11 target 3: the vendor path off (fp32 storage: the SIMT-shaped portable variant).
    timeout 100 "$benches/clpsa_bench_dense" --heads 12 --seq 16384 \
        --dim 128 --dtype fp32 --reps 5 --check-rows 8 >"$OUT/portable_dense_16384.txt" 2>&1
    echo "portable dense rc $?"; cat "$OUT/portable_dense_16384.txt"
    timeout 150 "$benches/clpsa_bench_psa" --grid 16,32,32 --heads 12 \
        --dim 128 --dtype fp32 --order hilbert --mode quantile --tau 0.10,0.15,0.15,0.35 \
        --reps 3 >"$OUT/portable_psa_16384.txt" 2>&1
    echo "portable psa rc $?"; cat "$OUT/portable_psa_16384.txt"
    # Issue 12: budget mode at density 0.15 on the target shape (its measurement's share).
    timeout 200 "$benches/clpsa_bench_psa" --grid 18,45,80 --heads 12 --dim 128 --dtype bf16 \
        --order hilbert --density 0.15 --reps 10 >"$OUT/budget_64800.txt" 2>&1
    echo "budget 64800 rc $?"; cat "$OUT/budget_64800.txt"
    # Issue 16: causal against non-causal dense (matrix path and SIMT variant).
    for dt in bf16 fp32; do
        for c in "" --causal; do
            timeout 100 "$benches/clpsa_bench_dense" --heads 12 --seq 16384 --dim 128 \
                --dtype $dt $c --reps 5 --check-rows 8 2>&1 | tail -1 >>"$OUT/causal_dense.txt"
        done
    done
    cat "$OUT/causal_dense.txt"
    # Issue 16: decode step time against Nk (one query row; 16 rows), defaults.
    for rows in 1 16; do
        timeout 120 "$benches/clpsa_bench_decode" --heads-q 32 --heads-kv 8 --dim 128 \
            --dtype fp16 --causal --reps 20 --lengths 4096,16384,65536 --rows $rows \
            >"$OUT/decode_r$rows.txt" 2>&1
        echo "decode rows $rows rc $?"; tail -4 "$OUT/decode_r$rows.txt"
    done

    stage "times: peers"
    timeout 200 python3 .peers/peer_bench.py --shape 1,12,64800,128 --dtypes bf16 --psa \
        >"$OUT/peers_64800.txt" 2>&1
    timeout 100 python3 .peers/peer_bench.py --shape 1,12,32768,128 --dtypes bf16 \
        >"$OUT/peers_32768.txt" 2>&1
    timeout 100 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes bf16 --causal \
        >"$OUT/peers_16384_causal.txt" 2>&1
    timeout 100 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes bf16 \
        >"$OUT/peers_16384_bf16.txt" 2>&1
    timeout 100 python3 .peers/peer_bench.py --shape 1,12,16384,128 --dtypes fp32 \
        >"$OUT/peers_16384.txt" 2>&1
    cat "$OUT"/peers_*.txt | grep peer=

    stage table
    python3 bench/gpu_table.py "$OUT"
fi
