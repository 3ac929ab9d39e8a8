#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""PSA on the embedded video-like workload: density, level histogram and error against dense
attention (with the binary block-sparse baseline at the same density), and the level map
saved as a PNG picture.

    python3 python/examples/video_psa.py [--grid 8,16,16] [--order hilbert] [--png levels.png]
"""

import argparse

import numpy as np

import clpsa


def rel_l2(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="8,16,16", help="frames,height,width of the video")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--order", default="hilbert", choices=["raster", "hilbert", "tiles"])
    parser.add_argument("--preset", default=None, help="e.g. wan21-1.3b (docs/algorithm.md)")
    parser.add_argument("--device", default=None, help="index or name, as `clpsa devices`")
    parser.add_argument("--png", default="levels.png", help="where to save the level map")
    args = parser.parse_args()
    grid = tuple(int(x) for x in args.grid.split(","))

    q, k, v = clpsa.video_workload(*grid, heads_q=args.heads, head_dim=args.head_dim)
    device = None if args.device is None else (int(args.device) if args.device.isdigit()
                                               else args.device)
    print(f"device    {clpsa.default_device(device)[0]}")
    print(f"workload  {grid[0]} x {grid[1]} x {grid[2]} tokens ({q.shape[2]}), "
          f"{args.heads} heads, D = {args.head_dim}, {args.order} order")

    exact = clpsa.attention(q, k, v, method="dense", device=device)
    plan = clpsa.Plan(q, k, v, grid=grid, order=args.order, preset=args.preset, device=device)
    out = plan.run(q, k, v)
    density = plan.density
    binary = clpsa.attention(q, k, v, method="binary", binary_density=density, grid=grid,
                             order=args.order, preset=args.preset, device=device)
    times = plan.stage_times
    hist = ", ".join(f"{lv}: {n}" for lv, n in plan.histogram.items())
    print(f"density   {density:.4f} (sparsity {1 - density:.4f}); blocks at level {hist}")
    print(f"time      PSA {times['total']:.2f} ms (pool {times['pool']:.1f}, estimate "
          f"{times['estimate']:.1f}, assign {times['assign']:.1f}, attend {times['attend']:.1f})")
    err, err_bin = rel_l2(out, exact), rel_l2(binary, exact)
    print(f"error     rel L2 vs dense: PSA {err:.5f}; binary at the same density {err_bin:.5f} "
          f"({err_bin / err:.2f}x PSA's)")
    clpsa.level_map_png(args.png, plan.levels)
    print(f"picture   {args.png} (heads across; query blocks down, key blocks across; "
          "level 1 dark purple, 2 blue, 4 green, 8 yellow, 0 grey)")


if __name__ == "__main__":
    main()
