/* SPDX-License-Identifier: Apache-2.0 */
/* Block importance S (docs/algorithm.md section 5). Built after common.cl.
 * Tunables:
 *   EST_WG   work-items per work-group (sampled rows or stride rows are spread over them)
 * Parameters: BLOCK_Q, BLOCK_K (bm, bn); SAMPLE_Q, SAMPLE_K (s_q, s_k) for the sampled path;
 * STRIDE for the antidiagonal path.
 *
 * Both kernels run one work-group per (query block i, head bh of this launch) and use a
 * global scratch of rows x nk floats per work-group (rows = SAMPLE_Q, or 2 * BLOCK_Q / STRIDE):
 * the per-row block maxima (sampled) or per-row block sums and maxima (antidiagonal): the
 * reduced matrix, never the nq*s_q x nk*s_k sampled scores. */
#ifndef EST_WG
#define EST_WG 32 /* work-items per work-group */
#endif
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
#ifndef STRIDE
#define STRIDE 8 /* antidiagonal stride */
#endif
#ifndef ESTIMATE_STAGED
#define ESTIMATE_STAGED 0 /* 1: also build estimate_sampled_staged (its local memory fits) */
#endif

/* Sum over the work-group; every work-item gets the total. */
inline float group_sum(float x, __local float *scratch) {
    const int lid = get_local_id(0);
    scratch[lid] = x;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int half_size = EST_WG / 2; half_size > 0; half_size /= 2) {
        if (lid < half_size)
            scratch[lid] += scratch[lid + half_size];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* S[i][j] = P[i][j] / sum_j P[i][j], P[i][j] = max_r exp2(m2[r][j] - rowmax2[r]): base-2
 * logits, so exp2 of differences equals exp of the natural ones. non_finite: this work-item met
 * a logit that is NaN or infinite; then the whole row of S is NaN (docs/api.md, "NaN and
 * infinity": the assignment gives such a row level 1 everywhere), since fmax would have
 * dropped a NaN and left an arbitrary row. */
inline void normalise_block_maxima(__global const float *m2, __local const float *row_max,
                                   __global float *s_row, int blocks_k, __local float *reduce,
                                   bool non_finite) {
    const int lid = get_local_id(0);
    float partial = non_finite ? NAN : 0.0f;
    for (int j = lid; j < blocks_k; j += EST_WG) {
        float p = 0.0f;
        for (int r = 0; r < SAMPLE_Q; ++r)
            p = fmax(p, exp2(m2[(long)r * blocks_k + j] - row_max[r]));
        s_row[j] = p;
        partial += p;
    }
    const float total = group_sum(partial, reduce);
    for (int j = lid; j < blocks_k; j += EST_WG)
        s_row[j] /= total;
}

/* The sampled estimate: work-items own sampled rows and walk every key block's sampled keys.
 * Needs no local memory beyond a row of maxima. */
__kernel __attribute__((reqd_work_group_size(EST_WG, 1, 1))) void estimate_sampled(
    __global const in_t *q, __global const in_t *k, __global const int *perm,
    __global const int *row_offsets, __global const int *key_offsets, __global float *scratch,
    __global float *scores, const int bh_first, const int heads_q, const int group, const int seq_q,
    const int seq_k, const int blocks_q, const int blocks_k, const float scale, const long q_sb,
    const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn) {
    __local float row_max[SAMPLE_Q];
    __local float reduce[EST_WG];
    const int lid = get_local_id(0);
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
    __global float *m2 = scratch + ((long)bh_local * blocks_q + i) * SAMPLE_Q * blocks_k;
    const float q_scale = scale * LOG2E;

    bool non_finite = false;
    for (int r = lid; r < SAMPLE_Q; r += EST_WG) {
        const int t = TOKEN(perm, min(i * BLOCK_Q + rows[r], seq_q - 1)); /* replicate pad */
        float q_reg[HEAD_DIM];
        for (int d = 0; d < HEAD_DIM; ++d)
            q_reg[d] = LOAD_IN(q_head, (long)t * q_sn + d) * q_scale;
        float best = -INFINITY;
        for (int j = 0; j < blocks_k; ++j) {
            float block_max = -INFINITY;
            for (int c = 0; c < SAMPLE_K; ++c) {
                const int key = TOKEN(perm, min(j * BLOCK_K + cols[c], seq_k - 1));
                const float x = dot_private_global(q_reg, k_head + (long)key * k_sn);
                block_max = fmax(block_max, x);
                non_finite |= !isfinite(x);
            }
            m2[(long)r * blocks_k + j] = block_max;
            best = fmax(best, block_max);
        }
        row_max[r] = best;
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);

    normalise_block_maxima(m2, row_max, scores + ((long)bh * blocks_q + i) * blocks_k, blocks_k,
                           reduce, non_finite);
}

#if ESTIMATE_STAGED
/* dot(a, b) over HEAD_DIM (a multiple of 8) with float8 arithmetic: on PoCL this runs the
 * staged estimate 1.5x faster than float4 (bench/NOTES.md). */
inline float dot8_private_local(const float8 *a, __local const float *b) {
    float8 sum = (float8)(0.0f);
    for (int d = 0; d < HEAD_DIM; d += 8)
        sum = fma(a[d / 8], vload8(0, b + d), sum);
    const float4 half_sum = sum.lo + sum.hi;
    return (half_sum.x + half_sum.y) + (half_sum.z + half_sum.w);
}

/* The same estimate with the sampled query rows staged in local memory and the work-items
 * spread over key blocks: each sampled key is loaded once per work-group and meets every
 * sampled row there (1.3-1.5x faster on PoCL). Used when its local memory fits the device. */
__kernel __attribute__((reqd_work_group_size(EST_WG, 1, 1))) void estimate_sampled_staged(
    __global const in_t *q, __global const in_t *k, __global const int *perm,
    __global const int *row_offsets, __global const int *key_offsets, __global float *scratch,
    __global float *scores, const int bh_first, const int heads_q, const int group, const int seq_q,
    const int seq_k, const int blocks_q, const int blocks_k, const float scale, const long q_sb,
    const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn) {
    __local float row_max[SAMPLE_Q];
    __local float reduce[EST_WG];
    const int lid = get_local_id(0);
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
    __global float *m2 = scratch + ((long)bh_local * blocks_q + i) * SAMPLE_Q * blocks_k;
    const float q_scale = scale * LOG2E;

    __local float q_tile[SAMPLE_Q][HEAD_DIM];
    __local float partial_max[EST_WG][SAMPLE_Q];
    for (int idx = lid; idx < SAMPLE_Q * HEAD_DIM; idx += EST_WG) {
        const int r = idx / HEAD_DIM, d = idx - r * HEAD_DIM;
        const int t = TOKEN(perm, min(i * BLOCK_Q + rows[r], seq_q - 1)); /* replicate pad */
        q_tile[r][d] = LOAD_IN(q_head, (long)t * q_sn + d) * q_scale;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float best[SAMPLE_Q];
    for (int r = 0; r < SAMPLE_Q; ++r)
        best[r] = -INFINITY;
    bool non_finite = false;
    for (int j = lid; j < blocks_k; j += EST_WG) {
        float block_max[SAMPLE_Q];
        for (int r = 0; r < SAMPLE_Q; ++r)
            block_max[r] = -INFINITY;
        for (int c = 0; c < SAMPLE_K; ++c) {
            const int key = TOKEN(perm, min(j * BLOCK_K + cols[c], seq_k - 1));
            float8 k_reg[HEAD_DIM / 8];
            for (int d = 0; d < HEAD_DIM; d += 8)
                k_reg[d / 8] = (float8)(LOAD_IN4(k_head + (long)key * k_sn, d),
                                        LOAD_IN4(k_head + (long)key * k_sn, d + 4));
            for (int r = 0; r < SAMPLE_Q; ++r) {
                const float x = dot8_private_local(k_reg, q_tile[r]);
                block_max[r] = fmax(block_max[r], x);
                non_finite |= !isfinite(x);
            }
        }
        for (int r = 0; r < SAMPLE_Q; ++r) {
            m2[(long)r * blocks_k + j] = block_max[r];
            best[r] = fmax(best[r], block_max[r]);
        }
    }
    for (int r = 0; r < SAMPLE_Q; ++r)
        partial_max[lid][r] = best[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < SAMPLE_Q; r += EST_WG) {
        float m = -INFINITY;
        for (int w = 0; w < EST_WG; ++w)
            m = fmax(m, partial_max[w][r]);
        row_max[r] = m;
    }
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);

    normalise_block_maxima(m2, row_max, scores + ((long)bh * blocks_q + i) * blocks_k, blocks_k,
                           reduce, non_finite);
}

#endif

/* Understanding path: z[a][b] = scale/STRIDE * sum_u dot(Q[a*S + S-1-u], K[b*S + u]),
 * w[a][.] = softmax over visible b, S[i][j] = sum over a in block i and b in block j of w,
 * rows normalised. Work-items own stride rows a; one pass over b computes every z once, with
 * an online softmax whose per-key-block sums are kept relative to the running maximum at the
 * block's end (the scratch holds the sum and that maximum), rescaled to the final maximum
 * afterwards. */
__kernel __attribute__((reqd_work_group_size(EST_WG, 1, 1))) void
estimate_antidiagonal(__global const in_t *q, __global const in_t *k, __global const int *perm,
                      __global float *scratch, __global float *scores, const int bh_first,
                      const int heads_q, const int group, const int seq_q, const int seq_k,
                      const int blocks_q, const int blocks_k, const float scale, const int causal,
                      const long q_sb, const long q_sh, const long q_sn, const long k_sb,
                      const long k_sh, const long k_sn) {
#define ROWS (BLOCK_Q / STRIDE)
#define COLS_PER_BLOCK (BLOCK_K / STRIDE)
    __local float reduce[EST_WG];
    const int lid = get_local_id(0);
    const int i = get_group_id(0);
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    /* 2 * ROWS rows of nk floats per work-group: the block sums, then their maxima. */
    __global float *w_sum = scratch + ((long)bh_local * blocks_q + i) * 2 * ROWS * blocks_k;
    const int stride_cols = (seq_k + STRIDE - 1) / STRIDE;
    const float z_scale = scale * LOG2E / (float)STRIDE;
    const int shift = seq_k - seq_q;

    bool non_finite = false; /* a NaN or infinite z: the row of S is NaN (see above) */
    for (int r = lid; r < ROWS; r += EST_WG) {
        const int a = i * ROWS + r;
        __global float *w_row = w_sum + (long)r * blocks_k;
        __global float *m_row = w_sum + (long)(ROWS + r) * blocks_k;
        if (a * STRIDE >= seq_q) { /* stride row past the end: contributes nothing */
            for (int j = 0; j < blocks_k; ++j)
                w_row[j] = 0.0f;
            continue;
        }
        /* Rows of the antidiagonal, pre-scaled: q_rows[u] = Q[a*S + S-1-u]. */
        float q_rows[STRIDE][HEAD_DIM];
        for (int u = 0; u < STRIDE; ++u) {
            const int t = TOKEN(perm, min(a * STRIDE + STRIDE - 1 - u, seq_q - 1));
            for (int d = 0; d < HEAD_DIM; ++d)
                q_rows[u][d] = LOAD_IN(q_head, (long)t * q_sn + d) * z_scale;
        }
        const int last_col =
            causal ? min(stride_cols - 1, (a * STRIDE + shift) / STRIDE) : stride_cols - 1;
        const bool any = !causal || a * STRIDE + shift >= 0;
        float z_max = -INFINITY, z_total = 0.0f, block_total = 0.0f;
        int j_current = 0, written = 0; /* blocks [0, written) hold a sum and its maximum */
        for (int c = 0; any && c <= last_col; ++c) {
            float z = 0.0f;
            for (int u = 0; u < STRIDE; ++u) {
                const int key = TOKEN(perm, min(c * STRIDE + u, seq_k - 1));
                z += dot_private_global(q_rows[u], k_head + (long)key * k_sn);
            }
            non_finite |= !isfinite(z);
            const int j = c / COLS_PER_BLOCK; /* c advances by one: j by at most one */
            if (j != j_current) {
                w_row[j_current] = block_total;
                m_row[j_current] = z_max;
                written = j_current + 1;
                j_current = j;
                block_total = 0.0f;
            }
            const float m_new = fmax(z_max, z);
            const float rescale = exp2(z_max - m_new), e = exp2(z - m_new);
            z_total = z_total * rescale + e;
            block_total = block_total * rescale + e;
            z_max = m_new;
        }
        if (any && last_col >= 0) {
            w_row[j_current] = block_total;
            m_row[j_current] = z_max;
            written = j_current + 1;
        }
        for (int j = 0; j < written; ++j)
            w_row[j] = w_row[j] * exp2(m_row[j] - z_max) / z_total;
        for (int j = written; j < blocks_k; ++j)
            w_row[j] = 0.0f;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);

    __global float *s_row = scores + ((long)bh * blocks_q + i) * blocks_k;
    float partial = non_finite ? NAN : 0.0f;
    for (int j = lid; j < blocks_k; j += EST_WG) {
        float total = 0.0f;
        for (int r = 0; r < ROWS; ++r)
            total += w_sum[(long)r * blocks_k + j];
        s_row[j] = total;
        partial += total;
    }
    const float row_total = group_sum(partial, reduce);
    for (int j = lid; j < blocks_k; j += EST_WG)
        s_row[j] = row_total > 0.0f ? s_row[j] / row_total : row_total == 0.0f ? 0.0f : NAN;
#undef ROWS
#undef COLS_PER_BLOCK
}
