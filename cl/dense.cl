/* Dense attention, flash style: one work-group per (BLOCK_M query rows, batch, head); each
 * work-item owns one query row (its scaled query and fp32 accumulator in private memory), the
 * group stages BLOCK_N keys and values at a time in local memory, and an online softmax
 * rescales the accumulator once per tile. This is the portable kernel, and the dense baseline
 * that PSA is measured against.
 *
 * Compile-time parameters (set by the host, defaults let the file compile on its own):
 *   HEAD_DIM   D, the head dimension
 *   IN_TYPE    storage of Q, K, V: 1 fp32, 2 fp16, 3 bf16
 *   OUT_TYPE   storage of the output, same codes
 * Tunables (speed only, never the result):
 *   BLOCK_M    query rows per work-group (= work-group size)
 *   BLOCK_N    keys staged per tile
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
#ifndef BLOCK_M
#define BLOCK_M 32 /* query rows per work-group */
#endif
#ifndef BLOCK_N
#define BLOCK_N 32 /* keys per local-memory tile */
#endif

/* ---- storage types: fp16 goes through vload_half/vstore_half (core OpenCL, no cl_khr_fp16
 * needed); bf16 is the high half of an fp32 word. ---- */
#if IN_TYPE == 1
typedef float in_t;
#define LOAD_IN(p, i) ((p)[i])
#elif IN_TYPE == 2
typedef half in_t;
#define LOAD_IN(p, i) vload_half((i), (p))
#elif IN_TYPE == 3
typedef ushort in_t;
#define LOAD_IN(p, i) as_float((uint)(p)[i] << 16)
#else
#error "IN_TYPE must be 1 (fp32), 2 (fp16) or 3 (bf16)"
#endif

/* Round to nearest even, NaN kept quiet: the same rule as the host's clpsa_convert_from_float. */
inline ushort float_to_bf16(float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
}

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

/* Strides are in elements; the D stride is 1 (the host checks it). */
__kernel __attribute__((reqd_work_group_size(BLOCK_M, 1, 1))) void
dense_attention(__global const in_t *q, __global const in_t *k, __global const in_t *v,
                __global out_t *out, const int heads_q, const int group, const int seq_q,
                const int seq_k, const float scale, const int causal, const long q_sb,
                const long q_sh, const long q_sn, const long k_sb, const long k_sh,
                const long k_sn, const long v_sb, const long v_sh, const long v_sn,
                const long o_sb, const long o_sh, const long o_sn) {
    __local float k_tile[BLOCK_N][HEAD_DIM];
    __local float v_tile[BLOCK_N][HEAD_DIM];

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

    /* Logits in base 2: exp(x) = exp2(x·log2 e), folded into the query once. */
    const float q_scale = scale * LOG2E;
    float q_reg[HEAD_DIM];
    float acc[HEAD_DIM];
    for (int d = 0; d < HEAD_DIM; ++d) {
        q_reg[d] = row_valid ? LOAD_IN(q_row, d) * q_scale : 0.0f;
        acc[d] = 0.0f;
    }

    /* Bottom-right aligned causal mask: key c is visible to row t iff c <= t + (Nk - Nq). */
    const int shift = seq_k - seq_q;
    const int row_end = causal ? clamp(t + shift + 1, 0, seq_k) : seq_k;
    const int group_end =
        causal ? clamp(min(row0 + BLOCK_M, seq_q) - 1 + shift + 1, 0, seq_k) : seq_k;

    float m = -INFINITY;
    float l = 0.0f;
    for (int key0 = 0; key0 < group_end; key0 += BLOCK_N) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < BLOCK_N * HEAD_DIM; idx += BLOCK_M) {
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

        const int limit = clamp(row_end - key0, 0, BLOCK_N);
        if (limit == 0)
            continue;
        float s[BLOCK_N];
        float tile_max = -INFINITY;
        for (int j = 0; j < BLOCK_N; ++j) {
            float dot = 0.0f;
            for (int d = 0; d < HEAD_DIM; ++d)
                dot = fma(q_reg[d], k_tile[j][d], dot);
            s[j] = j < limit ? dot : -INFINITY;
            tile_max = fmax(tile_max, s[j]);
        }
        const float m_new = fmax(m, tile_max);
        const float correction = exp2(m - m_new); /* m = -inf on the first tile: 0 */
        l *= correction;
        for (int d = 0; d < HEAD_DIM; ++d)
            acc[d] *= correction;
        for (int j = 0; j < BLOCK_N; ++j) {
            const float p = exp2(s[j] - m_new); /* masked keys: exp2(-inf) = 0 */
            l += p;
            for (int d = 0; d < HEAD_DIM; ++d)
                acc[d] = fma(p, v_tile[j][d], acc[d]);
        }
        m = m_new;
    }

    if (!row_valid)
        return;
    /* A row that sees no key (causal with Nq > Nk) writes zeros, never NaN. */
    const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
    __global out_t *o_row = out + b * o_sb + h * o_sh + (long)t * o_sn;
    for (int d = 0; d < HEAD_DIM; ++d)
        STORE_OUT(o_row, d, acc[d] * inv_l);
}
