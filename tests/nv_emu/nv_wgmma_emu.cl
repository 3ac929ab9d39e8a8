/* SPDX-License-Identifier: Apache-2.0 */
/* nv_wgmma.cl's instructions emulated in plain OpenCL C (bf16 only), built after nv_mma_emu.cl
 * and before cl/nvidia/nv_wgmma.cl (which then keeps only WG_TILE_OFFSET) and a kernel's
 * NV_WGMMA = 1 path, so that path's staging into core matrices and its fragment and accumulator
 * indexing run on a CPU device. The emulation follows the instruction's documented semantics,
 * not the kernels' own layout macro: wgmma.m64nNk16 with A in registers (warp w of the
 * warpgroup holds rows 16w..16w+15 in mma.m16n8k16's A layout) and a K-major B read through a
 * descriptor, element (n, k) of the 16-value chunk at
 *   start + (n / 8) SBO + (k / 8) LBO + (n % 8) 16 + (k % 8) 2 bytes,
 * and the accumulator in mma.m16n8k16's C layout per warp, n-tile after n-tile. The
 * warpgroup's lanes exchange their A fragments through the kernel's `scratch` tail as
 * nv_mma_emu.cl does (EMU_BUF), so the helpers are macros used in the kernel's body, reached by
 * every work-item of the group. */
#define WG_EMULATED 1

/* One wgmma.m64nNk16 (d (+)= A B^T): a from this work-item, B K-major at b (LBO, SBO in bytes). */
inline void emu_wgmma_kmajor(__global uint *x, float4 *d, const int n, const uint4 a,
                             __local const uchar *b, const int lbo, const int sbo,
                             const int accumulate) {
    const int tid = get_local_id(0), lane = tid & 31, warp_base = tid - lane;
    const int g = lane >> 2, c = lane & 3;
    barrier(CLK_GLOBAL_MEM_FENCE);
    x[tid * 4 + 0] = a.x;
    x[tid * 4 + 1] = a.y;
    x[tid * 4 + 2] = a.z;
    x[tid * 4 + 3] = a.w;
    barrier(CLK_GLOBAL_MEM_FENCE);
    for (int nt = 0; nt < n / 8; ++nt) {
        float out[4] = {d[nt].x, d[nt].y, d[nt].z, d[nt].w};
        for (int o = 0; o < 4; ++o) {
            const int r = g + (o >= 2 ? 8 : 0), col = nt * 8 + 2 * c + (o & 1);
            float acc = 0.0f;
            for (int kk = 0; kk < 16; ++kk) {
                /* A[r][kk] of this warp: lane 4 (r % 8) + (kk % 8) / 2, register
                 * (r >= 8) + 2 (kk >= 8), half kk % 2 */
                const int areg = (r >= 8 ? 1 : 0) + (kk >= 8 ? 2 : 0);
                const uint aw = x[(warp_base + 4 * (r & 7) + (kk & 7) / 2) * 4 + areg];
                const float av = bf((kk & 1) ? aw >> 16 : aw & 0xffff);
                __local const ushort *bp =
                    (__local const ushort *)(b + (col / 8) * sbo + (kk / 8) * lbo + (col % 8) * 16 +
                                             (kk % 8) * 2);
                acc += av * bf(*bp);
            }
            out[o] = (accumulate ? out[o] : 0.0f) + acc;
        }
        d[nt] = (float4)(out[0], out[1], out[2], out[3]);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
}

/* nv_wgmma.cl's wg_tile_scores_nN: one wgmma per 16 values of D at descriptor start
 * tile + kc * 2 * 64 elements, LBO 128, SBO 16 HEAD_DIM bytes, the first overwriting s. */
#define EMU_TILE_SCORES(n, qf, tile, s)                                                            \
    do {                                                                                           \
        for (int kc_ = 0; kc_ < HEAD_DIM / 16; ++kc_)                                              \
            emu_wgmma_kmajor(EMU_BUF, (s), (n), (qf)[kc_],                                         \
                             (__local const uchar *)((tile) + kc_ * 2 * 64), 128, 16 * HEAD_DIM,   \
                             kc_ > 0);                                                             \
    } while (0)
#define wg_tile_scores_n32(qf, tile, s) EMU_TILE_SCORES(32, qf, tile, s)
#define wg_tile_scores_n56(qf, tile, s) EMU_TILE_SCORES(56, qf, tile, s)
#define wg_tile_scores_n64(qf, tile, s) EMU_TILE_SCORES(64, qf, tile, s)
#define wg_tile_scores_n112(qf, tile, s) EMU_TILE_SCORES(112, qf, tile, s)
#define wg_tile_scores_n128(qf, tile, s) EMU_TILE_SCORES(128, qf, tile, s)
#define WG_TILE_SCORES(n) WG_TILE_SCORES_(n)
#define WG_TILE_SCORES_(n) wg_tile_scores_n##n

/* The copies of the emulated cp.async are plain stores, already visible. */
#define wg_fence_shared() ((void)0)
