#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of portable-simt kernel trees on the GPU machine (the same binaries over each tree through
# CLPSA_KERNEL_DIR): fp32 dense B1 H12 N16384 D128 with the built-in parameters and, with
# SIMT_AB_PSA=1, the fp32 PSA attend on the video 16x32x32 workload; NVIDIA's register report
# of each. Usage, carrying .gpu, .peers, build-rel and the trees:
#   bash bench/probe/simt_ab.sh TREE...   (default: cl)
. .gpu/env.sh
export CLPSA_DEVICE=NVIDIA CLPSA_LOG=debug CLPSA_BUILD_OPTIONS=-cl-nv-verbose
regs() { grep -A3 "Function properties for $1" "$2" | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' '; }
for tree in "${@:-cl}"; do
    export CLPSA_KERNEL_DIR=$PWD/$tree CLPSA_CACHE_DIR=/tmp/c$tree
    timeout 60 build-rel/bench/clpsa_bench_dense --heads 12 --dim 128 --dtype fp32 --reps 5 \
        --check-rows 8 --seq 16384 >/tmp/d.txt 2>&1
    echo "$tree dense: $(grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+' /tmp/d.txt) $(regs dense_attention /tmp/d.txt)"
    if [ "${SIMT_AB_PSA:-0}" = 1 ]; then
        timeout 120 build-rel/bench/clpsa_bench_psa --grid 16,32,32 --heads 12 --dim 128 \
            --dtype fp32 --order hilbert --reps 5 --mode quantile --tau 0.10,0.15,0.15,0.35 \
            >/tmp/p.txt 2>&1
        echo "$tree psa: $(grep -E '^psa ' /tmp/p.txt) $(regs psa_attend /tmp/p.txt)"
    fi
done
