/* SPDX-License-Identifier: Apache-2.0 */
/* Budget mode's measurement (budget.cl's budget_measure: the same arguments, scores and
 * losses) shaped for CPUs. One work-item per (group of BC_GROUP consecutive query blocks,
 * head): the group's sampled rows lie along float16 lanes (float8 where the group has at most
 * 8 rows), so every step of the measurement is element-wise across them. Per key block, its
 * keys and then its pooled tokens at levels 2, 4, 8 are staged BC_KB at a time; their logits
 * against the rows are a BC_KB x lanes register tile (one loaded Q^T vector feeds BC_KB FMAs
 * with broadcast keys), folded into the block's maximum and the sums relative to it with one
 * exp2 per logit. The per-(row, block) cells go to the scratch as in budget.cl (each query
 * block's own region, only this work-item reads them back); the per-row maxima, totals and the
 * block's mass and losses follow budget.cl's arithmetic, in scalar code over (row, block)
 * cells, 1 / (BLOCK_K x 1.9 x HEAD_DIM) of the logits' work. Built after common.cl.
 * Tunables:
 *   BUDGET_CPU_ROWS   sampled rows a work-item aims for: whole query blocks of SAMPLE_Q rows,
 *                     at least one
 * Parameters: BLOCK_Q, BLOCK_K (bm, bn), SAMPLE_Q. */
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#ifndef SAMPLE_Q
#define SAMPLE_Q (BLOCK_Q / 16) /* sampled rows per query block */
#endif
#ifndef BUDGET_CPU_ROWS
#define BUDGET_CPU_ROWS 32 /* sampled rows per work-item */
#endif

#define BC_GROUP (BUDGET_CPU_ROWS > SAMPLE_Q ? BUDGET_CPU_ROWS / SAMPLE_Q : 1)
#define BC_ROWS (BC_GROUP * SAMPLE_Q)
#if BC_ROWS <= 8
#define BC_LANES 8
typedef float8 bc_vec;
typedef int8 bc_ivec;
#define BC_VLOAD(p) vload8(0, (p))
#else
#define BC_LANES 16
typedef float16 bc_vec;
typedef int16 bc_ivec;
#define BC_VLOAD(p) vload16(0, (p))
#endif
#define BC_RV ((BC_ROWS + BC_LANES - 1) / BC_LANES) /* row vectors */
#define BC_PAD (BC_RV * BC_LANES)                   /* lanes, the last ones padding */
#define BC_KB 8                                     /* keys per register tile */

#if IN_TYPE == 1
#define BC_LOAD8(p, i) vload8(0, (p) + (i))
#elif IN_TYPE == 2
#define BC_LOAD8(p, i) vload_half8(0, (p) + (i))
#else
#define BC_LOAD8(p, i) as_float8(convert_uint8(vload8(0, (p) + (i))) << 16)
#endif

inline void bc_stage(float *dst, __global const in_t *src) {
    for (int d = 0; d < HEAD_DIM; d += 8)
        vstore8(BC_LOAD8(src, d), 0, dst + d);
}

/* x[c] = the base-2 logits of staged key c against row vector v (Q^T holds the scale). */
inline void bc_logits(bc_vec *x, const float *kt, __local const float *qt, int v) {
#pragma unroll
    for (int c = 0; c < BC_KB; ++c)
        x[c] = (bc_vec)(0.0f);
    for (int d = 0; d < HEAD_DIM; ++d) {
        const bc_vec qv = BC_VLOAD(qt + d * BC_PAD + v * BC_LANES);
#pragma unroll
        for (int c = 0; c < BC_KB; ++c)
            x[c] = fma((bc_vec)(kt[c * HEAD_DIM + d]), qv, x[c]);
    }
}

/* 0 where x is -inf (a row that sees nothing yet), x elsewhere: a base for exp2 that never
 * gives -inf - -inf. */
inline bc_vec bc_base(bc_vec x) {
    return select(x, (bc_vec)(0.0f), x == (bc_vec)(-INFINITY));
}

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
budget_measure(__global const in_t *q, __global const in_t *k, __global const in_t *k_pyr,
               __global const int *perm, __global const int *row_offsets, __global float *scratch,
               __global float *scores, __global float *loss, const int bh_first, const int heads_q,
               const int group, const int seq_q, const int seq_k, const int blocks_q,
               const int blocks_k, const int np2, const int np4, const int np8, const float scale,
               const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
               const long k_sh, const long k_sn) {
    __local float q_t[HEAD_DIM * BC_PAD]; /* [d][lane] */
    __local int lane_limit[BC_PAD];       /* keys at positions <= this are visible */
    __local float row_max[BC_PAD], row_total[BC_PAD];
    float kt[BC_KB * HEAD_DIM];
    const int i0 = get_group_id(0) * BC_GROUP;
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int nk = blocks_k;
    const int blocks_here = min(BC_GROUP, blocks_q - i0);
    const int lanes_used = blocks_here * SAMPLE_Q;
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    const long pyramid_head = ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8);
    __global const int *rows = row_offsets + (long)bh * SAMPLE_Q;
    /* Causal: key c is visible to the row at position t iff c <= t + shift (budget.cl). */
    const int shift = causal ? seq_k - seq_q : seq_k;
    const float q_scale = scale * LOG2E;

    /* Lane e is row e % SAMPLE_Q of query block i0 + e / SAMPLE_Q; lanes past the group's
     * rows repeat its last row (finite logits, never read back). */
    for (int e = 0; e < BC_PAD; ++e) {
        const int lane = min(e, lanes_used - 1);
        const int i = i0 + lane / SAMPLE_Q;
        const int pos = min(i * BLOCK_Q + rows[lane % SAMPLE_Q], seq_q - 1); /* replicate pad */
        __global const in_t *row = q_head + (long)TOKEN(perm, pos) * q_sn;
        for (int d = 0; d < HEAD_DIM; d += 8) {
            const float8 x = BC_LOAD8(row, d) * q_scale;
            for (int f = 0; f < 8; ++f)
                q_t[(d + f) * BC_PAD + e] = ((const float *)&x)[f];
        }
        lane_limit[e] = pos + shift;
    }
    bc_ivec limit[BC_RV];
    bc_vec best[BC_RV];
    for (int v = 0; v < BC_RV; ++v) {
        limit[v] = BC_VLOAD(lane_limit + v * BC_LANES);
        best[v] = (bc_vec)(-INFINITY);
    }

    for (int j = 0; j < nk; ++j) {
        bc_vec mx[BC_RV], sm[BC_RV], pl[3][BC_RV];
        for (int v = 0; v < BC_RV; ++v) {
            mx[v] = (bc_vec)(-INFINITY);
            sm[v] = (bc_vec)(0.0f);
        }
        /* Full resolution: keys past seq_k repeat the last one and are never visible. */
        const int last = min((j + 1) * BLOCK_K, seq_k);
        for (int c0 = j * BLOCK_K; c0 < last; c0 += BC_KB) {
            int key_pos[BC_KB];
            for (int c = 0; c < BC_KB; ++c) {
                const int key = c0 + c;
                key_pos[c] = key < last ? key : INT_MAX;
                bc_stage(kt + c * HEAD_DIM, k_head + (long)TOKEN(perm, min(key, last - 1)) * k_sn);
            }
            for (int v = 0; v < BC_RV; ++v) {
                bc_vec x[BC_KB];
                bc_logits(x, kt, q_t, v);
                bc_vec tile_max = (bc_vec)(-INFINITY);
#pragma unroll
                for (int c = 0; c < BC_KB; ++c) {
                    x[c] = select((bc_vec)(-INFINITY), x[c], (bc_ivec)(key_pos[c]) <= limit[v]);
                    tile_max = fmax(tile_max, x[c]);
                }
                const bc_vec m_new = fmax(mx[v], tile_max);
                const bc_vec base = bc_base(m_new);
                /* online sum relative to the block maximum */
                bc_vec s = sm[v] * exp2(mx[v] - base);
#pragma unroll
                for (int c = 0; c < BC_KB; ++c)
                    s += exp2(x[c] - base);
                sm[v] = s;
                mx[v] = m_new;
            }
        }
        /* Pooled levels: a pooled token is visible iff its last member is; then the block's
         * maximum is finite (a pooled logit is a mean of its members', budget.cl). */
        for (int l = 0; l < 3; ++l) {
            const int f = 2 << l;
            const int pooled = l == 0 ? np2 : l == 1 ? np4 : np8;
            const long level_row = pyramid_head + (l == 0 ? 0 : l == 1 ? np2 : np2 + np4);
            const int p_end = min((j + 1) * (BLOCK_K / f), pooled);
            for (int v = 0; v < BC_RV; ++v)
                pl[l][v] = (bc_vec)(0.0f);
            for (int p0 = j * (BLOCK_K / f); p0 < p_end; p0 += BC_KB) {
                int last_member[BC_KB];
                float cnt[BC_KB];
                for (int c = 0; c < BC_KB; ++c) {
                    const int p = min(p0 + c, p_end - 1);
                    const int members = min(f, seq_k - p * f);
                    cnt[c] = (float)members;
                    last_member[c] = p0 + c < p_end ? p * f + members - 1 : INT_MAX;
                    bc_stage(kt + c * HEAD_DIM, k_pyr + (level_row + p) * HEAD_DIM);
                }
                for (int v = 0; v < BC_RV; ++v) {
                    bc_vec x[BC_KB];
                    bc_logits(x, kt, q_t, v);
                    const bc_vec base = bc_base(mx[v]);
                    bc_vec s = pl[l][v];
#pragma unroll
                    for (int c = 0; c < BC_KB; ++c)
                        s += select((bc_vec)(0.0f), (bc_vec)(cnt[c]) * exp2(x[c] - base),
                                    (bc_ivec)(last_member[c]) <= limit[v]);
                    pl[l][v] = s;
                }
            }
        }
        /* The cells of the group's rows, in budget.cl's layout. */
        for (int e = 0; e < lanes_used; ++e) {
            const int v = e / BC_LANES, lane = e - v * BC_LANES;
            const int i = i0 + e / SAMPLE_Q, r = e % SAMPLE_Q;
            __global float *cell =
                scratch + (((long)bh_local * blocks_q + i) * nk + j) * SAMPLE_Q * BUDGET_CELL +
                r * BUDGET_CELL;
            cell[0] = ((const float *)&mx[v])[lane];
            cell[1] = ((const float *)&sm[v])[lane];
            for (int x = 0; x < 3; ++x)
                cell[2 + x] = ((const float *)&pl[x][v])[lane];
        }
        for (int v = 0; v < BC_RV; ++v)
            best[v] = fmax(best[v], mx[v]);
    }

    /* Row maxima m_t and totals F_t, then each block's mass and pooling losses (budget.cl). */
    for (int e = 0; e < lanes_used; ++e) {
        const int i = i0 + e / SAMPLE_Q, r = e % SAMPLE_Q;
        __global const float *cells =
            scratch + ((long)bh_local * blocks_q + i) * nk * SAMPLE_Q * BUDGET_CELL +
            r * BUDGET_CELL;
        const float m = ((const float *)&best[e / BC_LANES])[e % BC_LANES];
        float t = 0.0f;
        if (m > -INFINITY) /* a block no key of which is visible adds 0 */
            for (int j = 0; j < nk; ++j)
                t += cells[(long)j * SAMPLE_Q * BUDGET_CELL + 1] *
                     exp2(cells[(long)j * SAMPLE_Q * BUDGET_CELL] - m);
        row_max[e] = m;
        row_total[e] = t;
    }
    for (int g = 0; g < blocks_here; ++g) {
        const int i = i0 + g;
        __local const float *g_max = row_max + g * SAMPLE_Q;
        __local const float *g_total = row_total + g * SAMPLE_Q;
        __global const float *cells =
            scratch + ((long)bh_local * blocks_q + i) * nk * SAMPLE_Q * BUDGET_CELL;
        const int seen = budget_rows_seen(g_total, SAMPLE_Q);
        const long row = (long)bh * blocks_q + i;
        for (int j = 0; j < nk; ++j)
            budget_fold_block(cells + (long)j * SAMPLE_Q * BUDGET_CELL, g_max, g_total, SAMPLE_Q,
                              seen, scores + row * nk + j, loss + (row * nk + j) * 3);
    }
}
