#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of portable-simt kernel trees (fp32 dense, N16384 D128) on the GPU machine, with register reports.
. .gpu/env.sh; export CLPSA_DEVICE=NVIDIA CLPSA_LOG=debug CLPSA_BUILD_OPTIONS=-cl-nv-verbose
for tree in .cl_old .cl_a cl .cl_b; do
  export CLPSA_KERNEL_DIR=$PWD/$tree CLPSA_CACHE_DIR=/tmp/c$tree
  for p in "dense.VARIANT=4" "dense.VARIANT=4,dense.SIMT_RPW=8,dense.SIMT_TILE_N=64,dense.SIMT_DSPLIT=2,dense.SIMT_ROWS=32,dense.SIMT_QSTAGE=1" "dense.VARIANT=4,dense.SIMT_RPW=8,dense.SIMT_TILE_N=64,dense.SIMT_DSPLIT=2,dense.SIMT_ROWS=64,dense.SIMT_QSTAGE=2"; do
    case $tree in .cl_old|.cl_a) ;; *) false;; esac && [ "$p" != dense.VARIANT=4 ] && continue
    CLPSA_PARAMS=$p timeout 60 build-rel/bench/clpsa_bench_dense --heads 12 --dim 128 --dtype fp32 --reps 5 --check-rows 8 --seq 16384 > /tmp/d.txt 2>&1
    echo "$tree $p: $(grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+' /tmp/d.txt) $(grep -A3 'Function properties for dense_attention' /tmp/d.txt | grep -oE 'Used [0-9]+ registers|[0-9]+ bytes spill stores' | tr '\n' ' ')"
  done
done
