/* SPDX-License-Identifier: Apache-2.0 */
/* Flash-attention tile step shaped for SIMT GPUs without a matrix-unit path (AMD, Intel, or
 * NVIDIA with fp32 storage), shared by portable/dense_simt.cl and portable/attend_simt.cl;
 * built after common.cl.
 *
 * A work-group of 2 * SIMT_ROWS work-items owns SIMT_ROWS query rows, in groups of SIMT_RPW
 * rows shared by C = 2 SIMT_RPW work-items. Work-item (g, c), g = lid / C, c = lid % C, owns
 * rows g SIMT_RPW .. g SIMT_RPW + SIMT_RPW - 1 and, of each tile, the keys 4Ce + 4c + x (x < 4,
 * e < SIMT_TILE_N / 4C) of the logits and the head dimensions 4Ce + 4c + x of the output:
 * register tiles of SIMT_RPW x SIMT_TILE_N/C logits and SIMT_RPW x D/C accumulators, and the C
 * work-items of a row group read 16C contiguous bytes (no bank conflicts). Every float4 read
 * from local memory feeds 4 SIMT_RPW FMAs: with 8 rows a work-item asks local memory for a half
 * (P V) to three quarters (Q K^T) of the bytes per FMA that 4 rows do; on the H200 that measured
 * slower (bench/NOTES.md), so 8 is a tunable for GPUs whose local memory is the limit. Q^T, K^T
 * (then V, in the same buffer) and P^T live in local memory; the row maxima meet through a small
 * local array; each work-item keeps partial row sums over its own keys, added up once at the end.
 * P^T's float4 columns are XOR-swizzled by key (simt_pt_at) so the eight work-items of a row group,
 * which write the same rows of different keys, hit different banks. K and V pass through registers
 * on their way to local memory; with Q^T resident the next part's global loads are issued before
 * this part's FMAs (SIMT_PREFETCH).
 *
 * Tunables (speed only, never the result):
 *   SIMT_ROWS    query rows per work-group (32 or 64; 2 work-items per row)
 *   SIMT_TILE_N  keys per staged tile (32 or 64; a multiple of 8 SIMT_RPW)
 *   SIMT_RPW     rows per work-item (4 or 8; 8 needs SIMT_TILE_N and D / SIMT_DSPLIT multiples
 *                of 64)
 *   SIMT_DSPLIT  parts the head dimension is staged in (1, 2 where D % 64 == 0, 4 where
 *                D % 128 == 0): K^T and V pass through a buffer of 1/SIMT_DSPLIT the size in
 *                that many steps, so larger tiles fit in local memory (the host picks it when
 *                they would not otherwise)
 *   SIMT_UNROLL  iterations of the inner loops over the head dimension (Q K^T) and over the
 *                keys (P V) unrolled, 4 or 32 (on the H200, 32 unrolls them whole and gives the
 *                loads constant offsets: 5 % faster)
 *   SIMT_QSTAGE  1: Q^T stays in local memory for the whole walk (staged once); 2: Q^T is
 *                staged again with every tile, one part of the head dimension at a time next
 *                to K^T, in a buffer it shares with P^T (which is only live after the logits),
 *                so at D = 128 64 rows x 64 keys fit in 48 KiB at the cost of reading Q again
 *                (from cache) per tile
 */
#ifndef SIMT_ROWS
#define SIMT_ROWS 64 /* query rows per work-group */
#endif
#ifndef SIMT_TILE_N
#define SIMT_TILE_N 32 /* keys per staged tile */
#endif
#ifndef SIMT_DSPLIT
#define SIMT_DSPLIT 1 /* parts the head dimension is staged in */
#endif
#ifndef SIMT_QSTAGE
#define SIMT_QSTAGE 1 /* 1: Q^T resident; 2: Q^T staged with every tile */
#endif
#ifndef SIMT_RPW
#define SIMT_RPW 4 /* rows per work-item */
#endif
#ifndef SIMT_UNROLL
#define SIMT_UNROLL 4 /* inner-loop iterations unrolled */
#endif
#define SIMT_CPR (2 * SIMT_RPW)  /* work-items per row group */
#define SIMT_SPAN (4 * SIMT_CPR) /* keys (head dimensions) a row group covers per float4 step */
#define SIMT_R4 (SIMT_RPW / 4)   /* float4 of rows per work-item */
#define SIMT_DPART (HEAD_DIM / SIMT_DSPLIT) /* head dimensions staged at once */
#define SIMT_ITEMS (2 * SIMT_ROWS)
/* Local-memory float4 accesses at 16-byte-aligned addresses (every offset below is a multiple
 * of four floats in a 16-byte-aligned struct). vload4 promises only element alignment, so
 * compilers split it into four scalar loads: a quarter of the issue slots went to them. */
#define SIMT_LD4(p) (*(__local const float4 *)(p))
#define SIMT_ST4(p, x) (*(__local float4 *)(p) = (x))
#define SIMT_KV4 (SIMT_TILE_N / SIMT_SPAN) /* float4 of keys per work-item */
#define SIMT_DV4 (HEAD_DIM / SIMT_SPAN)    /* float4 of head dimensions per work-item */
#define SIMT_PV4 (SIMT_DV4 / SIMT_DSPLIT)  /* of them, in one part of the head dimension */
/* Row r's entry of a work-item's float4s of rows (r a constant once the loops unroll). */
#define SIMT_ROW_OF(v, r)                                                                          \
    (((r)&3) == 0   ? (v)[(r) >> 2].x                                                              \
     : ((r)&3) == 1 ? (v)[(r) >> 2].y                                                              \
     : ((r)&3) == 2 ? (v)[(r) >> 2].z                                                              \
                    : (v)[(r) >> 2].w)

#if SIMT_RPW != 4 && SIMT_RPW != 8
#error "SIMT_RPW must be 4 or 8"
#endif
#if SIMT_ROWS % 32 != 0 || SIMT_TILE_N % SIMT_SPAN != 0 || SIMT_DPART % SIMT_SPAN != 0 ||          \
    SIMT_DPART * SIMT_DSPLIT != HEAD_DIM
#error "SIMT_ROWS must be a multiple of 32, SIMT_TILE_N and HEAD_DIM / SIMT_DSPLIT of 8 SIMT_RPW"
#endif
#if SIMT_QSTAGE != 1 && SIMT_QSTAGE != 2
#error "SIMT_QSTAGE must be 1 or 2"
#endif

/* What one tile's keys are: row of each slot in its level's K and V (-1: padding), the
 * base-2 bias added to its logits and its last member (visible to row t iff last <= limit). */
typedef struct __attribute__((aligned(16))) simt_slots {
    int row[SIMT_TILE_N];
    int last[SIMT_TILE_N];
    float bias[SIMT_TILE_N];
} simt_slots;

/* Q^T (scaled to base-2 logits) and P^T (swizzled, simt_pt_at) in one array: side by side with
 * Q^T resident; with Q^T staged per tile, both at its start (this part of Q^T while the logits
 * are summed, then P^T). */
#if SIMT_QSTAGE == 1
#define SIMT_QT_FLOATS (HEAD_DIM * SIMT_ROWS)
#define SIMT_PT_OFFSET SIMT_QT_FLOATS
#define SIMT_QP_FLOATS (SIMT_QT_FLOATS + SIMT_TILE_N * SIMT_ROWS)
#else
#define SIMT_QT_FLOATS (SIMT_DPART * SIMT_ROWS)
#define SIMT_PT_OFFSET 0
#define SIMT_QP_FLOATS                                                                             \
    (SIMT_QT_FLOATS > SIMT_TILE_N * SIMT_ROWS ? SIMT_QT_FLOATS : SIMT_TILE_N * SIMT_ROWS)
#endif

/* The work-group's local memory. */
typedef struct __attribute__((aligned(16))) simt_shared {
    float qp[SIMT_QP_FLOATS];           /* Q^T, P^T: see above */
    float kv[SIMT_TILE_N * SIMT_DPART]; /* part of K^T [D/split][tile], then of V [tile][D/split] */
    float red[SIMT_ROWS * SIMT_CPR];    /* per-row partials of the work-items of a row group */
    simt_slots slots;
} simt_shared;

/* Per work-item state: its rows' accumulators (D / SIMT_CPR each), maxima and partial sums. */
typedef struct simt_state {
    float4 acc[SIMT_RPW][SIMT_DV4];
    float m[SIMT_RPW], l[SIMT_RPW];
    int limit[SIMT_RPW];
} simt_state;

/* The first of the work-item's rows in the work-group, and its column in its row group. */
inline int simt_first_row(void) {
    return ((int)get_local_id(0) / SIMT_CPR) * SIMT_RPW; /* int: 32-bit index arithmetic */
}
inline int simt_column(void) {
    return (int)get_local_id(0) % SIMT_CPR;
}

/* Where P^T holds key j's float4 of rows g4..g4+3: float4 column g4 / 4 of row j, XOR the key's
 * column group (j / 4) % 8, so the float4 stays within its group of eight (SIMT_ROWS is a
 * multiple of 32) and eight neighbouring work-items of a row group (keys 4c + x) write eight
 * different bank groups; readers of one key row still read distinct float4s. */
inline int simt_pt_at(int j, int g4) {
    return j * SIMT_ROWS + (g4 ^ (((j >> 2) & 7) << 2));
}

/* The queries each tile step needs when Q^T is staged with every tile (SIMT_QSTAGE 2): rows[r]
 * of q_head (-1: a padding row of zeros), scaled by q_scale. */
typedef struct simt_queries {
    __global const in_t *head;
    long step;
    __local const int *rows;
    float scale;
} simt_queries;

/* Q^T from rows[r] of q_head (-1: a padding row of zeros) when it stays resident (SIMT_QSTAGE
 * 1; with 2 the tile steps stage it); every work-item calls it. */
inline void simt_load_queries(__local simt_shared *sh, __global const in_t *q_head, long q_sn,
                              __local const int *rows, float q_scale) {
    if (SIMT_QSTAGE != 1)
        return;
    for (int idx = get_local_id(0); idx < SIMT_ROWS * HEAD_DIM / 4; idx += SIMT_ITEMS) {
        const int r = idx / (HEAD_DIM / 4), d = (idx - r * (HEAD_DIM / 4)) * 4;
        const float4 x =
            rows[r] >= 0 ? LOAD_IN4(q_head, (long)rows[r] * q_sn + d) * q_scale : (float4)(0.0f);
        sh->qp[(d + 0) * SIMT_ROWS + r] = x.x;
        sh->qp[(d + 1) * SIMT_ROWS + r] = x.y;
        sh->qp[(d + 2) * SIMT_ROWS + r] = x.z;
        sh->qp[(d + 3) * SIMT_ROWS + r] = x.w;
    }
}

/* limit0: the causal limit of the work-item's first row (keys up to it are visible). */
inline void simt_state_init(simt_state *st, int limit0, bool causal) {
    /* Every loop over the state is unrolled: an index the compiler cannot resolve puts the
     * whole state in (slow, off-chip) private memory, as clang -> ptxas showed (336-byte
     * stack frame) before these pragmas. */
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
#pragma unroll
        for (int e = 0; e < SIMT_DV4; ++e)
            st->acc[r][e] = (float4)(0.0f);
        st->m[r] = -INFINITY;
        st->l[r] = 0.0f;
        st->limit[r] = causal ? limit0 + r : INT_MAX - 1;
    }
}

/* O += P V of key j for one part of the head dimension. masked (a constant at every call):
 * the tile is masked, and key j adds nothing to row r when slots.last[j] > limit[r], not even
 * 0 * v (a NaN or infinite value would reach rows that do not see it). */
inline void simt_pv_key(__local simt_shared *sh, simt_state *st, const int j, const int c4,
                        const int g0, const int part, const bool masked) {
    float4 p[SIMT_R4];
#pragma unroll
    for (int i = 0; i < SIMT_R4; ++i)
        p[i] = SIMT_LD4(sh->qp + SIMT_PT_OFFSET + simt_pt_at(j, g0 + 4 * i));
    const int last = masked ? sh->slots.last[j] : 0;
#pragma unroll
    for (int e = 0; e < SIMT_PV4; ++e) {
        const float4 x = SIMT_LD4(sh->kv + j * SIMT_DPART + SIMT_SPAN * e + c4);
        const int a = part * SIMT_PV4 + e;
#pragma unroll
        for (int r = 0; r < SIMT_RPW; ++r)
            if (!masked || last <= st->limit[r])
                st->acc[r][a] = fma((float4)(SIMT_ROW_OF(p, r)), x, st->acc[r][a]);
    }
}

/* The float4 pieces of one part of a tile's keys (or values) each work-item stages: SIMT_TILE_N
 * x SIMT_DPART / 4 is a multiple of 256, SIMT_ITEMS 64 or 128. */
#define SIMT_PIECES (SIMT_TILE_N * SIMT_DPART / 4 / SIMT_ITEMS)
#if SIMT_PIECES * SIMT_ITEMS * 4 != SIMT_TILE_N * SIMT_DPART
#error "a part of a tile must split evenly over the work-items"
#endif
/* With Q^T resident and at most two pieces (8 registers) per work-item and part, the next part's
 * keys (values) are fetched into registers before this part's FMAs, so their global-memory
 * latency hides behind them (H200, fp32, 64 x 32 split 4: dense 88.5 -> 80.7 ms); larger parts,
 * or Q^T staged per tile, have no registers to spare for it (they would spill). */
#define SIMT_PREFETCH (SIMT_QSTAGE == 1 && SIMT_PIECES <= 2)

/* Piece idx of one part of the tile's keys (keys true) or values, from global memory; the
 * pieces are numbered so that consecutive work-items take consecutive keys of K^T (its local
 * writes do not conflict) and consecutive pieces of V's rows. */
inline float4 simt_fetch(__local simt_shared *sh, int idx, __global const in_t *base, long step,
                         int d0, bool keys) {
    const int j = keys ? idx % SIMT_TILE_N : idx / (SIMT_DPART / 4);
    const int d = keys ? (idx / SIMT_TILE_N) * 4 : (idx - j * (SIMT_DPART / 4)) * 4;
    const int row = sh->slots.row[j];
    return row >= 0 ? LOAD_IN4(base, (long)row * step + d0 + d) : (float4)(0.0f);
}

/* Stores piece idx where simt_fetch's numbering puts it: K^T [d][key], V [key][d]. */
inline void simt_put(__local simt_shared *sh, int idx, float4 x, bool keys) {
    if (keys) {
        const int d = (idx / SIMT_TILE_N) * 4, j = idx % SIMT_TILE_N;
        sh->kv[(d + 0) * SIMT_TILE_N + j] = x.x;
        sh->kv[(d + 1) * SIMT_TILE_N + j] = x.y;
        sh->kv[(d + 2) * SIMT_TILE_N + j] = x.z;
        sh->kv[(d + 3) * SIMT_TILE_N + j] = x.w;
    } else {
        const int j = idx / (SIMT_DPART / 4), d = (idx - j * (SIMT_DPART / 4)) * 4;
        SIMT_ST4(sh->kv + j * SIMT_DPART + d, x);
    }
}

/* Every work-item's pieces of one part (head dimensions d0..) into registers. */
inline void simt_fetch_part(__local simt_shared *sh, float4 *x, __global const in_t *base,
                            long step, int d0, bool keys) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int i = 0; i < SIMT_PIECES; ++i)
        x[i] = simt_fetch(sh, lid + i * SIMT_ITEMS, base, step, d0, keys);
}

/* One part into local memory: from the registers x when prefetching (fetched there earlier),
 * else straight from global memory one piece at a time (a loop the compiler keeps rolled, so
 * few registers hold pieces). */
inline void simt_stage_part(__local simt_shared *sh, const float4 *x, __global const in_t *base,
                            long step, int d0, bool keys) {
    const int lid = get_local_id(0);
    if (SIMT_PREFETCH) {
#pragma unroll
        for (int i = 0; i < SIMT_PIECES; ++i)
            simt_put(sh, lid + i * SIMT_ITEMS, x[i], keys);
    } else {
        for (int idx = lid; idx < SIMT_PIECES * SIMT_ITEMS; idx += SIMT_ITEMS)
            simt_put(sh, idx, simt_fetch(sh, idx, base, step, d0, keys), keys);
    }
}

/* One online-softmax step over the tile the slots describe (set by the caller, then a
 * barrier). Keys come from k_base + row * k_step, values from v_base + row * v_step. masked == 0
 * promises every slot is visible to every row. Ends with a barrier-free PV; the caller
 * barriers before it rewrites the slots. */
inline void simt_tile_step(__local simt_shared *sh, simt_state *st, const simt_queries *queries,
                           __global const in_t *k_base, long k_step, __global const in_t *v_base,
                           long v_step, bool masked) {
    const int lid = get_local_id(0);
    const int g0 = simt_first_row(), c = simt_column(), c4 = 4 * c;
    /* S = Q K^T for SIMT_RPW rows x 4 SIMT_KV4 keys, plus the bias, masked. */
    float4 s[SIMT_RPW][SIMT_KV4];
    float4 kx[SIMT_PIECES]; /* with SIMT_PREFETCH: the next part's keys */
#pragma unroll
    for (int e = 0; e < SIMT_KV4; ++e) {
        const float4 b = SIMT_LD4(sh->slots.bias + SIMT_SPAN * e + c4);
#pragma unroll
        for (int r = 0; r < SIMT_RPW; ++r)
            s[r][e] = b;
    }
#pragma unroll
    for (int part = 0; part < SIMT_DSPLIT; ++part) {
        const int d0 = part * SIMT_DPART;
        if (part > 0)
            barrier(CLK_LOCAL_MEM_FENCE); /* every work-item is done with the previous part */
        /* This part's keys (when prefetching, fetched before the previous part's FMAs). */
        if (SIMT_PREFETCH && part == 0)
            simt_fetch_part(sh, kx, k_base, k_step, 0, true);
        simt_stage_part(sh, kx, k_base, k_step, d0, true);
        /* This part of Q^T, the same way (consecutive work-items take consecutive rows). */
        if (SIMT_QSTAGE == 2)
            for (int idx = lid; idx < SIMT_ROWS * SIMT_DPART / 4; idx += SIMT_ITEMS) {
                const int d = (idx / SIMT_ROWS) * 4, r = idx - (d / 4) * SIMT_ROWS;
                const int row = queries->rows[r];
                const float4 x = row >= 0
                                     ? LOAD_IN4(queries->head, (long)row * queries->step + d0 + d) *
                                           queries->scale
                                     : (float4)(0.0f);
                sh->qp[(d + 0) * SIMT_ROWS + r] = x.x;
                sh->qp[(d + 1) * SIMT_ROWS + r] = x.y;
                sh->qp[(d + 2) * SIMT_ROWS + r] = x.z;
                sh->qp[(d + 3) * SIMT_ROWS + r] = x.w;
            }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (SIMT_PREFETCH && part + 1 < SIMT_DSPLIT)
            simt_fetch_part(sh, kx, k_base, k_step, d0 + SIMT_DPART, true);
        /* Row of Q^T for head dimension d0 + d: resident, or this part's staged copy. */
        const int q_row0 = SIMT_QSTAGE == 1 ? d0 : 0;
#pragma unroll SIMT_UNROLL
        for (int d = 0; d < SIMT_DPART; ++d) {
            float4 q[SIMT_R4];
#pragma unroll
            for (int i = 0; i < SIMT_R4; ++i)
                q[i] = SIMT_LD4(sh->qp + (q_row0 + d) * SIMT_ROWS + g0 + 4 * i);
#pragma unroll
            for (int e = 0; e < SIMT_KV4; ++e) {
                const float4 k = SIMT_LD4(sh->kv + d * SIMT_TILE_N + SIMT_SPAN * e + c4);
#pragma unroll
                for (int r = 0; r < SIMT_RPW; ++r)
                    s[r][e] = fma((float4)(SIMT_ROW_OF(q, r)), k, s[r][e]);
            }
        }
    }
    if (masked)
#pragma unroll
        for (int e = 0; e < SIMT_KV4; ++e) {
            const int4 last = (*(__local const int4 *)(sh->slots.last + SIMT_SPAN * e + c4));
#pragma unroll
            for (int r = 0; r < SIMT_RPW; ++r)
                s[r][e] = select(s[r][e], (float4)(-INFINITY), last > (int4)(st->limit[r]));
        }
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        float4 x = s[r][0];
#pragma unroll
        for (int e = 1; e < SIMT_KV4; ++e)
            x = fmax(x, s[r][e]);
        sh->red[(g0 + r) * SIMT_CPR + c] = fmax(fmax(x.x, x.y), fmax(x.z, x.w));
    }
    float4 vx[SIMT_PIECES]; /* with SIMT_PREFETCH: the next part's values */
    if (SIMT_PREFETCH)      /* the first part's, in flight through the softmax */
        simt_fetch_part(sh, vx, v_base, v_step, 0, false);
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Online softmax: every work-item of a row group derives the same maximum. */
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        float4 group_max = SIMT_LD4(sh->red + (g0 + r) * SIMT_CPR);
#pragma unroll
        for (int i = 4; i < SIMT_CPR; i += 4)
            group_max = fmax(group_max, SIMT_LD4(sh->red + (g0 + r) * SIMT_CPR + i));
        const float tile_max = fmax(fmax(group_max.x, group_max.y), fmax(group_max.z, group_max.w));
        const float m_new = fmax(st->m[r], tile_max);
        /* A row that has seen nothing yet subtracts 0, not -inf: exp2(-inf) = 0, no NaN. */
        const float m_use = m_new == -INFINITY ? 0.0f : m_new;
        const float correction = exp2(st->m[r] - m_use);
        float sum = st->l[r] * correction;
#pragma unroll
        for (int e = 0; e < SIMT_KV4; ++e) {
            s[r][e] = exp2(s[r][e] - m_use);
            sum += (s[r][e].x + s[r][e].y) + (s[r][e].z + s[r][e].w);
        }
        st->l[r] = sum;
        st->m[r] = m_new;
#pragma unroll
        for (int e = 0; e < SIMT_DV4; ++e)
            st->acc[r][e] *= correction;
    }
#pragma unroll
    for (int e = 0; e < SIMT_KV4; ++e) {
        const int j = SIMT_SPAN * e + c4;
#pragma unroll
        for (int i = 0; i < SIMT_R4; ++i) {
            const int r = 4 * i;
            SIMT_ST4(sh->qp + SIMT_PT_OFFSET + simt_pt_at(j + 0, g0 + r),
                     (float4)(s[r][e].x, s[r + 1][e].x, s[r + 2][e].x, s[r + 3][e].x));
            SIMT_ST4(sh->qp + SIMT_PT_OFFSET + simt_pt_at(j + 1, g0 + r),
                     (float4)(s[r][e].y, s[r + 1][e].y, s[r + 2][e].y, s[r + 3][e].y));
            SIMT_ST4(sh->qp + SIMT_PT_OFFSET + simt_pt_at(j + 2, g0 + r),
                     (float4)(s[r][e].z, s[r + 1][e].z, s[r + 2][e].z, s[r + 3][e].z));
            SIMT_ST4(sh->qp + SIMT_PT_OFFSET + simt_pt_at(j + 3, g0 + r),
                     (float4)(s[r][e].w, s[r + 1][e].w, s[r + 2][e].w, s[r + 3][e].w));
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* V into the buffer K^T used, row by row, one part of the head dimension at a time; each
     * part feeds the accumulators of its head dimensions (32e + c4 + x, e in the part). */
#pragma unroll
    for (int part = 0; part < SIMT_DSPLIT; ++part) {
        const int d0 = part * SIMT_DPART;
        if (part > 0)
            barrier(CLK_LOCAL_MEM_FENCE); /* every work-item is done with the previous part */
        simt_stage_part(sh, vx, v_base, v_step, d0, false);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (SIMT_PREFETCH && part + 1 < SIMT_DSPLIT)
            simt_fetch_part(sh, vx, v_base, v_step, d0 + SIMT_DPART, false);

        /* O += P V for SIMT_RPW rows x the part's SIMT_PV4 float4s of head dimensions; only
         * masked tiles test each key's visibility (the loop stays rolled there). */
        if (masked) {
            for (int j = 0; j < SIMT_TILE_N; ++j)
                simt_pv_key(sh, st, j, c4, g0, part, true);
            continue;
        }
#pragma unroll SIMT_UNROLL
        for (int j = 0; j < SIMT_TILE_N; ++j)
            simt_pv_key(sh, st, j, c4, g0, part, false);
    }
}

/* The row sums over the work-items of each row group, then row r of the group (NULL: a padding
 * row) gets acc / l, or zeros for a row that saw nothing (a NaN l comes with a NaN accumulator,
 * so a NaN row stays NaN). Every work-item calls it. */
inline void simt_store(__local simt_shared *sh, simt_state *st,
                       __global out_t *const dst[SIMT_RPW]) {
    const int g0 = simt_first_row(), c = simt_column(), c4 = 4 * c;
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r)
        sh->red[(g0 + r) * SIMT_CPR + c] = st->l[r];
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int r = 0; r < SIMT_RPW; ++r) {
        float4 group_sum = SIMT_LD4(sh->red + (g0 + r) * SIMT_CPR);
#pragma unroll
        for (int i = 4; i < SIMT_CPR; i += 4)
            group_sum += SIMT_LD4(sh->red + (g0 + r) * SIMT_CPR + i);
        const float sum = (group_sum.x + group_sum.y) + (group_sum.z + group_sum.w);
        const float inv_l = sum > 0.0f ? 1.0f / sum : 0.0f;
        if (!dst[r])
            continue;
#pragma unroll
        for (int e = 0; e < SIMT_DV4; ++e) {
            const float4 x = st->acc[r][e] * inv_l;
            const int d = SIMT_SPAN * e + c4;
            STORE_OUT(dst[r], d + 0, x.x);
            STORE_OUT(dst[r], d + 1, x.y);
            STORE_OUT(dst[r], d + 2, x.z);
            STORE_OUT(dst[r], d + 3, x.w);
        }
    }
}
