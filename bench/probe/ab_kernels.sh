#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of kernel trees on the GPU machine: the same binaries over cl/ and copies in .cl_base, .cl_nohide (CLPSA_KERNEL_DIR).
. .gpu/env.sh; export CLPSA_DEVICE=NVIDIA
for d in .cl_base cl .cl_nohide; do
  export CLPSA_KERNEL_DIR=$PWD/$d CLPSA_CACHE_DIR=/tmp/cache$d
  for p in "dense.VARIANT=2" "dense.VARIANT=5,dense.NV_WARPS=8,dense.NV_TILE_N=64,dense.NV_STAGES=1" "dense.VARIANT=5,dense.NV_WARPS=8,dense.NV_TILE_N=32,dense.NV_STAGES=2"; do
    line=$(CLPSA_LOG=debug CLPSA_PARAMS=$p timeout 60 build-rel/bench/clpsa_bench_dense --heads 12 --dim 128 --dtype bf16 --reps 10 --check-rows 8 --seq 32768 2>&1 | tee /tmp/l.txt | tail -1)
    echo "$d $p: $(echo "$line" | grep -oE 'time_ms=[0-9.]+ tflops=[0-9.]+ rel_l2=[0-9.e+-]+') regs: $(grep -oE 'Used [0-9]+ registers' /tmp/l.txt | tr '\n' ' ')"
  done
  for p in "" "attend.VARIANT=5,attend.NV_WARPS=8,attend.NV_TILE_N=64,attend.NV_STAGES=1" "attend.VARIANT=5,attend.NV_WARPS=8,attend.NV_TILE_N=32,attend.NV_STAGES=2"; do
    CLPSA_LOG=debug CLPSA_PARAMS=$p timeout 120 build-rel/bench/clpsa_bench_psa --grid 18,45,80 --heads 12 --dim 128 --dtype bf16 --order hilbert --reps 5 --mode quantile --tau 0.10,0.15,0.15,0.35 > /tmp/p.txt 2>&1
    echo "$d psa $p: $(grep -E '^psa ' /tmp/p.txt | head -1 | cut -c1-150) regs: $(grep -oE 'Used [0-9]+ registers' /tmp/p.txt | tr '\n' ' ')"
  done
done
