#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Prints the ratio table of one bench/gpu.sh run: clpsa's figures (clpsa bench JSON) beside
the peers' (peer_bench.py lines), all from the same run on the same machine.

    python3 bench/gpu_table.py OUT_DIR"""
import json
import os
import re
import sys


def records(path):
    try:
        with open(path) as f:
            return json.load(f)["records"]
    except (OSError, ValueError, KeyError):
        return []


def pick(recs, method):
    for r in recs:
        if r["method"] == method:
            return r
    return None


def peers(path):
    got = []
    try:
        for line in open(path):
            if line.startswith("peer="):
                got.append(dict(kv.split("=", 1) for kv in line.split()))
    except OSError:
        pass
    return got


def peer_ms(rows, **want):
    for r in rows:
        if all(r.get(k) == v for k, v in want.items()):
            return float(r["ms"])
    return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def main():
    out = sys.argv[1]
    psa = records(os.path.join(out, "psa_64800.json"))
    dense = records(os.path.join(out, "dense_32768.json"))
    portable = records(os.path.join(out, "portable_16384.json"))
    p64 = peers(os.path.join(out, "peers_64800.txt"))
    p32 = peers(os.path.join(out, "peers_32768.txt"))
    p16 = peers(os.path.join(out, "peers_16384.txt"))
    sdpa64 = peer_ms(p64, peer="sdpa", dtype="bf16")
    legacy = peer_ms(p64, peer="official-psa", impl="legacy")
    new = peer_ms(p64, peer="official-psa", impl="new")
    rows = []
    r = pick(psa, "psa")
    if r:
        ms = r["time_ms"]
        share = (r["estimate_ms"] + r["assign_ms"]) / ms
        rows.append(("PSA pipeline, video-hilbert 18x45x80, H12 D128 bf16, density "
                     f"{r['density']:.3f}", f"{ms:.2f} ms",
                     f"SDPA {ratio(sdpa64, ms)} (>= 2.5x); release legacy {ratio(legacy, ms)}, "
                     f"new {ratio(new, ms)} (>= 1.3x)"))
        rows.append(("  stages pool / estimate / assign / attend",
                     f"{r['pool_ms']:.2f} / {r['estimate_ms']:.2f} / {r['assign_ms']:.2f} / "
                     f"{r['attend_ms']:.2f} ms", f"estimate+assign {100 * share:.1f} % (<= 20 %)"))
        rows.append(("  PSA rel L2 vs clpsa dense", f"{r['rel_l2']:.4f}", ""))
        b = pick(psa, "binary")
        if b:
            rows.append(("  binary at PSA's density", f"{b['time_ms']:.2f} ms",
                         f"rel L2 {b['rel_l2']:.4f}"))
        d = pick(psa, "dense")
        if d:
            rows.append(("  clpsa dense, same shape", f"{d['time_ms']:.2f} ms",
                         f"{d['tflops']:.0f} TFLOP/s; SDPA {ratio(sdpa64, d['time_ms'])}"))
    d = pick(dense, "dense")
    sdpa32 = peer_ms(p32, peer="sdpa", dtype="bf16")
    if d:
        rows.append(("dense bf16 B1 H12 N32768 D128", f"{d['time_ms']:.2f} ms",
                     f"{d['tflops']:.0f} TFLOP/s; vs SDPA {ratio(sdpa32, d['time_ms'])} "
                     "of its speed (>= 0.5x)"))
    d = pick(portable, "dense")
    sdpa16 = peer_ms(p16, peer="sdpa", dtype="fp32")
    if d:
        rows.append(("portable (vendor path off) dense fp32 N16384 D128", f"{d['time_ms']:.2f} ms",
                     f"{d['tflops']:.1f} TFLOP/s; vs SDPA fp32 {ratio(sdpa16, d['time_ms'])} "
                     "(>= 0.5x)"))
        a = pick(portable, "psa_attend")
        if a:
            rows.append(("  portable attend, same shape", f"{a['time_ms']:.2f} ms",
                         f"{a['tflops']:.1f} TFLOP/s at density {a['density']:.3f}"))
    for name, ms in (("SDPA bf16 N64800", sdpa64), ("release legacy bn128", legacy),
                     ("release new bn64", new), ("SDPA bf16 N32768", sdpa32),
                     ("SDPA fp32 N16384", sdpa16)):
        if ms:
            rows.append((f"peer: {name}", f"{ms:.2f} ms", ""))
    width = max(len(r[0]) for r in rows) if rows else 10
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>24}  {c}")


if __name__ == "__main__":
    main()
