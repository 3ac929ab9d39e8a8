# SPDX-License-Identifier: Apache-2.0
"""clpsa: Pyramid Sparse Attention with OpenCL kernels, from Python.

    import clpsa
    out = clpsa.attention(q, k, v)          # numpy or pyopencl arrays, [B, H, N, D]

See python/README.md for the whole interface and docs/algorithm.md for what PSA computes.
"""

from ._core import (
    BF16,
    FP16,
    FP32,
    LEVELS,
    Device,
    Error,
    InvalidArgumentError,
    Plan,
    attention,
    clear_caches,
    default_device,
    devices,
    from_bf16_words,
    level_stats,
    ordering_permutation,
    to_bf16_words,
    version,
    video_workload,
)
from ._png import level_map_png, write_png

__version__ = "0.1.0"

__all__ = [
    "BF16", "FP16", "FP32", "LEVELS", "Device", "Error", "InvalidArgumentError", "Plan",
    "attention", "clear_caches", "default_device", "devices", "from_bf16_words",
    "level_map_png", "level_stats", "ordering_permutation", "to_bf16_words", "version",
    "video_workload", "write_png",
]
