/* SPDX-License-Identifier: Apache-2.0 */
/* Flash attention on the tensor cores (mma.sync m16n8k16, fp32 accumulation) for NVIDIA
 * devices of compute capability 8.0 and newer; built after common.cl and nv_mma.cl. One file
 * gives two kernels with the portable kernels' signatures:
 *   NV_DENSE = 1: dense_attention, the dense baseline;
 *   NV_DENSE = 0: psa_attend, multi-level attention over the PSA work list (pooled levels with
 *                 their log2(cnt) bias, token orderings gathered through perm, causal).
 *
 * A work-group is NV_WARPS warps; each warp owns 16 query rows, keeps its Q fragments, the
 * output accumulator and the online-softmax state in registers, and walks the key tiles that
 * the work-group stages in local memory with cp.async: the values of a tile load while its
 * scores are computed, the keys of the next tile while its values are applied. A tile never
 * mixes levels (the work list is grouped by level), so each tile has one base pointer.
 * Tunables (speed only, never the result):
 *   NV_WARPS   warps per work-group (16 rows each)
 *   NV_TILE_N  keys (or pooled tokens) per local-memory tile, a multiple of 16
 * NV_WGMMA = 1 (the nvidia-wgmma variant, compute capability 9.0, built after nv_wgmma.cl):
 * the same rows per warp and the same fragments, but each warpgroup of four warps multiplies
 * with wgmma, which reads K and V straight from local memory (no ldmatrix), so NV_WARPS is a
 * multiple of 4 and the tiles are stored in wgmma's core-matrix layout instead of padded rows.
 * Needs HEAD_DIM a multiple of 32, fp16 or bf16 storage, row strides a multiple of 8 elements
 * (16-byte rows for cp.async); the host checks all three before choosing this variant. */
#ifndef NV_WARPS
#define NV_WARPS 4 /* warps per work-group */
#endif
#ifndef NV_TILE_N
#define NV_TILE_N 64 /* keys per tile */
#endif
#ifndef NV_STAGES
#define NV_STAGES 1 /* local-memory buffers of keys and of values (1 or 2) */
#endif
#ifndef NV_DENSE
#define NV_DENSE 0 /* 1: the dense kernel, 0: the PSA attend kernel */
#endif
#ifndef NV_WGMMA
#define NV_WGMMA 0 /* 1: wgmma (nv_wgmma.cl) instead of mma.sync */
#endif
#ifndef NV_HIDDEN_GUARD
#define NV_HIDDEN_GUARD 1 /* 0: no causal mask, so stage_hidden_values is never needed */
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif

#define NV_ROWS (16 * NV_WARPS)
#define NV_THREADS (32 * NV_WARPS)
#if NV_WGMMA
/* Core matrices: row j's 16-byte piece p sits at (j / 8) * 8 HEAD_DIM + p * 64 + (j % 8) * 8
 * elements, so eight rows' pieces are one 128-byte core matrix; K and V share the layout
 * (wgmma reads K K-major, V transposed). A tile holds NV_TILE_N rows of HEAD_DIM. */
#define NV_PITCH HEAD_DIM
#define NV_TILE_OFFSET(j, piece) (((j) >> 3) * 8 * HEAD_DIM + (piece)*64 + ((j)&7) * 8)
#if NV_WARPS % 4 != 0 || (HEAD_DIM != 64 && HEAD_DIM != 128) ||                                    \
    (NV_TILE_N != 32 && NV_TILE_N != 64 && NV_TILE_N != 128)
#error "nvidia-wgmma needs NV_WARPS % 4 == 0, HEAD_DIM 64 or 128, NV_TILE_N 32, 64 or 128"
#endif
#else
#define NV_PITCH (HEAD_DIM + 8) /* 16 bytes of padding: ldmatrix rows fall in distinct banks */
#define NV_TILE_OFFSET(j, piece) ((j)*NV_PITCH + (piece)*8)
#endif
#define NV_CHUNKS (HEAD_DIM / 8) /* 16-byte pieces of a row */
#define NV_S_TILES (NV_TILE_N / 8)
#define NV_O_TILES (HEAD_DIM / 8)
#define NV_GROUPS_PER_BLOCK ((BLOCK_Q + NV_ROWS - 1) / NV_ROWS)
#define NV_NEVER 0x7fffffff /* the last member of an empty slot: visible to no row */

#if HEAD_DIM % 32 != 0 || NV_TILE_N % 16 != 0
#error "nv_flash.cl needs HEAD_DIM % 32 == 0 and NV_TILE_N % 16 == 0"
#endif

typedef __global const ushort *rows16_t; /* K or V rows as raw 16-bit storage */

/* Where the tiles come from: level by level, tokens[level] slots each (a slot is a key or a
 * pooled token), NV_TILE_N slots a tile. */
typedef struct tile_cursor {
    int level, slot0, listed; /* listed: work-list entries of the levels before `level` */
    int4 count, tokens;       /* per level; vectors, not arrays, so they stay in registers */
} tile_cursor;

/* v[i] by selects: an array or vector indexed at run time would live in local memory. */
NV_INLINE int pick(const int4 v, const int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

NV_INLINE void cursor_skip_empty(tile_cursor *c) {
    while (c->level < 4 && c->slot0 >= pick(c->tokens, c->level)) {
        c->listed += pick(c->count, c->level);
        ++c->level;
        c->slot0 = 0;
    }
}

/* One tile's slots, written by work-items 0..NV_TILE_N-1: the row of each slot in its level's
 * K/V storage (-1: nothing there), its log2(cnt) bias and its last member's position. */
NV_INLINE void describe_slot(const tile_cursor *c, const int s, __global const int *row_list,
                             __global const int *perm, const int seq_k, const int np2,
                             const int np4, const int np8, __local int *row_of, __local float *bias,
                             __local int *last) {
    const int slot = c->slot0 + s;
    const int level = c->level;
    int p = -1;
#if NV_DENSE
    if (slot < c->tokens.x)
        p = slot;
    row_of[s] = p;
#else
    const int f = 1 << level;
    const int per_block = BLOCK_K / f;
    if (slot < pick(c->tokens, level)) {
        const int block = row_list[c->listed + slot / per_block];
        p = block * per_block + slot % per_block;
        const int pooled = level == 0 ? seq_k : level == 1 ? np2 : level == 2 ? np4 : np8;
        if (p >= pooled)
            p = -1; /* past the last pooled token of the sequence */
    }
    /* Level 1 reads the caller's K, V through the ordering; the pyramid is in sequence order. */
    row_of[s] = p < 0 ? -1 : level == 0 ? TOKEN(perm, p) : p;
#endif
#if NV_DENSE
    bias[s] = 0.0f;
    last[s] = p >= 0 ? p : NV_NEVER;
#else
    bias[s] = p >= 0 ? log2((float)min(f, seq_k - p * f)) : 0.0f;
    last[s] = p >= 0 ? min(p * f + f, seq_k) - 1 : NV_NEVER;
#endif
}

NV_INLINE void describe_tile(const tile_cursor *c, __global const int *row_list,
                             __global const int *perm, const int seq_k, const int np2,
                             const int np4, const int np8, __local int *row_of, __local float *bias,
                             __local int *last) {
    for (int s = get_local_id(0); s < NV_TILE_N; s += NV_THREADS)
        describe_slot(c, s, row_list, perm, seq_k, np2, np4, np8, row_of, bias, last);
}

/* Which row j and 16-byte piece of a tile the copy number c moves (c = work-item + k
 * NV_THREADS, so a work-item knows which pieces it copied itself). */
NV_INLINE int2 tile_piece(const int c) {
#if NV_WGMMA
    /* Neighbouring work-items take neighbouring rows of one piece: their 16-byte writes
     * fill one core matrix, free of bank conflicts. */
    return (int2)((c / (8 * NV_CHUNKS)) * 8 + (c & 7), (c / 8) % NV_CHUNKS);
#else
    return (int2)(c / NV_CHUNKS, c % NV_CHUNKS);
#endif
}

#if IN_TYPE == 2
#define NV_EXPONENT_MASK 0x7c00u /* fp16: all-ones exponent = inf or NaN, */
#define NV_MANTISSA_MASK 0x03ffu /* and a NaN when the mantissa is not 0 */
#else
#define NV_EXPONENT_MASK 0x7f80u /* bf16 */
#define NV_MANTISSA_MASK 0x007fu
#endif

/* first_bad[kind][d]: the earliest last member of the keys, hidden from some row of the
 * work-group, whose value in column d was NaN (kind 0), +inf (1) or -inf (2) and was zeroed. */
NV_INLINE void clear_hidden_nonfinite(__local int (*first_bad)[HEAD_DIM]) {
    for (int i = get_local_id(0); i < 3 * HEAD_DIM; i += NV_THREADS)
        first_bad[i / HEAD_DIM][i % HEAD_DIM] = NV_NEVER;
}

/* One piece of values of a key hidden from some row of the work-group (its last member past
 * vis_min, the work-group's first row), copied through registers instead of cp.async: NaN and
 * infinite values are zeroed, because the matrix instructions multiply every value of a tile by
 * every row's weight (0 for a hidden key) and 0 * NaN would reach the rows the key is hidden
 * from, and recorded in first_bad, so add_hidden_nonfinite gives them back to the rows that
 * see the key. */
NV_INLINE void stage_hidden_values(__local ushort *dst, rows16_t src, const int piece,
                                   const int last_member, __local int (*first_bad)[HEAD_DIM]) {
    for (int x = 0; x < 8; ++x) {
        const uint u = src[x];
        if ((u & NV_EXPONENT_MASK) == NV_EXPONENT_MASK) {
            const int kind = (u & NV_MANTISSA_MASK) != 0 ? 0 : (u & 0x8000u) == 0 ? 1 : 2;
            atomic_min(&first_bad[kind][piece * 8 + x], last_member);
            dst[x] = 0;
        } else {
            dst[x] = (ushort)u;
        }
    }
}

/* Starts the copy of one tile's rows into dst (zeros for empty slots); with `guard`
 * (values under a causal mask), the rows of keys hidden from some row go through
 * stage_hidden_values. */
NV_INLINE void stage_tile(__local ushort *dst, rows16_t base, const long step,
                          __local const int *row_of, const bool guard, __local const int *last,
                          const int vis_min, __local int (*first_bad)[HEAD_DIM]) {
    for (int c = get_local_id(0); c < NV_TILE_N * NV_CHUNKS; c += NV_THREADS) {
        const int2 at = tile_piece(c);
        const int j = at.x, piece = at.y;
        const int row = row_of[j];
        rows16_t src = row >= 0 ? base + (long)row * step + piece * 8 : base;
        if (guard && row >= 0 && last[j] > vis_min)
            stage_hidden_values(dst + NV_TILE_OFFSET(j, piece), src, piece, last[j], first_bad);
        else
            copy16_async(dst + NV_TILE_OFFSET(j, piece), src, row >= 0 ? 16 : 0);
    }
}

/* A row's Q fragment piece: two consecutive 16-bit values as one register. */
NV_INLINE uint load_pair(rows16_t row, const int d, const bool valid) {
    return valid ? *(__global const uint *)(row + d) : 0u;
}

NV_INLINE void store_fragment_row(__global out_t *o_row, const float4 *o, const int c,
                                  const bool upper, const float inv_l) {
#pragma unroll
    for (int dt = 0; dt < NV_O_TILES; ++dt) {
        const int d = dt * 8 + 2 * c;
        STORE_OUT(o_row, d, (upper ? o[dt].z : o[dt].x) * inv_l);
        STORE_OUT(o_row, d + 1, (upper ? o[dt].w : o[dt].y) * inv_l);
    }
}

/* What the zeroed values of column d would have made of a row that sees up to position vis:
 * NaN, +-inf (NaN when both signs meet), or 0 when it sees none of them. */
NV_INLINE float hidden_nonfinite_term(__local const int (*first_bad)[HEAD_DIM], const int d,
                                      const int vis) {
    if (first_bad[0][d] <= vis)
        return NAN;
    float term = 0.0f;
    if (first_bad[1][d] <= vis)
        term += INFINITY;
    if (first_bad[2][d] <= vis)
        term += -INFINITY;
    return term;
}

/* Adds to a row that sees up to position vis the terms of the zeroed values it sees. */
NV_INLINE void add_hidden_nonfinite(float4 *o, const bool upper, const int vis,
                                    __local const int (*first_bad)[HEAD_DIM]) {
    const int c = get_local_id(0) & 3;
#pragma unroll
    for (int dt = 0; dt < NV_O_TILES; ++dt) {
        const int d = dt * 8 + 2 * c;
        if (upper) {
            o[dt].z += hidden_nonfinite_term(first_bad, d, vis);
            o[dt].w += hidden_nonfinite_term(first_bad, d + 1, vis);
        } else {
            o[dt].x += hidden_nonfinite_term(first_bad, d, vis);
            o[dt].y += hidden_nonfinite_term(first_bad, d + 1, vis);
        }
    }
}

/* The online-softmax state of this lane's two rows (fragment rows g and g + 8). */
typedef struct row_state {
    float m_a, m_b, l_a, l_b;
} row_state;

#if NV_WGMMA
#define NV_KMAJOR_MMA(n) wg_mma_kmajor_n##n
#define NV_KMAJOR(n) NV_KMAJOR_MMA(n)
#define NV_MNMAJOR_MMA(n) wg_mma_mnmajor_n##n
#define NV_MNMAJOR(n) NV_MNMAJOR_MMA(n)
/* The waits that name the score (S) and output (O) accumulators, in float4s. */
#if NV_TILE_N == 32
#define NV_WAIT_S wg_wait_4
#elif NV_TILE_N == 64
#define NV_WAIT_S wg_wait_8
#else
#define NV_WAIT_S wg_wait_16
#endif
#if HEAD_DIM == 64
#define NV_WAIT_O wg_wait_8
#else
#define NV_WAIT_O wg_wait_16
#endif

/* S = Q K^T on one staged tile of keys: HEAD_DIM / 16 wgmmas of 64 rows x NV_TILE_N keys.
 * Descriptor strides: 128 bytes between pieces along D, 16 HEAD_DIM bytes between 8-key groups. */
NV_INLINE void tile_scores(const uint4 *qf, __local const ushort *k_tile, float4 *s) {
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < HEAD_DIM / 16; ++kc)
        NV_KMAJOR(NV_TILE_N)
    (s, qf[kc], wg_descriptor(k_tile + kc * 2 * 64, 128, 16 * HEAD_DIM), kc > 0);
    wg_commit();
    NV_WAIT_S(s);
}
#else
#define NV_COPIES_LANDED(pending) COPY_ASYNC_WAIT(pending)
/* S = Q K^T on one staged tile of keys. */
NV_INLINE void tile_scores(const uint4 *qf, __local const ushort *k_tile, float4 *s) {
    const int lane = get_local_id(0) & 31;
#pragma unroll
    for (int nt = 0; nt < NV_S_TILES; ++nt)
        s[nt] = (float4)(0.0f);
#pragma unroll
    for (int kc = 0; kc < HEAD_DIM / 16; kc += 2) {
#pragma unroll
        for (int nt = 0; nt < NV_S_TILES; ++nt) {
            const uint4 kb =
                ldmatrix_x4(k_tile + (nt * 8 + (lane & 7)) * NV_PITCH + kc * 16 + (lane >> 3) * 8);
            s[nt] = mma_16x8x16(qf[kc], (uint2)(kb.x, kb.y), s[nt]);
            s[nt] = mma_16x8x16(qf[kc + 1], (uint2)(kb.z, kb.w), s[nt]);
        }
    }
}
#endif

/* Base-2 logits with the level's bias, masked by visibility; the online-softmax update;
 * O += P V with the tile's values. */
NV_INLINE void tile_apply(float4 *s, float4 *o, row_state *st, const float q_scale, const int vis_a,
                          const int vis_b, __local const ushort *v_tile, __local const float *bias,
                          __local const int *last) {
    const int lane = get_local_id(0) & 31;
    const int c = lane & 3;
    float tile_a = -INFINITY, tile_b = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NV_S_TILES; ++nt) {
        const int j = nt * 8 + 2 * c;
        const float b0 = bias[j], b1 = bias[j + 1];
        const int e0 = last[j], e1 = last[j + 1];
        s[nt].x = e0 <= vis_a ? fma(s[nt].x, q_scale, b0) : -INFINITY;
        s[nt].y = e1 <= vis_a ? fma(s[nt].y, q_scale, b1) : -INFINITY;
        s[nt].z = e0 <= vis_b ? fma(s[nt].z, q_scale, b0) : -INFINITY;
        s[nt].w = e1 <= vis_b ? fma(s[nt].w, q_scale, b1) : -INFINITY;
        tile_a = fmax(tile_a, fmax(s[nt].x, s[nt].y));
        tile_b = fmax(tile_b, fmax(s[nt].z, s[nt].w));
    }
    const float new_a = fmax(st->m_a, quad_max(tile_a));
    const float new_b = fmax(st->m_b, quad_max(tile_b));
    /* A row that has seen nothing yet keeps m = -inf; subtracting 0 keeps exp2 finite. */
    const float ref_a = new_a == -INFINITY ? 0.0f : new_a;
    const float ref_b = new_b == -INFINITY ? 0.0f : new_b;
    const float corr_a = exp2(st->m_a - ref_a), corr_b = exp2(st->m_b - ref_b);
    st->m_a = new_a;
    st->m_b = new_b;
    st->l_a *= corr_a;
    st->l_b *= corr_b;
#pragma unroll
    for (int dt = 0; dt < NV_O_TILES; ++dt) {
        o[dt].x *= corr_a;
        o[dt].y *= corr_a;
        o[dt].z *= corr_b;
        o[dt].w *= corr_b;
    }
#pragma unroll
    for (int nt = 0; nt < NV_S_TILES; ++nt) {
        s[nt].x = exp2(s[nt].x - ref_a);
        s[nt].y = exp2(s[nt].y - ref_a);
        s[nt].z = exp2(s[nt].z - ref_b);
        s[nt].w = exp2(s[nt].w - ref_b);
        st->l_a += s[nt].x + s[nt].y;
        st->l_b += s[nt].z + s[nt].w;
    }
#if NV_WGMMA
    /* O += P V: NV_TILE_N / 16 wgmmas of 64 rows x HEAD_DIM, V read transposed (16 HEAD_DIM
     * bytes between 8-key groups along the reduction, 128 between pieces along D). */
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < NV_TILE_N / 16; ++kk) {
        const uint4 pa = (uint4)(pack2(s[2 * kk].x, s[2 * kk].y), pack2(s[2 * kk].z, s[2 * kk].w),
                                 pack2(s[2 * kk + 1].x, s[2 * kk + 1].y),
                                 pack2(s[2 * kk + 1].z, s[2 * kk + 1].w));
        NV_MNMAJOR(HEAD_DIM)
        (o, pa, wg_descriptor(v_tile + kk * 2 * 8 * HEAD_DIM, 16 * HEAD_DIM, 128), 1);
    }
    wg_commit();
    NV_WAIT_O(o);
#else
#pragma unroll
    for (int kk = 0; kk < NV_TILE_N / 16; ++kk) {
        const uint4 pa = (uint4)(pack2(s[2 * kk].x, s[2 * kk].y), pack2(s[2 * kk].z, s[2 * kk].w),
                                 pack2(s[2 * kk + 1].x, s[2 * kk + 1].y),
                                 pack2(s[2 * kk + 1].z, s[2 * kk + 1].w));
        __local const ushort *v_rows =
            v_tile + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * NV_PITCH + (lane >> 4) * 8;
#pragma unroll
        for (int dt = 0; dt < NV_O_TILES; dt += 2) {
            const uint4 vb = ldmatrix_x4_trans(v_rows + dt * 8);
            o[dt] = mma_16x8x16(pa, (uint2)(vb.x, vb.y), o[dt]);
            o[dt + 1] = mma_16x8x16(pa, (uint2)(vb.z, vb.w), o[dt + 1]);
        }
    }
#endif
}

/* Where the tiles' K and V rows live: the caller's tensors for level 1, the pyramid else. */
typedef struct tile_sources {
    rows16_t k_full, v_full, k_pyr_head, v_pyr_head;
    long k_step, v_step;
    int4 pooled_offset; /* first pooled token of each level in the pyramid */
} tile_sources;

/* Starts the copy of a tile of keys (values) of `level`: full from the caller's tensor
 * (rows `full_step` apart), pooled from the pyramid head (rows of HEAD_DIM). */
NV_INLINE void stage_level(__local ushort *dst, rows16_t full, rows16_t pyramid_head,
                           const long full_step, const int4 pooled_offset, const int level,
                           __local const int *row_of, const bool guard, __local const int *last,
                           const int vis_min, __local int (*first_bad)[HEAD_DIM]) {
    stage_tile(dst, level == 0 ? full : pyramid_head + (long)pick(pooled_offset, level) * HEAD_DIM,
               level == 0 ? full_step : HEAD_DIM, row_of, guard, last, vis_min, first_bad);
}

/* Keys need no guard: a hidden key's logit is replaced by -inf, whatever it is. */
NV_INLINE void stage_keys(__local ushort *dst, const tile_sources *src, const int level,
                          __local const int *row_of) {
    stage_level(dst, src->k_full, src->k_pyr_head, src->k_step, src->pooled_offset, level, row_of,
                false, row_of, 0, NULL);
}

NV_INLINE void stage_values(__local ushort *dst, const tile_sources *src, const int level,
                            __local const int *row_of, const bool may_hide, __local const int *last,
                            const int vis_min, __local int (*first_bad)[HEAD_DIM]) {
    stage_level(dst, src->v_full, src->v_pyr_head, src->v_step, src->pooled_offset, level, row_of,
                may_hide, last, vis_min, first_bad);
}

NV_INLINE void cursor_next(tile_cursor *c) {
    c->slot0 += NV_TILE_N;
    cursor_skip_empty(c);
}

/* The tile loop shared by both kernels: rows of fragment row g (a) and g + 8 (b) of this
 * lane, their Q rows q_a, q_b (valid_a/b false: zeros), output rows o_a, o_b. Local memory:
 * NV_STAGES buffers of keys and of values, NV_STAGES + 1 of slot descriptions. */
NV_INLINE void flash_rows(rows16_t q_a, rows16_t q_b, const bool valid_a, const bool valid_b,
                          const int vis_a, const int vis_b, const int vis_min, tile_cursor cur,
                          __global const int *row_list, __global const int *perm,
                          const tile_sources *src, const int seq_k, const int np2, const int np4,
                          const int np8, const float scale, __global out_t *o_a,
                          __global out_t *o_b, __local ushort (*k_tile)[NV_TILE_N * NV_PITCH],
                          __local ushort (*v_tile)[NV_TILE_N * NV_PITCH],
                          __local int (*row_of)[NV_TILE_N], __local float (*bias)[NV_TILE_N],
                          __local int (*last)[NV_TILE_N], __local int (*first_bad)[HEAD_DIM]) {
    const int lane = get_local_id(0) & 31;
    const int c = lane & 3;
    uint4 qf[HEAD_DIM / 16];
#pragma unroll
    for (int kc = 0; kc < HEAD_DIM / 16; ++kc) {
        const int d = kc * 16 + 2 * c;
        qf[kc] = (uint4)(load_pair(q_a, d, valid_a), load_pair(q_b, d, valid_b),
                         load_pair(q_a, d + 8, valid_a), load_pair(q_b, d + 8, valid_b));
    }
    float4 o[NV_O_TILES];
#pragma unroll
    for (int dt = 0; dt < NV_O_TILES; ++dt)
        o[dt] = (float4)(0.0f);
    row_state st = {-INFINITY, -INFINITY, 0.0f, 0.0f};
    const float q_scale = scale * LOG2E;
    /* Some key of some tile is hidden from some row of the work-group (a causal mask). */
    const bool may_hide = NV_HIDDEN_GUARD && vis_min < seq_k - 1;
    if (may_hide)
        clear_hidden_nonfinite(first_bad); /* before the first barrier below */

    const int4 tile_counts = (cur.tokens + NV_TILE_N - 1) / NV_TILE_N;
    const int tiles = tile_counts.x + tile_counts.y + tile_counts.z + tile_counts.w;
    cursor_skip_empty(&cur);
#if NV_STAGES == 1
    /* One buffer each: a tile's values load while its scores are computed, the next tile's
     * keys while its values are applied. */
    if (tiles > 0) {
        describe_tile(&cur, row_list, perm, seq_k, np2, np4, np8, row_of[0], bias[0], last[0]);
        barrier(CLK_LOCAL_MEM_FENCE);
        stage_keys(k_tile[0], src, cur.level, row_of[0]);
        copy_async_commit();
    }
    for (int t = 0; t < tiles; ++t) {
        const int buf = t & 1;
        stage_values(v_tile[0], src, cur.level, row_of[buf], may_hide, last[buf], vis_min,
                     first_bad);
        copy_async_commit();
        tile_cursor next = cur;
        cursor_next(&next);
        const bool has_next = t + 1 < tiles;
        if (has_next)
            describe_tile(&next, row_list, perm, seq_k, np2, np4, np8, row_of[buf ^ 1],
                          bias[buf ^ 1], last[buf ^ 1]);
        NV_COPIES_LANDED(1); /* this tile's keys */
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 s[NV_S_TILES];
        tile_scores(qf, k_tile[0], s);
        barrier(CLK_LOCAL_MEM_FENCE); /* every warp is done with the keys */
        if (has_next) {
            stage_keys(k_tile[0], src, next.level, row_of[buf ^ 1]);
            copy_async_commit();
            NV_COPIES_LANDED(1); /* this tile's values */
        } else {
            NV_COPIES_LANDED(0);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        tile_apply(s, o, &st, q_scale, vis_a, vis_b, v_tile[0], bias[buf], last[buf]);
        barrier(CLK_LOCAL_MEM_FENCE); /* the values and this tile's descriptions are free */
        cur = next;
    }
#else
    /* Two buffers each: tile t + 2 loads while tile t is computed; its slots are described
     * (global reads of the work list) before the wait, into the third description buffer. */
    tile_cursor ahead = cur;
    for (int t = 0; t < 2 && t < tiles; ++t) {
        describe_tile(&ahead, row_list, perm, seq_k, np2, np4, np8, row_of[t], bias[t], last[t]);
        barrier(CLK_LOCAL_MEM_FENCE);
        stage_keys(k_tile[t], src, ahead.level, row_of[t]);
        stage_values(v_tile[t], src, ahead.level, row_of[t], may_hide, last[t], vis_min, first_bad);
        copy_async_commit();
        cursor_next(&ahead);
    }
    for (int t = 0; t < tiles; ++t) {
        const int buf = t & 1, info = t % 3, info_ahead = (t + 2) % 3;
        if (t + 2 < tiles)
            describe_tile(&ahead, row_list, perm, seq_k, np2, np4, np8, row_of[info_ahead],
                          bias[info_ahead], last[info_ahead]);
        if (t + 1 < tiles)
            NV_COPIES_LANDED(1); /* tile t has landed; tile t + 1 may still be in flight */
        else
            NV_COPIES_LANDED(0);
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 s[NV_S_TILES];
        tile_scores(qf, k_tile[buf], s);
        tile_apply(s, o, &st, q_scale, vis_a, vis_b, v_tile[buf], bias[info], last[info]);
        barrier(CLK_LOCAL_MEM_FENCE); /* every warp is done with buffer `buf` */
        if (t + 2 < tiles) {
            stage_keys(k_tile[buf], src, ahead.level, row_of[info_ahead]);
            stage_values(v_tile[buf], src, ahead.level, row_of[info_ahead], may_hide,
                         last[info_ahead], vis_min, first_bad);
            copy_async_commit();
            cursor_next(&ahead);
        }
    }
#endif

    /* l was summed per lane; the quad shares m, so the row total is the quad's sum. */
    const float l_a = quad_sum(st.l_a), l_b = quad_sum(st.l_b);
    if (may_hide && tiles > 0) { /* the last tile ended with a barrier: every record is in */
        add_hidden_nonfinite(o, false, vis_a, first_bad);
        add_hidden_nonfinite(o, true, vis_b, first_bad);
    }
    if (valid_a)
        store_fragment_row(o_a, o, c, false, l_a > 0.0f ? 1.0f / l_a : 0.0f);
    if (valid_b)
        store_fragment_row(o_b, o, c, true, l_b > 0.0f ? 1.0f / l_b : 0.0f);
}

#define NV_LOCAL_TILES                                                                             \
    __local ushort k_tile[NV_STAGES][NV_TILE_N * NV_PITCH] __attribute__((aligned(16)));           \
    __local ushort v_tile[NV_STAGES][NV_TILE_N * NV_PITCH] __attribute__((aligned(16)));           \
    __local int row_of[NV_STAGES + 1][NV_TILE_N];                                                  \
    __local float bias[NV_STAGES + 1][NV_TILE_N];                                                  \
    __local int last[NV_STAGES + 1][NV_TILE_N];                                                    \
    __local int first_bad[NV_HIDDEN_GUARD ? 3 : 1][HEAD_DIM]

#if NV_DENSE
__kernel __attribute__((reqd_work_group_size(NV_THREADS, 1, 1))) void
dense_attention(__global const in_t *q, __global const in_t *k, __global const in_t *v,
                __global out_t *out, const int heads_q, const int group, const int seq_q,
                const int seq_k, const float scale, const int causal, const long q_sb,
                const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn,
                const long v_sb, const long v_sh, const long v_sn, const long o_sb, const long o_sh,
                const long o_sn) {
    NV_LOCAL_TILES;
    const int lane = get_local_id(0) & 31;
    const int warp = get_local_id(0) >> 5;
    const int row0 = get_group_id(0) * NV_ROWS;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int ta = row0 + warp * 16 + (lane >> 2), tb = ta + 8;
    const bool valid_a = ta < seq_q, valid_b = tb < seq_q;
    rows16_t q_head = (rows16_t)q + b * q_sb + h * q_sh;
    /* Bottom-right aligned causal mask: key c is visible to row t iff c <= t + (Nk - Nq). */
    const int shift = seq_k - seq_q;
    tile_cursor cur = {0, 0, 0, (int4)(0), (int4)(0)};
    cur.tokens.x = causal ? clamp(min(row0 + NV_ROWS, seq_q) - 1 + shift + 1, 0, seq_k) : seq_k;
    __global out_t *o_head = out + b * o_sb + h * o_sh;
    const tile_sources src = {(rows16_t)k + b * k_sb + kvh * k_sh,
                              (rows16_t)v + b * v_sb + kvh * v_sh,
                              NULL,
                              NULL,
                              k_sn,
                              v_sn,
                              (int4)(0)};
    flash_rows(q_head + (long)(valid_a ? ta : 0) * q_sn, q_head + (long)(valid_b ? tb : 0) * q_sn,
               valid_a, valid_b, causal ? ta + shift : seq_k - 1, causal ? tb + shift : seq_k - 1,
               causal ? row0 + shift : seq_k - 1, cur, NULL, NULL, &src, seq_k, 0, 0, 0, scale,
               o_head + (long)ta * o_sn, o_head + (long)tb * o_sn, k_tile, v_tile, row_of, bias,
               last, first_bad);
}
#else
__kernel __attribute__((reqd_work_group_size(NV_THREADS, 1, 1))) void
psa_attend(__global const in_t *q, __global const in_t *k, __global const in_t *v,
           __global const in_t *k_pyr, __global const in_t *v_pyr, __global const int *perm,
           __global const int *counts, __global const int *list, __global out_t *out,
           const int heads_q, const int group, const int seq_q, const int seq_k, const int blocks_q,
           const int blocks_k, const int np2, const int np4, const int np8, const float scale,
           const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
           const long k_sh, const long k_sn, const long v_sb, const long v_sh, const long v_sn,
           const long o_sb, const long o_sh, const long o_sn) {
    NV_LOCAL_TILES;
    const int lane = get_local_id(0) & 31;
    const int warp = get_local_id(0) >> 5;
    const int i = get_group_id(0) / NV_GROUPS_PER_BLOCK;
    const int part = get_group_id(0) - i * NV_GROUPS_PER_BLOCK;
    const int bh = get_group_id(1);
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int ra = part * NV_ROWS + warp * 16 + (lane >> 2), rb = ra + 8;
    const int ta = i * BLOCK_Q + ra, tb = i * BLOCK_Q + rb;
    const bool valid_a = ra < BLOCK_Q && ta < seq_q, valid_b = rb < BLOCK_Q && tb < seq_q;
    const int row_a = valid_a ? TOKEN(perm, ta) : 0, row_b = valid_b ? TOKEN(perm, tb) : 0;
    rows16_t q_head = (rows16_t)q + b * q_sb + h * q_sh;
    const int shift = seq_k - seq_q;

    const long row = (long)bh * blocks_q + i;
    tile_cursor cur = {0, 0, 0, (int4)(0), (int4)(0)};
    __global const int *row_counts = counts + row * 4;
    cur.count = (int4)(row_counts[0], row_counts[1], row_counts[2], row_counts[3]);
    /* Slots in the work-group's future (it may own fewer rows than the query block the list
     * was cut for) are never staged. */
    __global const int *row_list = list + row * blocks_k;
    const int group_last =
        causal ? min(i * BLOCK_Q + min((part + 1) * NV_ROWS, BLOCK_Q), seq_q) - 1 + shift
               : seq_k - 1;
    const int4 first =
        (int4)(0, cur.count.x, cur.count.x + cur.count.y, cur.count.x + cur.count.y + cur.count.z);
    cur.tokens = (int4)(psa_visible_slots(row_list + first.x, cur.count.x, 1, BLOCK_K, BLOCK_K,
                                          group_last, seq_k),
                        psa_visible_slots(row_list + first.y, cur.count.y, 2, BLOCK_K / 2, BLOCK_K,
                                          group_last, seq_k),
                        psa_visible_slots(row_list + first.z, cur.count.z, 4, BLOCK_K / 4, BLOCK_K,
                                          group_last, seq_k),
                        psa_visible_slots(row_list + first.w, cur.count.w, 8, BLOCK_K / 8, BLOCK_K,
                                          group_last, seq_k));
    const long pyramid_head = ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8) * HEAD_DIM;
    __global out_t *o_head = out + b * o_sb + h * o_sh;
    const tile_sources src = {(rows16_t)k + b * k_sb + kvh * k_sh,
                              (rows16_t)v + b * v_sb + kvh * v_sh,
                              (rows16_t)k_pyr + pyramid_head,
                              (rows16_t)v_pyr + pyramid_head,
                              k_sn,
                              v_sn,
                              (int4)(0, 0, np2, np2 + np4)};
    flash_rows(q_head + (long)row_a * q_sn, q_head + (long)row_b * q_sn, valid_a, valid_b,
               causal ? ta + shift : seq_k - 1, causal ? tb + shift : seq_k - 1,
               causal ? i * BLOCK_Q + part * NV_ROWS + shift : seq_k - 1, cur, row_list, perm, &src,
               seq_k, np2, np4, np8, scale, o_head + (long)row_a * o_sn,
               o_head + (long)row_b * o_sn, k_tile, v_tile, row_of, bias, last, first_bad);
}
#endif
