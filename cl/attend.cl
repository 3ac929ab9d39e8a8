/* SPDX-License-Identifier: Apache-2.0 */
/* Multi-level attention over the work list (docs/algorithm.md section 4). Built after common.cl.
 *
 * A work-group owns ATT_M rows of one query block (bm may be larger than ATT_M: several
 * work-groups share a block and its work list). For each level f = 1, 2, 4, 8 the selected
 * blocks' pooled tokens are laid end to end, bn/f per block, and staged TILE_N at a time:
 * a pooled block wider than a tile spans several tiles, narrower ones share a tile. Levels are
 * visited in turn so no tile mixes levels.
 * Tunables: ATT_M (rows per work-group), TILE_N (common.cl).
 * Parameters: BLOCK_Q, BLOCK_K (bm, bn). */
#ifndef ATT_M
#define ATT_M 32 /* query rows per work-group */
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#define GROUPS_PER_BLOCK ((BLOCK_Q + ATT_M - 1) / ATT_M)

__kernel __attribute__((reqd_work_group_size(ATT_M, 1, 1))) void
psa_attend(__global const in_t *q, __global const in_t *k, __global const in_t *v,
           __global const in_t *k_pyr, __global const in_t *v_pyr, __global const int *perm,
           __global const int *counts, __global const int *list, __global out_t *out,
           const int heads_q, const int group, const int seq_q, const int seq_k, const int blocks_q,
           const int blocks_k, const int np2, const int np4, const int np8, const float scale,
           const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
           const long k_sh, const long k_sn, const long v_sb, const long v_sh, const long v_sn,
           const long o_sb, const long o_sh, const long o_sn) {
    __local float k_tile[TILE_N][HEAD_DIM];
    __local float v_tile[TILE_N][HEAD_DIM];
    __local float bias[TILE_N];
    __local int token_of[TILE_N];

    const int lid = get_local_id(0);
    const int i = get_group_id(0) / GROUPS_PER_BLOCK;
    const int part = get_group_id(0) - i * GROUPS_PER_BLOCK;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int r = part * ATT_M + lid;
    const int t = i * BLOCK_Q + r;
    const bool row_valid = r < BLOCK_Q && t < seq_q;

    const int t_row = row_valid ? TOKEN(perm, t) : 0; /* where row t lives in q and out */
    __global const in_t *q_row = q + b * q_sb + h * q_sh + (long)t_row * q_sn;
    const float q_scale = scale * LOG2E;
    float q_reg[HEAD_DIM];
    float acc[HEAD_DIM];
    for (int d = 0; d < HEAD_DIM; ++d) {
        q_reg[d] = row_valid ? LOAD_IN(q_row, d) * q_scale : 0.0f;
        acc[d] = 0.0f;
    }
    const int visible_last = causal ? t + (seq_k - seq_q) : seq_k - 1;
    /* The last key any row of the work-group sees. */
    const int group_last =
        causal ? min(i * BLOCK_Q + min((part + 1) * ATT_M, BLOCK_Q), seq_q) - 1 + (seq_k - seq_q)
               : seq_k - 1;

    const long row = (long)bh * blocks_q + i;
    __global const int *row_list = list + row * blocks_k;
    const long pyramid_head = ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8);
    float m = -INFINITY;
    float l = 0.0f;
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
        for (int slot0 = 0; slot0 < tokens; slot0 += TILE_N) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int s = lid; s < TILE_N; s += ATT_M) {
                const int slot = slot0 + s;
                int p = -1;
                if (slot < tokens) {
                    const int block = row_list[listed + slot / per_block];
                    p = block * per_block + slot % per_block;
                    if (p >= pooled)
                        p = -1; /* past the last pooled token of the sequence */
                }
                token_of[s] = p;
                /* ln(cnt) in base 2: a pooled token stands for cnt keys. */
                bias[s] = p >= 0 ? log2((float)min(f, seq_k - p * f)) : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int idx = lid; idx < TILE_N * HEAD_DIM; idx += ATT_M) {
                const int j = idx / HEAD_DIM;
                const int d = idx - j * HEAD_DIM;
                const int p = token_of[j];
                /* Level 1 reads the caller's K, V through the ordering; the pyramid is
                 * already in sequence order. */
                const int row_at = p >= 0 && level == 0 ? TOKEN(perm, p) : p;
                k_tile[j][d] = p >= 0 ? LOAD_IN(k_base, (long)row_at * k_step + d) : 0.0f;
                v_tile[j][d] = p >= 0 ? LOAD_IN(v_base, (long)row_at * v_step + d) : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            uchar valid[TILE_N];
            for (int j = 0; j < TILE_N; ++j) {
                const int p = token_of[j];
                /* A pooled token is visible iff its last member is. */
                valid[j] = p >= 0 && min(p * f + f, seq_k) - 1 <= visible_last;
            }
            online_softmax_tile(q_reg, acc, &m, &l, k_tile, v_tile, bias, valid);
        }
        listed += count;
    }
    if (row_valid)
        store_row(out + b * o_sb + h * o_sh + (long)t_row * o_sn, acc, l);
}
