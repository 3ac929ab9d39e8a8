/* SPDX-License-Identifier: Apache-2.0 */
/* Dense attention, flash style: one work-group per (BLOCK_M query rows, batch, head); each
 * work-item owns one query row (its scaled query and fp32 accumulator in private memory), the
 * group stages TILE_N keys and values at a time in local memory, and an online softmax
 * rescales the accumulator once per tile. This is the portable kernel, and the dense baseline
 * that PSA is measured against. Built after common.cl.
 * Tunables (speed only, never the result):
 *   BLOCK_M    query rows per work-group (= work-group size)
 *   TILE_N     keys staged per tile (common.cl)
 */
#ifndef BLOCK_M
#define BLOCK_M 32 /* query rows per work-group */
#endif

/* Strides are in elements; the D stride is 1 (the host checks it). */
__kernel __attribute__((reqd_work_group_size(BLOCK_M, 1, 1))) void
dense_attention(__global const in_t *q, __global const in_t *k, __global const in_t *v,
                __global out_t *out, const int heads_q, const int group, const int seq_q,
                const int seq_k, const float scale, const int causal, const long q_sb,
                const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn,
                const long v_sb, const long v_sh, const long v_sn, const long o_sb, const long o_sh,
                const long o_sn) {
    __local float k_tile[TILE_N][HEAD_DIM];
    __local float v_tile[TILE_N][HEAD_DIM];
    __local float zero_bias[TILE_N];

    const int lid = get_local_id(0);
    const int row0 = get_group_id(0) * BLOCK_M;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int t = row0 + lid;
    const bool row_valid = t < seq_q;

    __global const in_t *q_row = q + b * q_sb + h * q_sh + (long)(row_valid ? t : 0) * q_sn;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;

    const float q_scale = scale * LOG2E;
    float q_reg[HEAD_DIM];
    float acc[HEAD_DIM];
    for (int d = 0; d < HEAD_DIM; ++d) {
        q_reg[d] = row_valid ? LOAD_IN(q_row, d) * q_scale : 0.0f;
        acc[d] = 0.0f;
    }
    for (int j = lid; j < TILE_N; j += BLOCK_M)
        zero_bias[j] = 0.0f;

    /* Bottom-right aligned causal mask: key c is visible to row t iff c <= t + (Nk - Nq). */
    const int shift = seq_k - seq_q;
    const int row_end = causal ? clamp(t + shift + 1, 0, seq_k) : seq_k;
    const int group_end =
        causal ? clamp(min(row0 + BLOCK_M, seq_q) - 1 + shift + 1, 0, seq_k) : seq_k;

    float m = -INFINITY;
    float l = 0.0f;
    for (int key0 = 0; key0 < group_end; key0 += TILE_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < TILE_N * HEAD_DIM; idx += BLOCK_M) {
            const int j = idx / HEAD_DIM;
            const int d = idx - j * HEAD_DIM;
            const int key = key0 + j;
            const bool key_valid = key < seq_k;
            const long k_off = (long)(key_valid ? key : 0) * k_sn + d;
            const long v_off = (long)(key_valid ? key : 0) * v_sn + d;
            k_tile[j][d] = key_valid ? LOAD_IN(k_head, k_off) : 0.0f;
            v_tile[j][d] = key_valid ? LOAD_IN(v_head, v_off) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        uchar valid[TILE_N];
        for (int j = 0; j < TILE_N; ++j)
            valid[j] = key0 + j < row_end;
        online_softmax_tile(q_reg, acc, &m, &l, k_tile, v_tile, zero_bias, valid);
    }
    if (row_valid)
        store_row(out + b * o_sb + h * o_sh + (long)t * o_sn, acc, l);
}
