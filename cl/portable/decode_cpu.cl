/* SPDX-License-Identifier: Apache-2.0 */
/* The split-K decode kernel shaped for CPUs (PoCL): the same arguments and partials as
 * decode.cl's decode_partial, but one work-item per (split of the keys, row group of one
 * batch's kv head), so PoCL runs no work-item loops and no barriers. The work-item keeps its
 * DEC_ROWS scaled query rows and accumulators in private memory (L1 on a CPU) and walks its
 * keys DEC_TILE_N at a time: each key row is converted to fp32 once and serves every row of
 * the group, with the head dimension along float8 vectors (every head dimension is a multiple
 * of 8). Groups of more than DEC_LANE_ROWS rows (grouped-query heads times several query
 * positions) instead keep their rows along float16 lanes and run portable/cpu_flash.cl's
 * register-blocked tile step (CPU_ROWS = 16): each key then feeds 16 rows per instruction.
 * Built after common.cl, decode_combine.cl and portable/cpu_flash.cl.
 * Tunables (speed only, never the result beyond rounding):
 *   DEC_TILE_N   keys per online-softmax step
 * Shape (set by the host):
 *   DEC_ROWS     query rows per row group, min(group * seq_q, 16)
 */
#ifndef DEC_TILE_N
#define DEC_TILE_N 32 /* keys per online-softmax step, a multiple of 8 */
#endif
#if DEC_TILE_N % 8 != 0
#error "DEC_TILE_N must be a multiple of 8"
#endif
#ifndef DEC_ROWS
#define DEC_ROWS 1 /* query rows per row group */
#endif

#define DEC_VECS (HEAD_DIM / 8) /* float8 vectors per row */
/* Rows up to which the head dimension, not the rows, lies along the vectors. */
#define DEC_LANE_ROWS 4

#if IN_TYPE == 1
#define LOAD_IN8(p, i) vload8(0, (p) + (i))
#elif IN_TYPE == 2
/* fp16 -> fp32 with vector operations: PoCL's vload_half8 converts one element at a time,
 * which made fp16 steps slower than fp32 ones. The magnitude's bits moved into fp32 position
 * and scaled by 2^112 (exact: a power of two) give every finite half, subnormals included;
 * Inf and NaN get the all-ones exponent back. Exact as long as fp32 subnormals are not flushed
 * (CPU devices keep them; test_decode's fp16_every_value checks all 65536 values). */
inline float8 half8_to_float8(__global const half *p) {
    const uint8 h = convert_uint8(vload8(0, (__global const ushort *)p));
    const uint8 mag = (h & 0x7fffu) << 13;
    const float8 f = as_float8(mag) * 0x1p112f;
    const uint8 o = as_uint8(f) | (as_uint8((h & 0x7fffu) >= (uint8)(0x7c00u)) & 0x7f800000u);
    return as_float8(o | ((h & 0x8000u) << 16));
}
#define LOAD_IN8(p, i) half8_to_float8((p) + (i))
#else
#define LOAD_IN8(p, i) as_float8(convert_uint8(vload8(0, (p) + (i))) << 16)
#endif

inline float sum8(float8 x) {
    const float4 y = x.lo + x.hi;
    return (y.x + y.y) + (y.z + y.w);
}

#if DEC_ROWS > DEC_LANE_ROWS
#if CPU_ROWS != 16
#error "the decode kernel keeps its rows in one float16: CPU_ROWS must be 16"
#endif
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
decode_partial(__global const in_t *q, __global const in_t *k, __global const in_t *v,
               __global float *part_acc, __global float *part_ml, const int heads_q,
               const int group, const int seq_q, const int seq_k, const float scale,
               const int causal, const int row_groups, const int chunk, const int max_splits,
               const long q_sb, const long q_sh, const long q_sn, const long k_sb, const long k_sh,
               const long k_sn, const long v_sb, const long v_sh, const long v_sn) {
    rowv qt[HEAD_DIM][1], acc[HEAD_DIM][1], s[CPU_TILE_N][1];
    rowv m[1], l[1];
    rowi limit[1];
    float kt[CPU_TILE_N][HEAD_DIM], vt[CPU_TILE_N][HEAD_DIM], bias[CPU_TILE_N];
    int last[CPU_TILE_N];
    long out_row[16];

    const int split = get_group_id(0);
    const int rg = get_group_id(1) % row_groups;
    const int bkv = get_group_id(1) / row_groups;
    const int heads_kv = heads_q / group;
    const int b = bkv / heads_kv;
    const int kvh = bkv - b * heads_kv;
    const int r0 = rg * DEC_ROWS;
    const int r_count = min(DEC_ROWS, group * seq_q - r0);
    const int shift = seq_k - seq_q;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;

    int *limits = (int *)limit;
    int last_visible = -1;
    for (int r = 0; r < 16; ++r) {
        const int row = r0 + (r < r_count ? r : 0);
        const int hg = row / seq_q;
        const int h = kvh * group + hg, t = row - hg * seq_q;
        cpu_load_query(qt, r, r < r_count ? q + b * q_sb + h * q_sh + (long)t * q_sn : NULL,
                       scale * LOG2E);
        limits[r] = r < r_count ? (causal ? t + shift : INT_MAX - 1) : -1;
        last_visible = max(last_visible, limits[r]);
        out_row[r] = ((long)b * heads_q + h) * seq_q + t;
    }
    cpu_state_init(acc, m, l);
    for (int j = 0; j < CPU_TILE_N; ++j)
        bias[j] = 0.0f;

    const int key_begin = split * chunk;
    const int key_end = min(min(seq_k, key_begin + chunk), last_visible + 1);
    for (int key0 = key_begin; key0 < key_end; key0 += CPU_TILE_N) {
        for (int j = 0; j < CPU_TILE_N; ++j) {
            const int key = key0 + j;
            const bool valid = key < key_end;
            cpu_stage_row(kt[j], valid ? k_head + (long)key * k_sn : NULL);
            cpu_stage_row(vt[j], valid ? v_head + (long)key * v_sn : NULL);
            last[j] = valid ? key : INT_MAX;
        }
        cpu_tile_step(qt, acc, m, l, s, limit, kt, vt, bias, last, true);
    }

    const float *mf = (const float *)m, *lf = (const float *)l, *accf = (const float *)acc;
    for (int r = 0; r < r_count; ++r) {
        const long at = out_row[r] * max_splits + split;
        for (int d = 0; d < HEAD_DIM; ++d)
            part_acc[at * HEAD_DIM + d] = accf[d * 16 + r];
        part_ml[at * 2] = mf[r];
        part_ml[at * 2 + 1] = lf[r];
    }
}
#else
__kernel __attribute__((reqd_work_group_size(1, 1, 1))) void
decode_partial(__global const in_t *q, __global const in_t *k, __global const in_t *v,
               __global float *part_acc, __global float *part_ml, const int heads_q,
               const int group, const int seq_q, const int seq_k, const float scale,
               const int causal, const int row_groups, const int chunk, const int max_splits,
               const long q_sb, const long q_sh, const long q_sn, const long k_sb, const long k_sh,
               const long k_sn, const long v_sb, const long v_sh, const long v_sn) {
    float8 qv[DEC_ROWS][DEC_VECS], acc[DEC_ROWS][DEC_VECS];
    float s[DEC_ROWS][DEC_TILE_N];
    float m[DEC_ROWS], l[DEC_ROWS];
    int limit[DEC_ROWS]; /* last key each row sees */
    long out_row[DEC_ROWS];
    float8 kv[DEC_VECS];

    const int split = get_group_id(0);
    const int rg = get_group_id(1) % row_groups;
    const int bkv = get_group_id(1) / row_groups;
    const int heads_kv = heads_q / group;
    const int b = bkv / heads_kv;
    const int kvh = bkv - b * heads_kv;
    const int r0 = rg * DEC_ROWS;
    const int r_count = min(DEC_ROWS, group * seq_q - r0);
    const int shift = seq_k - seq_q;
    const float q_scale = scale * LOG2E;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    __global const in_t *v_head = v + b * v_sb + kvh * v_sh;

    int last_visible = -1;
    for (int r = 0; r < DEC_ROWS; ++r) {
        const int row = r0 + (r < r_count ? r : 0);
        const int hg = row / seq_q;
        const int h = kvh * group + hg, t = row - hg * seq_q;
        __global const in_t *q_row = q + b * q_sb + h * q_sh + (long)t * q_sn;
        for (int x = 0; x < DEC_VECS; ++x) {
            qv[r][x] = r < r_count ? LOAD_IN8(q_row, 8 * x) * q_scale : (float8)(0.0f);
            acc[r][x] = (float8)(0.0f);
        }
        m[r] = -INFINITY;
        l[r] = 0.0f;
        limit[r] = r < r_count ? (causal ? t + shift : INT_MAX - 1) : -1;
        last_visible = max(last_visible, limit[r]);
        out_row[r] = ((long)b * heads_q + h) * seq_q + t;
    }

    const int key_begin = split * chunk;
    const int key_end = min(min(seq_k, key_begin + chunk), last_visible + 1);
    for (int key0 = key_begin; key0 < key_end; key0 += DEC_TILE_N) {
        const int keys = min(DEC_TILE_N, key_end - key0);
        for (int j = 0; j < DEC_TILE_N; ++j) {
            if (j >= keys) { /* past the split's end: weight 0 */
                for (int r = 0; r < DEC_ROWS; ++r)
                    s[r][j] = -INFINITY;
                continue;
            }
            __global const in_t *k_row = k_head + (long)(key0 + j) * k_sn;
            for (int x = 0; x < DEC_VECS; ++x)
                kv[x] = LOAD_IN8(k_row, 8 * x);
            for (int r = 0; r < DEC_ROWS; ++r) {
                float8 dot = (float8)(0.0f);
                for (int x = 0; x < DEC_VECS; ++x)
                    dot = fma(qv[r][x], kv[x], dot);
                s[r][j] = key0 + j <= limit[r] ? sum8(dot) : -INFINITY;
            }
        }
        /* The softmax step on 8 keys at a time: PoCL's scalar exp2 is a library call, its
         * float8 one a vector routine. */
        for (int r = 0; r < DEC_ROWS; ++r) {
            float8 max8 = (float8)(-INFINITY);
            for (int j = 0; j < DEC_TILE_N; j += 8)
                max8 = fmax(max8, vload8(0, &s[r][j]));
            const float4 max4 = fmax(max8.lo, max8.hi);
            const float tile_max = fmax(fmax(max4.x, max4.y), fmax(max4.z, max4.w));
            const float m_new = fmax(m[r], tile_max);
            if (m_new == -INFINITY) { /* nothing visible to this row yet */
                for (int j = 0; j < DEC_TILE_N; ++j)
                    s[r][j] = 0.0f;
                continue;
            }
            const float correction = exp2(m[r] - m_new);
            float8 sum8v = (float8)(0.0f);
            for (int j = 0; j < DEC_TILE_N; j += 8) {
                const float8 p = exp2(vload8(0, &s[r][j]) - m_new); /* masked keys: 0 */
                vstore8(p, 0, &s[r][j]);
                sum8v += p;
            }
            const float sum = sum8(sum8v);
            m[r] = m_new;
            l[r] = l[r] * correction + sum;
            for (int x = 0; x < DEC_VECS; ++x)
                acc[r][x] *= correction;
        }
        for (int j = 0; j < keys; ++j) {
            __global const in_t *v_row = v_head + (long)(key0 + j) * v_sn;
            for (int x = 0; x < DEC_VECS; ++x)
                kv[x] = LOAD_IN8(v_row, 8 * x);
            for (int r = 0; r < DEC_ROWS; ++r)
                for (int x = 0; x < DEC_VECS; ++x)
                    acc[r][x] = fma((float8)(s[r][j]), kv[x], acc[r][x]);
        }
    }

    for (int r = 0; r < r_count; ++r) {
        const long at = out_row[r] * max_splits + split;
        for (int x = 0; x < DEC_VECS; ++x)
            vstore8(acc[r][x], 0, part_acc + at * HEAD_DIM + 8 * x);
        part_ml[at * 2] = m[r];
        part_ml[at * 2 + 1] = l[r];
    }
}
#endif
