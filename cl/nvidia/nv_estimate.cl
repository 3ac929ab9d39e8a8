/* SPDX-License-Identifier: Apache-2.0 */
/* The sampled block-importance estimate on the tensor cores; built after common.cl and
 * nv_mma.cl, with the arguments of estimate.cl's estimate_sampled. For query block i, the
 * sampled rows r meet every key block's sampled keys c:
 *   m2[r][j] = max over c of scale log2(e) q_r . k_c,   rowmax[r] = max over j of m2[r][j]
 *   S[i][j] = P[i][j] / sum_j P[i][j],   P[i][j] = max over r of exp2(m2[r][j] - rowmax[r])
 * (the estimate of estimate.cl in base 2). A work-group holds several query blocks
 * (WARPS_PER_BLOCK warps each), so each staged tile of sampled keys serves all of them;
 * tiles are double-buffered with cp.async. m2 goes to the global scratch (nk x rows per block,
 * key block major) because rowmax is known only after the last tile: the eight rows of a quad
 * column are consecutive, so each store writes whole 32-byte sectors (row-major, every 4-byte
 * store was a sector of its own), and the epilogue reads a key block's rows as one run.
 * Tunables: NV_WARPS (warps per work-group, a multiple of the warps of one block),
 * NV_TILE_N (sampled keys per tile, a multiple of 16 and of SAMPLE_K).
 * Needs SAMPLE_K a multiple of 8 dividing NV_TILE_N, HEAD_DIM a multiple of 32 (host-checked).
 * NV_WGMMA = 1 (the nvidia-wgmma variant, compute capability 9.0, built after nv_wgmma.cl): one
 * m-tile per warp, the same fragments and epilogue, but each warpgroup of four warps (64 sampled
 * rows: 4 / WARPS_PER_BLOCK query blocks, or one block's four warps, or half of one's eight)
 * multiplies with wgmma, which reads the keys straight from local memory instead of one ldmatrix
 * per mma; so NV_WARPS is a multiple of 4 and the tiles are stored as core matrices
 * (WG_TILE_OFFSET) without padding. Every work-group re-reads all sampled keys of its head from L2:
 * more query blocks per work-group (NV_WARPS 8 or 16) divide that traffic. Needs HEAD_DIM 64 or
 * 128, NV_TILE_N 32, 64 or 128, SAMPLE_Q of 1, 2, 4 or 8 warps (host-checked). */
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
#define NV_THREADS_POW2                                                                            \
    (NV_THREADS <= 64    ? 64                                                                      \
     : NV_THREADS <= 128 ? 128                                                                     \
     : NV_THREADS <= 256 ? 256                                                                     \
     : NV_THREADS <= 512 ? 512                                                                     \
                         : 1024)
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
/* m-tiles of 16 sampled rows per warp: with two, each key fragment read from local memory
 * feeds two mma instead of one (the local-memory reads per mma halve); blocks of at most 16
 * sampled rows, and wgmma (a warpgroup's 64 rows), keep one. */
#define NV_MT (NV_WGMMA || SAMPLE_Q <= 16 ? 1 : 2)
#define NV_HALVES (2 * NV_MT) /* rows per work-item: g and g + 8 of each m-tile */
#define WARPS_PER_BLOCK ((SAMPLE_Q + 16 * NV_MT - 1) / (16 * NV_MT))
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

#if !NV_WGMMA
#define NV_COPIES_LANDED(pending) COPY_ASYNC_WAIT(pending)
#endif

__kernel __attribute__((reqd_work_group_size(NV_THREADS, 1, 1))) void estimate_sampled(
    __global const in_t *q, __global const in_t *k, __global const int *perm,
    __global const int *row_offsets, __global const int *key_offsets, __global float *scratch,
    __global float *scores, const int bh_first, const int heads_q, const int group, const int seq_q,
    const int seq_k, const int blocks_q, const int blocks_k, const float scale, const long q_sb,
    const long q_sh, const long q_sn, const long k_sb, const long k_sh, const long k_sn) {
    __local ushort k_tile[2][NV_TILE_N * NV_PITCH] __attribute__((aligned(16)));
    __local float row_max[BLOCKS_PER_GROUP][WARPS_PER_BLOCK * 16 * NV_MT];
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

    /* The work-item's rows: rh = 2 mt is row g of m-tile mt, rh = 2 mt + 1 row g + 8. */
    int row[NV_HALVES];
    bool valid[NV_HALVES];
    uint4 qf[NV_MT][HEAD_DIM / 16];
#pragma unroll
    for (int rh = 0; rh < NV_HALVES; ++rh) {
        row[rh] = ((warp - member * WARPS_PER_BLOCK) * NV_MT + rh / 2) * 16 + g + 8 * (rh & 1);
        valid[rh] = row[rh] < SAMPLE_Q && i < blocks_q;
    }
#pragma unroll
    for (int mt = 0; mt < NV_MT; ++mt) {
        /* Rows past the end of the sequence are replaced by the last row (replicate padding). */
        const int ta =
            valid[2 * mt] ? TOKEN(perm, min(i * BLOCK_Q + rows[row[2 * mt]], seq_q - 1)) : 0;
        const int tb = valid[2 * mt + 1]
                           ? TOKEN(perm, min(i * BLOCK_Q + rows[row[2 * mt + 1]], seq_q - 1))
                           : 0;
#pragma unroll
        for (int kc = 0; kc < HEAD_DIM / 16; ++kc) {
            const int d = kc * 16 + 2 * c;
            qf[mt][kc] = (uint4)(load_pair(q_head + (long)ta * q_sn, d, valid[2 * mt]),
                                 load_pair(q_head + (long)tb * q_sn, d, valid[2 * mt + 1]),
                                 load_pair(q_head + (long)ta * q_sn, d + 8, valid[2 * mt]),
                                 load_pair(q_head + (long)tb * q_sn, d + 8, valid[2 * mt + 1]));
        }
    }
    __global float *m2 = scratch + ((long)bh_local * blocks_q + i) * SAMPLE_Q * blocks_k;

    const int keys = blocks_k * SAMPLE_K;
    const int tiles = (keys + NV_TILE_N - 1) / NV_TILE_N;
    float best[NV_HALVES];
    /* 0 while every logit of the row was finite: fma(x, 0, z) is NaN for an infinite or NaN x
     * (estimate.cl's rule), one instruction per logit where a finiteness test took several. */
    float nonfinite[NV_HALVES];
#pragma unroll
    for (int rh = 0; rh < NV_HALVES; ++rh) {
        best[rh] = -INFINITY;
        nonfinite[rh] = 0.0f;
    }
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
#if NV_WGMMA
        /* The warpgroup's 64 rows against the tile, here in the kernel's body, where
         * tests/nv_emu's emulation of wgmma reaches the kernel's scratch argument. */
        float4 s_tile[NV_S_TILES];
#pragma unroll
        for (int nt = 0; nt < NV_S_TILES; ++nt)
            s_tile[nt] = (float4)(0.0f); /* overwritten by the first wgmma; defined for it */
        WG_TILE_SCORES(NV_TILE_N)(qf[0], tile, s_tile);
#endif
        float block_max[NV_HALVES][KEY_BLOCKS_PER_TILE];
        /* One key block at a time: its logits, then their maxima per row. */
#pragma unroll
        for (int kb = 0; kb < KEY_BLOCKS_PER_TILE; ++kb) {
            float4 s[NV_MT][TILES_PER_KEY_BLOCK];
#if NV_WGMMA
#pragma unroll
            for (int nt = 0; nt < TILES_PER_KEY_BLOCK; ++nt)
                s[0][nt] = s_tile[kb * TILES_PER_KEY_BLOCK + nt];
#else
#pragma unroll
            for (int mt = 0; mt < NV_MT; ++mt) {
#pragma unroll
                for (int nt = 0; nt < TILES_PER_KEY_BLOCK; ++nt)
                    s[mt][nt] = (float4)(0.0f);
            }
            /* Each key fragment feeds the NV_MT m-tiles of the warp. */
#pragma unroll
            for (int kc = 0; kc < HEAD_DIM / 16; kc += 2) {
#pragma unroll
                for (int nt = 0; nt < TILES_PER_KEY_BLOCK; ++nt) {
                    const uint4 kf = ldmatrix_x4(
                        tile + ((kb * TILES_PER_KEY_BLOCK + nt) * 8 + (lane & 7)) * NV_PITCH +
                        kc * 16 + (lane >> 3) * 8);
#pragma unroll
                    for (int mt = 0; mt < NV_MT; ++mt) {
                        s[mt][nt] = mma_16x8x16(qf[mt][kc], (uint2)(kf.x, kf.y), s[mt][nt]);
                        s[mt][nt] = mma_16x8x16(qf[mt][kc + 1], (uint2)(kf.z, kf.w), s[mt][nt]);
                    }
                }
            }
#endif
            const bool inside = t * KEY_BLOCKS_PER_TILE + kb < blocks_k;
#pragma unroll
            for (int mt = 0; mt < NV_MT; ++mt) {
                float max_a = -INFINITY, max_b = -INFINITY, z_a = 0.0f, z_b = 0.0f;
#pragma unroll
                for (int nt = 0; nt < TILES_PER_KEY_BLOCK; ++nt) {
                    max_a = fmax(max_a, fmax(s[mt][nt].x, s[mt][nt].y));
                    max_b = fmax(max_b, fmax(s[mt][nt].z, s[mt][nt].w));
                    z_a = fma(s[mt][nt].x, 0.0f, fma(s[mt][nt].y, 0.0f, z_a));
                    z_b = fma(s[mt][nt].z, 0.0f, fma(s[mt][nt].w, 0.0f, z_b));
                }
                block_max[2 * mt][kb] = quad_max(max_a) * q_scale;
                block_max[2 * mt + 1][kb] = quad_max(max_b) * q_scale;
                if (inside) {
                    best[2 * mt] = fmax(best[2 * mt], block_max[2 * mt][kb]);
                    best[2 * mt + 1] = fmax(best[2 * mt + 1], block_max[2 * mt + 1][kb]);
                    nonfinite[2 * mt] += z_a;
                    nonfinite[2 * mt + 1] += z_b;
                }
            }
        }
        /* Every lane of a quad holds its rows' maxima; lane c stores key blocks 4u + c, so one
         * store covers four key blocks of eight consecutive rows. */
#pragma unroll
        for (int base = 0; base < KEY_BLOCKS_PER_TILE; base += 4) {
            const int j = t * KEY_BLOCKS_PER_TILE + base + c;
#pragma unroll
            for (int rh = 0; rh < NV_HALVES; ++rh) {
                float out = block_max[rh][base];
#pragma unroll
                for (int u = 1; u < 4; ++u)
                    if (base + u < KEY_BLOCKS_PER_TILE)
                        out = c == u ? block_max[rh][base + u] : out;
                if (base + c < KEY_BLOCKS_PER_TILE && j < blocks_k && valid[rh])
                    m2[(long)j * SAMPLE_Q + row[rh]] = out;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE); /* the buffer is free for the tile after next */
    }
    /* A row whose quad met a non-finite logit gets a NaN maximum; the block's S row turns NaN
     * below. Every lane takes part in the shuffles. */
#pragma unroll
    for (int rh = 0; rh < NV_HALVES; ++rh) {
        const bool bad = quad_max(isnan(nonfinite[rh]) ? 1.0f : 0.0f) > 0.0f;
        if (c == 0 && valid[rh])
            row_max[member][row[rh]] = bad ? NAN : best[rh];
    }
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
        /* Eight work-items per key block, each over every eighth row, then their maximum. */
        const int r0 = tid & 7;
        for (int j0 = 0; j0 < blocks_k; j0 += NV_THREADS / 8) {
            const int j = j0 + tid / 8;
            float p = 0.0f;
            if (j < blocks_k)
                for (int r = r0; r < SAMPLE_Q; r += 8)
                    p = fmax(p, exp2(m2_block[(long)j * SAMPLE_Q + r] - row_max[m][r]));
            p = fmax(p, shuffle_xor(p, 1));
            p = fmax(p, shuffle_xor(p, 2));
            p = fmax(p, shuffle_xor(p, 4));
            if (j < blocks_k && r0 == 0)
                s_row[j] = p;
        }
        /* The total in the order of a work-item per key block j = tid, tid + NV_THREADS, ...
         * (the order the kernel used before the eight-per-block pass: the same bits). */
        barrier(CLK_GLOBAL_MEM_FENCE);
        for (int j = tid; j < blocks_k; j += NV_THREADS)
            partial += s_row[j];
        reduce[tid] = partial;
        barrier(CLK_LOCAL_MEM_FENCE);
        /* A tree over the next power of two: 3 warps a block make 96 or 192 work-items. */
        for (int half_size = NV_THREADS_POW2 / 2; half_size > 0; half_size /= 2) {
            if (tid < half_size && tid + half_size < NV_THREADS)
                reduce[tid] += reduce[tid + half_size];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        const float total = reduce[0];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = tid; j < blocks_k; j += NV_THREADS)
            s_row[j] /= total;
    }
}
