/* SPDX-License-Identifier: Apache-2.0 */
/* Hopper's warpgroup matrix instructions (wgmma, compute capability 9.0) from OpenCL C; built
 * after common.cl and nv_mma.cl by the nvidia-wgmma variants.
 *
 * NVIDIA's OpenCL compiler emits PTX for `.target sm_90`, where wgmma does not exist, so an
 * inline wgmma would fail the build. Every sm_90a-only instruction is therefore written behind
 * the comment marker WG_SM90A: the first build sees a comment (its operands still bound to
 * registers, so the register allocation around it is real), and the host then takes the PTX
 * of that build, deletes the markers, declares `.target sm_90a` and builds the result again
 * with clCreateProgramWithBinary (src/ptx_sm90a.c). A kernel built only once, unpatched,
 * computes nothing useful: the host never runs it.
 *
 * A warpgroup is four consecutive warps (128 work-items). wgmma m64nNk16 multiplies a 64x16
 * A by a 16xN B into a 64xN fp32 accumulator spread over the warpgroup: warp w holds rows
 * 16w..16w+15 in mma.m16n8k16's C layout, n-tile after n-tile (d[4j..4j+3] = tile j), and an A
 * held in registers uses mma.m16n8k16's A layout for the warp's 16 rows (nv_mma.cl).
 *
 * B lives in local memory in "core matrices" of 8 rows x 16 bytes, each 128 contiguous bytes,
 * described by a 64-bit descriptor: start address, LBO (bytes between core matrices adjacent
 * along the reduction dimension K), SBO (bytes between core matrices adjacent along N), no
 * swizzle. K-major: a core matrix row is 8 values of one n along K (keys of K^T). N-major
 * (transposed read): a core matrix row is 8 values of one k along N (rows of V).
 *
 * Local memory written by ordinary stores or cp.async must be fenced into the async proxy
 * (wg_fence_shared) before a wgmma reads it.
 *
 * tests/nv_emu/nv_wgmma_emu.cl defines WG_EMULATED and supplies everything but WG_TILE_OFFSET
 * in plain OpenCL C (from the instructions' documented semantics), so the kernels' staging and
 * fragment indexing also run on a CPU device. */
/* Where row j's 16-byte piece p (in elements) sits in a tile of HEAD_DIM-wide rows stored as
 * K-major core matrices: the eight rows of an 8-row group share one 128-byte core matrix per
 * piece, a row's pieces are 64 elements apart, the 8-row groups 8 HEAD_DIM apart. Staging that
 * lets neighbouring work-items copy neighbouring rows of one piece fills whole core matrices,
 * free of bank conflicts. */
#define WG_TILE_OFFSET(j, piece) (((j) >> 3) * 8 * HEAD_DIM + (piece)*64 + ((j)&7) * 8)

/* Waits for this work-item's copies and hands them to wgmma's (async) view of local memory:
 * what the kernels call before the barrier that precedes a wgmma on the copied tile. */
#define NV_COPIES_LANDED(pending)                                                                  \
    do {                                                                                           \
        COPY_ASYNC_WAIT(pending);                                                                  \
        wg_fence_shared();                                                                         \
    } while (0)

#ifndef WG_EMULATED
#if IN_TYPE == 2
#define WG_TYPE "f16"
#else
#define WG_TYPE "bf16"
#endif

/* What the host deletes from the PTX to enable the instruction after it. */
#define WG_SM90A "//clpsa-sm90a:"

/* The descriptor of a B operand at p (16-byte aligned), no swizzle. */
NV_INLINE ulong wg_descriptor(__local const void *p, const uint lbo, const uint sbo) {
    const ulong address = (shared_address(p) >> 4) & 0x3fff;
    return address | ((ulong)((lbo >> 4) & 0x3fff) << 16) | ((ulong)((sbo >> 4) & 0x3fff) << 32);
}

/* Orders this warpgroup's register writes before the wgmmas that follow (their A fragments and
 * accumulators). */
NV_INLINE void wg_fence(void) {
    __asm__ __volatile__(WG_SM90A "wgmma.fence.sync.aligned;" ::: "memory");
}

/* Closes the group of wgmmas issued since the last commit. */
NV_INLINE void wg_commit(void) {
    __asm__ __volatile__(WG_SM90A "wgmma.commit_group.sync.aligned;" ::: "memory");
}

/* Makes this work-item's local-memory writes (stores, completed cp.async) visible to wgmma. */
NV_INLINE void wg_fence_shared(void) {
    __asm__ __volatile__(WG_SM90A "fence.proxy.async.shared::cta;" ::: "memory");
}

/* The operands of a wgmma with a 64 x (4 quads) fp32 accumulator d[0..quads-1] (warp w's rows
 * 16w..16w+15, mma.m16n8k16's C layout tile after tile) and of the wait that ends it: WG_D<quads>
 * binds the accumulator ("+f", so the compiler keeps it in registers across the asynchronous
 * instruction), WG_R<4 quads> names those operands in the instruction text. */
#define WG_D(i) "+f"(d[i].x), "+f"(d[i].y), "+f"(d[i].z), "+f"(d[i].w)
#define WG_D4 WG_D(0), WG_D(1), WG_D(2), WG_D(3)
#define WG_D7 WG_D4, WG_D(4), WG_D(5), WG_D(6)
#define WG_D8 WG_D7, WG_D(7)
#define WG_D14 WG_D8, WG_D(8), WG_D(9), WG_D(10), WG_D(11), WG_D(12), WG_D(13)
#define WG_D16 WG_D14, WG_D(14), WG_D(15)
#define WG_D28                                                                                     \
    WG_D16, WG_D(16), WG_D(17), WG_D(18), WG_D(19), WG_D(20), WG_D(21), WG_D(22), WG_D(23),        \
        WG_D(24), WG_D(25), WG_D(26), WG_D(27)
#define WG_R16 "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15"
#define WG_R28 WG_R16 ",%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27"
#define WG_R32 WG_R28 ",%28,%29,%30,%31"
#define WG_R56                                                                                     \
    WG_R32                                                                                         \
    ",%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%"   \
    "54,%55"
#define WG_R64 WG_R56 ",%56,%57,%58,%59,%60,%61,%62,%63"

/* wgmma.mma_async m64<n>k16 with fp32 accumulators named dregs, A in the four registers areg,
 * B's descriptor desc, and a predicate from pred (0: d = A B, else d += A B); trans 1 reads B
 * N-major (transposed), 0 K-major. The A, descriptor and predicate operands are WG_MMA_IN. */
#define WG_MMA_ASM(n, trans, dregs, areg, desc, pred)                                              \
    "{\n.reg .pred p;\nsetp.ne.b32 p, " pred ", 0;\n" WG_SM90A                                     \
    "wgmma.mma_async.sync.aligned.m64n" #n "k16.f32." WG_TYPE "." WG_TYPE " {" dregs "}, {" areg   \
    "}, " desc ", p, 1, 1, " #trans ";\n}"
#define WG_MMA_IN "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate)

/* d[0..3] (+)= A B^T: A 64x16 in registers, B 32x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n32(float4 *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(32, 0, WG_R16, "%16,%17,%18,%19", "%20", "%21")
                         : WG_D4
                         : WG_MMA_IN);
}

/* Budget mode's pooled tokens (7/8 of a key block: 56 or 112 rows). */
/* d[0..6] (+)= A B^T: A 64x16 in registers, B 56x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n56(float4 *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(56, 0, WG_R28, "%28,%29,%30,%31", "%32", "%33")
                         : WG_D7
                         : WG_MMA_IN);
}

/* d[0..7] (+)= A B^T: A 64x16 in registers, B 64x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n64(float4 *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(64, 0, WG_R32, "%32,%33,%34,%35", "%36", "%37")
                         : WG_D8
                         : WG_MMA_IN);
}

/* d[0..13] (+)= A B^T: A 64x16 in registers, B 112x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n112(float4 *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(112, 0, WG_R56, "%56,%57,%58,%59", "%60", "%61")
                         : WG_D14
                         : WG_MMA_IN);
}

/* d[0..15] (+)= A B^T: A 64x16 in registers, B 128x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n128(float4 *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(128, 0, WG_R64, "%64,%65,%66,%67", "%68", "%69")
                         : WG_D16
                         : WG_MMA_IN);
}

/* d[0..7] += A B: A 64x16 in registers, B 16x64 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n64(float4 *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(64, 1, WG_R32, "%32,%33,%34,%35", "%36", "%37")
                         : WG_D8
                         : WG_MMA_IN);
}

/* d[0..15] += A B: A 64x16 in registers, B 16x128 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n128(float4 *d, const uint4 a, const ulong b_desc,
                                   const int accumulate) {
    __asm__ __volatile__(WG_MMA_ASM(128, 1, WG_R64, "%64,%65,%66,%67", "%68", "%69")
                         : WG_D16
                         : WG_MMA_IN);
}

/* Waits for every wgmma in flight. The accumulators are outputs of the wait, so the compiler
 * cannot read them, or move them, before it. */
#define WG_WAIT_ASM WG_SM90A "wgmma.wait_group.sync.aligned 0;"
NV_INLINE void wg_wait_4(float4 *d) {
    __asm__ __volatile__(WG_WAIT_ASM:WG_D4 : : "memory");
}
NV_INLINE void wg_wait_8(float4 *d) {
    __asm__ __volatile__(WG_WAIT_ASM:WG_D8 : : "memory");
}
NV_INLINE void wg_wait_14(float4 *d) {
    __asm__ __volatile__(WG_WAIT_ASM:WG_D14 : : "memory");
}
NV_INLINE void wg_wait_16(float4 *d) {
    __asm__ __volatile__(WG_WAIT_ASM:WG_D16 : : "memory");
}
NV_INLINE void wg_wait_28(float4 *d) {
    __asm__ __volatile__(WG_WAIT_ASM:WG_D28 : : "memory");
}

/* s = A B^T over the whole head dimension for a tile of n rows in WG_TILE_OFFSET's layout: A (this
 * warpgroup's 64 rows) in mma.m16n8k16 fragments qf[HEAD_DIM / 16], one wgmma per 16 values of
 * D (the first overwrites s), then the wait. Descriptor: LBO = 128 bytes between pieces along D,
 * SBO = 16 HEAD_DIM bytes between 8-row groups along n. Every warp of the warpgroup must call
 * it, with the tile's copies fenced into the async proxy (wg_fence_shared) and a barrier since. */
#define WG_DEFINE_TILE_SCORES(n, quads)                                                            \
    NV_INLINE void wg_tile_scores_n##n(const uint4 *qf, __local const ushort *tile, float4 *s) {   \
        wg_fence();                                                                                \
        _Pragma("unroll") for (int kc = 0; kc < HEAD_DIM / 16; ++kc) wg_mma_kmajor_n##n(           \
            s, qf[kc], wg_descriptor(tile + kc * 2 * 64, 128, 16 * HEAD_DIM), kc > 0);             \
        wg_commit();                                                                               \
        wg_wait_##quads(s);                                                                        \
    }
WG_DEFINE_TILE_SCORES(32, 4)
WG_DEFINE_TILE_SCORES(56, 14)
WG_DEFINE_TILE_SCORES(64, 8)
WG_DEFINE_TILE_SCORES(112, 28)
WG_DEFINE_TILE_SCORES(128, 16)
/* wg_tile_scores(n) names the function for a macro argument n (expanded first). */
#define WG_TILE_SCORES(n) WG_TILE_SCORES_(n)
#define WG_TILE_SCORES_(n) wg_tile_scores_n##n
#endif /* WG_EMULATED */
