/* SPDX-License-Identifier: Apache-2.0 */
/* NVIDIA matrix-unit building blocks in inline PTX (compute capability 8.0 and newer), built
 * after common.cl by the nvidia-mma variants. NVIDIA's OpenCL compiler passes inline PTX
 * through, so mma.sync, ldmatrix, cp.async and warp shuffles are reachable from OpenCL C.
 *
 * Fragment layouts of mma.m16n8k16 (lane = 4 g + c, g in 0..7, c in 0..3), which the flash
 * kernels rely on:
 *   A 16x16 (row-major): x = (g, 2c..2c+1), y = (g+8, 2c..), z = (g, 2c+8..), w = (g+8, 2c+8..)
 *   B 16x8 (k x n):      x = (k 2c..2c+1, n g), y = (k 2c+8.., n g)
 *   C 16x8 fp32:         x, y = (g, 2c), (g, 2c+1); z, w = (g+8, 2c), (g+8, 2c+1)
 * Two neighbouring C tiles of probabilities are exactly one A fragment of P (FlashAttention-2's
 * register reuse), so P never goes through local memory. */
/* Everything here must inline: fragment arrays stay in registers only inside one function. */
#define NV_INLINE inline __attribute__((always_inline))

#if IN_TYPE == 2
#define MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#define PACK_OP "cvt.rn.f16x2.f32 "
#elif IN_TYPE == 3
#define MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
#define PACK_OP "cvt.rn.bf16x2.f32 "
#else
#error "the nvidia-mma kernels need fp16 or bf16 storage (IN_TYPE 2 or 3)"
#endif

/* The 32-bit shared-window address of a local pointer (what ldmatrix and cp.async take). */
NV_INLINE uint shared_address(__local const void *p) {
    return (uint)(size_t)p;
}

/* d = a b + c on the tensor cores, fp32 accumulation. */
NV_INLINE float4 mma_16x8x16(const uint4 a, const uint2 b, const float4 c) {
    float d0, d1, d2, d3;
    __asm__(MMA_OP "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
            : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
            : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y), "f"(c.x), "f"(c.y),
              "f"(c.z), "f"(c.w));
    return (float4)(d0, d1, d2, d3);
}

/* Two fp32 values as one register of two 16-bit values of the storage type, lo in bits 0-15. */
NV_INLINE uint pack2(const float lo, const float hi) {
    uint r;
    __asm__(PACK_OP "%0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

/* Four 8x8 16-bit matrices from local memory; lane l gives the address of row l % 8 of
 * matrix l / 8. */
NV_INLINE uint4 ldmatrix_x4(__local const ushort *row) {
    uint r0, r1, r2, r3;
    __asm__ __volatile__("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                         : "r"(shared_address(row))
                         : "memory");
    return (uint4)(r0, r1, r2, r3);
}

/* The same, transposed: lane 4g + c receives elements (2c, g) and (2c + 1, g). */
NV_INLINE uint4 ldmatrix_x4_trans(__local const ushort *row) {
    uint r0, r1, r2, r3;
    __asm__ __volatile__("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                         : "r"(shared_address(row))
                         : "memory");
    return (uint4)(r0, r1, r2, r3);
}

/* 16 bytes from global to local memory without passing through registers; bytes = 0 writes
 * zeros and reads nothing. Both addresses must be 16-byte aligned. */
NV_INLINE void copy16_async(__local ushort *dst, __global const ushort *src, const int bytes) {
    __asm__ __volatile__("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                         :
                         : "r"(shared_address(dst)), "l"(src), "r"(bytes)
                         : "memory");
}

NV_INLINE void copy_async_commit(void) {
    __asm__ __volatile__("cp.async.commit_group;" ::: "memory");
}

/* Waits until at most `pending` committed groups are still in flight (a literal). */
#define COPY_ASYNC_WAIT(pending)                                                                   \
    __asm__ __volatile__("cp.async.wait_group " #pending ";" ::: "memory")

NV_INLINE float shuffle_xor(const float x, const int mask) {
    float r;
    __asm__ __volatile__("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;"
                         : "=f"(r)
                         : "f"(x), "r"(mask));
    return r;
}

/* Max and sum over the four lanes of a quad (the lanes that share a fragment row). */
NV_INLINE float quad_max(float x) {
    x = fmax(x, shuffle_xor(x, 1));
    return fmax(x, shuffle_xor(x, 2));
}

NV_INLINE float quad_sum(float x) {
    x += shuffle_xor(x, 1);
    return x + shuffle_xor(x, 2);
}
