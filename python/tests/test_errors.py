# SPDX-License-Identifier: Apache-2.0
"""Bad inputs: each gives an exception that says what was wrong."""

import numpy as np
import pytest

import clpsa
from conftest import randn


def qkv(rng, n=64, d=32, dtype=np.float32):
    return [randn(rng, 1, 2, n, d, dtype=dtype) for _ in range(3)]


def test_wrong_dtype(rng):
    q, k, v = qkv(rng)
    with pytest.raises(TypeError, match="float64.*float32, float16 or bfloat16"):
        clpsa.attention(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    with pytest.raises(TypeError, match="int32"):
        clpsa.attention(*(x.astype(np.int32) for x in (q, k, v)))
    with pytest.raises(TypeError, match="one dtype"):
        clpsa.attention(q, k.astype(np.float16), v)
    with pytest.raises(ValueError, match="dtype='fp8'"):
        clpsa.attention(q, k, v, dtype="fp8")


def test_wrong_shape(rng):
    q, k, v = qkv(rng)
    with pytest.raises(ValueError, match="4 dimensions"):
        clpsa.attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="batch and head_dim must match"):
        clpsa.attention(q, k[..., :16], v[..., :16])
    with pytest.raises(ValueError, match="v has .* they must match"):
        clpsa.attention(q, k, v[:, :, :32])
    q3 = randn(rng, 1, 3, 64, 32)
    with pytest.raises(ValueError, match="multiple of the key/value heads"):
        clpsa.attention(q3, k, v)
    # Caught by the library: its status name and last_error sentence are in the exception.
    with pytest.raises(clpsa.Error) as e:
        clpsa.attention(*(randn(rng, 1, 2, 64, 12) for _ in range(3)), method="dense")
    assert e.value.name in ("CLPSA_ERROR_INVALID_SHAPE", "CLPSA_ERROR_UNSUPPORTED")
    assert "head_dim" in e.value.detail and "12" in e.value.detail
    assert isinstance(e.value, ValueError) and e.value.name in str(e.value)


def test_bad_options(rng):
    q, k, v = qkv(rng)
    with pytest.raises(clpsa.InvalidArgumentError) as e:
        clpsa.attention(q, k, v, tau=(0.9, 0.5, 0.6, 0.7))
    assert e.value.name == "CLPSA_ERROR_INVALID_VALUE" and e.value.call == "clpsa_plan_create"
    assert e.value.detail and e.value.detail != e.value.sentence
    with pytest.raises(clpsa.Error, match="CLPSA_ERROR_INVALID_VALUE.*preset"):
        clpsa.attention(q, k, v, preset="no-such-model")
    with pytest.raises(ValueError, match="method='sparse'"):
        clpsa.attention(q, k, v, method="sparse")
    with pytest.raises(ValueError, match="binary_density"):
        clpsa.attention(q, k, v, method="binary")
    with pytest.raises(ValueError, match="layout='nhd'"):
        clpsa.attention(q, k, v, layout="nhd")
    with pytest.raises(ValueError, match="PSA option"):
        clpsa.attention(q, k, v, method="dense", tau=(0.1, 0.2, 0.3, 0.4))
    with pytest.raises(clpsa.Error, match="CLPSA_ERROR_INVALID_SHAPE"):
        clpsa.attention(q, k, v, grid=(2, 4, 4))  # 32 tokens, not 64


def test_bad_level_maps(rng):
    q, k, v = qkv(rng)
    plan = clpsa.Plan(q, k, v, block_q=32, block_k=32)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 2\)"):
        plan.set_levels(np.ones((1, 2, 2, 3), np.int8))
    bad = np.ones((1, 2, 2, 2), np.int8)
    bad[0, 1, 1, 0] = 3
    with pytest.raises(clpsa.Error) as e:
        plan.set_levels(bad)
    assert e.value.name == "CLPSA_ERROR_INVALID_VALUE" and "3" in e.value.detail
    scores = np.ones((1, 2, 2, 2), np.float32)
    scores[0, 0, 0, 1] = -1
    with pytest.raises(clpsa.Error, match="CLPSA_ERROR_INVALID_VALUE"):
        plan.set_scores(scores)
    with pytest.raises(ValueError, match="run the plan first"):
        plan.levels
    with pytest.raises(ValueError, match="dense plan"):
        clpsa.Plan(q, k, v, method="dense").levels


def test_plan_run_with_other_arrays(rng):
    q, k, v = qkv(rng)
    plan = clpsa.Plan(q, k, v, method="dense")
    with pytest.raises(ValueError, match="plan was made for"):
        plan.run(q[:, :, :32], k, v)
    with pytest.raises(TypeError, match="plan takes fp32|float64"):
        plan.run(q.astype(np.float64), k, v)


def test_unknown_device():
    with pytest.raises(clpsa.Error) as e:
        clpsa.default_device("no-such-device-xyz")
    assert e.value.name == "CLPSA_ERROR_DEVICE_NOT_FOUND"
    assert "no-such-device-xyz" in e.value.detail  # from clpsa_context_last_error(NULL)


def test_device_array_non_contiguous(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    q, k, v = (cl_array.to_device(queue, x) for x in qkv(rng))
    # Swapping the token and head-dim axes leaves the head dimension strided: not usable in
    # place, and device arrays are never copied behind the caller's back.
    qt = q.transpose((0, 1, 3, 2))
    with pytest.raises(ValueError, match="head dimension must be contiguous"):
        clpsa.attention(qt, k.transpose((0, 1, 3, 2)), v.transpose((0, 1, 3, 2)), method="dense")


def test_device_array_of_another_context(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host = qkv(rng)
    other_ctx = cl.Context([queue.device])
    other_queue = cl.CommandQueue(other_ctx)
    q, k = (cl_array.to_device(queue, x) for x in host[:2])
    v_other = cl_array.to_device(other_queue, host[2])
    with pytest.raises(clpsa.Error) as e:
        clpsa.attention(q, k, v_other, method="dense")
    assert e.value.name == "CLPSA_ERROR_WRONG_CONTEXT"
    assert isinstance(e.value, ValueError) and e.value.detail


def test_device_array_wrong_dtype_or_kind(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host = qkv(rng)
    dev = [cl_array.to_device(queue, x) for x in host]
    with pytest.raises(TypeError, match="never converted"):
        clpsa.attention(*dev, method="dense", dtype="fp16")
    with pytest.raises(ValueError, match="device= is for numpy inputs"):
        clpsa.attention(*dev, method="dense", device=0)
    with pytest.raises(TypeError, match="all be numpy arrays or all pyopencl arrays"):
        clpsa.attention(dev[0], host[1], host[2], method="dense")
    with pytest.raises(TypeError, match="float64"):
        clpsa.attention(*(cl_array.to_device(queue, x.astype(np.float64)) for x in host))
