/* SPDX-License-Identifier: Apache-2.0 */
/* Probe kernels for bench/probe/wgmma_probe.c, built after nv_mma.cl and nv_wgmma.cl: one
 * warpgroup multiplies small matrices with wgmma, B staged in local memory in a layout the host
 * chooses, so the host can tell which descriptor fields (LBO, SBO) mean what on this driver.
 * Matrices are bf16, row-major in global memory. */

/* A's fragment for rows 16 w + g, g + 8 and reduction columns k0 .. k0 + 15 (nv_mma.cl). */
NV_INLINE uint4 probe_a_fragment(__global const uint *a, const int cols, const int row,
                                 const int k0) {
    const int c = get_local_id(0) & 3;
    const int w = cols / 2; /* 32-bit words per row */
    return (uint4)(a[row * w + k0 / 2 + c], a[(row + 8) * w + k0 / 2 + c],
                   a[row * w + k0 / 2 + 4 + c], a[(row + 8) * w + k0 / 2 + 4 + c]);
}

/* C = A B^T, A 64x64, B 64x64 given as rows of n (K-major); B's element (n, k) is stored at byte
 * (n / 8) lay_n + (k / 8) lay_k + (n % 8) 16 + (k % 8) 2. */
__kernel __attribute__((reqd_work_group_size(128, 1, 1))) void
probe_kmajor(__global const uint *a, __global const ushort *b, __global float *c, const uint lay_k,
             const uint lay_n, const uint lbo, const uint sbo) {
    __local ushort tile[64 * 64] __attribute__((aligned(128)));
    const int lid = get_local_id(0);
    for (int e = lid; e < 64 * 64; e += 128) {
        const int n = e / 64, k = e % 64;
        tile[((n / 8) * lay_n + (k / 8) * lay_k + (n % 8) * 16 + (k % 8) * 2) / 2] = b[e];
    }
    wg_fence_shared();
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lane = lid & 31, g = lane >> 2, q = lane & 3;
    const int row = 16 * (lid >> 5) + g;
    float4 d[8];
    for (int i = 0; i < 8; ++i)
        d[i] = (float4)(-1.0f); /* overwritten: the first wgmma does not accumulate */
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; ++kc)
        wg_mma_kmajor_n64(d, probe_a_fragment(a, 64, row, 16 * kc),
                          wg_descriptor((__local const uchar *)tile + 2 * kc * lay_k, lbo, sbo),
                          kc > 0);
    wg_commit();
    wg_wait_8(d);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        c[row * 64 + 8 * j + 2 * q] = d[j].x;
        c[row * 64 + 8 * j + 2 * q + 1] = d[j].y;
        c[(row + 8) * 64 + 8 * j + 2 * q] = d[j].z;
        c[(row + 8) * 64 + 8 * j + 2 * q + 1] = d[j].w;
    }
}

/* C = A B, A 64x64, B 64x128 given as rows of k (N-major); B's element (k, n) is stored at byte
 * (k / 8) lay_k + (n / 8) lay_n + (k % 8) 16 + (n % 8) 2. */
__kernel __attribute__((reqd_work_group_size(128, 1, 1))) void
probe_nmajor(__global const uint *a, __global const ushort *b, __global float *c, const uint lay_k,
             const uint lay_n, const uint lbo, const uint sbo) {
    __local ushort tile[64 * 128] __attribute__((aligned(128)));
    const int lid = get_local_id(0);
    for (int e = lid; e < 64 * 128; e += 128) {
        const int k = e / 128, n = e % 128;
        tile[((k / 8) * lay_k + (n / 8) * lay_n + (k % 8) * 16 + (n % 8) * 2) / 2] = b[e];
    }
    wg_fence_shared();
    barrier(CLK_LOCAL_MEM_FENCE);
    const int lane = lid & 31, g = lane >> 2, q = lane & 3;
    const int row = 16 * (lid >> 5) + g;
    float4 d[16];
    for (int i = 0; i < 16; ++i)
        d[i] = (float4)(0.0f);
    wg_fence();
#pragma unroll
    for (int kc = 0; kc < 4; ++kc)
        wg_mma_mnmajor_n128(d, probe_a_fragment(a, 64, row, 16 * kc),
                            wg_descriptor((__local const uchar *)tile + 2 * kc * lay_k, lbo, sbo),
                            1);
    wg_commit();
    wg_wait_16(d);
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        c[row * 128 + 8 * j + 2 * q] = d[j].x;
        c[row * 128 + 8 * j + 2 * q + 1] = d[j].y;
        c[(row + 8) * 128 + 8 * j + 2 * q] = d[j].z;
        c[(row + 8) * 128 + 8 * j + 2 * q + 1] = d[j].w;
    }
}

/* Throughput: each warpgroup runs `iters` rounds of eight m64n128k16 on one staged 128x128
 * K-major tile (contents irrelevant), then writes one value so nothing is dead. */
__kernel __attribute__((reqd_work_group_size(128, 1, 1))) void probe_rate(__global float *out,
                                                                          const int iters) {
    __local ushort tile[128 * 128] __attribute__((aligned(128)));
    const int lid = get_local_id(0);
    for (int e = lid; e < 128 * 128; e += 128)
        tile[e] = (ushort)(0x3c00 + (e & 7));
    wg_fence_shared();
    barrier(CLK_LOCAL_MEM_FENCE);
    float4 d[16];
    for (int i = 0; i < 16; ++i)
        d[i] = (float4)(0.0f);
    const uint4 a = (uint4)(0x3f803f80u);
    for (int it = 0; it < iters; ++it) {
        wg_fence();
#pragma unroll
        for (int kc = 0; kc < 8; ++kc)
            wg_mma_kmajor_n128(
                d, a, wg_descriptor((__local const uchar *)tile + 2 * kc * 128, 128, 128 * 16), 1);
        wg_commit();
        wg_wait_16(d);
    }
    float s = 0.0f;
    for (int i = 0; i < 16; ++i)
        s += d[i].x + d[i].y + d[i].z + d[i].w;
    out[get_global_id(0)] = s;
}
