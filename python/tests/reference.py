# SPDX-License-Identifier: Apache-2.0
"""Independent float64 numpy computations that the tests compare the library with: dense
attention, and PSA for a given level map (docs/algorithm.md §3, §4), written from the
algorithm's description, not from the library's code."""

import numpy as np


def _prepare(q, k, v, scale):
    """float64 copies, the query heads per kv head, the scale and a zero output."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[3]) if scale is None else scale
    return q, k, v, q.shape[1] // k.shape[1], scale, np.zeros(q.shape)


def _softmax_apply(logits, values, visible):
    """softmax over the visible logits of each row, applied to values; 0 for a row that sees
    nothing."""
    if visible is not None:
        logits = np.where(visible, logits, -np.inf)
    m = logits.max(axis=1, keepdims=True)
    p = np.exp(logits - np.where(np.isfinite(m), m, 0.0))
    s = p.sum(axis=1, keepdims=True)
    return np.where(s > 0, (p @ values) / np.where(s > 0, s, 1), 0.0)


def dense(q, k, v, scale=None, causal=False):
    """softmax(scale * q k^T) v per (batch, head), [B, Hq, Nq, D] in float64; grouped heads:
    query head h reads kv head h // (Hq / Hkv); causal: key c visible to row t when
    c <= t + (Nk - Nq)."""
    q, k, v, group, scale, out = _prepare(q, k, v, scale)
    b, hq, nq, _ = q.shape
    nk = k.shape[2]
    visible = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + (nk - nq) if causal else None
    for bi in range(b):
        for h in range(hq):
            logits = scale * q[bi, h] @ k[bi, h // group].T
            out[bi, h] = _softmax_apply(logits, v[bi, h // group], visible)
    return out


def _pooled_block(keys, values, start, stop, f):
    """Means of groups of f consecutive tokens of [start, stop), the last group over the
    tokens that exist, with each group's count and the index of its last token."""
    first = np.arange(start, stop, f)
    counts = np.minimum(first + f, stop) - first
    kp = np.add.reduceat(keys[start:stop], first - start, axis=0) / counts[:, None]
    vp = np.add.reduceat(values[start:stop], first - start, axis=0) / counts[:, None]
    return kp, vp, counts, first + counts - 1


def psa(q, k, v, levels, block_q, block_k, scale=None, causal=False):
    """PSA for the level map levels [B, Hq, nq, nk] in {0, 1, 2, 4, 8}: row t of query block i
    attends, for every key block j with level f > 0, to block j's keys and values pooled in
    groups of f with logit scale * q.k + ln(count); a row with nothing visible outputs 0."""
    q, k, v, group, scale, out = _prepare(q, k, v, scale)
    b, hq, nq, _ = q.shape
    nk = k.shape[2]
    for bi in range(b):
        for h in range(hq):
            keys, values = k[bi, h // group], v[bi, h // group]
            for i in range(levels.shape[2]):
                rows = np.arange(i * block_q, min((i + 1) * block_q, nq))
                parts = []
                for j in range(levels.shape[3]):
                    f = int(levels[bi, h, i, j])
                    if f:
                        parts.append(_pooled_block(keys, values, j * block_k,
                                                   min((j + 1) * block_k, nk), f))
                if not parts:
                    continue
                kp = np.concatenate([p[0] for p in parts])
                vp = np.concatenate([p[1] for p in parts])
                counts = np.concatenate([p[2] for p in parts])
                last = np.concatenate([p[3] for p in parts])
                logits = scale * q[bi, h, rows] @ kp.T + np.log(counts)[None, :]
                visible = last[None, :] <= rows[:, None] + (nk - nq) if causal else None
                out[bi, h, rows] = _softmax_apply(logits, vp, visible)
    return out


def rel_l2(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def round_bf16(x):
    """x rounded to bfloat16 (nearest even) and back to float32, in numpy bit arithmetic."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32)
