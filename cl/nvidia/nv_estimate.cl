/* SPDX-License-Identifier: Apache-2.0 */
/* The sampled block-importance estimate on the tensor cores; built after common.cl and
 * nv_mma.cl, with the arguments of estimate.cl's estimate_sampled. For query block i, the
 * sampled rows r meet every key block's sampled keys c:
 *   m2[r][j] = max over c of scale log2(e) q_r . k_c,   rowmax[r] = max over j of m2[r][j]
 *   S[i][j] = P[i][j] / sum_j P[i][j],   P[i][j] = max over r of exp2(m2[r][j] - rowmax[r])
 * (the estimate of estimate.cl in base 2). A work-group holds several query blocks
 * (ceil(SAMPLE_Q / 16) warps each), so each staged tile of sampled keys serves all of them;
 * tiles are double-buffered with cp.async. m2 goes to the global scratch (rows x nk per
 * block), as in the portable kernels, because rowmax is known only after the last tile.
 * Tunables: NV_WARPS (warps per work-group, a multiple of the warps of one block),
 * NV_TILE_N (sampled keys per tile, a multiple of 16 and of SAMPLE_K).
 * Needs SAMPLE_K a multiple of 8 dividing NV_TILE_N, HEAD_DIM a multiple of 32 (host-checked).
 * NV_WGMMA = 1 (the nvidia-wgmma variant, compute capability 9.0, built after nv_wgmma.cl): the
 * same rows per warp, fragments and epilogue, but each warpgroup of four warps (64 sampled rows:
 * 4 / WARPS_PER_BLOCK query blocks, or one block's four warps, or half of one's eight) multiplies
 * with wgmma, which reads the keys straight from local memory instead of one ldmatrix per mma; so
 * NV_WARPS is a multiple of 4 and the tiles are stored as core matrices (WG_TILE_OFFSET) without
 * padding. Every work-group re-reads all sampled keys of its head from L2: more query blocks per
 * work-group (NV_WARPS 8 or 16) divide that traffic. Needs HEAD_DIM 64 or 128, NV_TILE_N 32, 64
 * or 128, SAMPLE_Q of 1, 2, 4 or 8 warps (host-checked). */
#ifndef NV_WARPS
#define NV_WARPS 8 /* warps per work-group */
#endif
#ifndef NV_TILE_N
#define NV_TILE_N 64 /* sampled keys per tile */
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#ifndef SAMPLE_Q
#define SAMPLE_Q (BLOCK_Q / 4) /* sampled rows per query block */
#endif
#ifndef SAMPLE_K
#define SAMPLE_K (BLOCK_K / 4) /* sampled keys per key block */
#endif
#ifndef NV_WGMMA
#define NV_WGMMA 0 /* 1: wgmma (nv_wgmma.cl) instead of mma.sync */
#endif

#define NV_THREADS (32 * NV_WARPS)
#define NV_CHUNKS (HEAD_DIM / 8)
#if NV_WGMMA
#define NV_PITCH HEAD_DIM
#define NV_TILE_OFFSET(j, piece) WG_TILE_OFFSET(j, piece)
#if NV_WARPS % 4 != 0 || (HEAD_DIM != 64 && HEAD_DIM != 128) ||                                    \
    (NV_TILE_N != 32 && NV_TILE_N != 64 && NV_TILE_N != 128)
#error                                                                                             \
    "nv_estimate.cl with NV_WGMMA needs NV_WARPS % 4 == 0, HEAD_DIM 64 or 128, NV_TILE_N 32, 64 or 128"
#endif
#else
#define NV_PITCH (HEAD_DIM + 8) /* 16 bytes of padding: ldmatrix rows fall in distinct banks */
#define NV_TILE_OFFSET(j, piece) ((j)*NV_PITCH + (piece)*8)
#endif
#define NV_S_TILES (NV_TILE_N / 8)
#define WARPS_PER_BLOCK ((SAMPLE_Q + 15) / 16)
#define BLOCKS_PER_GROUP (NV_WARPS / WARPS_PER_BLOCK)
#define KEY_BLOCKS_PER_TILE (NV_TILE_N / SAMPLE_K)
#define TILES_PER_KEY_BLOCK (SAMPLE_K / 8) /* n-tiles of 8 keys in one key block */
#define PIECES_PER_ITEM ((NV_TILE_N * NV_CHUNKS + NV_THREADS - 1) / NV_THREADS)
#define PIECE_SETS (NV_CHUNKS / PIECES_PER_ITEM) /* copy items per key row */

#if SAMPLE_K % 8 != 0 || NV_TILE_N % SAMPLE_K != 0 || NV_WARPS % WARPS_PER_BLOCK != 0 ||           \
    HEAD_DIM % 32 != 0 || NV_CHUNKS % PIECES_PER_ITEM != 0
#error "nv_estimate.cl: unsupported SAMPLE_K, NV_TILE_N, NV_WARPS or HEAD_DIM"
#endif

typedef __global const ushort *rows16_t;

/* Which key row of a tile, and which first piece of it, the copy item starting at piece number
 * `first` (a multiple of PIECES_PER_ITEM) moves: PIECES_PER_ITEM consecutive pieces of the row. */
NV_INLINE int2 copy_item(const int first) {
#if NV_WGMMA
    /* Neighbouring work-items take neighbouring rows of one piece: each quarter-warp's 16-byte
     * writes fill one core matrix. */
    const int u = first / PIECES_PER_ITEM;
    return (int2)((u / (8 * PIECE_SETS)) * 8 + (u & 7), ((u / 8) % PIECE_SETS) * PIECES_PER_ITEM);
#else
    const int j = first / NV_CHUNKS; /* NV_CHUNKS is a multiple of PIECES_PER_ITEM */
    return (int2)(j, first - j * NV_CHUNKS);
#endif
}

/* Starts the copy of tile `tile` of the sampled keys (replicate padding past the end). Each
 * work-item copies PIECES_PER_ITEM pieces of one key row, so it looks up the row (offsets, then
 * the ordering: two dependent global reads) once for all of them. */
NV_INLINE void stage_sampled_keys(__local ushort *dst, rows16_t k_head, const long k_sn,
                                  __global const int *cols, __global const int *perm,
                                  const int tile, const int keys, const int seq_k) {
    for (int first = get_local_id(0) * PIECES_PER_ITEM; first < NV_TILE_N * NV_CHUNKS;
         first += NV_THREADS * PIECES_PER_ITEM) {
        const int2 at = copy_item(first);
        const int j = at.x, piece0 = at.y;
        const int slot = tile * NV_TILE_N + j;
        rows16_t row = k_head;
        if (slot < keys) {
            const int block = slot / SAMPLE_K;
            const int key =
                TOKEN(perm, min(block * BLOCK_K + cols[slot - block * SAMPLE_K], seq_k - 1));
            row = k_head + (long)key * k_sn;
        }
        for (int piece = piece0; piece < piece0 + PIECES_PER_ITEM; ++piece)
            copy16_async(dst + NV_TILE_OFFSET(j, piece), slot < keys ? row + piece * 8 : k_head,
                         slot < keys ? 16 : 0);
    }
}

NV_INLINE uint load_pair(rows16_t row, const int d, const bool valid) {
    return valid ? *(__global const uint *)(row + d) : 0u;
}

#if NV_WGMMA

/* The warpgroup's 64 rows against one tile of sampled keys. */
NV_INLINE void tile_scores(const uint4 *qf, __local const ushort *tile, float4 *s) {
#pragma unroll
    for (int nt = 0; nt < NV_S_TILES; ++nt)
        s[nt] = (float4)(0.0f); /* overwritten by the first wgmma; defined for the compiler */
    WG_TILE_SCORES(NV_TILE_N)(qf, tile, s);
}
#else
#define NV_COPIES_LANDED(pending) COPY_ASYNC_WAIT(pending)
#endif

__kernel __attribute__((reqd_work_group_size(NV_THREADS, 1, 1))) void estimate_sampled(
    __global const in_t *q, __global const in_t *k, __global const int *perm,
    __global const int *row_offsets, __global const int *key_offsets, __global float *scratch,
    __global float *scores, const int bh_first, const int heads_q, const int group, const int seq_q,
    const int seq_k, const int blocks_q, const int blocks_k, const float scale, const long q_sb,
    const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn) {
    __local ushort k_tile[2][NV_TILE_N * NV_PITCH] __attribute__((aligned(16)));
    __local float row_max[BLOCKS_PER_GROUP][WARPS_PER_BLOCK * 16];
    __local float reduce[NV_THREADS];

    const int tid = get_local_id(0);
    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, c = lane & 3;
    const int member = warp / WARPS_PER_BLOCK; /* which of the group's query blocks */
    const int i = get_group_id(0) * BLOCKS_PER_GROUP + member;
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    rows16_t q_head = (rows16_t)q + b * q_sb + h * q_sh;
    rows16_t k_head = (rows16_t)k + b * k_sb + kvh * k_sh;
    __global const int *rows = row_offsets + (long)bh * SAMPLE_Q;
    __global const int *cols = key_offsets + (long)bh * SAMPLE_K;
    const float q_scale = scale * LOG2E;

    const int ra = (warp - member * WARPS_PER_BLOCK) * 16 + g, rb = ra + 8;
    const bool valid_a = ra < SAMPLE_Q && i < blocks_q, valid_b = rb < SAMPLE_Q && i < blocks_q;
    /* Rows past the end of the sequence are replaced by the last row (replicate padding). */
    const int ta = valid_a ? TOKEN(perm, min(i * BLOCK_Q + rows[ra], seq_q - 1)) : 0;
    const int tb = valid_b ? TOKEN(perm, min(i * BLOCK_Q + rows[rb], seq_q - 1)) : 0;
    uint4 qf[HEAD_DIM / 16];
#pragma unroll
    for (int kc = 0; kc < HEAD_DIM / 16; ++kc) {
        const int d = kc * 16 + 2 * c;
        qf[kc] = (uint4)(load_pair(q_head + (long)ta * q_sn, d, valid_a),
                         load_pair(q_head + (long)tb * q_sn, d, valid_b),
                         load_pair(q_head + (long)ta * q_sn, d + 8, valid_a),
                         load_pair(q_head + (long)tb * q_sn, d + 8, valid_b));
    }
    __global float *m2 = scratch + ((long)bh_local * blocks_q + i) * SAMPLE_Q * blocks_k;
    __global float *m2_a = m2 + (long)ra * blocks_k, *m2_b = m2 + (long)rb * blocks_k;

    const int keys = blocks_k * SAMPLE_K;
    const int tiles = (keys + NV_TILE_N - 1) / NV_TILE_N;
    float best_a = -INFINITY, best_b = -INFINITY;
    bool bad_a = false, bad_b = false; /* met a NaN or infinite logit (estimate.cl) */
    stage_sampled_keys(k_tile[0], k_head, k_sn, cols, perm, 0, keys, seq_k);
    copy_async_commit();
    for (int t = 0; t < tiles; ++t) {
        if (t + 1 < tiles) {
            stage_sampled_keys(k_tile[(t + 1) & 1], k_head, k_sn, cols, perm, t + 1, keys, seq_k);
            copy_async_commit();
            NV_COPIES_LANDED(1);
        } else {
            NV_COPIES_LANDED(0);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        __local const ushort *tile = k_tile[t & 1];
        float4 s[NV_S_TILES];
#if NV_WGMMA
        tile_scores(qf, tile, s);
#else
#pragma unroll
        for (int nt = 0; nt < NV_S_TILES; ++nt)
            s[nt] = (float4)(0.0f);
#pragma unroll
        for (int kc = 0; kc < HEAD_DIM / 16; kc += 2) {
#pragma unroll
            for (int nt = 0; nt < NV_S_TILES; ++nt) {
                const uint4 kb = ldmatrix_x4(tile + (nt * 8 + (lane & 7)) * NV_PITCH + kc * 16 +
                                             (lane >> 3) * 8);
                s[nt] = mma_16x8x16(qf[kc], (uint2)(kb.x, kb.y), s[nt]);
                s[nt] = mma_16x8x16(qf[kc + 1], (uint2)(kb.z, kb.w), s[nt]);
            }
        }
#endif
#pragma unroll
        for (int kb = 0; kb < KEY_BLOCKS_PER_TILE; ++kb) {
            float max_a = -INFINITY, max_b = -INFINITY;
            bool nf_a = false, nf_b = false;
#pragma unroll
            for (int nt = kb * TILES_PER_KEY_BLOCK; nt < (kb + 1) * TILES_PER_KEY_BLOCK; ++nt) {
                max_a = fmax(max_a, fmax(s[nt].x, s[nt].y));
                max_b = fmax(max_b, fmax(s[nt].z, s[nt].w));
                nf_a |= !isfinite(s[nt].x) || !isfinite(s[nt].y);
                nf_b |= !isfinite(s[nt].z) || !isfinite(s[nt].w);
            }
            max_a = quad_max(max_a) * q_scale;
            max_b = quad_max(max_b) * q_scale;
            const int j = t * KEY_BLOCKS_PER_TILE + kb;
            if (j < blocks_k) {
                best_a = fmax(best_a, max_a);
                best_b = fmax(best_b, max_b);
                bad_a |= nf_a;
                bad_b |= nf_b;
                if (c == 0 && valid_a)
                    m2_a[j] = max_a;
                if (c == 0 && valid_b)
                    m2_b[j] = max_b;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* the buffer is free for the tile after next */
    }
    /* A row whose quad met a non-finite logit gets a NaN maximum; the block's S row turns NaN
     * below. Every lane takes part in the shuffles. */
    bad_a = quad_max(bad_a ? 1.0f : 0.0f) > 0.0f;
    bad_b = quad_max(bad_b ? 1.0f : 0.0f) > 0.0f;
    if (c == 0 && valid_a)
        row_max[member][ra] = bad_a ? NAN : best_a;
    if (c == 0 && valid_b)
        row_max[member][rb] = bad_b ? NAN : best_b;
    barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);

    /* S[i][.] for each query block of the group, by all of its work-items. */
    for (int m = 0; m < BLOCKS_PER_GROUP; ++m) {
        const int block = get_group_id(0) * BLOCKS_PER_GROUP + m;
        if (block >= blocks_q)
            break;
        __global const float *m2_block =
            scratch + ((long)bh_local * blocks_q + block) * SAMPLE_Q * blocks_k;
        __global float *s_row = scores + ((long)bh * blocks_q + block) * blocks_k;
        /* x - x: 0 for a finite row maximum, NaN for a NaN one, so the total and the row are NaN.
         */
        float partial = 0.0f;
        for (int r = tid; r < SAMPLE_Q; r += NV_THREADS)
            partial += row_max[m][r] - row_max[m][r];
        for (int j = tid; j < blocks_k; j += NV_THREADS) {
            float p = 0.0f;
            for (int r = 0; r < SAMPLE_Q; ++r)
                p = fmax(p, exp2(m2_block[(long)r * blocks_k + j] - row_max[m][r]));
            s_row[j] = p;
            partial += p;
        }
        reduce[tid] = partial;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int half_size = NV_THREADS / 2; half_size > 0; half_size /= 2) {
            if (tid < half_size)
                reduce[tid] += reduce[tid + half_size];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        const float total = reduce[0];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = tid; j < blocks_k; j += NV_THREADS)
            s_row[j] /= total;
    }
}
