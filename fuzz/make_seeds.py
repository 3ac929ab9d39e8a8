#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/TARGET/) and the inputs of the
crashes and defects found so far (fuzz/regressions/TARGET/). Run from anywhere; the files are
committed, so this only needs to run again when a format changes."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FNV_SEED = 0xCBF29CE484222325


def fnv1a(data, h=FNV_SEED):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def write(kind, target, name, data):
    folder = os.path.join(HERE, kind, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy(descr, shape, payload, version=(1, 0)):
    shape_text = "(" + "".join(f"{d}, " if len(shape) == 1 else f"{d}, " for d in shape)
    shape_text = shape_text[:-2] + ",)" if len(shape) == 1 else shape_text.rstrip(", ") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    length_bytes = 2 if version[0] == 1 else 4
    total = 8 + length_bytes + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    length = struct.pack("<H" if length_bytes == 2 else "<I", len(header))
    return b"\x93NUMPY" + bytes(version) + length + header.encode() + payload


# ---- .npy reader ----
write("corpus", "fuzz_npy", "f4_2x3", npy("<f4", (2, 3), struct.pack("<6f", *range(6))))
write("corpus", "fuzz_npy", "f2_4", npy("<f2", (4,), bytes(8)))
write("corpus", "fuzz_npy", "i1_1x2x2x2", npy("|i1", (1, 2, 2, 2), bytes(range(8))))
write("corpus", "fuzz_npy", "i4_scalar", npy("<i4", (), struct.pack("<i", 7)))
write("corpus", "fuzz_npy", "f4_empty", npy("<f4", (0, 5), b""))
write("corpus", "fuzz_npy", "f4_v2", npy("<f4", (1, 1), struct.pack("<f", 1.5), (2, 0)))
write("corpus", "fuzz_npy", "fortran", npy("<f4", (1,), bytes(4)).replace(b"False", b"True "))
write("corpus", "fuzz_npy", "truncated", npy("<f4", (4, 4), bytes(20)))

# ---- parameter parsers: CLPSA_PARAMS text and tuned-parameter files ----
DEVICE_KEY, DRIVER = "pocl/skylake-avx512/cpu-fuzz", "6.0+debian"  # as in fuzz_params.c


def params_file(lines):
    text = "clpsa-params 1\ndevice=%s\ndriver=%s\n" % (DEVICE_KEY, DRIVER)
    text += "".join(line + "\n" for line in lines)
    return text + "checksum=%016x\n" % fnv1a(text.encode())


write("corpus", "fuzz_params", "override_one", "dense.TILE_N=16")
write("corpus", "fuzz_params", "override_list", "dense.BLOCK_M=64, attend.TILE_N=32,estimate.VARIANT=4")
write("corpus", "fuzz_params", "override_bad", "attend.ATT_M=7")
write("corpus", "fuzz_params", "file_good",
      params_file(["dense.BLOCK_M=32", "dense.TILE_N=16", "attend.CPU_ROWS=64"]))
write("corpus", "fuzz_params", "file_empty", params_file([]))
# Issue 14, defect 7: a valid first 255 characters, an invalid whole line, a right checksum.
write("regressions", "fuzz_params", "defect7_long_line",
      params_file(["dense.BLOCK_M=16" + "," * 284 + "dense.BLOCK_M=7"]))

# ---- program cache reader ----
KEY = b"platform=fuzz|device=fuzz|file=common.cl+dense.cl|options=-DHEAD_DIM=64"  # fuzz_program_cache.c


def entry(binary, version=2, key=KEY, binary_size=None):
    size = len(binary) if binary_size is None else binary_size
    head = b"CLPSAPB\0" + struct.pack("<IIQ", version, len(key), size)
    digest = fnv1a(binary, fnv1a(key, fnv1a(head)))
    return head + struct.pack("<Q", digest) + key + binary


write("corpus", "fuzz_program_cache", "good", entry(b"\x7fELF" + bytes(60)))
write("corpus", "fuzz_program_cache", "good_one_byte", entry(b"\x01"))
write("corpus", "fuzz_program_cache", "version1", entry(b"binary", version=1))
write("corpus", "fuzz_program_cache", "other_key", entry(b"binary", key=KEY[:-2] + b"32"))
# Issue 14, defect 3: sizes whose 64-bit sum wraps to the file's 101 bytes.
wrapped = (101 - 32 - len(KEY)) % (1 << 64)
write("regressions", "fuzz_program_cache", "defect3_size_wrap",
      (entry(b"", binary_size=wrapped) + bytes(101))[:101])
# Issue 14, defect 1: half a binary under sizes and a version-1 checksum that agree with it.
half = b"\x7fELF" + bytes(28)
head = b"CLPSAPB\0" + struct.pack("<IIQ", 2, len(KEY), len(half))
write("regressions", "fuzz_program_cache", "defect1_binary_only_checksum",
      head + struct.pack("<Q", fnv1a(half)) + KEY + half)

# ---- plan descriptor validation ("field=value" lines) ----
write("corpus", "fuzz_plan_desc", "dense", "method=2\nbatch=1\nheads_q=2\nseq_q=100\nhead_dim=64\n")
write("corpus", "fuzz_plan_desc", "psa_gqa",
      "batch=2\nheads_q=8\nheads_kv=2\nseq_q=1000\nseq_k=777\nhead_dim=128\nblock_q=64\nblock_k=32\n"
      "thresholds[0]=0.4\nthresholds[1]=0.5\nthresholds[2]=0.6\nthresholds[3]=0.9\nmode=2\n")
write("corpus", "fuzz_plan_desc", "preset_video",
      "preset=wan21-1.3b\nbatch=1\nheads_q=12\nseq_q=4096\nhead_dim=128\ngrid[0]=4\ngrid[1]=32\n"
      "grid[2]=32\nordering=2\n")
write("corpus", "fuzz_plan_desc", "strided",
      "batch=3\nheads_q=4\nseq_q=17\nhead_dim=32\nq_strides.batch=4096\nq_strides.head=32\n"
      "q_strides.seq=128\nq_strides.dim=1\nmethod=3\nbinary_density=0.5\n")
write("corpus", "fuzz_plan_desc", "sharded",
      "batch=1\nheads_q=3\nseq_q=64\nhead_dim=64\nshard_head_first=2\nshard_heads_q=5\n"
      "estimator=2\nantidiagonal_stride=4\nsample_q=16\nsample_k=8\nseed=12345\n")
