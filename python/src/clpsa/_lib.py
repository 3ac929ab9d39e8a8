# SPDX-License-Identifier: Apache-2.0
"""ctypes declarations of the C API (include/clpsa/*.h) and the loading of libclpsa.

The structures below mirror the C ones field for field; tests/test_abi.py compiles a small C
program against the headers and checks every size and offset, so a change to a header that is
not made here too fails the tests instead of corrupting memory.
"""

import ctypes
import ctypes.util
import os

c_int = ctypes.c_int
c_float = ctypes.c_float
c_double = ctypes.c_double
c_size_t = ctypes.c_size_t
c_int64 = ctypes.c_int64
c_uint64 = ctypes.c_uint64
c_char_p = ctypes.c_char_p
c_void_p = ctypes.c_void_p

LOG_FN = ctypes.CFUNCTYPE(None, c_void_p, c_int, c_char_p)


class ContextDesc(ctypes.Structure):
    _fields_ = [
        ("cl_context", c_void_p),
        ("device", c_void_p),
        ("queue", c_void_p),
        ("device_spec", c_char_p),
        ("log", LOG_FN),
        ("log_user", c_void_p),
        ("log_level", c_int),
        ("cache_dir", c_char_p),
        ("disable_disk_cache", c_int),
    ]


class Strides(ctypes.Structure):
    _fields_ = [("batch", c_int64), ("head", c_int64), ("seq", c_int64), ("dim", c_int64)]


class PlanDesc(ctypes.Structure):
    _fields_ = [
        ("method", c_int),
        ("batch", c_int),
        ("heads_q", c_int),
        ("heads_kv", c_int),
        ("seq_q", c_int),
        ("seq_k", c_int),
        ("head_dim", c_int),
        ("dtype", c_int),
        ("out_dtype", c_int),
        ("q_strides", Strides),
        ("k_strides", Strides),
        ("v_strides", Strides),
        ("out_strides", Strides),
        ("scale", c_float),
        ("causal", c_int),
        ("preset", c_char_p),
        ("block_q", c_int),
        ("block_k", c_int),
        ("thresholds", c_float * 4),
        ("mode", c_int),
        ("align_tile", c_int),
        ("min_full", c_float),
        ("text_tokens", c_int),
        ("similarity_cap", c_int),
        ("similarity_thresholds", c_float * 3),
        ("estimator", c_int),
        ("sample_q", c_int),
        ("sample_k", c_int),
        ("antidiagonal_stride", c_int),
        ("seed", c_uint64),
        ("binary_density", c_float),
        ("grid", c_int * 3),
        ("ordering", c_int),
        ("tile", c_int * 3),
        ("shard_head_first", c_int),
        ("shard_heads_q", c_int),
        ("density", c_float),
        ("kv_capacity", c_int),
    ]


class BufferSizes(ctypes.Structure):
    _fields_ = [("q", c_size_t), ("k", c_size_t), ("v", c_size_t), ("out", c_size_t)]


class BlockGrid(ctypes.Structure):
    _fields_ = [
        ("block_q", c_int),
        ("block_k", c_int),
        ("blocks_q", c_int),
        ("blocks_k", c_int),
        ("count", c_size_t),
    ]


class LevelStats(ctypes.Structure):
    _fields_ = [("density", c_double), ("histogram", c_uint64 * 5)]


class StageTimes(ctypes.Structure):
    _fields_ = [
        ("pool_ms", c_double),
        ("estimate_ms", c_double),
        ("assign_ms", c_double),
        ("attend_ms", c_double),
        ("total_ms", c_double),
    ]


class VideoWorkloadDesc(ctypes.Structure):
    _fields_ = [
        ("frames", c_int),
        ("height", c_int),
        ("width", c_int),
        ("heads_q", c_int),
        ("heads_kv", c_int),
        ("head_dim", c_int),
        ("length_time", c_float),
        ("length_space", c_float),
        ("sharpness", c_float),
        ("content", c_float),
        ("noise", c_float),
        ("seed", c_uint64),
        ("text_tokens", c_int),
    ]


# The structures whose layout tests/test_abi.py checks against the C headers.
STRUCTS = {
    "clpsa_context_desc": ContextDesc,
    "clpsa_strides": Strides,
    "clpsa_plan_desc": PlanDesc,
    "clpsa_buffer_sizes": BufferSizes,
    "clpsa_block_grid": BlockGrid,
    "clpsa_level_stats": LevelStats,
    "clpsa_stage_times": StageTimes,
    "clpsa_video_workload_desc": VideoWorkloadDesc,
}

P = ctypes.POINTER
# name: (restype, argtypes). Status-returning functions return c_int.
_FUNCTIONS = {
    "clpsa_version": (c_char_p, []),
    "clpsa_version_number": (c_int, []),
    "clpsa_status_name": (c_char_p, [c_int]),
    "clpsa_status_string": (c_char_p, [c_int]),
    "clpsa_dtype_size": (c_size_t, [c_int]),
    "clpsa_convert_from_float": (c_int, [c_int, c_void_p, c_void_p, c_size_t]),
    "clpsa_convert_to_float": (c_int, [c_int, c_void_p, c_void_p, c_size_t]),
    "clpsa_context_desc_init": (None, [P(ContextDesc)]),
    "clpsa_context_create": (c_int, [P(ContextDesc), P(c_void_p)]),
    "clpsa_context_destroy": (None, [c_void_p]),
    "clpsa_context_last_error": (c_char_p, [c_void_p]),
    "clpsa_context_cl_context": (c_void_p, [c_void_p]),
    "clpsa_context_device": (c_void_p, [c_void_p]),
    "clpsa_context_queue": (c_void_p, [c_void_p]),
    "clpsa_context_device_name": (c_char_p, [c_void_p]),
    "clpsa_context_device_reason": (c_char_p, [c_void_p]),
    "clpsa_context_device_key": (c_char_p, [c_void_p]),
    "clpsa_context_describe_params": (c_int, [c_void_p, c_char_p, c_size_t]),
    "clpsa_context_describe_variants": (c_int, [c_void_p, c_char_p, c_size_t]),
    "clpsa_context_set_params": (c_int, [c_void_p, c_char_p]),
    "clpsa_plan_desc_init": (None, [P(PlanDesc)]),
    "clpsa_plan_create": (c_int, [c_void_p, P(PlanDesc), P(c_void_p)]),
    "clpsa_plan_destroy": (None, [c_void_p]),
    "clpsa_plan_get_desc": (c_int, [c_void_p, P(PlanDesc)]),
    "clpsa_plan_run": (
        c_int,
        [c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, ctypes.c_uint,
         P(c_void_p), P(c_void_p)],
    ),
    "clpsa_plan_buffer_sizes": (c_int, [c_void_p, P(BufferSizes)]),
    "clpsa_plan_parameter_source": (c_char_p, [c_void_p]),
    "clpsa_plan_kernel_variant": (c_char_p, [c_void_p, c_char_p]),
    "clpsa_plan_flops": (c_double, [c_void_p]),
    "clpsa_plan_set_kv_length": (c_int, [c_void_p, c_int]),
    "clpsa_plan_block_grid": (c_int, [c_void_p, P(BlockGrid)]),
    "clpsa_plan_set_scores": (c_int, [c_void_p, c_void_p]),
    "clpsa_plan_set_levels": (c_int, [c_void_p, c_void_p]),
    "clpsa_plan_read_levels": (c_int, [c_void_p, c_void_p]),
    "clpsa_plan_read_scores": (c_int, [c_void_p, c_void_p]),
    "clpsa_plan_read_stats": (c_int, [c_void_p, P(LevelStats)]),
    "clpsa_plan_read_stage_times": (c_int, [c_void_p, P(StageTimes)]),
    "clpsa_level_stats_compute": (c_int, [c_void_p, c_size_t, c_int, P(LevelStats)]),
    "clpsa_ordering_permutation": (
        c_int, [c_int, c_int, c_int, c_int, c_void_p, c_int, c_void_p]),
    "clpsa_video_workload_desc_init": (None, [P(VideoWorkloadDesc)]),
    "clpsa_video_workload_generate": (
        c_int, [P(VideoWorkloadDesc), c_void_p, c_void_p, c_void_p]),
}


def _candidates():
    """Where libclpsa is looked for, in order: $CLPSA_LIBRARY (a path), the copy built into
    this package by `pip install`, then the system's (an installed libclpsa.so.0)."""
    env = os.environ.get("CLPSA_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.join(here, "libclpsa.so")]
    found.append("libclpsa.so.0")
    system = ctypes.util.find_library("clpsa")
    if system:
        found.append(system)
    return found


def load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: no such file")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append(f"{path}: {e}")
            continue
        for name, (restype, argtypes) in _FUNCTIONS.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                raise ImportError(
                    f"clpsa: {path} lacks {name}: it is older than this Python package; "
                    "reinstall the package (pip install ./python) or point CLPSA_LIBRARY at "
                    "a matching libclpsa.so") from None
            fn.restype = restype
            fn.argtypes = argtypes
        lib.clpsa_path = path
        return lib
    raise ImportError("clpsa: libclpsa could not be loaded (set CLPSA_LIBRARY to its path, or "
                      "reinstall with `pip install ./python`, which builds it):\n  "
                      + "\n  ".join(errors))


lib = load()
