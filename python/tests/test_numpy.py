# SPDX-License-Identifier: Apache-2.0
"""numpy inputs against the independent numpy reference (reference.py)."""

import numpy as np
import pytest

import clpsa
from conftest import randn
from reference import dense, psa, rel_l2, round_bf16

B, HQ, HKV, D = 1, 4, 2, 32
BQ, BK = 64, 32


def qkv(rng, nq=200, nk=None, heads_q=HQ, heads_kv=HKV, dtype=np.float32):
    nk = nq if nk is None else nk
    return (randn(rng, B, heads_q, nq, D, dtype=dtype), randn(rng, B, heads_kv, nk, D, dtype=dtype),
            randn(rng, B, heads_kv, nk, D, dtype=dtype))


def random_levels(rng, nq, nk, heads=HQ):
    shape = (B, heads, -(-nq // BQ), -(-nk // BK))
    return rng.choice(np.array(clpsa.LEVELS, dtype=np.int8), size=shape)


@pytest.mark.parametrize("causal", [False, True])
def test_dense_matches_numpy(rng, causal):
    q, k, v = qkv(rng, nq=150, nk=200)  # grouped heads, Nq != Nk, ragged tiles
    out = clpsa.attention(q, k, v, method="dense", causal=causal)
    assert out.shape == q.shape and out.dtype == np.float32
    ref = dense(q, k, v, causal=causal)
    assert rel_l2(out, ref) < 1e-5
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-4)


def test_dense_scale(rng):
    q, k, v = qkv(rng, nq=64)
    out = clpsa.attention(q, k, v, method="dense", scale=0.05)
    assert rel_l2(out, dense(q, k, v, scale=0.05)) < 1e-5


@pytest.mark.parametrize("causal", [False, True])
def test_psa_supplied_levels_match_numpy(rng, causal):
    nq, nk = 200, 203  # partial last query block, key block and pooled group
    q, k, v = qkv(rng, nq=nq, nk=nk)
    levels = random_levels(rng, nq, nk)
    levels[0, 1, 2, :] = 0  # a row that attends to nothing outputs zeros
    out = clpsa.attention(q, k, v, levels=levels, block_q=BQ, block_k=BK, causal=causal)
    ref = psa(q, k, v, levels, BQ, BK, causal=causal)
    assert rel_l2(out, ref) < 1e-5
    np.testing.assert_allclose(out, ref, atol=2e-5, rtol=1e-4)
    assert not np.any(out[0, 1, 2 * BQ:3 * BQ])


def test_all_level1_is_dense(rng):
    q, k, v = qkv(rng, nq=160)
    levels = np.ones((B, HQ, -(-160 // BQ), -(-160 // BK)), dtype=np.int8)
    out = clpsa.attention(q, k, v, levels=levels, block_q=BQ, block_k=BK)
    assert rel_l2(out, dense(q, k, v)) < 1e-5


def test_plan_reads_back_supplied_map(rng):
    nq = 256
    q, k, v = qkv(rng, nq=nq)
    plan = clpsa.Plan(q, k, v, block_q=BQ, block_k=BK)
    assert plan.block_grid == (BQ, BK, 4, 8)
    levels = random_levels(rng, nq, nq)
    plan.set_levels(levels)
    out = plan.run(q, k, v)
    assert rel_l2(out, psa(q, k, v, levels, BQ, BK)) < 1e-5
    np.testing.assert_array_equal(plan.levels, levels)
    density, histogram = clpsa.level_stats(levels)
    expected = np.where(levels > 0, 1.0 / np.maximum(levels, 1), 0.0).sum(-1).mean() / 8
    assert plan.density == pytest.approx(expected, rel=1e-9) and density == pytest.approx(expected)
    assert plan.histogram == histogram == {lv: int((levels == lv).sum()) for lv in clpsa.LEVELS}
    times = plan.stage_times
    assert set(times) == {"pool", "estimate", "assign", "attend", "total"}
    assert times["attend"] > 0 and times["total"] >= times["attend"]
    assert times["estimate"] == 0  # skipped: the map was supplied
    assert "attend." in plan.parameter_source
    assert "attend" in plan.kernel_variants
    with pytest.raises(clpsa.Error) as e:  # supplied maps come without scores
        plan.scores
    assert e.value.name == "CLPSA_ERROR_INVALID_VALUE"
    # A second run of the same plan with other inputs, and back to estimating.
    q2, k2, v2 = qkv(rng, nq=nq)
    assert rel_l2(plan.run(q2, k2, v2), psa(q2, k2, v2, levels, BQ, BK)) < 1e-5
    plan.set_levels(None)
    plan.run(q2, k2, v2)
    assert plan.scores.shape == levels.shape
    np.testing.assert_allclose(plan.scores.sum(-1), 1.0, rtol=1e-4)


def test_supplied_scores(rng):
    q, k, v = qkv(rng, nq=256)
    plan = clpsa.Plan(q, k, v, block_q=BQ, block_k=BK)
    scores = rng.random((B, HQ, 4, 8)).astype(np.float32)
    scores /= scores.sum(-1, keepdims=True)
    plan.set_scores(scores)
    out = plan.run(q, k, v)
    np.testing.assert_allclose(plan.scores, scores, rtol=1e-6)
    # The output is PSA over the map the plan chose from those scores.
    assert rel_l2(out, psa(q, k, v, plan.levels, BQ, BK)) < 1e-5


def test_estimated_psa_on_video_workload():
    q, k, v = clpsa.video_workload(frames=4, height=8, width=16, heads_q=2, head_dim=32)
    exact = clpsa.attention(q, k, v, method="dense")
    plan = clpsa.Plan(q, k, v, grid=(4, 8, 16), order="hilbert")
    out = plan.run(q, k, v)
    assert 0 < plan.density < 0.8
    levels = plan.levels
    assert set(np.unique(levels)) <= set(clpsa.LEVELS)
    # What PSA computed is attention over the map it chose (blocks in Hilbert order).
    perm = clpsa.ordering_permutation("hilbert", (4, 8, 16))
    inv = np.argsort(perm)
    ref = psa(q[:, :, perm], k[:, :, perm], v[:, :, perm], levels, 128, 64)[:, :, inv]
    assert rel_l2(out, ref) < 1e-5
    error = rel_l2(out, exact)
    binary = clpsa.attention(q, k, v, method="binary", binary_density=plan.density,
                             grid=(4, 8, 16), order="hilbert")
    assert error < 0.1 and error < rel_l2(binary, exact)


def test_budget_mode_density_alone():
    """density= alone asks for budget mode: the plan spends at most that share of dense
    compute, reads back the measured block masses as scores, and its output is attention over
    the map it chose; at the same density it beats the binary baseline on the workload."""
    q, k, v = clpsa.video_workload(frames=4, height=8, width=16, heads_q=2, head_dim=32)
    exact = clpsa.attention(q, k, v, method="dense")
    plan = clpsa.Plan(q, k, v, density=0.15, grid=(4, 8, 16), order="hilbert")
    out = plan.run(q, k, v)
    resolved = plan.resolved
    assert resolved["mode"] == "budget"
    assert resolved["density"] == pytest.approx(0.15)
    assert resolved["sample_q"] == 128 // 16
    assert 0.1 < plan.density <= 0.15 * (1 + 1e-6)
    np.testing.assert_allclose(plan.scores.sum(-1), 1.0, rtol=1e-5)
    perm = clpsa.ordering_permutation("hilbert", (4, 8, 16))
    inv = np.argsort(perm)
    ref = psa(q[:, :, perm], k[:, :, perm], v[:, :, perm], plan.levels, 128, 64)[:, :, inv]
    assert rel_l2(out, ref) < 1e-5
    binary = clpsa.attention(q, k, v, method="binary", binary_density=plan.density,
                             grid=(4, 8, 16), order="hilbert")
    assert rel_l2(out, exact) < rel_l2(binary, exact)
    with pytest.raises(clpsa.Error) as e:  # a density is for budget mode only
        clpsa.Plan(q, k, v, mode="threshold", density=0.15)
    assert e.value.name == "CLPSA_ERROR_INVALID_VALUE" and "density" in str(e.value)
    with pytest.raises(clpsa.Error) as e:  # below one level-8 block per row
        clpsa.Plan(q, k, v, density=1e-4)
    assert "1/(8 nk)" in str(e.value)


def test_bnhd_layout(rng):
    q, k, v = qkv(rng, nq=96)
    ref = clpsa.attention(q, k, v, method="dense")
    t = [np.ascontiguousarray(x.transpose(0, 2, 1, 3)) for x in (q, k, v)]
    out = clpsa.attention(*t, method="dense", layout="bnhd")
    assert out.shape == t[0].shape
    np.testing.assert_allclose(out.transpose(0, 2, 1, 3), ref, atol=1e-6)


def test_strided_views_without_copy(rng):
    # A fused projection [B, N, 3, H, D]: q, k, v are views with a token stride of 3*H*D.
    n = 96
    qkv_fused = randn(rng, B, n, 3, HQ, D)
    q, k, v = (qkv_fused[:, :, i] for i in range(3))
    assert not q.flags.c_contiguous
    out = clpsa.attention(q, k, v, method="dense", layout="bnhd")
    bhnd = [x.transpose(0, 2, 1, 3) for x in (q, k, v)]
    assert rel_l2(out.transpose(0, 2, 1, 3), dense(*bhnd)) < 1e-5
    # A reversed head dimension cannot go to the library as it is: copied, same result.
    r = [x[..., ::-1] for x in bhnd]
    assert rel_l2(clpsa.attention(*r, method="dense"), dense(*r)) < 1e-5


def test_fp16(rng):
    q, k, v = qkv(rng, nq=128, dtype=np.float16)
    out = clpsa.attention(q, k, v, method="dense")
    assert out.dtype == np.float16
    assert rel_l2(out, dense(q, k, v)) < 2e-3
    levels = random_levels(rng, 128, 128)
    out = clpsa.attention(q, k, v, levels=levels, block_q=BQ, block_k=BK)
    assert out.dtype == np.float16
    assert rel_l2(out, psa(q, k, v, levels, BQ, BK)) < 3e-3


def test_float32_stored_as_bf16(rng):
    q, k, v = qkv(rng, nq=128)
    out = clpsa.attention(q, k, v, method="dense", dtype="bf16")
    assert out.dtype == np.float32  # numpy callers get their own dtype back
    rounded = [round_bf16(x) for x in (q, k, v)]
    assert rel_l2(out, dense(*rounded)) < 1e-4
    assert rel_l2(out, dense(q, k, v)) > 1e-4  # the storage really was bf16
    np.testing.assert_array_equal(clpsa.from_bf16_words(clpsa.to_bf16_words(q)), rounded[0])


def test_bf16_words_and_ml_dtypes(rng):
    q, k, v = qkv(rng, nq=64)
    words = [clpsa.to_bf16_words(x) for x in (q, k, v)]
    out = clpsa.attention(*words, method="dense", dtype="bf16")
    values = out if out.dtype == np.uint16 else out.view(np.uint16)
    assert rel_l2(clpsa.from_bf16_words(values), dense(*[round_bf16(x) for x in (q, k, v)])) < 1e-2
    ml_dtypes = pytest.importorskip("ml_dtypes")
    arrays = [x.astype(ml_dtypes.bfloat16) for x in (q, k, v)]
    out = clpsa.attention(*arrays, method="dense")
    assert out.dtype == ml_dtypes.bfloat16
    assert rel_l2(out.astype(np.float32), dense(*arrays)) < 1e-2


def test_resolved_options_and_preset(rng):
    q, k, v = qkv(rng, nq=256)
    plan = clpsa.Plan(q, k, v, preset="wan21-14b")
    r = plan.resolved
    assert (r["block_q"], r["block_k"]) == (128, 128)  # the preset's, not 128 / 64
    assert r["tau"] == pytest.approx((0.4, 0.5, 0.6, 0.8))
    r = clpsa.Plan(q, k, v, preset="wan21-14b", block_k=64, tau=(0.5, 0.6, 0.7, 0.9)).resolved
    assert r["block_k"] == 64 and r["tau"] == pytest.approx((0.5, 0.6, 0.7, 0.9))
    assert r["heads_q"] == HQ and r["heads_kv"] == HKV and r["scale"] == pytest.approx(D ** -0.5)


def test_devices_and_default():
    devs = clpsa.devices()
    assert devs and devs[0].index == 0 and devs[0].name
    name, reason = clpsa.default_device()
    assert devs[0].name in name and reason
    name0, reason0 = clpsa.default_device(0)
    assert "0" in reason0 or "CLPSA_DEVICE" in reason0 or "device" in reason0
    q = np.ones((1, 1, 16, 8), np.float32)
    assert clpsa.attention(q, q, q, method="dense", device=devs[0]).shape == q.shape
    assert clpsa.version() == clpsa.__version__


@pytest.mark.parametrize("causal", [False, True])
def test_decode_steps_grow_the_cache(rng, causal):
    """A plan of 2 query rows over a 300-token cache: each step's rows equal dense attention
    over the keys so far (the last 2 rows of it when causal), without a new plan."""
    cap, nq = 300, 2
    _, k, v = qkv(rng, nq=cap)
    plan = clpsa.Plan((B, HQ, nq, D), k, v, method="dense", causal=causal, kv_length=1)
    assert set(plan.kernel_variants) == {"decode"}  # split-K; the variant follows the device
    assert plan.resolved["kv_capacity"] == cap
    for n in (1, 2, 57, 64, 299, 300):
        plan.set_kv_length(n)
        assert plan.kv_length == n
        q = randn(rng, B, HQ, nq, D)
        out = plan.run(q, k, v)
        ref = dense(q, k[:, :, :n], v[:, :, :n], causal=causal)
        assert rel_l2(out, ref) < 2e-5
        np.testing.assert_allclose(out, ref, atol=2e-5, rtol=2e-4)
    for bad in (0, cap + 1):
        with pytest.raises(clpsa.Error, match=f"seq_k = {bad}"):
            plan.set_kv_length(bad)
    assert plan.kv_length == 300
