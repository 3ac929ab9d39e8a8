# SPDX-License-Identifier: Apache-2.0
"""PyTorch scaled_dot_product_attention timings on the same shapes as clpsa's benchmarks.

Usage: python3 bench/sdpa_bench.py --shape B,H,N,D [--shape ...] [--dtypes bf16,fp16,fp32]
                                   [--device cuda|cpu] [--threads N]
Prints one line per (shape, dtype): "sdpa B=.. H=.. N=.. D=.. dtype=.. time_ms=.. tflops=..".
Median of many runs after warm-up, on fresh random inputs: timed with CUDA events on a GPU,
with the wall clock on the CPU (torch.set_num_threads(--threads), default all cores)."""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def time_sdpa(b, h, n, d, dtype, causal, reps, device):
    q, k, v = (torch.randn(b, h, n, d, device=device, dtype=dtype) for _ in range(3))
    for _ in range(3):
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    times = []
    if device == "cuda":
        torch.cuda.synchronize()
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(reps):
            start = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            times.append((time.perf_counter() - start) * 1e3)
    ms = statistics.median(times)
    flops = 4.0 * b * h * n * n * d * (0.5 if causal else 1.0)
    return ms, min(times), flops / (ms * 1e-3) * 1e-12


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", action="append", required=True)
    parser.add_argument("--dtypes", default="bf16,fp16,fp32")
    parser.add_argument("--causal", action="store_true")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    for shape in args.shape:
        b, h, n, d = (int(x) for x in shape.split(","))
        for name in args.dtypes.split(","):
            ms, best, tflops = time_sdpa(b, h, n, d, names[name], args.causal, args.reps,
                                         args.device)
            print(f"sdpa B={b} H={h} N={n} D={d} dtype={name} causal={int(args.causal)} "
                  f"device={args.device} threads={torch.get_num_threads()} "
                  f"time_ms={ms:.3f} min_ms={best:.3f} tflops={tflops:.4f}", flush=True)


if __name__ == "__main__":
    main()
