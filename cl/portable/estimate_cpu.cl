/* SPDX-License-Identifier: Apache-2.0 */
/* The sampled block estimate (estimate.cl's estimate_sampled, the same arguments and scores)
 * shaped for CPUs: one work-item per (query block, head). Its sampled rows lie along float16
 * lanes (qt[d][rows]), so the logits of 8 sampled keys against all of them are an 8 x 16-lane
 * register tile (each loaded vector feeds 8 FMAs) and a key block's maximum is element-wise.
 * The per-row block maxima go to the scratch (SAMPLE_Q x nk floats per work-item, as in
 * estimate.cl) as [key block][sampled row]. Built after common.cl.
 * Parameters: BLOCK_Q, BLOCK_K (bm, bn); SAMPLE_Q, SAMPLE_K (s_q, s_k). */
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#ifndef SAMPLE_Q
#define SAMPLE_Q (BLOCK_Q / 4) /* sampled rows per query block */
#endif
#ifndef SAMPLE_K
#define SAMPLE_K (BLOCK_K / 4) /* sampled keys per key block */
#endif

#define EST_LANES 16
#define EST_RV ((SAMPLE_Q + EST_LANES - 1) / EST_LANES) /* row vectors */
#define EST_KB 8                                        /* keys per register tile */
#define EST_KEYS ((SAMPLE_K + EST_KB - 1) / EST_KB * EST_KB)
typedef float16 est_rowv;

#if IN_TYPE == 1
#define EST_LOAD8(p, i) vload8(0, (p) + (i))
#elif IN_TYPE == 2
#define EST_LOAD8(p, i) vload_half8(0, (p) + (i))
#else
#define EST_LOAD8(p, i) as_float8(convert_uint8(vload8(0, (p) + (i))) << 16)
#endif

/* Lanes of x into dst[0, lanes) and back: whole vectors where SAMPLE_Q allows. */
inline void est_store(__global float *dst, est_rowv x, int lanes) {
    if (lanes == EST_LANES)
        vstore16(x, 0, dst);
    else
        for (int r = 0; r < lanes; ++r)
            dst[r] = ((const float *)&x)[r];
}

inline est_rowv est_load(__global const float *src, int lanes) {
    if (lanes == EST_LANES)
        return vload16(0, src);
    est_rowv x = (est_rowv)(-INFINITY);
    for (int r = 0; r < lanes; ++r)
        ((float *)&x)[r] = src[r];
    return x;
}

/* The largest of the first `lanes` lanes. */
inline float est_lane_max(est_rowv x, int lanes) {
    float best = -INFINITY;
    for (int r = 0; r < lanes; ++r)
        best = fmax(best, ((const float *)&x)[r]);
    return best;
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void estimate_sampled(
    __global const in_t *q, __global const in_t *k, __global const int *perm,
    __global const int *row_offsets, __global const int *key_offsets, __global float *scratch,
    __global float *scores, const int bh_first, const int heads_q, const int group, const int seq_q,
    const int seq_k, const int blocks_q, const int blocks_k, const float scale, const long q_sb,
    const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn) {
    est_rowv qt[HEAD_DIM][EST_RV];
    float kt[EST_KEYS][HEAD_DIM];
    const int i = get_group_id(0);
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const int *rows = row_offsets + (long)bh * SAMPLE_Q;
    __global const int *cols = key_offsets + (long)bh * SAMPLE_K;
    __global float *m2 = scratch + ((long)bh_local * blocks_q + i) * SAMPLE_Q * (long)blocks_k;
    const float q_scale = scale * LOG2E;

    float *q_lanes = (float *)qt;
    for (int r = 0; r < EST_RV * EST_LANES; ++r) {
        const int t = TOKEN(perm, min(i * BLOCK_Q + rows[min(r, SAMPLE_Q - 1)], seq_q - 1));
        for (int d = 0; d < HEAD_DIM; d += 8) {
            /* Lanes past SAMPLE_Q repeat the last row: finite, and never read back. */
            const float8 x = EST_LOAD8(q_head + (long)t * q_sn, d) * q_scale;
            for (int e = 0; e < 8; ++e)
                q_lanes[(d + e) * EST_RV * EST_LANES + r] = ((const float *)&x)[e];
        }
    }

    est_rowv best[EST_RV];
    for (int v = 0; v < EST_RV; ++v)
        best[v] = (est_rowv)(-INFINITY);
    /* x - x is 0 for every finite logit and NaN for a NaN or infinite one: one subtraction and
     * addition per logit instead of a test, and the row of S becomes NaN (estimate.cl). */
    est_rowv poison = (est_rowv)(0.0f);
    for (int j = 0; j < blocks_k; ++j) {
        /* Sampled keys of block j; slots past SAMPLE_K repeat the last one (same maximum). */
        for (int c = 0; c < EST_KEYS; ++c) {
            const int key = TOKEN(perm, min(j * BLOCK_K + cols[min(c, SAMPLE_K - 1)], seq_k - 1));
            for (int d = 0; d < HEAD_DIM; d += 8)
                vstore8(EST_LOAD8(k_head + (long)key * k_sn, d), 0, kt[c] + d);
        }
        for (int v = 0; v < EST_RV; ++v) {
            est_rowv block_max = (est_rowv)(-INFINITY);
            for (int c0 = 0; c0 < EST_KEYS; c0 += EST_KB) {
                est_rowv a[EST_KB];
#pragma unroll
                for (int c = 0; c < EST_KB; ++c)
                    a[c] = (est_rowv)(0.0f);
                for (int d = 0; d < HEAD_DIM; ++d) {
                    const est_rowv qv = qt[d][v];
#pragma unroll
                    for (int c = 0; c < EST_KB; ++c)
                        a[c] = fma((est_rowv)(kt[c0 + c][d]), qv, a[c]);
                }
#pragma unroll
                for (int c = 0; c < EST_KB; ++c) {
                    block_max = fmax(block_max, a[c]);
                    poison += a[c] - a[c];
                }
            }
            est_store(m2 + (long)j * SAMPLE_Q + v * EST_LANES, block_max,
                      min(EST_LANES, SAMPLE_Q - v * EST_LANES));
            best[v] = fmax(best[v], block_max);
        }
    }

    /* S[i][j] = P[i][j] / sum_j P[i][j], P[i][j] = max_r exp2(m2[r][j] - rowmax2[r]) (base-2
     * logits, as estimate.cl). */
    __global float *s_row = scores + ((long)bh * blocks_q + i) * blocks_k;
    float total = any(isnan(poison)) ? NAN : 0.0f;
    for (int j = 0; j < blocks_k; ++j) {
        float p = 0.0f;
        for (int v = 0; v < EST_RV; ++v) {
            const int lanes = min(EST_LANES, SAMPLE_Q - v * EST_LANES);
            const est_rowv e =
                exp2(est_load(m2 + (long)j * SAMPLE_Q + v * EST_LANES, lanes) - best[v]);
            p = fmax(p, est_lane_max(e, lanes));
        }
        s_row[j] = p;
        total += p;
    }
    for (int j = 0; j < blocks_k; ++j)
        s_row[j] /= total;
}
