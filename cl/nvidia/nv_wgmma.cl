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
 * (wg_fence_shared) before a wgmma reads it. */
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

/* d[0..3] (+)= A B^T: A 64x16 in registers, B 32x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n32(float4 *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n" WG_SM90A
                         "wgmma.mma_async.sync.aligned.m64n32k16.f32." WG_TYPE "." WG_TYPE " "
                         "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
                         "{%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}"
                         : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x),
                           "+f"(d[1].y), "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y),
                           "+f"(d[2].z), "+f"(d[2].w), "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z),
                           "+f"(d[3].w)
                         : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..7] (+)= A B^T: A 64x16 in registers, B 64x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n64(float4 *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}"
        : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x), "+f"(d[1].y),
          "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y), "+f"(d[2].z), "+f"(d[2].w),
          "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z), "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y),
          "+f"(d[4].z), "+f"(d[4].w), "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w),
          "+f"(d[6].x), "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
          "+f"(d[7].z), "+f"(d[7].w)
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..15] (+)= A B^T: A 64x16 in registers, B 128x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n128(float4 *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%"
        "46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
        "{%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}"
        : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x), "+f"(d[1].y),
          "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y), "+f"(d[2].z), "+f"(d[2].w),
          "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z), "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y),
          "+f"(d[4].z), "+f"(d[4].w), "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w),
          "+f"(d[6].x), "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
          "+f"(d[7].z), "+f"(d[7].w), "+f"(d[8].x), "+f"(d[8].y), "+f"(d[8].z), "+f"(d[8].w),
          "+f"(d[9].x), "+f"(d[9].y), "+f"(d[9].z), "+f"(d[9].w), "+f"(d[10].x), "+f"(d[10].y),
          "+f"(d[10].z), "+f"(d[10].w), "+f"(d[11].x), "+f"(d[11].y), "+f"(d[11].z), "+f"(d[11].w),
          "+f"(d[12].x), "+f"(d[12].y), "+f"(d[12].z), "+f"(d[12].w), "+f"(d[13].x), "+f"(d[13].y),
          "+f"(d[13].z), "+f"(d[13].w), "+f"(d[14].x), "+f"(d[14].y), "+f"(d[14].z), "+f"(d[14].w),
          "+f"(d[15].x), "+f"(d[15].y), "+f"(d[15].z), "+f"(d[15].w)
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..7] += A B: A 64x16 in registers, B 16x64 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n64(float4 *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}"
        : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x), "+f"(d[1].y),
          "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y), "+f"(d[2].z), "+f"(d[2].w),
          "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z), "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y),
          "+f"(d[4].z), "+f"(d[4].w), "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w),
          "+f"(d[6].x), "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
          "+f"(d[7].z), "+f"(d[7].w)
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..15] += A B: A 64x16 in registers, B 16x128 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n128(float4 *d, const uint4 a, const ulong b_desc,
                                   const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%"
        "46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
        "{%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}"
        : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x), "+f"(d[1].y),
          "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y), "+f"(d[2].z), "+f"(d[2].w),
          "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z), "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y),
          "+f"(d[4].z), "+f"(d[4].w), "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w),
          "+f"(d[6].x), "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
          "+f"(d[7].z), "+f"(d[7].w), "+f"(d[8].x), "+f"(d[8].y), "+f"(d[8].z), "+f"(d[8].w),
          "+f"(d[9].x), "+f"(d[9].y), "+f"(d[9].z), "+f"(d[9].w), "+f"(d[10].x), "+f"(d[10].y),
          "+f"(d[10].z), "+f"(d[10].w), "+f"(d[11].x), "+f"(d[11].y), "+f"(d[11].z), "+f"(d[11].w),
          "+f"(d[12].x), "+f"(d[12].y), "+f"(d[12].z), "+f"(d[12].w), "+f"(d[13].x), "+f"(d[13].y),
          "+f"(d[13].z), "+f"(d[13].w), "+f"(d[14].x), "+f"(d[14].y), "+f"(d[14].z), "+f"(d[14].w),
          "+f"(d[15].x), "+f"(d[15].y), "+f"(d[15].z), "+f"(d[15].w)
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* Waits for every wgmma in flight. The accumulators are outputs of the wait, so the compiler
 * cannot read them, or move them, before it. */
NV_INLINE void wg_wait_4(float4 *d) {
    __asm__ __volatile__(WG_SM90A "wgmma.wait_group.sync.aligned 0;"
                         : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x),
                           "+f"(d[1].y), "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y),
                           "+f"(d[2].z), "+f"(d[2].w), "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z),
                           "+f"(d[3].w)
                         :
                         : "memory");
}

NV_INLINE void wg_wait_8(float4 *d) {
    __asm__ __volatile__(WG_SM90A "wgmma.wait_group.sync.aligned 0;"
                         : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x),
                           "+f"(d[1].y), "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y),
                           "+f"(d[2].z), "+f"(d[2].w), "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z),
                           "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y), "+f"(d[4].z), "+f"(d[4].w),
                           "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w), "+f"(d[6].x),
                           "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
                           "+f"(d[7].z), "+f"(d[7].w)
                         :
                         : "memory");
}

NV_INLINE void wg_wait_16(float4 *d) {
    __asm__ __volatile__(
        WG_SM90A "wgmma.wait_group.sync.aligned 0;"
        : "+f"(d[0].x), "+f"(d[0].y), "+f"(d[0].z), "+f"(d[0].w), "+f"(d[1].x), "+f"(d[1].y),
          "+f"(d[1].z), "+f"(d[1].w), "+f"(d[2].x), "+f"(d[2].y), "+f"(d[2].z), "+f"(d[2].w),
          "+f"(d[3].x), "+f"(d[3].y), "+f"(d[3].z), "+f"(d[3].w), "+f"(d[4].x), "+f"(d[4].y),
          "+f"(d[4].z), "+f"(d[4].w), "+f"(d[5].x), "+f"(d[5].y), "+f"(d[5].z), "+f"(d[5].w),
          "+f"(d[6].x), "+f"(d[6].y), "+f"(d[6].z), "+f"(d[6].w), "+f"(d[7].x), "+f"(d[7].y),
          "+f"(d[7].z), "+f"(d[7].w), "+f"(d[8].x), "+f"(d[8].y), "+f"(d[8].z), "+f"(d[8].w),
          "+f"(d[9].x), "+f"(d[9].y), "+f"(d[9].z), "+f"(d[9].w), "+f"(d[10].x), "+f"(d[10].y),
          "+f"(d[10].z), "+f"(d[10].w), "+f"(d[11].x), "+f"(d[11].y), "+f"(d[11].z), "+f"(d[11].w),
          "+f"(d[12].x), "+f"(d[12].y), "+f"(d[12].z), "+f"(d[12].w), "+f"(d[13].x), "+f"(d[13].y),
          "+f"(d[13].z), "+f"(d[13].w), "+f"(d[14].x), "+f"(d[14].y), "+f"(d[14].z), "+f"(d[14].w),
          "+f"(d[15].x), "+f"(d[15].y), "+f"(d[15].z), "+f"(d[15].w)
        :
        : "memory");
}
