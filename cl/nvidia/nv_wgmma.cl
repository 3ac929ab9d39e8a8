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

/* d[0..15] (+)= A B^T: A 64x16 in registers, B 32x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n32(float *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__("{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n" WG_SM90A
                         "wgmma.mma_async.sync.aligned.m64n32k16.f32." WG_TYPE "." WG_TYPE " "
                         "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}, "
                         "{%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                           "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                           "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                         : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..31] (+)= A B^T: A 64x16 in registers, B 64x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n64(float *d, const uint4 a, const ulong b_desc,
                                 const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..63] (+)= A B^T: A 64x16 in registers, B 128x16 in local memory, K-major. */
NV_INLINE void wg_mma_kmajor_n128(float *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%"
        "46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
        "{%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
          "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
          "+f"(d[63])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..31] += A B: A 64x16 in registers, B 16x64 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n64(float *d, const uint4 a, const ulong b_desc,
                                  const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n64k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* d[0..63] += A B: A 64x16 in registers, B 16x128 in local memory, N-major (transposed read). */
NV_INLINE void wg_mma_mnmajor_n128(float *d, const uint4 a, const ulong b_desc,
                                   const int accumulate) {
    __asm__ __volatile__(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n" WG_SM90A
        "wgmma.mma_async.sync.aligned.m64n128k16.f32." WG_TYPE "." WG_TYPE " "
        "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"
        "24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%"
        "46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "
        "{%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
          "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
          "+f"(d[63])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "l"(b_desc), "r"(accumulate));
}

/* Waits for every wgmma in flight. The accumulators are outputs of the wait, so the compiler
 * cannot read them, or move them, before it. */
NV_INLINE void wg_wait_16(float *d) {
    __asm__ __volatile__(WG_SM90A "wgmma.wait_group.sync.aligned 0;"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                           "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                           "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                         :
                         : "memory");
}

NV_INLINE void wg_wait_32(float *d) {
    __asm__ __volatile__(WG_SM90A "wgmma.wait_group.sync.aligned 0;"
                         : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
                           "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]),
                           "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
                           "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]),
                           "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]),
                           "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                         :
                         : "memory");
}

NV_INLINE void wg_wait_64(float *d) {
    __asm__ __volatile__(
        WG_SM90A "wgmma.wait_group.sync.aligned 0;"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
          "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
          "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
          "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
          "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
          "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
          "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
          "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
          "+f"(d[63])
        :
        : "memory");
}
