/* SPDX-License-Identifier: Apache-2.0 */
/* Budget mode's measurement on the tensor cores; built after common.cl and nv_mma.cl, with the
 * arguments and outputs of budget.cl's budget_measure (same scratch cells, S and loss, so the
 * allocation kernel is unchanged). For each sampled row t and key block j it forms
 *   mx_t[j] = max over visible keys c of j of x_c           (x = scale log2(e) q_t . k_c)
 *   full_t[j] = sum over visible c of exp2(x_c - mx_t[j])
 *   pooled_t[j][f] = sum over visible pooled tokens p of j at level f of cnt exp2(x^f_p - mx_t[j])
 * and from them the block's mass and pooling losses exactly as budget.cl does.
 *
 * One warp holds one m16 tile: the sampled rows of 16 / SAMPLE_Q consecutive query blocks (two
 * at s_q = 8), its Q fragments in registers for the whole kernel. The NV_WARPS warps of a
 * work-group share each staged key block: its BLOCK_K keys (in one buffer) and its
 * 7 BLOCK_K / 8 pooled tokens of levels 2, 4, 8 (in the other), each copied with cp.async while
 * the other is in use, read with ldmatrix. A warp owns its rows entirely, so the row maximum
 * m_t and the row total F_t = sum_j full_t[j] exp2(mx_t[j] - m_t) are kept online in registers
 * and need no reduction across warps; the per-(row, block) cells go to the global scratch
 * (budget.cl's layout) because the mass needs m_t and F_t, known only after the last block.
 * Needs BLOCK_K a multiple of 64, SAMPLE_Q <= 16, HEAD_DIM a multiple of 32 (host-checked).
 * NV_WGMMA = 1 (the nvidia-wgmma variant, compute capability 9.0, built after nv_wgmma.cl): the
 * same m16 tile per warp, fragments and epilogue, but each warpgroup of four warps (64 sampled
 * rows) multiplies with wgmma, which reads the keys and pooled tokens straight from local memory
 * (n = BLOCK_K, then 7 BLOCK_K / 8) instead of one ldmatrix per mma; so NV_WARPS is a multiple of
 * 4 and both buffers are stored as core matrices (WG_TILE_OFFSET) without padding. Needs
 * HEAD_DIM 64 or 128 and BLOCK_K 64 or 128 (host-checked). */
#ifndef NV_WARPS
#define NV_WARPS 4 /* warps per work-group, one m16 tile each */
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#ifndef SAMPLE_Q
#define SAMPLE_Q (BLOCK_Q / 16) /* sampled rows per query block */
#endif
#ifndef NV_WGMMA
#define NV_WGMMA 0 /* 1: wgmma (nv_wgmma.cl) instead of mma.sync */
#endif

#define NV_THREADS (32 * NV_WARPS)
#define NV_CHUNKS (HEAD_DIM / 8)
#define NV_PIECES 4 /* 16-byte copies per work-item and row (divides NV_CHUNKS) */
#if NV_WGMMA
#define NV_PITCH HEAD_DIM
#define NV_TILE_OFFSET(r, piece) WG_TILE_OFFSET(r, piece)
#if NV_WARPS % 4 != 0 || (HEAD_DIM != 64 && HEAD_DIM != 128) || (BLOCK_K != 64 && BLOCK_K != 128)
#error "nv_budget.cl with NV_WGMMA needs NV_WARPS % 4 == 0, HEAD_DIM 64 or 128, BLOCK_K 64 or 128"
#endif
#else
#define NV_PITCH (HEAD_DIM + 8) /* 16 bytes of padding: ldmatrix rows on distinct banks */
#define NV_TILE_OFFSET(r, piece) ((r)*NV_PITCH + (piece)*8)
#endif
#define FULL_TILES (BLOCK_K / 8)
#define POOL_ROWS (BLOCK_K / 2 + BLOCK_K / 4 + BLOCK_K / 8)
#define POOL_TILES (POOL_ROWS / 8)
#define L2_TILES (BLOCK_K / 16) /* n-tiles of the pooled buffer at level 2, then 4, then 8 */
#define L4_TILES (BLOCK_K / 32)
#define BLOCKS_PER_WARP (16 / SAMPLE_Q)
#define BLOCKS_PER_GROUP (NV_WARPS * BLOCKS_PER_WARP)

#if BLOCK_K % 64 != 0 || SAMPLE_Q < 1 || SAMPLE_Q > 16 || HEAD_DIM % 32 != 0
#error "nv_budget.cl: needs BLOCK_K % 64 == 0, 1 <= SAMPLE_Q <= 16, HEAD_DIM % 32 == 0"
#endif

typedef __global const ushort *rows16_t;

/* Which row of a buffer, and which first piece of it, the copy item starting at piece number
 * `first` (a multiple of NV_PIECES) moves: NV_PIECES consecutive pieces of the row. */
NV_INLINE int2 copy_item(const int first) {
#if NV_WGMMA
    /* Neighbouring work-items take neighbouring rows of one piece: each quarter-warp's 16-byte
     * writes fill one core matrix. */
    const int u = first / NV_PIECES, sets = NV_CHUNKS / NV_PIECES;
    return (int2)((u / (8 * sets)) * 8 + (u & 7), ((u / 8) % sets) * NV_PIECES);
#else
    const int r = first / NV_CHUNKS;
    return (int2)(r, first - r * NV_CHUNKS);
#endif
}

/* Starts the copy of key block j's keys (zeros past the end of the sequence). */
NV_INLINE void stage_keys(__local ushort *dst, rows16_t k_head, const long k_sn,
                          __global const int *perm, const int j, const int seq_k) {
    for (int first = get_local_id(0) * NV_PIECES; first < BLOCK_K * NV_CHUNKS;
         first += NV_THREADS * NV_PIECES) {
        const int2 at = copy_item(first);
        const int r = at.x, piece0 = at.y;
        const int key = j * BLOCK_K + r;
        const bool ok = key < seq_k;
        rows16_t row = ok ? k_head + (long)TOKEN(perm, key) * k_sn : k_head;
        for (int piece = piece0; piece < piece0 + NV_PIECES; ++piece)
            copy16_async(dst + NV_TILE_OFFSET(r, piece), ok ? row + piece * 8 : k_head,
                         ok ? 16 : 0);
    }
}

/* Starts the copy of key block j's pooled tokens: BLOCK_K / 2 of level 2, BLOCK_K / 4 of
 * level 4, BLOCK_K / 8 of level 8, in that order (zeros past each level's end). The pyramid is
 * in position order already, HEAD_DIM values a token. */
NV_INLINE void stage_pooled(__local ushort *dst, rows16_t pyramid, const int j, const int np2,
                            const int np4, const int np8) {
    for (int first = get_local_id(0) * NV_PIECES; first < POOL_ROWS * NV_CHUNKS;
         first += NV_THREADS * NV_PIECES) {
        const int2 at = copy_item(first);
        const int r = at.x, piece0 = at.y;
        int p, count, base;
        if (r < BLOCK_K / 2) {
            p = j * (BLOCK_K / 2) + r;
            count = np2;
            base = 0;
        } else if (r < BLOCK_K / 2 + BLOCK_K / 4) {
            p = j * (BLOCK_K / 4) + r - BLOCK_K / 2;
            count = np4;
            base = np2;
        } else {
            p = j * (BLOCK_K / 8) + r - (BLOCK_K / 2 + BLOCK_K / 4);
            count = np8;
            base = np2 + np4;
        }
        const bool ok = p < count;
        rows16_t row = pyramid + (long)(base + (ok ? p : 0)) * HEAD_DIM;
        for (int piece = piece0; piece < piece0 + NV_PIECES; ++piece)
            copy16_async(dst + NV_TILE_OFFSET(r, piece), row + piece * 8, ok ? 16 : 0);
    }
}

NV_INLINE uint load_pair(rows16_t row, const int d, const bool valid) {
    return valid ? *(__global const uint *)(row + d) : 0u;
}

/* The pooled contribution cnt exp2(x - m) of pooled token p of level f (or 0 when it is past
 * the level's end or its last member is hidden from the row, whose last visible key is
 * `limit`; then the block maximum m may be -inf, so x - m is never formed). */
NV_INLINE float pooled_term(const float x, const float m, const int p, const int f, const int count,
                            const int seq_k, const int limit) {
    const int cnt = min(f, seq_k - p * f);
    const bool visible = p < count && p * f + cnt - 1 <= limit;
    return visible ? (float)cnt * exp2(x - m) : 0.0f;
}

#if NV_WGMMA
/* The warpgroup's 64 rows against a key block's keys (n = BLOCK_K) and against its pooled
 * tokens (n = POOL_ROWS), called from the kernel's body (the emulation's exchanges need its
 * arguments). */
#if BLOCK_K == 64
#define KEY_SCORES wg_tile_scores_n64
#define POOL_SCORES wg_tile_scores_n56
#else
#define KEY_SCORES wg_tile_scores_n128
#define POOL_SCORES wg_tile_scores_n112
#endif
#else
#define NV_COPIES_LANDED(pending) COPY_ASYNC_WAIT(pending)
#endif

__kernel __attribute__((reqd_work_group_size(NV_THREADS, 1, 1))) void
budget_measure(__global const in_t *q, __global const in_t *k, __global const in_t *k_pyr,
               __global const int *perm, __global const int *row_offsets, __global float *scratch,
               __global float *scores, __global float *loss, const int bh_first, const int heads_q,
               const int group, const int seq_q, const int seq_k, const int blocks_q,
               const int blocks_k, const int np2, const int np4, const int np8, const float scale,
               const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
               const long k_sh, const long k_sn) {
    __local ushort key_tile[BLOCK_K * NV_PITCH] __attribute__((aligned(16)));
    __local ushort pool_tile[POOL_ROWS * NV_PITCH] __attribute__((aligned(16)));
    __local float row_max[NV_WARPS][16], row_total[NV_WARPS][16];
    __local int row_limit[NV_THREADS / 2];

    const int tid = get_local_id(0);
    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int nk = blocks_k;
    rows16_t q_head = (rows16_t)q + b * q_sb + h * q_sh;
    rows16_t k_head = (rows16_t)k + b * k_sb + kvh * k_sh;
    rows16_t pyramid =
        (rows16_t)k_pyr + ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8) * HEAD_DIM;
    __global const int *rows = row_offsets + (long)bh * SAMPLE_Q;
    /* Causal: key c is visible to the row at position t iff c <= t + shift (positions equal
     * tokens here: a reordering is never causal). */
    const int shift = causal ? seq_k - seq_q : seq_k;
    const float q_scale = scale * LOG2E;
    const int warp_block = get_group_id(0) * BLOCKS_PER_GROUP + warp * BLOCKS_PER_WARP;

    /* This lane's two rows of the m16 tile: fragment rows g and g + 8. `limit` is the last key
     * the row sees (-1: none, for rows past the tile's blocks or the sequence's). */
    const int ra = g, rb = g + 8;
    const int ia = warp_block + ra / SAMPLE_Q, ib = warp_block + rb / SAMPLE_Q;
    const int sa = ra % SAMPLE_Q, sb = rb % SAMPLE_Q;
    const bool valid_a = ra < BLOCKS_PER_WARP * SAMPLE_Q && ia < blocks_q;
    const bool valid_b = rb < BLOCKS_PER_WARP * SAMPLE_Q && ib < blocks_q;
    /* Rows past the end of the sequence are replaced by the last row (replicate padding). */
    const int pos_a = valid_a ? min(ia * BLOCK_Q + rows[sa], seq_q - 1) : 0;
    const int pos_b = valid_b ? min(ib * BLOCK_Q + rows[sb], seq_q - 1) : 0;
    const int limit_a = valid_a ? min(pos_a + shift, seq_k - 1) : -1;
    const int limit_b = valid_b ? min(pos_b + shift, seq_k - 1) : -1;
    rows16_t q_a = q_head + (long)TOKEN(perm, pos_a) * q_sn;
    rows16_t q_b = q_head + (long)TOKEN(perm, pos_b) * q_sn;
    uint4 qf[HEAD_DIM / 16];
#pragma unroll
    for (int kc = 0; kc < HEAD_DIM / 16; ++kc) {
        const int d = kc * 16 + 2 * c;
        qf[kc] = (uint4)(load_pair(q_a, d, valid_a), load_pair(q_b, d, valid_b),
                         load_pair(q_a, d + 8, valid_a), load_pair(q_b, d + 8, valid_b));
    }
    const long cells_per_block = (long)nk * SAMPLE_Q * BUDGET_CELL;
    __global float *cell_a =
        scratch + ((long)bh_local * blocks_q + ia) * cells_per_block + sa * BUDGET_CELL;
    __global float *cell_b =
        scratch + ((long)bh_local * blocks_q + ib) * cells_per_block + sb * BUDGET_CELL;

    /* Key blocks past the last one any row of the group sees are neither staged nor measured
     * (their mass is 0, as in budget.cl). */
    if (c == 0) {
        row_limit[warp * 16 + ra] = limit_a;
        row_limit[warp * 16 + rb] = limit_b;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    int group_limit = -1;
    for (int r = 0; r < NV_WARPS * 16; ++r)
        group_limit = max(group_limit, row_limit[r]);
    const int j_end = group_limit < 0 ? 0 : min(nk, group_limit / BLOCK_K + 1);

    float best_a = -INFINITY, best_b = -INFINITY; /* row maxima so far */
    float total_a = 0.0f, total_b = 0.0f;         /* row totals relative to them */
    if (j_end > 0) {
        stage_keys(key_tile, k_head, k_sn, perm, 0, seq_k);
        copy_async_commit();
        stage_pooled(pool_tile, pyramid, 0, np2, np4, np8);
        copy_async_commit();
    }
    for (int j = 0; j < j_end; ++j) {
        /* In flight: keys of j, pooled tokens of j. */
        NV_COPIES_LANDED(1);
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 s[FULL_TILES]; /* the m16 tile against the block's keys */
#pragma unroll
        for (int nt = 0; nt < FULL_TILES; ++nt)
            s[nt] = (float4)(0.0f); /* wgmma: overwritten by the first; defined for the compiler */
#if NV_WGMMA
        KEY_SCORES(qf, key_tile, s);
#else
#pragma unroll
        for (int kc = 0; kc < HEAD_DIM / 16; kc += 2) {
#pragma unroll
            for (int nt = 0; nt < FULL_TILES; ++nt) {
                const uint4 kb = ldmatrix_x4(key_tile + (nt * 8 + (lane & 7)) * NV_PITCH + kc * 16 +
                                             (lane >> 3) * 8);
                s[nt] = mma_16x8x16(qf[kc], (uint2)(kb.x, kb.y), s[nt]);
                s[nt] = mma_16x8x16(qf[kc + 1], (uint2)(kb.z, kb.w), s[nt]);
            }
        }
#endif
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FULL_TILES; ++nt) {
            const int key = j * BLOCK_K + nt * 8 + 2 * c;
            s[nt] *= q_scale;
            s[nt].x = key <= limit_a ? s[nt].x : -INFINITY;
            s[nt].y = key + 1 <= limit_a ? s[nt].y : -INFINITY;
            s[nt].z = key <= limit_b ? s[nt].z : -INFINITY;
            s[nt].w = key + 1 <= limit_b ? s[nt].w : -INFINITY;
            mx_a = fmax(mx_a, fmax(s[nt].x, s[nt].y));
            mx_b = fmax(mx_b, fmax(s[nt].z, s[nt].w));
        }
        mx_a = quad_max(mx_a);
        mx_b = quad_max(mx_b);
        /* A row that sees no key of the block sums exp2(-inf - 0) = 0. */
        const float ref_a = mx_a == -INFINITY ? 0.0f : mx_a;
        const float ref_b = mx_b == -INFINITY ? 0.0f : mx_b;
        float sm_a = 0.0f, sm_b = 0.0f;
#pragma unroll
        for (int nt = 0; nt < FULL_TILES; ++nt) {
            sm_a += exp2(s[nt].x - ref_a) + exp2(s[nt].y - ref_a);
            sm_b += exp2(s[nt].z - ref_b) + exp2(s[nt].w - ref_b);
        }
        sm_a = quad_sum(sm_a);
        sm_b = quad_sum(sm_b);

        barrier(CLK_LOCAL_MEM_FENCE); /* every warp is done with the keys of j */
        if (j + 1 < j_end) {
            stage_keys(key_tile, k_head, k_sn, perm, j + 1, seq_k);
            copy_async_commit();
            NV_COPIES_LANDED(1); /* the pooled tokens of j have landed */
        } else {
            NV_COPIES_LANDED(0);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 t[POOL_TILES]; /* against its pooled tokens */
#pragma unroll
        for (int nt = 0; nt < POOL_TILES; ++nt)
            t[nt] = (float4)(0.0f);
#if NV_WGMMA
        POOL_SCORES(qf, pool_tile, t);
#else
#pragma unroll
        for (int kc = 0; kc < HEAD_DIM / 16; kc += 2) {
#pragma unroll
            for (int nt = 0; nt < POOL_TILES; ++nt) {
                const uint4 kb = ldmatrix_x4(pool_tile + (nt * 8 + (lane & 7)) * NV_PITCH +
                                             kc * 16 + (lane >> 3) * 8);
                t[nt] = mma_16x8x16(qf[kc], (uint2)(kb.x, kb.y), t[nt]);
                t[nt] = mma_16x8x16(qf[kc + 1], (uint2)(kb.z, kb.w), t[nt]);
            }
        }
#endif
        float pl_a[3] = {0.0f, 0.0f, 0.0f}, pl_b[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int u = 0; u < POOL_TILES; ++u) {
            /* level index l (0, 1, 2 for f = 2, 4, 8) and the first pooled token of the tile */
            const int l = u < L2_TILES ? 0 : u < L2_TILES + L4_TILES ? 1 : 2;
            const int f = 2 << l;
            const int first_tile = l == 0 ? 0 : l == 1 ? L2_TILES : L2_TILES + L4_TILES;
            const int count = l == 0 ? np2 : l == 1 ? np4 : np8;
            const int p = j * (BLOCK_K / f) + (u - first_tile) * 8 + 2 * c;
            t[u] *= q_scale;
            pl_a[l] += pooled_term(t[u].x, mx_a, p, f, count, seq_k, limit_a) +
                       pooled_term(t[u].y, mx_a, p + 1, f, count, seq_k, limit_a);
            pl_b[l] += pooled_term(t[u].z, mx_b, p, f, count, seq_k, limit_b) +
                       pooled_term(t[u].w, mx_b, p + 1, f, count, seq_k, limit_b);
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* every warp is done with the pooled tokens of j */
        if (j + 1 < j_end) {
            stage_pooled(pool_tile, pyramid, j + 1, np2, np4, np8);
            copy_async_commit();
        }
#pragma unroll
        for (int l = 0; l < 3; ++l) {
            pl_a[l] = quad_sum(pl_a[l]);
            pl_b[l] = quad_sum(pl_b[l]);
        }
        if (c == 0 && valid_a) {
            __global float *cell = cell_a + (long)j * SAMPLE_Q * BUDGET_CELL;
            cell[0] = mx_a;
            cell[1] = sm_a;
            cell[2] = pl_a[0];
            cell[3] = pl_a[1];
            cell[4] = pl_a[2];
        }
        if (c == 0 && valid_b) {
            __global float *cell = cell_b + (long)j * SAMPLE_Q * BUDGET_CELL;
            cell[0] = mx_b;
            cell[1] = sm_b;
            cell[2] = pl_b[0];
            cell[3] = pl_b[1];
            cell[4] = pl_b[2];
        }
        /* Online row maximum and total (quad-uniform, so every lane of a row agrees). */
        if (mx_a > best_a) {
            total_a = total_a * exp2(best_a - mx_a) + sm_a;
            best_a = mx_a;
        } else if (mx_a > -INFINITY) {
            total_a += sm_a * exp2(mx_a - best_a);
        }
        if (mx_b > best_b) {
            total_b = total_b * exp2(best_b - mx_b) + sm_b;
            best_b = mx_b;
        } else if (mx_b > -INFINITY) {
            total_b += sm_b * exp2(mx_b - best_b);
        }
    }
    if (c == 0) {
        row_max[warp][ra] = best_a;
        row_total[warp][ra] = valid_a ? total_a : 0.0f;
        row_max[warp][rb] = best_b;
        row_total[warp][rb] = valid_b ? total_b : 0.0f;
    }
    /* The cells were written by other lanes of the warp. */
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);

    /* The mass and losses of each of the warp's query blocks, lanes over key blocks. Rows that
     * see no key at all (causal, Nk < Nq) do not enter the mean. */
    for (int m = 0; m < BLOCKS_PER_WARP; ++m) {
        const int i = warp_block + m;
        if (i >= blocks_q)
            break;
        __local const float *r_max = row_max[warp] + m * SAMPLE_Q;
        __local const float *r_total = row_total[warp] + m * SAMPLE_Q;
        const int seen = budget_rows_seen(r_total, SAMPLE_Q);
        __global const float *cells = scratch + ((long)bh_local * blocks_q + i) * cells_per_block;
        const long row = (long)bh * blocks_q + i;
        /* Blocks past the last one any row sees were never measured: S and losses 0. */
        for (int j = lane; j < nk; j += 32)
            budget_fold_block(cells + (long)j * SAMPLE_Q * BUDGET_CELL, r_max, r_total,
                              j < j_end ? SAMPLE_Q : 0, seen, scores + row * nk + j,
                              loss + (row * nk + j) * 3);
    }
}
