/* SPDX-License-Identifier: Apache-2.0 */
/* Multi-level attention over the work list for SIMT GPUs: the tiling of attend.cl (levels in
 * turn, the selected blocks' pooled tokens end to end, staged SIMT_TILE_N at a time) with
 * work-groups of 2 * SIMT_ROWS work-items owning SIMT_ROWS rows of a query block and
 * portable/simt_flash.cl's register-tiled step. The same arguments as attend.cl's kernel.
 * Built after common.cl and portable/simt_flash.cl. Parameters: BLOCK_Q, BLOCK_K (bm, bn). */
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#define GROUPS_PER_BLOCK ((BLOCK_Q + SIMT_ROWS - 1) / SIMT_ROWS)

__kernel __attribute__((reqd_work_group_size(SIMT_ITEMS, 1, 1))) void
psa_attend(__global const in_t *q, __global const in_t *k, __global const in_t *v,
           __global const in_t *k_pyr, __global const in_t *v_pyr, __global const int *perm,
           __global const int *counts, __global const int *list, __global out_t *out,
           const int heads_q, const int group, const int seq_q, const int seq_k, const int blocks_q,
           const int blocks_k, const int np2, const int np4, const int np8, const float scale,
           const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
           const long k_sh, const long k_sn, const long v_sb, const long v_sh, const long v_sn,
           const long o_sb, const long o_sh, const long o_sn) {
    __local simt_shared sh;
    __local int query_rows[SIMT_ROWS];
    __local int any_masked;
    const int lid = get_local_id(0);
    const int i = get_group_id(0) / GROUPS_PER_BLOCK;
    const int part = get_group_id(0) - i * GROUPS_PER_BLOCK;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int r0 = part * SIMT_ROWS;
    const int t0 = i * BLOCK_Q + r0;
    /* Rows of this work-group inside the query block and the sequence. */
    const int rows = min(min(SIMT_ROWS, BLOCK_Q - r0), seq_q - t0);
    for (int r = lid; r < SIMT_ROWS; r += SIMT_ITEMS)
        query_rows[r] = r < rows ? TOKEN(perm, t0 + r) : -1;
    barrier(CLK_LOCAL_MEM_FENCE);
    const simt_queries queries = {q + b * q_sb + h * q_sh, q_sn, query_rows, scale * LOG2E};
    simt_load_queries(&sh, queries.head, queries.step, queries.rows, queries.scale);
    const int g0 = simt_first_row();
    simt_state st;
    simt_state_init(&st, t0 + g0 + (seq_k - seq_q), causal);
    const int first_limit = causal ? t0 + (seq_k - seq_q) : INT_MAX - 1;
    const int group_last = causal ? t0 + rows - 1 + (seq_k - seq_q) : seq_k - 1;

    const long row = (long)bh * blocks_q + i;
    __global const int *row_list = list + row * blocks_k;
    const long pyramid_head = ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8);
    int listed = 0;
    for (int level = 0; level < 4; ++level) {
        const int f = 1 << level;
        const int per_block = BLOCK_K / f;
        const int count = counts[row * 4 + level];
        const psa_level rows_of =
            psa_level_rows(level, k + b * k_sb + kvh * k_sh, v + b * v_sb + kvh * v_sh, k_sn, v_sn,
                           k_pyr, v_pyr, pyramid_head, seq_k, np2, np4, np8);
        const int tokens =
            psa_visible_slots(row_list + listed, count, f, per_block, BLOCK_K, group_last, seq_k);
        for (int slot0 = 0; slot0 < tokens; slot0 += SIMT_TILE_N) {
            barrier(CLK_LOCAL_MEM_FENCE); /* the previous tile's P V has read the buffers */
            if (lid == 0)
                any_masked = 0;
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int j = lid; j < SIMT_TILE_N; j += SIMT_ITEMS) {
                const int slot = slot0 + j;
                int p = -1;
                if (slot < tokens) {
                    p = row_list[listed + slot / per_block] * per_block + slot % per_block;
                    if (p >= rows_of.pooled)
                        p = -1; /* past the last pooled token of the sequence */
                }
                /* Level 1 reads the caller's K, V through the ordering; the pyramid is already
                 * in sequence order. ln(cnt) in base 2: a pooled token stands for cnt keys, and
                 * it is visible iff its last member is. */
                sh.slots.row[j] = p >= 0 && level == 0 ? TOKEN(perm, p) : p;
                sh.slots.bias[j] = p >= 0 ? log2((float)min(f, seq_k - p * f)) : 0.0f;
                sh.slots.last[j] = p >= 0 ? min(p * f + f, seq_k) - 1 : INT_MAX;
                if (sh.slots.last[j] > first_limit)
                    any_masked = 1;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            simt_tile_step(&sh, &st, &queries, rows_of.k, rows_of.k_step, rows_of.v, rows_of.v_step,
                           any_masked != 0);
        }
        listed += count;
    }
    __global out_t *dst[SIMT_RPW];
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r)
        dst[r] = g0 + r < rows ? out + b * o_sb + h * o_sh + (long)TOKEN(perm, t0 + g0 + r) * o_sn
                               : NULL;
    simt_store(&sh, &st, dst);
}
