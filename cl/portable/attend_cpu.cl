/* SPDX-License-Identifier: Apache-2.0 */
/* Multi-level attention over the work list for CPUs: the tiling of attend.cl (levels in turn,
 * the selected blocks' pooled tokens end to end, staged CPU_TILE_N at a time) with one
 * work-item per CPU_ROWS rows of a query block and portable/cpu_flash.cl's register-blocked
 * step. The same arguments as attend.cl's kernel. Built after common.cl and
 * portable/cpu_flash.cl. Parameters: BLOCK_Q, BLOCK_K (bm, bn). */
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#define GROUPS_PER_BLOCK ((BLOCK_Q + CPU_ROWS - 1) / CPU_ROWS)

__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
psa_attend(__global const in_t *q, __global const in_t *k, __global const in_t *v,
           __global const in_t *k_pyr, __global const in_t *v_pyr, __global const int *perm,
           __global const int *counts, __global const int *list, __global out_t *out,
           const int heads_q, const int group, const int seq_q, const int seq_k, const int blocks_q,
           const int blocks_k, const int np2, const int np4, const int np8, const float scale,
           const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
           const long k_sh, const long k_sn, const long v_sb, const long v_sh, const long v_sn,
           const long o_sb, const long o_sh, const long o_sn) {
    rowv qt[HEAD_DIM][CPU_RV], acc[HEAD_DIM][CPU_RV], s[CPU_TILE_N][CPU_RV];
    rowv m[CPU_RV], l[CPU_RV];
    rowi limit[CPU_RV];
    float kt[CPU_TILE_N][HEAD_DIM], vt[CPU_TILE_N][HEAD_DIM], bias[CPU_TILE_N];
    int last[CPU_TILE_N];

    const int i = get_group_id(0) / GROUPS_PER_BLOCK;
    const int part = get_group_id(0) - i * GROUPS_PER_BLOCK;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int r0 = part * CPU_ROWS;
    const int t0 = i * BLOCK_Q + r0;
    /* Rows of this work-item inside the query block and the sequence. */
    const int rows = min(min(CPU_ROWS, BLOCK_Q - r0), seq_q - t0);
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global out_t *o_head = out + b * o_sb + h * o_sh;

    const float q_scale = scale * LOG2E;
    for (int r = 0; r < CPU_ROWS; ++r)
        cpu_load_query(qt, r, r < rows ? q_head + (long)TOKEN(perm, t0 + r) * q_sn : NULL, q_scale);
    cpu_state_init(acc, m, l);
    int *limits = (int *)limit;
    for (int r = 0; r < CPU_ROWS; ++r)
        limits[r] = causal ? t0 + r + (seq_k - seq_q) : INT_MAX - 1;
    const int first_limit = limits[0];
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
        const int pooled = rows_of.pooled;
        __global const in_t *k_base = rows_of.k;
        __global const in_t *v_base = rows_of.v;
        const long k_step = rows_of.k_step, v_step = rows_of.v_step;
        const int tokens =
            psa_visible_slots(row_list + listed, count, f, per_block, BLOCK_K, group_last, seq_k);
        /* The slot's block in the list and its token in the block, advanced without division. */
        int listed_block = 0, within = 0;
        for (int slot0 = 0; slot0 < tokens; slot0 += CPU_TILE_N) {
            bool masked = false;
            for (int j = 0; j < CPU_TILE_N; ++j) {
                int p = -1;
                if (slot0 + j < tokens) {
                    p = row_list[listed + listed_block] * per_block + within;
                    if (++within == per_block) {
                        within = 0;
                        ++listed_block;
                    }
                    if (p >= pooled)
                        p = -1; /* past the last pooled token of the sequence */
                }
                /* Level 1 reads the caller's K, V through the ordering; the pyramid is already
                 * in sequence order. */
                const int row_at = p >= 0 && level == 0 ? TOKEN(perm, p) : p;
                cpu_stage_row(kt[j], p >= 0 ? k_base + (long)row_at * k_step : NULL);
                cpu_stage_row(vt[j], p >= 0 ? v_base + (long)row_at * v_step : NULL);
                /* ln(cnt) in base 2: a pooled token stands for cnt keys, and it is visible iff
                 * its last member is. */
                bias[j] = p >= 0 ? log2((float)min(f, seq_k - p * f)) : 0.0f;
                last[j] = p >= 0 ? min(p * f + f, seq_k) - 1 : INT_MAX;
                masked |= last[j] > first_limit;
            }
            cpu_tile_step(qt, acc, m, l, s, limit, kt, vt, bias, last, masked);
        }
        listed += count;
    }
    for (int r = 0; r < rows; ++r)
        cpu_store_row(o_head + (long)TOKEN(perm, t0 + r) * o_sn, acc, l, r);
}
