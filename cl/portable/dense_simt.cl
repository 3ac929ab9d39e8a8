/* SPDX-License-Identifier: Apache-2.0 */
/* Dense attention for SIMT GPUs: one work-group of 2 * SIMT_ROWS work-items per (SIMT_ROWS
 * query rows, batch, head), walking every key in tiles of SIMT_TILE_N through
 * portable/simt_flash.cl's register-tiled step. The same arguments as dense.cl's kernel.
 * Built after common.cl and portable/simt_flash.cl. */

/* Strides are in elements; the D stride is 1 (the host checks it). */
__kernel __attribute__((reqd_work_group_size(SIMT_ITEMS, 1, 1))) void
dense_attention(__global const in_t *q, __global const in_t *k, __global const in_t *v,
                __global out_t *out, const int heads_q, const int group, const int seq_q,
                const int seq_k, const float scale, const int causal, const long q_sb,
                const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn,
                const long v_sb, const long v_sh, const long v_sn, const long o_sb, const long o_sh,
                const long o_sn) {
    __local simt_shared sh;
    __local int query_rows[SIMT_ROWS];
    const int lid = get_local_id(0);
    const int row0 = get_group_id(0) * SIMT_ROWS;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int rows = min(SIMT_ROWS, seq_q - row0);
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;

    for (int r = lid; r < SIMT_ROWS; r += SIMT_ITEMS)
        query_rows[r] = r < rows ? row0 + r : -1;
    barrier(CLK_LOCAL_MEM_FENCE);
    const simt_queries queries = {q + b * q_sb + h * q_sh, q_sn, query_rows, scale * LOG2E};
    simt_load_queries(&sh, queries.head, queries.step, queries.rows, queries.scale);

    /* Bottom-right aligned causal mask: key c is visible to row t iff c <= t + (Nk - Nq). */
    const int shift = seq_k - seq_q;
    const int g0 = simt_first_row();
    simt_state st;
    simt_state_init(&st, row0 + g0 + shift, causal);
    const int first_limit = causal ? row0 + shift : INT_MAX - 1;
    const int group_end = causal ? clamp(row0 + rows - 1 + shift + 1, 0, seq_k) : seq_k;
    for (int key0 = 0; key0 < group_end; key0 += SIMT_TILE_N) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile's P V has read the buffers */
        for (int j = lid; j < SIMT_TILE_N; j += SIMT_ITEMS) {
            const int key = key0 + j;
            sh.slots.row[j] = key < seq_k ? key : -1;
            sh.slots.last[j] = key < seq_k ? key : INT_MAX;
            sh.slots.bias[j] = 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const bool masked = key0 + SIMT_TILE_N > seq_k || key0 + SIMT_TILE_N - 1 > first_limit;
        simt_tile_step(&sh, &st, &queries, k_head, k_sn, v_head, v_sn, masked);
    }
    __global out_t *dst[SIMT_RPW];
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r)
        dst[r] = g0 + r < rows ? out + b * o_sb + h * o_sh + (long)(row0 + g0 + r) * o_sn : NULL;
    simt_store(&sh, &st, dst);
}
