#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Pictures of a `clpsa bench --json` report.

    python3 bench/plot.py BENCH.json [--out DIR] [--prefix NAME]

For each (workload, shape, dtype) of the report, two PNGs:
  NAME_<workload>_<BxHxNxD>_<dtype>_time.png   time (ms) against density, one line per method;
                                                dense and dense_clblast do not depend on the
                                                density and are drawn as horizontal lines
  NAME_<workload>_<BxHxNxD>_<dtype>_error.png  relative L2 error against dense of PSA and of
                                                the binary baseline, against density
The x axis is the measured density of each method (PSA's for its stages; the binary baseline
keeps whole blocks, so its density can be a little higher than PSA's). The device is named in
every title. Needs matplotlib (not a dependency of the build or of CI).
"""
import argparse
import json
import os
import sys
import textwrap

# Drawn as lines against density, in this order; the dense methods as horizontal references.
SPARSE = ["psa", "psa_attend", "psa_estimate_assign", "binary", "psa_threshold"]
DENSE = ["dense", "dense_clblast"]
# psa_attend and psa_estimate_assign are parts of the PSA run: their output is PSA's.
WITH_ERROR = ["psa", "binary", "psa_threshold"]
LABELS = {
    "psa": "PSA pipeline (budget mode in density sweeps)",
    "psa_threshold": "PSA, threshold rule (same density)",
    "psa_attend": "PSA attend only",
    "psa_estimate_assign": "PSA estimate + assign",
    "binary": "binary block-sparse (same density)",
    "dense": "dense (clpsa)",
    "dense_clblast": "dense (CLBlast GEMM + softmax)",
}
STYLES = {
    "psa": dict(color="tab:blue", marker="o"),
    "psa_threshold": dict(color="tab:green", marker="v", linestyle="--"),
    "psa_attend": dict(color="tab:cyan", marker="s", linestyle="--"),
    "psa_estimate_assign": dict(color="tab:purple", marker="^", linestyle=":"),
    "binary": dict(color="tab:orange", marker="D"),
    "dense": dict(color="black", linestyle="-"),
    "dense_clblast": dict(color="tab:gray", linestyle="-."),
}


def fail(message):
    print("plot.py: " + message, file=sys.stderr)
    sys.exit(1)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    except json.JSONDecodeError as e:
        fail("%s: not JSON (%s); write it with `clpsa bench --json FILE`" % (path, e))
    if not isinstance(report, dict) or not isinstance(report.get("records"), list):
        fail("%s: no \"records\" array; is it a `clpsa bench --json` report?" % path)
    return report


def groups(records):
    """Records by (workload, shape, dtype), in the report's order."""
    out = {}
    for r in records:
        key = (r["workload"], "x".join(str(n) for n in r["shape"]), r["dtype"])
        out.setdefault(key, []).append(r)
    return out


def series(records, method, field):
    """(density, value) points of one method, sorted by density, without missing values."""
    points = sorted(
        (r["density"], r[field])
        for r in records
        if r["method"] == method and r.get(field) is not None and r.get("density") is not None
    )
    return [p[0] for p in points], [p[1] for p in points]


def dense_level(records, method):
    """The dense methods' time, measured once per case and repeated in each density's records."""
    times = [r["time_ms"] for r in records if r["method"] == method and r["time_ms"] is not None]
    return sorted(times)[len(times) // 2] if times else None


def title(ax, device, key, what):
    workload, shape, dtype = key
    # Device names run long ("platform / device (driver)"): wrapped, never cut off.
    ax.set_title("%s: %s, %s (BxHxNxD), %s\n%s"
                 % (what, workload, shape, dtype, textwrap.fill(device, 90)), fontsize=9)


def log_if_positive(ax, values):
    if values and all(v > 0 for v in values):
        ax.set_yscale("log")


def plot_time(plt, device, key, records, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    values = []
    for method in SPARSE:
        x, y = series(records, method, "time_ms")
        if x:
            ax.plot(x, y, label=LABELS[method], **STYLES[method])
            values += y
    for method in DENSE:
        level = dense_level(records, method)
        if level is not None:
            ax.axhline(level, label=LABELS[method], **STYLES[method])
            values.append(level)
    log_if_positive(ax, values)
    ax.set_xlabel("density (fraction of dense attention work)")
    ax.set_ylabel("time (ms, median)")
    title(ax, device, key, "Time vs density")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_error(plt, device, key, records, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    values = []
    for method in WITH_ERROR:
        x, y = series(records, method, "rel_l2")
        if x:
            ax.plot(x, y, label=LABELS[method], **STYLES[method])
            values += y
    log_if_positive(ax, values)
    ax.set_xlabel("density (fraction of dense attention work)")
    ax.set_ylabel("relative L2 error against dense (||O - O_dense|| / ||O_dense||)")
    title(ax, device, key, "Error vs density")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(
        description="PNG pictures (time and error against density) of a `clpsa bench --json` "
        "report.")
    parser.add_argument("report", help="the JSON written by `clpsa bench --json FILE`")
    parser.add_argument("--out", default=".", help="directory for the PNGs (default: .)")
    parser.add_argument("--prefix", default="bench", help="file name prefix (default: bench)")
    args = parser.parse_args()

    try:
        import matplotlib
    except ImportError:
        fail("needs matplotlib, which is not installed: pip install matplotlib "
             "(or apt-get install python3-matplotlib)")
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    report = load(args.report)
    if not report["records"]:
        fail("%s: the report has no records" % args.report)
    device = report.get("device") or "unknown device"
    os.makedirs(args.out, exist_ok=True)
    for key, records in groups(report["records"]).items():
        stem = os.path.join(args.out, "%s_%s_%s_%s" % ((args.prefix,) + key))
        for kind, draw in (("time", plot_time), ("error", plot_error)):
            path = "%s_%s.png" % (stem, kind)
            draw(plt, device, key, records, path)
            print(path)


if __name__ == "__main__":
    main()
