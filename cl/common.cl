/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by every clpsa kernel file: the host builds each program from this file followed by
 * the kernel file, so storage conversions and the online-softmax tile step exist once.
 *
 * Compile-time parameters (set by the host; the defaults let the file compile on its own):
 *   HEAD_DIM   D, the head dimension
 *   IN_TYPE    storage of Q, K, V and the K/V pyramid: 1 fp32, 2 fp16, 3 bf16
 *   OUT_TYPE   storage of the output, same codes
 *   TILE_N     keys (or pooled tokens) staged in local memory per tile
 */
#ifndef HEAD_DIM
#define HEAD_DIM 64 /* head dimension D */
#endif
#ifndef IN_TYPE
#define IN_TYPE 1 /* storage of Q, K, V */
#endif
#ifndef OUT_TYPE
#define OUT_TYPE 1 /* storage of the output */
#endif
#ifndef TILE_N
#define TILE_N 32 /* keys per local-memory tile */
#endif

/* fp16 goes through vload_half/vstore_half (core OpenCL, no cl_khr_fp16 needed); bf16 is the
 * high half of an fp32 word. */
#if IN_TYPE == 1
typedef float in_t;
#define LOAD_IN(p, i) ((p)[i])
#define LOAD_IN4(p, i) vload4(0, (p) + (i))
#define STORE_IN(p, i, x) ((p)[i] = (x))
#elif IN_TYPE == 2
typedef half in_t;
#define LOAD_IN(p, i) vload_half((i), (p))
#define LOAD_IN4(p, i) vload_half4(0, (p) + (i))
#define STORE_IN(p, i, x) vstore_half_rte((x), (i), (p))
#elif IN_TYPE == 3
typedef ushort in_t;
#define LOAD_IN(p, i) as_float((uint)(p)[i] << 16)
#define LOAD_IN4(p, i) as_float4(convert_uint4(vload4(0, (p) + (i))) << 16)
#define STORE_IN(p, i, x) ((p)[i] = float_to_bf16(x))
#else
#error "IN_TYPE must be 1 (fp32), 2 (fp16) or 3 (bf16)"
#endif

#if OUT_TYPE == 1
typedef float out_t;
#define STORE_OUT(p, i, x) ((p)[i] = (x))
#elif OUT_TYPE == 2
typedef half out_t;
#define STORE_OUT(p, i, x) vstore_half_rte((x), (i), (p))
#elif OUT_TYPE == 3
typedef ushort out_t;
#define STORE_OUT(p, i, x) ((p)[i] = float_to_bf16(x))
#else
#error "OUT_TYPE must be 1 (fp32), 2 (fp16) or 3 (bf16)"
#endif

#define LOG2E 1.4426950408889634f

/* Token orderings (clpsa_ordering): kernels index the reordered sequence by position; with
 * PERMUTED set, position t lives at row perm[t] of the caller's tensors (gather on load,
 * scatter on store), so no reordered copy of Q, K, V or the output is ever made. */
#ifndef PERMUTED
#define PERMUTED 0 /* 1: tokens are gathered through perm */
#endif
#if PERMUTED
#define TOKEN(perm, t) ((perm)[t])
#else
#define TOKEN(perm, t) (t)
#endif

/* Where level `level` of a PSA work list (f = 2^level keys per pooled token) reads its keys
 * and values: the caller's K, V of the head at level 0 (row stride k_sn, v_sn), else the
 * head's part of the pyramid (levels 2, 4, 8 back to back, np2 + np4 + np8 rows of D), and
 * how many pooled tokens the level has. */
typedef struct psa_level {
    __global const in_t *k, *v;
    long k_step, v_step;
    int pooled;
} psa_level;

inline psa_level psa_level_rows(int level, __global const in_t *k_head, __global const in_t *v_head,
                                long k_sn, long v_sn, __global const in_t *k_pyr,
                                __global const in_t *v_pyr, long pyramid_head, int seq_k, int np2,
                                int np4, int np8) {
    psa_level out;
    const long offset = pyramid_head + (level == 1 ? 0 : level == 2 ? np2 : np2 + np4);
    out.k = level == 0 ? k_head : k_pyr + offset * HEAD_DIM;
    out.v = level == 0 ? v_head : v_pyr + offset * HEAD_DIM;
    out.k_step = level == 0 ? k_sn : HEAD_DIM;
    out.v_step = level == 0 ? v_sn : HEAD_DIM;
    out.pooled = level == 0 ? seq_k : level == 1 ? np2 : level == 2 ? np4 : np8;
    return out;
}

/* How many slots (pooled tokens, bn/f per block) of one level's run of the work list a
 * work-group whose rows see keys up to last_key has to visit. The run's blocks ascend, so the
 * blocks that start after last_key (wholly in the group's future: the work list is cut at the
 * query block's last row, a work-group may own fewer rows) are a suffix, and so are the pooled
 * tokens of the last visible block whose last member is in the future. The slots left out
 * would all be masked; leaving them out is what makes causal cost half. */
inline int psa_visible_slots(__global const int *blocks, int count, int f, int per_block,
                             int block_k, int last_key, int seq_k) {
    int n = count;
    while (n > 0 && blocks[n - 1] * block_k > last_key)
        --n;
    if (n == 0)
        return 0;
    if (last_key >= seq_k - 1)
        return n * per_block;
    /* Pooled token p is visible iff p*f + f - 1 <= last_key here (last_key < seq_k - 1). */
    const int in_last = min((last_key + 1 - blocks[n - 1] * block_k) / f, per_block);
    return (n - 1) * per_block + in_last;
}

/* Round to nearest even, NaN kept quiet: the same rule as the host's clpsa_convert_from_float. */
inline ushort float_to_bf16(float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

/* dot(a, b) over HEAD_DIM (a multiple of 8) with float4 arithmetic: explicit vectors keep
 * CPUs (PoCL) on SIMD instructions and give GPUs 16-byte local-memory loads. */
inline float dot_private_local(const float *a, __local const float *b) {
    float4 sum = (float4)(0.0f);
    for (int d = 0; d < HEAD_DIM; d += 4)
        sum = fma(vload4(0, a + d), vload4(0, b + d), sum);
    return (sum.x + sum.y) + (sum.z + sum.w);
}

inline float dot_private_global(const float *a, __global const in_t *b) {
    float4 sum = (float4)(0.0f);
    for (int d = 0; d < HEAD_DIM; d += 4)
        sum = fma(vload4(0, a + d), LOAD_IN4(b, d), sum);
    return (sum.x + sum.y) + (sum.z + sum.w);
}

/* One online-softmax step of one query row over a staged tile. Logits are in base 2:
 * x = q_scaled . k + bias, with q pre-multiplied by scale * log2(e) and bias = log2(cnt), so
 * exp2(x) equals exp(scale q.k) * cnt. valid[j] == 0 masks key j: a masked key never touches
 * the row, whatever its key or value holds. A tile with no valid key leaves the state unchanged
 * (so a row that sees nothing keeps l = 0 and writes zeros).
 * Non-finite values follow IEEE arithmetic (docs/api.md, "NaN and infinity"): fmax ignores a
 * NaN logit, but its exp2 is NaN and poisons l and acc; a +inf logit makes m = +inf and its
 * exp2(inf - inf) NaN; a -inf logit weighs 0. The maximum used for the exponentials is 0 while
 * every logit seen is -inf, so such a row keeps l = 0 (zeros) instead of exp2(-inf + inf). */
inline void online_softmax_tile(const float *q_reg, float *acc, float *m, float *l,
                                __local const float (*k_tile)[HEAD_DIM],
                                __local const float (*v_tile)[HEAD_DIM], __local const float *bias,
                                const uchar *valid) {
    float s[TILE_N];
    float tile_max = -INFINITY;
    bool any_valid = false;
    for (int j = 0; j < TILE_N; ++j) {
        const float dot = bias[j] + dot_private_local(q_reg, k_tile[j]);
        s[j] = valid[j] ? dot : -INFINITY;
        tile_max = fmax(tile_max, s[j]);
        any_valid |= valid[j] != 0;
    }
    if (!any_valid)
        return;
    const float m_new = fmax(*m, tile_max);
    const float m_use = m_new == -INFINITY ? 0.0f : m_new;
    const float correction = exp2(*m - m_use); /* m = -inf before the first tile: 0 */
    *l *= correction;
    for (int d = 0; d < HEAD_DIM; ++d)
        acc[d] *= correction;
    for (int j = 0; j < TILE_N; ++j) {
        if (!valid[j])
            continue; /* not even 0 * v: a masked key's NaN value must not reach the row */
        const float p = exp2(s[j] - m_use);
        *l += p;
        for (int d = 0; d < HEAD_DIM; d += 4)
            vstore4(fma((float4)(p), vload4(0, &v_tile[j][d]), vload4(0, acc + d)), 0, acc + d);
    }
    *m = m_new;
}

/* Writes acc / l, or zeros for a row that saw nothing. l is NaN only when acc is NaN too (a NaN
 * weight reaches every element), so the row stays NaN. */
inline void store_row(__global out_t *o_row, const float *acc, float l) {
    const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
    for (int d = 0; d < HEAD_DIM; ++d)
        STORE_OUT(o_row, d, acc[d] * inv_l);
}

/* ---- Budget mode's measurement: the step every variant ends with ---- */

/* Values per (sampled row, key block) in the measurement's scratch: the block's logit maximum
 * (base 2), then its full sum and its pooled sums at levels 2, 4, 8 relative to that maximum. */
#define BUDGET_CELL 5

/* Of `rows` sampled rows, those that see some key (causal with Nk < Nq: not all do); rows
 * that see nothing do not enter the mean. */
inline int budget_rows_seen(__local const float *row_total, const int rows) {
    int seen = 0;
    for (int r = 0; r < rows; ++r)
        seen += row_total[r] > 0.0f;
    return seen;
}

/* One key block's mass (its S entry: the mean over the seen rows of its share of the row's
 * softmax) and its pooling loss at levels 2, 4, 8 (1 - kept mass / mass), from the block's
 * `rows` cells and the rows' maxima and totals. rows = 0: a block no row sees (0, 0). */
inline void budget_fold_block(__global const float *cell, __local const float *row_max,
                              __local const float *row_total, const int rows, const int seen,
                              __global float *score, __global float *block_loss) {
    float mass = 0.0f, kept[3] = {0.0f, 0.0f, 0.0f};
    for (int r = 0; r < rows; ++r) {
        if (!(row_total[r] > 0.0f) || cell[r * BUDGET_CELL] == -INFINITY)
            continue;
        const float to_row = exp2(cell[r * BUDGET_CELL] - row_max[r]) / row_total[r];
        mass += cell[r * BUDGET_CELL + 1] * to_row;
        for (int l = 0; l < 3; ++l)
            kept[l] += cell[r * BUDGET_CELL + 2 + l] * to_row;
    }
    *score = seen > 0 ? mass / (float)seen : 0.0f;
    for (int l = 0; l < 3; ++l)
        block_loss[l] = mass > 0.0f ? clamp(1.0f - kept[l] / mass, 0.0f, 1.0f) : 0.0f;
}
