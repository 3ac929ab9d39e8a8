/* SPDX-License-Identifier: Apache-2.0 */
/* Dense attention for a few query rows against a long key/value cache (decode), split over the
 * key axis so that one query row still fills the device. Built after common.cl and
 * decode_combine.cl.
 *
 * decode_partial: one work-group per (split of the keys, row group of one batch's kv head).
 *   The row group holds DEC_ROWS of the kv head's group * seq_q query rows (every query head
 *   sharing the kv head, every query position), so each key and value is read from global
 *   memory once per row group, not once per row. The keys of the split are staged DEC_TILE_N at
 *   a time in local memory; the work-items share the logits of a tile, then each owns a slice
 *   of the rows' accumulators. It writes the split's partial (max, sum, accumulator) per row:
 *   an online softmax that stopped at the split's end.
 * decode_combine (decode_combine.cl, built before this file) merges the splits' partials.
 *
 * The key length, the split length and the split count are run-time arguments: a growing
 * cache never rebuilds the program.
 * Tunables (speed only, never the result beyond rounding):
 *   DEC_WG       work-items per work-group (of the combine kernel too)
 *   DEC_TILE_N   keys staged in local memory per tile
 * Shape (set by the host from the plan):
 *   DEC_ROWS     query rows per row group, min(group * seq_q, 16)
 */
#ifndef DEC_WG
#define DEC_WG 64 /* work-items per work-group */
#endif
#ifndef DEC_TILE_N
#define DEC_TILE_N 32 /* keys per local-memory tile */
#endif
#ifndef DEC_ROWS
#define DEC_ROWS 1 /* query rows per row group */
#endif

/* Accumulator elements (row, d) each work-item owns: element e = lid + i * DEC_WG. */
#define DEC_ELEMS ((DEC_ROWS * HEAD_DIM + DEC_WG - 1) / DEC_WG)

/* The caller's query row (b, h, t) of row r of kv head kvh's rows: rows are ordered by query
 * head of the group, then by position. */
inline void decode_row(int row, int kvh, int group, int seq_q, int *h, int *t) {
    const int hg = row / seq_q;
    *h = kvh * group + hg;
    *t = row - hg * seq_q;
}

/* Strides are in elements; the D stride is 1 (the host checks it). Partials are laid out
 * [row of B * Hq * Nq][max_splits] with HEAD_DIM floats of accumulator (part_acc) and the pair
 * (max in base 2, sum) (part_ml). */
__kernel __attribute__((reqd_work_group_size(DEC_WG, 1, 1))) void
decode_partial(__global const in_t *q, __global const in_t *k, __global const in_t *v,
               __global float *part_acc, __global float *part_ml, const int heads_q,
               const int group, const int seq_q, const int seq_k, const float scale,
               const int causal, const int row_groups, const int chunk, const int max_splits,
               const long q_sb, const long q_sh, const long q_sn, const long k_sb, const long k_sh,
               const long k_sn, const long v_sb, const long v_sh, const long v_sn) {
    /* K rows padded by one float: work-items of a tile's logits read different keys at the
     * same d, which would otherwise fall in one local-memory bank on GPUs. */
    __local float q_l[DEC_ROWS][HEAD_DIM];
    __local float k_t[DEC_TILE_N][HEAD_DIM + 1];
    __local float v_t[DEC_TILE_N][HEAD_DIM];
    __local float p_t[DEC_ROWS][DEC_TILE_N];
    __local float m_l[DEC_ROWS], l_l[DEC_ROWS], corr_l[DEC_ROWS];

    const int lid = get_local_id(0);
    const int split = get_group_id(0);
    const int rg = get_group_id(1) % row_groups;
    const int bkv = get_group_id(1) / row_groups;
    const int heads_kv = heads_q / group;
    const int b = bkv / heads_kv;
    const int kvh = bkv - b * heads_kv;
    const int rows = group * seq_q;
    const int r0 = rg * DEC_ROWS;
    const int r_count = min(DEC_ROWS, rows - r0);
    const int shift = seq_k - seq_q; /* causal: key c visible to position t iff c <= t + shift */

    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;
    const float q_scale = scale * LOG2E;
    for (int idx = lid; idx < DEC_ROWS * HEAD_DIM; idx += DEC_WG) {
        const int r = idx / HEAD_DIM;
        const int d = idx - r * HEAD_DIM;
        float x = 0.0f;
        if (r < r_count) {
            int h, t;
            decode_row(r0 + r, kvh, group, seq_q, &h, &t);
            x = LOAD_IN(q + b * q_sb + h * q_sh + (long)t * q_sn, d) * q_scale;
        }
        q_l[r][d] = x;
    }
    for (int r = lid; r < DEC_ROWS; r += DEC_WG) {
        m_l[r] = -INFINITY;
        l_l[r] = 0.0f;
    }

    /* Keys of this split, cut at the last key any row of the group can see. */
    const int key_begin = split * chunk;
    int key_end = min(seq_k, key_begin + chunk);
    if (causal) {
        int last_t = seq_q - 1; /* a group spanning two query heads holds every position */
        const int first_h = r0 / seq_q, last_h = (r0 + r_count - 1) / seq_q;
        if (first_h == last_h)
            last_t = r0 + r_count - 1 - last_h * seq_q;
        key_end = min(key_end, max(0, last_t + shift + 1));
    }

    float acc[DEC_ELEMS];
    for (int i = 0; i < DEC_ELEMS; ++i)
        acc[i] = 0.0f;
    for (int key0 = key_begin; key0 < key_end; key0 += DEC_TILE_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < DEC_TILE_N * HEAD_DIM; idx += DEC_WG) {
            const int j = idx / HEAD_DIM;
            const int d = idx - j * HEAD_DIM;
            const int key = key0 + j;
            const bool valid = key < key_end;
            const long c = valid ? key : 0;
            k_t[j][d] = valid ? LOAD_IN(k_head, c * k_sn + d) : 0.0f;
            v_t[j][d] = valid ? LOAD_IN(v_head, c * v_sn + d) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < DEC_ROWS * DEC_TILE_N; idx += DEC_WG) {
            const int r = idx / DEC_TILE_N;
            const int j = idx - r * DEC_TILE_N;
            const int key = key0 + j;
            bool visible = r < r_count && key < key_end;
            if (visible && causal) {
                int h, t;
                decode_row(r0 + r, kvh, group, seq_q, &h, &t);
                visible = key <= t + shift;
            }
            float s = -INFINITY;
            if (visible) {
                float dot = 0.0f;
                for (int d = 0; d < HEAD_DIM; ++d)
                    dot = fma(q_l[r][d], k_t[j][d], dot);
                s = dot;
            }
            p_t[r][j] = s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Row statistics: logits become probabilities against the new running maximum. A row
         * with nothing visible so far keeps max -inf, sum 0 and a zero accumulator. */
        for (int r = lid; r < DEC_ROWS; r += DEC_WG) {
            float tile_max = -INFINITY;
            for (int j = 0; j < DEC_TILE_N; ++j)
                tile_max = fmax(tile_max, p_t[r][j]);
            const float m_old = m_l[r];
            const float m_new = fmax(m_old, tile_max);
            float correction = 1.0f, sum = 0.0f;
            if (m_new != -INFINITY) {
                correction = exp2(m_old - m_new); /* m_old = -inf: 0 */
                for (int j = 0; j < DEC_TILE_N; ++j) {
                    const float p = exp2(p_t[r][j] - m_new); /* masked keys: 0 */
                    p_t[r][j] = p;
                    sum += p;
                }
            } else {
                for (int j = 0; j < DEC_TILE_N; ++j)
                    p_t[r][j] = 0.0f;
            }
            m_l[r] = m_new;
            l_l[r] = l_l[r] * correction + sum;
            corr_l[r] = correction;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int i = 0; i < DEC_ELEMS; ++i) {
            const int e = lid + i * DEC_WG;
            if (e >= DEC_ROWS * HEAD_DIM)
                break;
            const int r = e / HEAD_DIM;
            const int d = e - r * HEAD_DIM;
            float a = acc[i] * corr_l[r];
            for (int j = 0; j < DEC_TILE_N; ++j)
                a = fma(p_t[r][j], v_t[j][d], a);
            acc[i] = a;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    for (int i = 0; i < DEC_ELEMS; ++i) {
        const int e = lid + i * DEC_WG;
        const int r = e / HEAD_DIM;
        if (e >= DEC_ROWS * HEAD_DIM || r >= r_count)
            break;
        const int d = e - r * HEAD_DIM;
        int h, t;
        decode_row(r0 + r, kvh, group, seq_q, &h, &t);
        const long row = ((long)b * heads_q + h) * seq_q + t;
        part_acc[(row * max_splits + split) * HEAD_DIM + d] = acc[i];
    }
    for (int r = lid; r < r_count; r += DEC_WG) {
        int h, t;
        decode_row(r0 + r, kvh, group, seq_q, &h, &t);
        const long row = ((long)b * heads_q + h) * seq_q + t;
        part_ml[(row * max_splits + split) * 2] = m_l[r];
        part_ml[(row * max_splits + split) * 2 + 1] = l_l[r];
    }
}
