/* SPDX-License-Identifier: Apache-2.0 */
/* nv_mma.cl's helpers emulated in plain OpenCL C (bf16 only), built in its place before
 * cl/nvidia/nv_budget.cl or cl/nvidia/nv_estimate.cl so that kernel's indexing (staging,
 * fragment rows, masks, pooled levels, the row maxima and totals, the final pass) runs on a CPU
 * device, where the matrix units do not exist. The fragment layouts are the ones nv_mma.cl
 * documents. A warp's lanes exchange registers through global memory: program-scope buffers
 * are not available in OpenCL C 1.2 and local memory cannot be declared outside the kernel, so
 * the helpers are macros over the kernel's `scratch` argument, whose tail (after the kernel's
 * own cells) the harness sizes for one area per work-group. Every helper is reached by all
 * work-items of the group (the kernel calls them in uniform control flow), so the exchanges
 * use work-group barriers. */
#define NV_INLINE inline
#define EMU_STRIDE (NV_THREADS * 8)
#ifndef EMU_FLOATS_PER_CELL
/* The kernel's own floats per (sampled row, key block) at the start of scratch: nv_budget.cl's
 * five; nv_estimate.cl's harness sets 1. */
#define EMU_FLOATS_PER_CELL 5
#endif
#define EMU_BUF                                                                                    \
    ((__global uint *)scratch +                                                                    \
     ((long)get_num_groups(1) * blocks_q * blocks_k * SAMPLE_Q * EMU_FLOATS_PER_CELL + 1) / 2 *    \
         2 +                                                                                       \
     ((long)get_group_id(1) * get_num_groups(0) + get_group_id(0)) * EMU_STRIDE)

inline float bf(uint h) {
    return as_float(h << 16);
}

inline float4 emu_mma(__global uint *x, const uint4 a, const uint2 b, const float4 c) {
    const int tid = get_local_id(0), lane = tid & 31, base = tid - lane;
    const int g = lane >> 2, cc = lane & 3;
    barrier(CLK_GLOBAL_MEM_FENCE);
    x[tid * 6 + 0] = a.x;
    x[tid * 6 + 1] = a.y;
    x[tid * 6 + 2] = a.z;
    x[tid * 6 + 3] = a.w;
    x[tid * 6 + 4] = b.x;
    x[tid * 6 + 5] = b.y;
    barrier(CLK_GLOBAL_MEM_FENCE);
    float d[4] = {c.x, c.y, c.z, c.w};
    for (int o = 0; o < 4; ++o) {
        const int r = g + (o >= 2 ? 8 : 0), n = 2 * cc + (o & 1);
        float acc = 0.0f;
        for (int kk = 0; kk < 16; ++kk) {
            const int areg = (r >= 8 ? 1 : 0) + (kk >= 8 ? 2 : 0);
            const uint aw = x[(base + 4 * (r & 7) + (kk & 7) / 2) * 6 + areg];
            const float av = bf((kk & 1) ? aw >> 16 : aw & 0xffff);
            const uint bw = x[(base + 4 * n + (kk & 7) / 2) * 6 + 4 + (kk >= 8 ? 1 : 0)];
            const float bv = bf((kk & 1) ? bw >> 16 : bw & 0xffff);
            acc += av * bv;
        }
        d[o] += acc;
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    return (float4)(d[0], d[1], d[2], d[3]);
}

inline uint4 emu_ldmatrix(__global uint *x, __local const ushort *row) {
    const int tid = get_local_id(0), lane = tid & 31, base = tid - lane;
    const int g = lane >> 2, cc = lane & 3;
    __global ulong *p = (__global ulong *)x;
    barrier(CLK_GLOBAL_MEM_FENCE);
    p[tid] = (ulong)(size_t)row;
    barrier(CLK_GLOBAL_MEM_FENCE);
    uint r[4];
    for (int i = 0; i < 4; ++i) {
        __local const ushort *src = (__local const ushort *)(size_t)p[base + i * 8 + g];
        r[i] = (uint)src[2 * cc] | ((uint)src[2 * cc + 1] << 16);
    }
    barrier(CLK_GLOBAL_MEM_FENCE);
    return (uint4)(r[0], r[1], r[2], r[3]);
}

inline float emu_shuffle(__global uint *x, float v, int mask) {
    const int tid = get_local_id(0), lane = tid & 31, base = tid - lane;
    barrier(CLK_GLOBAL_MEM_FENCE);
    x[tid] = as_uint(v);
    barrier(CLK_GLOBAL_MEM_FENCE);
    const float r = as_float(x[base + (lane ^ mask)]);
    barrier(CLK_GLOBAL_MEM_FENCE);
    return r;
}

#define mma_16x8x16(a, b, c) emu_mma(EMU_BUF, a, b, c)
#define ldmatrix_x4(row) emu_ldmatrix(EMU_BUF, row)
#define quad_max(v) emu_quad_max(EMU_BUF, v)
#define shuffle_xor(v, mask) emu_shuffle(EMU_BUF, v, mask)
#define quad_sum(v) emu_quad_sum(EMU_BUF, v)
inline float emu_quad_max(__global uint *x, float v) {
    v = fmax(v, emu_shuffle(x, v, 1));
    return fmax(v, emu_shuffle(x, v, 2));
}
inline float emu_quad_sum(__global uint *x, float v) {
    v += emu_shuffle(x, v, 1);
    return v + emu_shuffle(x, v, 2);
}

inline void copy16_async(__local ushort *dst, __global const ushort *src, const int bytes) {
    for (int e = 0; e < 8; ++e)
        dst[e] = bytes ? src[e] : 0;
}
inline void copy_async_commit(void) {
}
#define COPY_ASYNC_WAIT(pending) ((void)0)
