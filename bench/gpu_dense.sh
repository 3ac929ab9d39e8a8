#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One call on the GPU machine (../shared/GPU.md): correctness of the dense kernel on the H100 at
# small and ragged shapes, then the issue-2 timings next to PyTorch SDPA, in the same call.
# Run from the project root there:  . .gpu/env.sh; bash bench/gpu_dense.sh build-rel
set -uo pipefail
build=${1:-build-rel}
bench=$build/clpsa_bench_dense
export CLPSA_DEVICE=${CLPSA_DEVICE:-NVIDIA}
echo "== correctness (sampled rows vs double) =="
for args in "--seq 1 --dim 64" "--seq 33 --dim 32" "--seq 257 --dim 96 --causal" \
            "--seq 1000 --dim 128" "--seq 509 --dim 256 --causal" "--seq 4099 --dim 128"; do
    for dtype in fp32 fp16 bf16; do
        $bench --heads 3 --reps 3 --check-rows 48 --dtype $dtype $args | sed 's/device="[^"]*" //'
    done
done
echo "== timings: B=1 H=12 N=16384 D=128 =="
for dtype in fp32 fp16; do
    $bench --heads 12 --seq 16384 --dim 128 --dtype $dtype --reps 10 --check-rows 16
done
python3 bench/sdpa_bench.py --shape 1,12,16384,128 --dtypes bf16,fp16,fp32 --reps 10
