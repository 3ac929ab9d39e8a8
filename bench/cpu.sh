#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 11's CPU targets in one run (bench/NOTES.md): clpsa on PoCL against PyTorch's CPU
# scaled_dot_product_attention on the same shapes, fp32:
#   1. dense B=1 H=2 N=4096 D=64: clpsa dense at least 0.5x PyTorch SDPA's speed;
#   2. video workload N=8192 (grid 8x32x32) D=64, PSA at density 0.15 +- 0.02: the whole
#      pipeline at least 2x faster than PyTorch SDPA dense on the shape.
# Usage: bash bench/cpu.sh [build-dir] [rounds]   (defaults: build, 2)
# PyTorch comes from $TORCH_PYTHON (default /tmp/torch-venv/bin/python): a virtual environment
# outside the repository, never in CI (`python3 -m venv /tmp/torch-venv;
# /tmp/torch-venv/bin/pip install torch`, about 5 GB of CUDA libraries it does not use here).
# Both sides use every core ($THREADS, default nproc). Each round times clpsa, then PyTorch,
# so a noisy neighbour shows as a spread between rounds; the load average is printed with
# each. JSON of every clpsa run goes to $CLPSA_CPU_LOGS (default /tmp/clpsa-cpu).
set -euo pipefail
build=${1:-build}
rounds=${2:-2}
python=${TORCH_PYTHON:-/tmp/torch-venv/bin/python}
threads=${THREADS:-$(nproc)}
out=${CLPSA_CPU_LOGS:-/tmp/clpsa-cpu}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export POCL_MAX_PTHREAD_COUNT=$threads

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores;" \
    "$(date -u +%Y-%m-%dT%H:%MZ); threads $threads"
"$build/clpsa" devices 2>/dev/null | grep -E "^  device 0|^\s+(driver|key) " | head -3 || true
for round in $(seq 1 "$rounds"); do
    echo "== round $round, load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$build/clpsa" bench --workload random --shapes 1x2x4096x64 --densities 0.5 --no-clblast \
        --reps 5 --json "$out/dense_$round.json" >/dev/null
    "$build/clpsa" bench --workload video --grid 8,32,32 --shapes 1x1x8192x64 --densities 0.15 \
        --no-clblast --reps 5 --json "$out/psa_$round.json" >/dev/null
    "$python" "$here/sdpa_bench.py" --device cpu --threads "$threads" --dtypes fp32 --reps 10 \
        --shape 1,2,4096,64 --shape 1,1,8192,64 >"$out/sdpa_$round.txt"
    python3 - "$out" "$round" <<'EOF'
import json, re, sys
out, rnd = sys.argv[1], sys.argv[2]
def record(name, method):
    for r in json.load(open(f"{out}/{name}_{rnd}.json"))["records"]:
        if r["method"] == method:
            return r
sdpa = {}
for line in open(f"{out}/sdpa_{rnd}.txt"):
    f = dict(kv.split("=") for kv in line.split()[1:])
    sdpa[(int(f["H"]), int(f["N"]))] = float(f["time_ms"])
dense, psa = record("dense", "dense"), record("psa", "psa")
torch_dense, torch_video = sdpa[(2, 4096)], sdpa[(1, 8192)]
print(f"1. dense 1x2x4096x64: clpsa {dense['time_ms']:.1f} ms ({dense['tflops'] * 1e3:.0f} GFLOP/s),"
      f" PyTorch SDPA {torch_dense:.1f} ms: clpsa at {torch_dense / dense['time_ms']:.2f}x"
      f" PyTorch's speed (target >= 0.5; floor 38 ms)")
print(f"2. PSA video 1x1x8192x64 at density {psa['density']:.3f}: {psa['time_ms']:.1f} ms"
      f" (pool {psa['pool_ms']:.1f}, estimate {psa['estimate_ms']:.1f}, assign"
      f" {psa['assign_ms']:.1f}, attend {psa['attend_ms']:.1f}), rel L2 {psa['rel_l2']:.4f};"
      f" PyTorch SDPA dense {torch_video:.1f} ms: PSA {torch_video / psa['time_ms']:.2f}x"
      f" faster (target >= 2; floor 14 ms)")
EOF
done
