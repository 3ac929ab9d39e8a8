#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Prints the ratio table of one bench/gpu.sh run: clpsa's figures (clpsa_bench_psa and
clpsa_bench_dense output) beside the peers' (peer_bench.py lines), all from the same run on the
same machine.

    python3 bench/gpu_table.py OUT_DIR"""
import os
import re
import sys


def read(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ""


def psa_rows(text):
    """method -> (total, pool, estimate, assign, attend, density, rel_l2) of clpsa_bench_psa."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 9 and parts[0] in ("dense", "psa", "binary"):
            total, _, pool, est, assign, attend, density, err = map(float, parts[1:])
            rows[parts[0]] = dict(ms=total, pool=pool, estimate=est, assign=assign,
                                  attend=attend, density=density, rel_l2=err)
    return rows


def dense_line(text):
    m = re.search(r"time_ms=([0-9.]+) tflops=([0-9.]+) rel_l2=([0-9.e+-]+)", text)
    return (float(m.group(1)), float(m.group(2)), float(m.group(3))) if m else None


def peer_ms(text, **want):
    for line in text.splitlines():
        if not line.startswith("peer="):
            continue
        kv = dict(item.split("=", 1) for item in line.split())
        if all(kv.get(k) == v for k, v in want.items()):
            return float(kv["ms"])
    return None


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def main():
    out = sys.argv[1]
    psa = psa_rows(read(out, "psa_64800.txt"))
    p64, p32, p16 = (read(out, f"peers_{n}.txt") for n in (64800, 32768, 16384))
    sdpa64 = peer_ms(p64, peer="sdpa", dtype="bf16")
    legacy = peer_ms(p64, peer="official-psa", impl="legacy")
    new = peer_ms(p64, peer="official-psa", impl="new")
    rows = []
    r = psa.get("psa")
    if r:
        ms = r["ms"]
        share = (r["estimate"] + r["assign"]) / ms
        rows.append((f"PSA pipeline, video-hilbert 18x45x80 H12 D128 bf16, density {r['density']:.3f}",
                     f"{ms:.2f} ms", f"SDPA/PSA {ratio(sdpa64, ms)} (target >= 2.5x); release "
                     f"legacy/PSA {ratio(legacy, ms)}, new/PSA {ratio(new, ms)} (>= 1.3x)"))
        rows.append(("  pool / estimate / assign / attend",
                     f"{r['pool']:.2f} / {r['estimate']:.2f} / {r['assign']:.2f} / "
                     f"{r['attend']:.2f} ms",
                     f"estimate+assign {100 * share:.1f} % of the pipeline (target <= 20 %)"))
        b = psa.get("binary")
        rows.append(("  rel L2 vs clpsa dense: PSA / binary at the same density",
                     f"{r['rel_l2']:.2e} / {b['rel_l2']:.2e}" if b else f"{r['rel_l2']:.2e}", ""))
        d = psa.get("dense")
        if d:
            rows.append(("  clpsa dense, same shape", f"{d['ms']:.2f} ms",
                         f"SDPA/clpsa {ratio(sdpa64, d['ms'])}"))
    d = dense_line(read(out, "dense_32768.txt"))
    sdpa32 = peer_ms(p32, peer="sdpa", dtype="bf16")
    if d:
        rows.append(("dense bf16 B1 H12 N32768 D128 (matrix path)", f"{d[0]:.2f} ms",
                     f"{d[1]:.0f} TFLOP/s; {ratio(sdpa32, d[0])} of SDPA's speed (>= 0.5x)"))
    d = dense_line(read(out, "portable_dense_16384.txt"))
    sdpa16 = peer_ms(p16, peer="sdpa", dtype="fp32")
    if d:
        rows.append(("portable dense fp32 B1 H12 N16384 D128 (vendor path off)", f"{d[0]:.2f} ms",
                     f"{d[1]:.1f} TFLOP/s; {ratio(sdpa16, d[0])} of SDPA fp32's speed (>= 0.5x)"))
    pp = psa_rows(read(out, "portable_psa_16384.txt")).get("psa")
    if pp and d:
        flops = 4.0 * 12 * 16384 * 16384 * 128 * pp["density"]
        rows.append(("  portable attend, video-hilbert 16x32x32 fp32", f"{pp['attend']:.2f} ms",
                     f"{flops / pp['attend'] / 1e9:.1f} TFLOP/s at density {pp['density']:.3f}"))
    bu = psa_rows(read(out, "budget_64800.txt"))
    r = bu.get("psa")
    if r:
        share = (r["estimate"] + r["assign"]) / r["ms"]
        rows.append((f"budget mode, same shape as the first row, density {r['density']:.3f}",
                     f"{r['ms']:.2f} ms", f"SDPA/PSA {ratio(sdpa64, r['ms'])}; measurement + "
                     f"allocation {100 * share:.1f} % of the pipeline (target <= 20 %)"))
        b = bu.get("binary")
        if b:
            rows.append(("  rel L2 vs clpsa dense: budget PSA / binary at the same density",
                         f"{r['rel_l2']:.2e} / {b['rel_l2']:.2e}", ""))
    causal = {}
    for line in read(out, "causal_dense.txt").splitlines():
        m = re.search(r"dtype=(\w+) causal=(\d) time_ms=([0-9.]+)", line)
        if m:
            causal[(m.group(1), m.group(2))] = float(m.group(3))
    sdpa_c = peer_ms(read(out, "peers_16384_causal.txt"), peer="sdpa", dtype="bf16")
    sdpa_n = peer_ms(read(out, "peers_16384_bf16.txt"), peer="sdpa", dtype="bf16")
    for dt in ("bf16", "fp32"):
        n, c = causal.get((dt, "0")), causal.get((dt, "1"))
        if n and c:
            extra = (f"; SDPA causal {sdpa_c:.2f} ms, non-causal {sdpa_n:.2f} ms"
                     if dt == "bf16" and sdpa_c and sdpa_n else "")
            rows.append((f"dense {dt} B1 H12 N16384 D128: causal / non-causal",
                         f"{c:.2f} / {n:.2f} ms", f"causal costs {c / n:.2f}x{extra}"))
    for nq in (1, 16):
        text = read(out, f"decode_r{nq}.txt").strip().splitlines()
        if text:
            rows.append((f"decode, {nq} query row(s) (clpsa_bench_decode, last lines)", "",
                         " | ".join(t.strip() for t in text[-3:])))
    for name, ms in (("SDPA bf16 N64800", sdpa64), ("release legacy bn128", legacy),
                     ("release new bn64", new), ("SDPA bf16 N32768", sdpa32),
                     ("SDPA fp32 N16384", sdpa16)):
        if ms:
            rows.append((f"peer: {name}", f"{ms:.2f} ms", ""))
    width = max(len(r[0]) for r in rows) if rows else 10
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>28}  {c}")


if __name__ == "__main__":
    main()
