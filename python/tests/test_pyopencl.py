# SPDX-License-Identifier: Apache-2.0
"""PyOpenCL arrays on the caller's own context and queue, used in place."""

import numpy as np
import pytest

import clpsa
from conftest import randn
from reference import dense, psa, rel_l2

BQ, BK = 64, 32


def device_qkv(cl_setup, rng, nq=128, heads_q=4, heads_kv=2, d=32, dtype=np.float32):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host = (randn(rng, 1, heads_q, nq, d, dtype=dtype), randn(rng, 1, heads_kv, nq, d, dtype=dtype),
            randn(rng, 1, heads_kv, nq, d, dtype=dtype))
    return host, [cl_array.to_device(queue, x) for x in host]


def test_attention_in_place_on_callers_queue(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host, (q, k, v) = device_qkv(cl_setup, rng)
    out = clpsa.attention(q, k, v, method="dense")
    assert isinstance(out, cl_array.Array) and out.context == ctx and out.queue == queue
    assert out.shape == host[0].shape and out.dtype == np.float32
    assert rel_l2(out.get(), dense(*host)) < 1e-5


def test_plan_on_device_arrays(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host, (q, k, v) = device_qkv(cl_setup, rng, nq=256)
    plan = clpsa.Plan(q, k, v, block_q=BQ, block_k=BK)
    assert plan.device_reason == "wrapped by caller"
    levels = np.random.default_rng(3).choice(np.array(clpsa.LEVELS, np.int8), size=(1, 4, 4, 8))
    plan.set_levels(levels)
    out = cl_array.zeros(queue, host[0].shape, np.float32)
    marker = cl.enqueue_marker(queue)
    result = plan.run(q, k, v, out=out, wait_for=[marker])
    assert result is out  # filled in place, returned at once with the run's event on it
    assert plan.event is not None and plan.event in out.events
    plan.event.wait()
    assert rel_l2(out.get(), psa(*host, levels, BQ, BK)) < 1e-5
    np.testing.assert_array_equal(plan.levels, levels)
    assert plan.stage_times["attend"] > 0  # the caller's queue has profiling
    # Estimated map on the device, then read back.
    plan.set_levels(None)
    out2 = plan.run(q, k, v)
    assert rel_l2(out2.get(), psa(*host, plan.levels, BQ, BK)) < 1e-5


def test_fp16_device_arrays(cl_setup, rng):
    host, (q, k, v) = device_qkv(cl_setup, rng, dtype=np.float16)
    out = clpsa.attention(q, k, v, method="dense")
    assert out.dtype == np.float16
    assert rel_l2(out.get(), dense(*host)) < 2e-3


def test_bnhd_device_arrays(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host, _ = device_qkv(cl_setup, rng, nq=64)
    t = [cl_array.to_device(queue, np.ascontiguousarray(x.transpose(0, 2, 1, 3))) for x in host]
    out = clpsa.attention(*t, method="dense", layout="bnhd")
    assert rel_l2(out.get().transpose(0, 2, 1, 3), dense(*host)) < 1e-5


def test_device_array_with_offset(cl_setup, rng):
    cl, ctx, queue = cl_setup
    import pyopencl.array as cl_array

    host, (q, k, v) = device_qkv(cl_setup, rng, nq=64, heads_q=2, heads_kv=2)
    # q as the second half of a larger array: an offset into its buffer.
    both = cl_array.to_device(queue, np.concatenate([host[1], host[0]], axis=1))
    q_view = both[:, 2:]
    assert q_view.offset > 0
    out = clpsa.attention(q_view, k, v, method="dense")
    assert rel_l2(out.get(), dense(*host)) < 1e-5
