# SPDX-License-Identifier: Apache-2.0
"""Contexts, plans and attention() over the C API (see _lib.py for the declarations)."""

import ctypes
import logging
import threading

import numpy as np

from . import _lib
from ._lib import lib

_log = logging.getLogger("clpsa")

# ---- statuses and errors ----
STATUS_NAMES = {}
for _value in range(0, 64):
    _name = lib.clpsa_status_name(_value).decode()
    if _name != "CLPSA_UNKNOWN_STATUS":
        STATUS_NAMES[_value] = _name
_INPUT_STATUSES = {"CLPSA_ERROR_NULL_ARGUMENT", "CLPSA_ERROR_INVALID_VALUE",
                   "CLPSA_ERROR_INVALID_SHAPE", "CLPSA_ERROR_INVALID_STRIDES",
                   "CLPSA_ERROR_UNSUPPORTED", "CLPSA_ERROR_BUFFER_TOO_SMALL",
                   "CLPSA_ERROR_WRONG_CONTEXT"}


class Error(RuntimeError):
    """A failed library call. `status` is the numeric clpsa_status, `name` its name (e.g.
    "CLPSA_ERROR_INVALID_SHAPE"), `detail` the library's last_error sentence."""

    def __init__(self, status, detail, call):
        self.status = int(status)
        self.name = lib.clpsa_status_name(status).decode()
        self.sentence = lib.clpsa_status_string(status).decode()
        self.detail = detail or self.sentence
        self.call = call
        super().__init__(f"{call}: {self.name}: {self.detail}")


class InvalidArgumentError(Error, ValueError):
    """An Error whose status says an argument was wrong (shape, value, strides, buffer,
    context); also a ValueError, so `except ValueError` catches every bad input."""


def _raise(status, detail, call):
    cls = InvalidArgumentError if lib.clpsa_status_name(status).decode() in _INPUT_STATUSES \
        else Error
    raise cls(status, detail, call)


# ---- dtypes ----
FP32, FP16, BF16 = 1, 2, 3
_DTYPE_NAMES = {FP32: "fp32", FP16: "fp16", BF16: "bf16"}
_DTYPE_ALIASES = {"fp32": FP32, "float32": FP32, "f32": FP32,
                  "fp16": FP16, "float16": FP16, "f16": FP16, "half": FP16,
                  "bf16": BF16, "bfloat16": BF16}

try:  # optional: bfloat16 numpy arrays
    import ml_dtypes as _ml_dtypes

    _BF16_NUMPY = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the installation
    _ml_dtypes = None
    _BF16_NUMPY = None


def _storage_of_numpy(dtype):
    """clpsa dtype stored by a numpy dtype, or None (uint16 is raw bf16 words only when the
    caller says dtype="bf16")."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return FP32
    if dtype == np.float16:
        return FP16
    if _BF16_NUMPY is not None and dtype == _BF16_NUMPY:
        return BF16
    return None


def _parse_dtype(value, what="dtype"):
    if value is None:
        return None
    if isinstance(value, str):
        key = value.lower()
        if key in _DTYPE_ALIASES:
            return _DTYPE_ALIASES[key]
        raise ValueError(f"clpsa: {what}={value!r}: expected 'fp32', 'fp16' or 'bf16'")
    try:
        storage = _storage_of_numpy(value)
    except TypeError:
        storage = None
    if storage is None:
        raise TypeError(f"clpsa: {what}={value!r}: expected 'fp32', 'fp16', 'bf16' or "
                        "numpy float32 / float16 / ml_dtypes.bfloat16")
    return storage


def _numpy_of_storage(storage):
    """numpy dtype returned for a storage type (bf16 as ml_dtypes.bfloat16, else raw uint16)."""
    if storage == FP32:
        return np.dtype(np.float32)
    if storage == FP16:
        return np.dtype(np.float16)
    return _BF16_NUMPY if _BF16_NUMPY is not None else np.dtype(np.uint16)


def _convert(fn, call, values, src_dtype, dst_dtype):
    src = np.ascontiguousarray(values, dtype=src_dtype)
    dst = np.empty(src.shape, dtype=dst_dtype)
    _check(fn(BF16, src.ctypes.data, dst.ctypes.data, src.size), None, call)
    return dst


def to_bf16_words(array):
    """bfloat16 words (uint16) of a float array, rounded to nearest even by the library."""
    return _convert(lib.clpsa_convert_from_float, "clpsa_convert_from_float", array,
                    np.float32, np.uint16)


def from_bf16_words(words):
    """float32 values of bfloat16 words (uint16)."""
    return _convert(lib.clpsa_convert_to_float, "clpsa_convert_to_float", words, np.uint16,
                    np.float32)


# ---- option names ----
_METHODS = {"psa": 1, "dense": 2, "binary": 3}
_MODES = {"threshold": 1, "quantile": 2, "energy": 3, "budget": 4}
_ESTIMATORS = {"sampled": 1, "antidiagonal": 2}
_ORDERS = {"raster": 1, "hilbert": 2, "tiles": 3}
_LAYOUTS = ("bhnd", "bnhd")
# Position in the array's shape of (batch, head, seq, dim) for each layout.
_AXES = {"bhnd": (0, 1, 2, 3), "bnhd": (0, 2, 1, 3)}
_OFF = -1
LEVELS = (0, 1, 2, 4, 8)


def _choice(table, value, what):
    if isinstance(value, str) and value.lower() in table:
        return table[value.lower()]
    raise ValueError(f"clpsa: {what}={value!r}: expected one of "
                     + ", ".join(repr(k) for k in table))


# ---- logging: the library's lines go to the "clpsa" Python logger ----
_PY_LEVELS = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.DEBUG,
              5: logging.DEBUG}


@_lib.LOG_FN
def _log_line(user, level, message):
    try:
        _log.log(_PY_LEVELS.get(level, logging.DEBUG), "%s", message.decode(errors="replace"))
    except Exception:  # never let an exception cross the C frames
        pass


def _check(status, ctx, call):
    if status != 0:
        detail = lib.clpsa_context_last_error(ctx).decode(errors="replace") if ctx else None
        _raise(status, detail, call)


# ---- contexts ----
class _Context:
    """A clpsa_context with the lock that keeps it on one thread at a time (the C rule)."""

    def __init__(self, device_spec=None, cl_context=None, cl_device=None, keep=()):
        desc = _lib.ContextDesc()
        lib.clpsa_context_desc_init(ctypes.byref(desc))
        spec = None if device_spec is None else str(device_spec).encode()
        desc.device_spec = spec
        desc.log = _log_line
        if cl_context is not None:
            desc.cl_context = cl_context
            desc.device = cl_device
        handle = ctypes.c_void_p()
        status = lib.clpsa_context_create(ctypes.byref(desc), ctypes.byref(handle))
        if status != 0:
            _raise(status, lib.clpsa_context_last_error(None).decode(errors="replace"),
                   "clpsa_context_create" + (f"(device={device_spec!r})"
                                             if device_spec is not None else ""))
        self.handle = handle.value
        self.lock = threading.RLock()
        self._keep = keep  # the caller's pyopencl objects, so their handles stay unique
        self._cl = None

    @property
    def device_name(self):
        return lib.clpsa_context_device_name(self.handle).decode()

    @property
    def device_reason(self):
        return lib.clpsa_context_device_reason(self.handle).decode()

    def pyopencl(self):
        """(pyopencl Context, CommandQueue) of the context clpsa created itself."""
        if self._cl is None:
            import pyopencl as cl

            ctx = cl.Context.from_int_ptr(lib.clpsa_context_cl_context(self.handle))
            queue = cl.CommandQueue.from_int_ptr(lib.clpsa_context_queue(self.handle))
            self._cl = (ctx, queue)
        return self._cl

    def __del__(self):
        handle, self.handle = getattr(self, "handle", None), None
        if handle and lib is not None:
            lib.clpsa_context_destroy(handle)


_contexts = {}
_contexts_lock = threading.Lock()


def _device_spec(device):
    """device= as the library's device_spec: None, an index, a name substring, a Device from
    devices() or a pyopencl.Device (matched to its index)."""
    if device is None:
        return None
    if isinstance(device, Device):
        return str(device.index)
    if isinstance(device, (int, np.integer)) and not isinstance(device, bool):
        return str(int(device))
    if isinstance(device, str):
        return device
    ptr = getattr(device, "int_ptr", None)
    if ptr is not None:
        for d in devices():
            if d._int_ptr == ptr:
                return str(d.index)
    raise TypeError(f"clpsa: device={device!r}: expected None, an index, a name substring, "
                    "a clpsa.Device or a pyopencl.Device")


def _own_context(device):
    spec = _device_spec(device)
    key = ("own", spec)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = _Context(device_spec=spec)
        return ctx


def _wrapped_context(cl_ctx, cl_device):
    """The clpsa context wrapping a caller's pyopencl context and device (cached: kernels
    compiled for one plan are reused by the next)."""
    key = ("wrapped", cl_ctx.int_ptr, cl_device.int_ptr)
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = _Context(cl_context=cl_ctx.int_ptr,
                                            cl_device=cl_device.int_ptr,
                                            keep=(cl_ctx, cl_device))
        return ctx


def clear_caches():
    """Drops the cached library contexts (and with them their compiled kernels and the
    references they hold to wrapped pyopencl contexts). Plans still alive keep theirs."""
    with _contexts_lock:
        _contexts.clear()


# ---- devices ----
class Device:
    """One OpenCL device, numbered as `clpsa devices`, CLPSA_DEVICE and device= count them."""

    __slots__ = ("index", "platform", "name", "type", "driver", "compute_units",
                 "global_memory", "max_allocation", "local_memory", "_int_ptr")

    def __init__(self, **fields):
        for k, v in fields.items():
            setattr(self, k, v)

    def __repr__(self):
        return (f"Device({self.index}: {self.platform} / {self.name} ({self.driver}), "
                f"{self.type}, {self.compute_units} CUs, "
                f"{self.global_memory / 2**30:.1f} GiB)")


def devices():
    """Every OpenCL device, in the order the library numbers them (platforms in order, each
    platform's devices in order)."""
    import pyopencl as cl

    out = []
    for platform in cl.get_platforms():
        try:
            devs = platform.get_devices(device_type=cl.device_type.ALL)
        except cl.Error:  # a platform without devices
            continue
        for d in devs:
            t = d.type
            kind = ("GPU" if t & cl.device_type.GPU else "CPU" if t & cl.device_type.CPU
                    else "accelerator" if t & cl.device_type.ACCELERATOR else "other")
            out.append(Device(index=len(out), platform=platform.name.strip(),
                              name=d.name.strip(), type=kind, driver=d.driver_version.strip(),
                              compute_units=d.max_compute_units,
                              global_memory=d.global_mem_size,
                              max_allocation=d.max_mem_alloc_size,
                              local_memory=d.local_mem_size, _int_ptr=d.int_ptr))
    return out


def default_device(device=None):
    """(name, reason) of the device the library uses for device= (None: $CLPSA_DEVICE, else
    the first GPU, else the first device), e.g. ("Portable ... / cpu-... (...)", "first
    device")."""
    ctx = _own_context(device)
    return ctx.device_name, ctx.device_reason


def version():
    """The linked library's version, "MAJOR.MINOR.PATCH"."""
    return lib.clpsa_version().decode()


# ---- array inspection ----
def _is_pyopencl_array(a):
    mod = type(a).__module__ or ""
    return mod.startswith("pyopencl") and hasattr(a, "base_data") and hasattr(a, "queue")


def _element_strides(name, array, layout):
    """Element strides (batch, head, seq, dim) of a 4-D array in layout, or None when the C
    API cannot take them as they are (negative, not whole elements, dim not contiguous,
    overlapping)."""
    item = array.dtype.itemsize
    byte_strides = [array.strides[a] for a in _AXES[layout]]
    shape = [array.shape[a] for a in _AXES[layout]]
    if any(s < 0 or s % item for s in byte_strides):
        return None
    el = [s // item for s in byte_strides]
    if shape[3] > 1 and el[3] != 1:
        return None
    el[3] = 1
    # No two elements may share memory: sorted by stride, each axis must step over the whole
    # extent of the axes inside it.
    span = 1
    for stride, extent in sorted((s, n) for s, n in zip(el, shape) if n > 1):
        if stride < span:
            return None
        span = stride * (extent - 1) + span
    return el


def _span_bytes(shape, el_strides, item):
    if any(n == 0 for n in shape):
        return 0
    return (sum((n - 1) * s for n, s in zip(shape, el_strides)) + 1) * item


def _contiguous_strides(layout, b, h, n, d):
    if layout == "bhnd":
        return [h * n * d, n * d, d, 1]
    return [n * h * d, d, h * d, 1]


def _shape_in_layout(layout, b, h, n, d):
    return (b, h, n, d) if layout == "bhnd" else (b, n, h, d)


def _set_strides(dst, el):
    dst.batch, dst.head, dst.seq, dst.dim = el


class _Spec:
    """What a plan needs to know about one operand."""

    def __init__(self, name, shape, dtype, strides):
        self.name, self.shape, self.dtype, self.strides = name, tuple(shape), dtype, strides


def _operand_spec(name, a, layout, storage_hint, allow_copy):
    """Shape (b, h, n, d), numpy dtype and acceptable element strides of an operand: an
    array (numpy or pyopencl), or a shape tuple (contiguous)."""
    if isinstance(a, tuple) or isinstance(a, list):
        shape = tuple(int(x) for x in a)
        if len(shape) != 4:
            raise ValueError(f"clpsa: {name} shape {shape}: expected 4 dimensions ({layout})")
        b, h, n, d = (shape[i] for i in _AXES[layout])
        dtype = _numpy_of_storage(storage_hint or FP32)
        return _Spec(name, (b, h, n, d), dtype, _contiguous_strides(layout, b, h, n, d))
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"clpsa: {name} is a {type(a).__name__}: expected a numpy array, a "
                        "pyopencl array or a shape tuple")
    if len(a.shape) != 4:
        raise ValueError(f"clpsa: {name} has shape {tuple(a.shape)}: expected 4 dimensions "
                         f"[{', '.join(layout.upper())}] (layout={layout!r})")
    b, h, n, d = (a.shape[i] for i in _AXES[layout])
    el = _element_strides(name, a, layout)
    if el is None:
        if not allow_copy:
            raise ValueError(
                f"clpsa: {name} has strides {tuple(a.strides)} (bytes) for shape "
                f"{tuple(a.shape)}: a device array is used in place, so its head dimension "
                "must be contiguous and its strides non-negative and non-overlapping; make a "
                "contiguous copy first (e.g. pyopencl.array.Array.copy of a contiguous array)")
        el = _contiguous_strides(layout, b, h, n, d)
    return _Spec(name, (b, h, n, d), np.dtype(a.dtype), el)


def _check_storage(specs, dtype_arg, device_arrays):
    """Storage type of Q/K/V: the arrays' dtype, or dtype= (numpy inputs are converted to it;
    device arrays must already hold it)."""
    want = _parse_dtype(dtype_arg)
    dtypes = {s.dtype for s in specs}
    if len(dtypes) != 1:
        raise TypeError("clpsa: q, k and v must have one dtype; got "
                        + ", ".join(f"{s.name} {s.dtype}" for s in specs))
    dtype = specs[0].dtype
    have = _storage_of_numpy(dtype)
    if have is None and dtype == np.uint16 and want == BF16:
        have = BF16  # raw bfloat16 words
    if have is None:
        raise TypeError(f"clpsa: q, k, v have dtype {dtype}: expected float32, float16 or "
                        "bfloat16 (ml_dtypes), or uint16 words with dtype='bf16'"
                        + ("; convert with .astype(np.float32)" if dtype.kind == "f" else ""))
    if want is None:
        return have, have
    if device_arrays and want != have:
        raise TypeError(f"clpsa: dtype={_DTYPE_NAMES[want]!r} but the device arrays hold "
                        f"{_DTYPE_NAMES[have]} ({dtype}): device arrays are used in place, "
                        "never converted")
    return want, have


# ---- plans ----
class Plan:
    """One attention shape with its options and compiled kernels: create once, run many times.

    q and k (v has k's shape) are example arrays, numpy or pyopencl, or shape tuples in
    `layout`. A plan made from pyopencl arrays runs on their context and queue (or queue=),
    in place; one made from numpy arrays or shapes runs on the library's own context on
    device= and takes and returns numpy arrays. Options as in attention().
    """

    def __init__(self, q, k=None, v=None, *, method="psa", preset=None, tau=None, mode=None,
                 block_q=None, block_k=None, causal=False, scale=None, grid=None,
                 order="raster", tile=None, text_tokens=0, layout="bhnd", dtype=None,
                 out_dtype=None, device=None, queue=None, binary_density=None,
                 align_tile=None, min_full=None, similarity_cap=None, estimator=None,
                 sample_q=None, sample_k=None, antidiagonal_stride=None, seed=None,
                 density=None, kv_length=None):
        if layout not in _LAYOUTS:
            raise ValueError(f"clpsa: layout={layout!r}: expected 'bhnd' or 'bnhd'")
        self.layout = layout
        method_id = _choice(_METHODS, method, "method")
        k = q if k is None else k
        v = k if v is None else v
        arrays = [a for a in (q, k, v) if not isinstance(a, (tuple, list))]
        self.on_device = bool(arrays) and _is_pyopencl_array(arrays[0])
        if any(_is_pyopencl_array(a) != self.on_device for a in arrays):
            raise TypeError("clpsa: q, k and v must all be numpy arrays or all pyopencl arrays")
        hint = _parse_dtype(dtype)
        specs = [_operand_spec(n, a, layout, hint, not self.on_device)
                 for n, a in (("q", q), ("k", k), ("v", v))]
        storage, given = _check_storage(specs, dtype, self.on_device)
        sq, sk, sv = specs
        b, hq, nq, d = sq.shape
        bk, hkv, nk, dk = sk.shape
        if bk != b or dk != d:
            raise ValueError(f"clpsa: q has [B, H, N, D] = {sq.shape} but k has {sk.shape}: "
                             "batch and head_dim must match")
        if sv.shape != sk.shape:
            raise ValueError(f"clpsa: v has [B, H, N, D] = {sv.shape}, k has {sk.shape}: "
                             "they must match")
        if hkv < 1 or hq % hkv:
            raise ValueError(f"clpsa: q has {hq} heads, k and v {hkv}: the query heads must be "
                             "a multiple of the key/value heads")
        out_storage = _parse_dtype(out_dtype, "out_dtype")
        if out_storage is None:
            # numpy callers get their inputs' dtype back; device arrays the storage type.
            out_storage = storage if self.on_device else (given if given else storage)
        self.storage, self.input_storage, self.out_storage = storage, given, out_storage
        self.shapes = {"q": sq.shape, "k": sk.shape, "v": sv.shape, "out": (b, hq, nq, d)}
        self.out_shape = _shape_in_layout(layout, b, hq, nq, d)
        self.method = method

        desc = _lib.PlanDesc()
        lib.clpsa_plan_desc_init(ctypes.byref(desc))
        desc.method = method_id
        desc.batch, desc.heads_q, desc.heads_kv = b, hq, hkv
        desc.seq_q, desc.seq_k, desc.head_dim = nq, nk, d
        if kv_length is not None:
            # k and v are a key/value cache of nk tokens of which the first kv_length are read
            # (set_kv_length() changes it between runs).
            desc.seq_k, desc.kv_capacity = int(kv_length), nk
        desc.dtype, desc.out_dtype = storage, out_storage
        # Host inputs converted to another storage type become contiguous copies.
        self._strides = {}
        for s in specs:
            el = s.strides if given == storage else _contiguous_strides(layout, *s.shape)
            self._strides[s.name] = el
            _set_strides(getattr(desc, f"{s.name}_strides"), el)
        self._strides["out"] = _contiguous_strides(layout, b, hq, nq, d)
        _set_strides(desc.out_strides, self._strides["out"])
        if scale is not None:
            if not scale > 0:
                raise ValueError(f"clpsa: scale={scale!r}: must be positive")
            desc.scale = float(scale)
        desc.causal = 1 if causal else 0
        self._preset = None if preset is None else str(preset).encode()
        desc.preset = self._preset
        if block_q is not None:
            desc.block_q = int(block_q)
        if block_k is not None:
            desc.block_k = int(block_k)
        if tau is not None:
            tau = [float(t) for t in tau]
            if len(tau) != 4:
                raise ValueError(f"clpsa: tau={tau!r}: expected 4 thresholds (tau1, tau2, "
                                 "tau4, tau8)")
            desc.thresholds[:] = tau
        if mode is not None:
            desc.mode = _choice(_MODES, mode, "mode")
        if density is not None:
            # A target density alone asks for budget mode: "PSA at 15 % of dense compute" is
            # density=0.15 and nothing else.
            if mode is None:
                desc.mode = _MODES["budget"]
            desc.density = float(density)
        if align_tile is not None:
            desc.align_tile = _OFF if align_tile == 0 else int(align_tile)
        if min_full is not None:
            desc.min_full = _OFF if min_full == 0 else float(min_full)
        desc.text_tokens = int(text_tokens)
        if similarity_cap is not None and similarity_cap is not False:
            desc.similarity_cap = 1
            if similarity_cap is not True:
                caps = [float(t) for t in similarity_cap]
                if len(caps) != 3:
                    raise ValueError("clpsa: similarity_cap: True or 3 thresholds (t2, t4, t8)")
                desc.similarity_thresholds[:] = caps
        if estimator is not None:
            desc.estimator = _choice(_ESTIMATORS, estimator, "estimator")
        if sample_q is not None:
            desc.sample_q = int(sample_q)
        if sample_k is not None:
            desc.sample_k = int(sample_k)
        if antidiagonal_stride is not None:
            desc.antidiagonal_stride = int(antidiagonal_stride)
        if seed is not None:
            desc.seed = int(seed)
        if binary_density is not None:
            desc.binary_density = float(binary_density)
        elif method_id == _METHODS["binary"]:
            raise ValueError("clpsa: method='binary' needs binary_density= in (0, 1]")
        if grid is not None:
            grid = [int(x) for x in grid]
            if len(grid) != 3:
                raise ValueError(f"clpsa: grid={grid!r}: expected (frames, height, width)")
            desc.grid[:] = grid
        desc.ordering = _choice(_ORDERS, order, "order")
        if tile is not None:
            tile = [int(x) for x in tile]
            if len(tile) != 3:
                raise ValueError(f"clpsa: tile={tile!r}: expected (tt, th, tw)")
            desc.tile[:] = tile

        if self.on_device:
            import pyopencl as cl

            if device is not None:
                raise ValueError("clpsa: device= is for numpy inputs; pyopencl arrays run on "
                                 "the device of their queue (or of queue=)")
            first = arrays[0]
            self.queue = queue if queue is not None else first.queue
            if self.queue is None:
                raise ValueError("clpsa: the pyopencl arrays have no queue: pass queue=")
            self._ctx = _wrapped_context(self.queue.context, self.queue.device)
            self._cl = cl
        else:
            if queue is not None:
                raise ValueError("clpsa: queue= is for plans on pyopencl arrays; numpy inputs "
                                 "run on the library's own queue (device= picks the device)")
            self._ctx = _own_context(device)
            self._cl = None
            self.queue = None
        self.handle = None
        handle = ctypes.c_void_p()
        with self._ctx.lock:
            _check(lib.clpsa_plan_create(self._ctx.handle, ctypes.byref(desc),
                                         ctypes.byref(handle)), self._ctx.handle,
                   "clpsa_plan_create")
        self.handle = handle.value
        self.desc = desc
        self.sparse = method_id != _METHODS["dense"]
        sizes = _lib.BufferSizes()
        _check(lib.clpsa_plan_buffer_sizes(self.handle, ctypes.byref(sizes)), self._ctx.handle,
               "clpsa_plan_buffer_sizes")
        self.buffer_sizes = {"q": sizes.q, "k": sizes.k, "v": sizes.v, "out": sizes.out}
        self._host_buffers = None
        self.event = None
        self._ran = False

    # -- description --
    def __del__(self):
        handle, self.handle = getattr(self, "handle", None), None
        if handle and lib is not None:
            with self._ctx.lock:
                lib.clpsa_plan_destroy(handle)

    def close(self):
        """Releases the plan's kernels and buffers now (also done when it is collected)."""
        self.__del__()

    def _live(self):
        if not self.handle:
            raise ValueError("clpsa: the plan was closed")
        return self.handle

    @property
    def device_name(self):
        return self._ctx.device_name

    @property
    def device_reason(self):
        return self._ctx.device_reason

    @property
    def resolved(self):
        """The plan's options with every default resolved (block sizes, thresholds, ...)."""
        d = _lib.PlanDesc()
        with self._ctx.lock:
            _check(lib.clpsa_plan_get_desc(self._live(), ctypes.byref(d)), self._ctx.handle,
                   "clpsa_plan_get_desc")
        inv = {v: k for k, v in _METHODS.items()}
        return {"method": inv.get(d.method), "batch": d.batch, "heads_q": d.heads_q,
                "heads_kv": d.heads_kv, "seq_q": d.seq_q, "seq_k": d.seq_k,
                "kv_capacity": d.kv_capacity,
                "head_dim": d.head_dim, "dtype": _DTYPE_NAMES.get(d.dtype),
                "out_dtype": _DTYPE_NAMES.get(d.out_dtype), "scale": d.scale,
                "causal": bool(d.causal), "block_q": d.block_q, "block_k": d.block_k,
                "tau": tuple(d.thresholds),
                "mode": {v: k for k, v in _MODES.items()}.get(d.mode),
                "binary_density": d.binary_density, "density": d.density,
                "sample_q": d.sample_q}

    @property
    def block_grid(self):
        """(block_q, block_k, blocks_q, blocks_k) of a sparse plan."""
        g = self._grid()
        return g.block_q, g.block_k, g.blocks_q, g.blocks_k

    def _grid(self):
        if not self.sparse:
            raise ValueError("clpsa: a dense plan has no block grid, level map or scores")
        g = _lib.BlockGrid()
        _check(lib.clpsa_plan_block_grid(self._live(), ctypes.byref(g)), self._ctx.handle,
               "clpsa_plan_block_grid")
        return g

    def _map_shape(self):
        g = self._grid()
        return (self.desc.batch, self.desc.heads_q, g.blocks_q, g.blocks_k)

    @property
    def parameter_source(self):
        """Where each kernel parameter came from, e.g. "attend.ATT_M=32 (built-in table ...)"."""
        return lib.clpsa_plan_parameter_source(self._live()).decode()

    @property
    def kernel_variants(self):
        """{"dense"|"attend"|"estimate"|"decode": variant name} for the families this plan runs."""
        out = {}
        for family in ("dense", "attend", "estimate", "decode"):
            v = lib.clpsa_plan_kernel_variant(self._live(), family.encode())
            if v:
                out[family] = v.decode()
        return out

    def set_kv_length(self, n):
        """Later runs read keys and values [0, n) of the cache (the k and v arrays, of the
        capacity's length): 1 <= n <= capacity. Nothing is recompiled; dense plans only."""
        with self._ctx.lock:
            _check(lib.clpsa_plan_set_kv_length(self._live(), int(n)), self._ctx.handle,
                   "clpsa_plan_set_kv_length")

    @property
    def kv_length(self):
        """The key length the next run reads (seq_k)."""
        return self.resolved["seq_k"]

    @property
    def flops(self):
        """Operations of dense attention on this shape (times density for the work done)."""
        return lib.clpsa_plan_flops(self._live())

    # -- supplied inputs --
    def set_levels(self, levels):
        """Later runs use this level map (int8 [B, Hq, nq, nk], values 0, 1, 2, 4, 8) instead
        of estimating one; None returns to estimating."""
        self._supply(levels, np.int8, lib.clpsa_plan_set_levels, "clpsa_plan_set_levels",
                     "levels")

    def set_scores(self, scores):
        """Later runs assign levels from these block scores (float32 [B, Hq, nq, nk]) instead
        of estimating them; None returns to estimating."""
        self._supply(scores, np.float32, lib.clpsa_plan_set_scores, "clpsa_plan_set_scores",
                     "scores")

    def _supply(self, values, dtype, fn, call, what):
        shape = self._map_shape()
        if values is None:
            ptr = None
        else:
            values = np.asarray(values)
            if values.shape != shape:
                raise ValueError(f"clpsa: {what} has shape {values.shape}: this plan's block "
                                 f"grid is [B, Hq, nq, nk] = {shape}")
            if what == "levels" and values.dtype.kind not in "iu":
                raise TypeError(f"clpsa: levels have dtype {values.dtype}: expected integers "
                                "(int8) in {0, 1, 2, 4, 8}")
            if what == "scores" and values.dtype.kind != "f":
                raise TypeError(f"clpsa: scores have dtype {values.dtype}: expected floats")
            if what == "levels" and values.size and (values.min() < -128 or values.max() > 127):
                raise ValueError("clpsa: levels must be in {0, 1, 2, 4, 8}")
            values = np.ascontiguousarray(values, dtype=dtype)
            ptr = values.ctypes.data
        with self._ctx.lock:
            _check(fn(self._live(), ptr), self._ctx.handle, call)

    # -- runs --
    def _device_operand(self, name, a):
        cl = self._cl
        if not _is_pyopencl_array(a):
            raise TypeError(f"clpsa: {name} is a {type(a).__name__}: this plan was made for "
                            "pyopencl arrays")
        self._check_operand(name, a, self.shapes[name])
        buf = a.base_data
        if a.offset:
            size = self.buffer_sizes[name]
            try:
                buf = buf.get_sub_region(a.offset, min(size, buf.size - a.offset))
            except cl.Error as e:
                raise ValueError(f"clpsa: {name} starts {a.offset} bytes into its buffer and "
                                 f"a sub-buffer there is not possible ({e}); use an array "
                                 "that starts at its buffer's beginning") from None
        return buf

    def _check_operand(self, name, a, shape):
        spec = _operand_spec(name, a, self.layout, None, not self.on_device)
        if spec.shape != shape:
            raise ValueError(f"clpsa: {name} has [B, H, N, D] = {spec.shape} ({self.layout}); "
                             f"the plan was made for {shape}")
        want = self.out_storage if name == "out" else (
            self.storage if self.on_device else self.input_storage)
        have = _storage_of_numpy(a.dtype)
        if have is None and a.dtype == np.uint16 and want == BF16:
            have = BF16
        if have != want:
            raise TypeError(f"clpsa: {name} has dtype {a.dtype}; the plan takes "
                            f"{_DTYPE_NAMES[want]}")
        if self.on_device and spec.strides != self._strides[name]:
            raise ValueError(f"clpsa: {name} has element strides {spec.strides} "
                             f"(batch, head, seq, dim); the plan was made for "
                             f"{self._strides[name]}: make a plan for this layout")
        return spec

    def run(self, q, k, v, out=None, wait_for=None):
        """Runs the plan. numpy plans: returns the output as a new numpy array (or fills out=)
        after the run finished. pyopencl plans: enqueues on the plan's queue after the arrays'
        pending events and wait_for, returns out (a new pyopencl array unless given) at once,
        with the run's event added to it (also in plan.event)."""
        if self.on_device:
            return self._run_device(q, k, v, out, wait_for)
        return self._run_host(q, k, v, out)

    def _enqueue(self, queue_ptr, bufs, events):
        ev_array = (ctypes.c_void_p * max(1, len(events)))(*[e.int_ptr for e in events])
        event = ctypes.c_void_p()
        with self._ctx.lock:
            _check(lib.clpsa_plan_run(self._live(), queue_ptr,
                                      *[b.int_ptr for b in bufs], len(events),
                                      ev_array if events else None, ctypes.byref(event)),
                   self._ctx.handle, "clpsa_plan_run")
        self._ran = True
        self.event = self._cl_module().Event.from_int_ptr(event.value, retain=False)
        return self.event

    def _cl_module(self):
        import pyopencl as cl

        return cl

    def _run_device(self, q, k, v, out, wait_for):
        import pyopencl.array as cl_array

        bufs = [self._device_operand(n, a) for n, a in (("q", q), ("k", k), ("v", v))]
        if out is None:
            out = cl_array.empty(self.queue, self.out_shape,
                                 _numpy_of_storage(self.out_storage)
                                 if self.out_storage != BF16 else np.dtype(np.uint16))
        bufs.append(self._device_operand("out", out))
        events = [e for a in (q, k, v, out) for e in (a.events or [])]
        events += list(wait_for or [])
        event = self._enqueue(self.queue.int_ptr, bufs, events)
        out.add_event(event)
        return out

    def _host_input(self, name, a):
        a = np.asarray(a)
        spec = _operand_spec(name, a, self.layout, None, True)
        if spec.shape != self.shapes[name]:
            raise ValueError(f"clpsa: {name} has [B, H, N, D] = {spec.shape} "
                             f"({self.layout}); the plan was made for {self.shapes[name]}")
        have = _storage_of_numpy(a.dtype)
        if have is None and a.dtype == np.uint16 and self.storage == BF16:
            have = BF16
        if have is None:
            _check_storage([spec], None, False)  # raises the dtype's TypeError
        if have != self.storage:
            if self.storage == BF16:
                a = to_bf16_words(a)
            else:
                a = np.ascontiguousarray(a, dtype=_numpy_of_storage(self.storage))
        el = _element_strides(name, a, self.layout)
        if el != self._strides[name]:
            # Strides the plan was not made for: copy into its layout (contiguous).
            a = np.ascontiguousarray(a)
            el = _element_strides(name, a, self.layout)
            if el != self._strides[name]:
                raise ValueError(f"clpsa: {name} has element strides {el}; the plan was "
                                 f"made for {self._strides[name]}")
        return a

    def _run_host(self, q, k, v, out):
        cl = self._cl_module()
        ctx, queue = self._ctx.pyopencl()
        if self._host_buffers is None:
            self._host_buffers = {n: cl.Buffer(ctx, cl.mem_flags.READ_WRITE, max(1, size))
                                  for n, size in self.buffer_sizes.items()}
        bufs = []
        for name, a in (("q", q), ("k", k), ("v", v)):
            a = self._host_input(name, a)
            span = _span_bytes(self.shapes[name], self._strides[name], a.dtype.itemsize)
            view = np.frombuffer((ctypes.c_char * span).from_address(a.ctypes.data),
                                 dtype=np.uint8)
            cl.enqueue_copy(queue, self._host_buffers[name], view, is_blocking=True)
            bufs.append(self._host_buffers[name])
        bufs.append(self._host_buffers["out"])
        event = self._enqueue(queue.int_ptr, bufs, [])
        out_dtype = _numpy_of_storage(self.out_storage)
        result = np.empty(self.out_shape, dtype=out_dtype)
        cl.enqueue_copy(queue, result.view(np.uint8).reshape(-1), self._host_buffers["out"],
                        wait_for=[event], is_blocking=True)
        if out is not None:
            if not isinstance(out, np.ndarray) or out.shape != self.out_shape:
                raise ValueError(f"clpsa: out must be a numpy array of shape {self.out_shape}")
            out[...] = result
            return out
        return result

    # -- read-back after a run --
    def _after_run(self):
        if not self.sparse:
            raise ValueError("clpsa: a dense plan has no level map, scores or stage times")
        if not self._ran:
            raise ValueError("clpsa: run the plan first")

    @property
    def levels(self):
        """The level map the last run used, int8 [B, Hq, nq, nk] (blocks in the token order's
        sequence). Waits for the run."""
        self._after_run()
        out = np.empty(self._map_shape(), dtype=np.int8)
        with self._ctx.lock:
            _check(lib.clpsa_plan_read_levels(self._live(), out.ctypes.data), self._ctx.handle,
                   "clpsa_plan_read_levels")
        return out

    @property
    def scores(self):
        """The block scores the last run used (estimated or supplied), float32 [B, Hq, nq,
        nk]. Waits for the run."""
        self._after_run()
        out = np.empty(self._map_shape(), dtype=np.float32)
        with self._ctx.lock:
            _check(lib.clpsa_plan_read_scores(self._live(), out.ctypes.data), self._ctx.handle,
                   "clpsa_plan_read_scores")
        return out

    def _stats(self):
        self._after_run()
        s = _lib.LevelStats()
        with self._ctx.lock:
            _check(lib.clpsa_plan_read_stats(self._live(), ctypes.byref(s)), self._ctx.handle,
                   "clpsa_plan_read_stats")
        return s

    @property
    def density(self):
        """Fraction of dense attention's work the last run did (mean over rows of sum 1/f over
        the kept blocks / nk). Waits for the run."""
        return self._stats().density

    @property
    def histogram(self):
        """{level: blocks} of the last run's level map, levels 0, 1, 2, 4, 8."""
        s = self._stats()
        return {lv: int(s.histogram[i]) for i, lv in enumerate(LEVELS)}

    @property
    def stage_times(self):
        """Device time in ms of the last run's stages: pool, estimate, assign, attend, total
        (zeros when the queue has no profiling). Waits for the run."""
        self._after_run()
        t = _lib.StageTimes()
        with self._ctx.lock:
            _check(lib.clpsa_plan_read_stage_times(self._live(), ctypes.byref(t)),
                   self._ctx.handle, "clpsa_plan_read_stage_times")
        return {"pool": t.pool_ms, "estimate": t.estimate_ms, "assign": t.assign_ms,
                "attend": t.attend_ms, "total": t.total_ms}


def attention(q, k, v, *, method="psa", preset=None, tau=None, mode=None, block_q=None,
              block_k=None, causal=False, scale=None, grid=None, order="raster",
              text_tokens=0, levels=None, scores=None, layout="bhnd", dtype=None,
              device=None, **options):
    """Attention of q over k, v: Pyramid Sparse Attention by default, method="dense" for exact
    attention, method="binary" (with binary_density=) for the block-sparse baseline.
    density=0.15 (mode="budget", implied) spends 15 % of dense compute on every query block
    where a measurement on sampled rows says pooling loses the least attention mass.

    q is [B, Hq, Nq, D] and k, v [B, Hkv, Nk, D] (layout="bnhd": [B, N, H, D]), numpy arrays
    (float32, float16, ml_dtypes.bfloat16) or pyopencl arrays on the caller's context and
    queue, used in place. Returns the output in the same kind of array and layout. Options
    follow clpsa_plan_desc (docs/algorithm.md): None means the library's default or the
    preset's. levels / scores supply the level map (int8) or block scores (float32), [B, Hq,
    nq, nk]. Further keywords (density, binary_density, tile, seed, sample_q, sample_k, align_tile,
    min_full, similarity_cap, estimator, out_dtype, queue, out) are passed to Plan / run.
    """
    out = options.pop("out", None)
    if method == "dense":
        given = {"preset": preset, "tau": tau, "mode": mode, "text_tokens": text_tokens,
                 "levels": levels, "scores": scores}
        for name, value in given.items():
            if value is not None and not (name == "text_tokens" and value == 0):
                raise ValueError(f"clpsa: {name}= is a PSA option; method='dense' has no "
                                 "blocks or levels")
    plan = Plan(q, k, v, method=method, preset=preset, tau=tau, mode=mode, block_q=block_q,
                block_k=block_k, causal=causal, scale=scale, grid=grid, order=order,
                text_tokens=text_tokens, layout=layout, dtype=dtype, device=device, **options)
    if levels is not None and scores is not None:
        raise ValueError("clpsa: pass levels= or scores=, not both (levels skip the scores)")
    if levels is not None:
        plan.set_levels(levels)
    if scores is not None:
        plan.set_scores(scores)
    return plan.run(q, k, v, out=out)


def video_workload(frames=8, height=16, width=16, heads_q=2, heads_kv=None, head_dim=64,
                   seed=1, text_tokens=0, **character):
    """The embedded video-like workload (include/clpsa/clpsa_workload.h): q [1, heads_q, N, D]
    and k, v [1, heads_kv, N, D] float32, N = frames * height * width in raster order, then
    text_tokens text tokens whose queries read the whole video (use with causal=True).
    character: length_time, length_space, sharpness, content, noise (0: the defaults)."""
    desc = _lib.VideoWorkloadDesc()
    lib.clpsa_video_workload_desc_init(ctypes.byref(desc))
    heads_kv = heads_q if heads_kv is None else heads_kv
    desc.frames, desc.height, desc.width = frames, height, width
    desc.heads_q, desc.heads_kv, desc.head_dim = heads_q, heads_kv, head_dim
    desc.seed = seed
    if text_tokens < 0:
        raise ValueError("clpsa: video_workload text_tokens must not be negative")
    desc.text_tokens = text_tokens
    for key, value in character.items():
        if key not in ("length_time", "length_space", "sharpness", "content", "noise"):
            raise TypeError(f"clpsa: video_workload() got an unexpected keyword {key!r}")
        setattr(desc, key, float(value))
    n = frames * height * width + text_tokens
    if min(frames, height, width, heads_q, heads_kv, head_dim) < 1:
        raise ValueError("clpsa: video_workload sizes must be at least 1")
    q = np.empty((1, heads_q, n, head_dim), dtype=np.float32)
    k = np.empty((1, heads_kv, n, head_dim), dtype=np.float32)
    v = np.empty((1, heads_kv, n, head_dim), dtype=np.float32)
    status = lib.clpsa_video_workload_generate(ctypes.byref(desc), q.ctypes.data,
                                               k.ctypes.data, v.ctypes.data)
    if status != 0:
        _raise(status, None, "clpsa_video_workload_generate")
    return q, k, v


def ordering_permutation(order, grid, text_tokens=0, tile=None):
    """perm (int32): position i of the reordered sequence holds token perm[i] (raster index)."""
    frames, height, width = (int(x) for x in grid)
    n = frames * height * width + int(text_tokens)
    perm = np.empty(max(n, 1), dtype=np.int32)
    tile_arr = None if tile is None else (ctypes.c_int * 3)(*[int(x) for x in tile])
    status = lib.clpsa_ordering_permutation(_choice(_ORDERS, order, "order"), frames, height,
                                            width, tile_arr, int(text_tokens), perm.ctypes.data)
    if status != 0:
        _raise(status, None, "clpsa_ordering_permutation")
    return perm[:n]


def level_stats(levels):
    """(density, {level: count}) of a host level map [..., nk], computed by the library."""
    levels = np.ascontiguousarray(levels, dtype=np.int8)
    if levels.ndim < 1 or levels.size == 0:
        raise ValueError("clpsa: level_stats needs a non-empty level map")
    s = _lib.LevelStats()
    nk = levels.shape[-1]
    status = lib.clpsa_level_stats_compute(levels.ctypes.data, levels.size // nk, nk,
                                           ctypes.byref(s))
    if status != 0:
        _raise(status, None, "clpsa_level_stats_compute")
    return s.density, {lv: int(s.histogram[i]) for i, lv in enumerate(LEVELS)}

