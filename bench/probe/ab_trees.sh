#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of kernel trees on the GPU machine, the same binaries over each tree (CLPSA_KERNEL_DIR):
# the nvidia-mma dense and PSA attend in bf16 and the portable-simt dense and attend in fp32
# (the vendor path off), each with its built-in parameters. Every tree gets its own kernel cache.
# Extra compiler flags per case ride in CLPSA_BUILD_OPTIONS. Usage, carrying .gpu, .peers and
# build-rel: `. .gpu/env.sh; bash bench/probe/ab_trees.sh build-rel TREE...` (TREE: a directory
# holding the cl/ layout; `cl` is the working tree's). Logs and PTX under $CLPSA_GPU_LOGS.
set -uo pipefail
build=$1
shift
OUT=${CLPSA_GPU_LOGS:-/tmp/clpsa-gpu}
mkdir -p "$OUT"
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA}
field() { grep -oE "$1=[0-9.e+-]+" | head -1 | cut -d= -f2; }
bf16_dense() {
    timeout 60 "$build/bench/clpsa_bench_dense" --heads 12 --dim 128 --dtype bf16 --reps 10 \
        --check-rows 8 --seq 32768 2>&1
}
fp32_dense() {
    timeout 90 "$build/bench/clpsa_bench_dense" --heads 12 --dim 128 --dtype fp32 --reps 5 \
        --check-rows 8 --seq 16384 2>&1
}
bf16_psa() {
    timeout 120 "$build/bench/clpsa_bench_psa" --grid 18,45,80 --heads 12 --dim 128 --dtype bf16 \
        --order hilbert --reps 10 --mode quantile --tau 0.10,0.15,0.15,0.35 2>&1
}
fp32_psa() {
    timeout 120 "$build/bench/clpsa_bench_psa" --grid 16,32,32 --heads 12 --dim 128 --dtype fp32 \
        --order hilbert --reps 5 --mode quantile --tau 0.10,0.15,0.15,0.35 2>&1
}
# One case: tree, label, extra build options, parameters, measurements (a comma list).
run_case() {
    local tree=$1 label=$2 opts=$3 params=$4 what=$5
    export CLPSA_KERNEL_DIR=$PWD/$tree CLPSA_CACHE_DIR=/tmp/cache_${tree//\//_}_$label
    export CLPSA_BUILD_OPTIONS=$opts CLPSA_PARAMS=$params CLPSA_LOG=debug
    for m in ${what//,/ }; do
        $m >"$OUT/${label}_$m.txt" 2>&1
        regs=$(grep -oE 'Used [0-9]+ registers|[0-9]+ bytes stack frame|[0-9]+ bytes spill stores' \
            "$OUT/${label}_$m.txt" | sort -u | tr '\n' ' ')
        case $m in
        *_dense)
            line=$(grep -E 'time_ms=' "$OUT/${label}_$m.txt" | tail -1)
            echo "$label $m: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+') | $regs"
            ;;
        *_psa)
            echo "$label $m: $(grep -E '^psa ' "$OUT/${label}_$m.txt" | head -1 | cut -c1-160) | $regs"
            grep -E 'attend|estimate\+assign' "$OUT/${label}_$m.txt" | head -3 | sed 's/^/    /'
            ;;
        esac
    done
    # The driver's PTX of what was built: count the exponentials and the instructions.
    mkdir -p "$OUT/ptx_$label"
    for f in "$CLPSA_CACHE_DIR"/program-*.bin; do
        [ -f "$f" ] && grep -aq '^\.target' "$f" || continue
        name=$(grep -aoE 'file=[^|]+' "$f" | head -1 | cut -d= -f2 | tr '/+' '__')
        echo "    ptx $name: $(grep -ac 'ex2\.approx' "$f") ex2, $(grep -ac 'mma\.sync\|wgmma' "$f") mma," \
            "$(grep -ac 'ld\.shared' "$f") ld.shared, $(grep -aoE 'ex2\.approx[a-z0-9.]*' "$f" | sort -u | tr '\n' ' ')"
        [ "$(stat -c %s "$f")" -lt 3000000 ] && cp "$f" "$OUT/ptx_$label/$name.bin"
    done
    unset CLPSA_BUILD_OPTIONS CLPSA_PARAMS CLPSA_LOG CLPSA_KERNEL_DIR
}
# AB_MEASURE: the measurements per tree (a comma list of the four functions above).
measure=${AB_MEASURE:-bf16_dense,bf16_psa,fp32_dense,fp32_psa}
for tree in "$@"; do
    echo "== tree $tree ($(date -u +%H:%M:%S))"
    run_case "$tree" "${tree//[.\/]/}" "-cl-nv-verbose" "" "$measure"
done
if [ -n "${AB_EXTRA:-}" ]; then
    # AB_EXTRA: cases "tree|label|options|params|measurements" separated by ';'.
    IFS=';' read -ra cases <<<"$AB_EXTRA"
    for c in "${cases[@]}"; do
        IFS='|' read -r tree label opts params what <<<"$c"
        echo "== $label ($(date -u +%H:%M:%S))"
        run_case "$tree" "$label" "$opts" "$params" "$what"
    done
fi
