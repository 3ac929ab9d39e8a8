/* SPDX-License-Identifier: Apache-2.0 */
/* Dense attention for CPUs: one work-item per (CPU_ROWS query rows, batch, head), walking every
 * key in tiles of CPU_TILE_N through portable/cpu_flash.cl's register-blocked step. The same
 * arguments as dense.cl's kernel. Built after common.cl and portable/cpu_flash.cl. */

/* Strides are in elements; the D stride is 1 (the host checks it). */
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
dense_attention(__global const in_t *q, __global const in_t *k, __global const in_t *v,
                __global out_t *out, const int heads_q, const int group, const int seq_q,
                const int seq_k, const float scale, const int causal, const long q_sb,
                const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn,
                const long v_sb, const long v_sh, const long v_sn, const long o_sb, const long o_sh,
                const long o_sn) {
    rowv qt[HEAD_DIM][CPU_RV], acc[HEAD_DIM][CPU_RV], s[CPU_TILE_N][CPU_RV];
    rowv m[CPU_RV], l[CPU_RV];
    rowi limit[CPU_RV];
    float kt[CPU_TILE_N][HEAD_DIM], vt[CPU_TILE_N][HEAD_DIM], bias[CPU_TILE_N];
    int last[CPU_TILE_N];

    const int row0 = get_group_id(0) * CPU_ROWS;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int rows = min(CPU_ROWS, seq_q - row0);
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;

    const float q_scale = scale * LOG2E;
    for (int r = 0; r < CPU_ROWS; ++r)
        cpu_load_query(qt, r, r < rows ? q_head + (long)(row0 + r) * q_sn : NULL, q_scale);
    cpu_state_init(acc, m, l);

    /* Bottom-right aligned causal mask: key c is visible to row t iff c <= t + (Nk - Nq). */
    const int shift = seq_k - seq_q;
    int *limits = (int *)limit;
    for (int r = 0; r < CPU_ROWS; ++r)
        limits[r] = causal ? row0 + r + shift : INT_MAX - 1;
    const int group_end = causal ? clamp(row0 + rows - 1 + shift + 1, 0, seq_k) : seq_k;
    const int first_limit = limits[0];

    for (int j = 0; j < CPU_TILE_N; ++j)
        bias[j] = 0.0f;
    for (int key0 = 0; key0 < group_end; key0 += CPU_TILE_N) {
        for (int j = 0; j < CPU_TILE_N; ++j) {
            const int key = key0 + j;
            const bool valid = key < seq_k;
            cpu_stage_row(kt[j], valid ? k_head + (long)key * k_sn : NULL);
            cpu_stage_row(vt[j], valid ? v_head + (long)key * v_sn : NULL);
            last[j] = valid ? key : INT_MAX;
        }
        const bool masked = key0 + CPU_TILE_N > seq_k || key0 + CPU_TILE_N - 1 > first_limit;
        cpu_tile_step(qt, acc, m, l, s, limit, kt, vt, bias, last, masked);
    }
    for (int r = 0; r < rows; ++r)
        cpu_store_row(out + b * o_sb + h * o_sh + (long)(row0 + r) * o_sn, acc, l, r);
}
