/* SPDX-License-Identifier: Apache-2.0 */
/* Runs cl/nvidia/nv_budget.cl on a CPU OpenCL device over nv_mma_emu.cl (and, with the optional
 * last argument 1, its NV_WGMMA path over nv_wgmma_emu.cl) and compares its S and
 * pooling losses with cl/budget.cl's budget_measure (the kernel test_budget checks against the
 * double-precision reference) on the same random bf16 inputs: S and loss to 1e-6 + 1e-4
 * relative (the emulation sums the products in another order). Arguments: one shape, see the
 * usage line; run from the source tree (it reads cl/ and tests/nv_emu/). Exit 0 when they
 * agree. */
#include "emu_host.h"

int main(int argc, char **argv) {
    if (argc < 13) {
        printf("usage: B Hq Hkv Nq Nk D BQ BK SQ causal perm warps [wgmma]\n");
        return 2;
    }
    const int wgmma = argc > 13 ? atoi(argv[13]) : 0;
    int B = atoi(argv[1]), Hq = atoi(argv[2]), Hkv = atoi(argv[3]), Nq = atoi(argv[4]),
        Nk = atoi(argv[5]);
    int D = atoi(argv[6]), BQ = atoi(argv[7]), BK = atoi(argv[8]), SQ = atoi(argv[9]),
        causal = atoi(argv[10]);
    int permuted = atoi(argv[11]), warps = atoi(argv[12]);
    if (permuted && Nq != Nk) {
        printf("a permutation needs Nq == Nk (as the library's orderings)\n");
        return 2;
    }
    srand(Nq * 7 + Nk * 13 + D + BQ + BK * 3 + SQ + causal + permuted);
    emu_device dev;
    if (!emu_device_open(&dev)) {
        printf("no CPU OpenCL device: skipped\n");
        return 77;
    }
    cl_int e;
    int nq = (Nq + BQ - 1) / BQ, nk = (Nk + BK - 1) / BK, np2 = (Nk + 1) / 2, np4 = (Nk + 3) / 4,
        np8 = (Nk + 7) / 8;
    size_t qn = (size_t)B * Hq * Nq * D, kn = (size_t)B * Hkv * Nk * D,
           pn = (size_t)B * Hkv * (np2 + np4 + np8) * D;
    unsigned short *q = malloc(qn * 2), *k = malloc(kn * 2), *kp = malloc(pn * 2);
    for (size_t i = 0; i < qn; ++i)
        q[i] = emu_to_bf16(2 * emu_gauss());
    for (size_t i = 0; i < kn; ++i)
        k[i] = emu_to_bf16(emu_gauss());
    int *perm = malloc(sizeof(int) * (Nk > Nq ? Nk : Nq));
    int N = Nk > Nq ? Nk : Nq;
    for (int i = 0; i < N; ++i)
        perm[i] = i;
    if (permuted)
        for (int i = N - 1; i > 0; --i) {
            int j = rand() % (i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    for (int bh = 0; bh < B * Hkv; ++bh) {
        size_t off = (size_t)bh * (np2 + np4 + np8);
        for (int l = 1; l <= 3; ++l) {
            int f = 1 << l, np = l == 1 ? np2 : l == 2 ? np4 : np8;
            size_t base = off + (l == 1 ? 0 : l == 2 ? np2 : np2 + np4);
            for (int p = 0; p < np; ++p)
                for (int d = 0; d < D; ++d) {
                    double s = 0;
                    int cnt = 0;
                    for (int c = p * f; c < p * f + f && c < Nk; ++c, ++cnt)
                        s += emu_from_bf16(k[((size_t)bh * Nk + (permuted ? perm[c] : c)) * D + d]);
                    kp[(base + p) * D + d] = emu_to_bf16((float)(s / cnt));
                }
        }
    }
    int *rows = malloc(sizeof(int) * B * Hq * SQ);
    for (int i = 0; i < B * Hq * SQ; ++i)
        rows[i] = rand() % BQ;
    size_t cells = (size_t)B * Hq * nq * nk * SQ * 5;
    size_t groups = (size_t)B * Hq * nq * 2 + 64;
    size_t scratch_n = cells + 2 + groups * 32 * 16 * 8;
    cl_mem bq = clCreateBuffer(dev.context, CL_MEM_COPY_HOST_PTR, qn * 2, q, &e);
    EMU_CHECK(e);
    cl_mem bk = clCreateBuffer(dev.context, CL_MEM_COPY_HOST_PTR, kn * 2, k, &e);
    EMU_CHECK(e);
    cl_mem bp = clCreateBuffer(dev.context, CL_MEM_COPY_HOST_PTR, pn * 2, kp, &e);
    EMU_CHECK(e);
    cl_mem bperm = clCreateBuffer(dev.context, CL_MEM_COPY_HOST_PTR, sizeof(int) * N, perm, &e);
    EMU_CHECK(e);
    cl_mem brows =
        clCreateBuffer(dev.context, CL_MEM_COPY_HOST_PTR, sizeof(int) * B * Hq * SQ, rows, &e);
    EMU_CHECK(e);
    cl_mem bs = clCreateBuffer(dev.context, 0, scratch_n * 4, NULL, &e);
    EMU_CHECK(e);
    size_t rowsn = (size_t)B * Hq * nq * nk;
    float *out[2][2];
    char opts[512];
    for (int v = 0; v < 2; ++v) {
        cl_mem bsc = clCreateBuffer(dev.context, 0, rowsn * 4, NULL, &e);
        EMU_CHECK(e);
        cl_mem bl = clCreateBuffer(dev.context, 0, rowsn * 12, NULL, &e);
        EMU_CHECK(e);
        float nanv = NAN;
        EMU_CHECK(clEnqueueFillBuffer(dev.queue, bsc, &nanv, 4, 0, rowsn * 4, 0, NULL, NULL));
        EMU_CHECK(clEnqueueFillBuffer(dev.queue, bl, &nanv, 4, 0, rowsn * 12, 0, NULL, NULL));
        cl_kernel kr;
        int wg, per;
        if (v == 0) {
            const char *f[] = {"cl/common.cl", "cl/budget.cl"};
            snprintf(opts, sizeof opts,
                     "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=3 -DBLOCK_Q=%d -DBLOCK_K=%d "
                     "-DSAMPLE_Q=%d -DPERMUTED=%d -DBUDGET_WG=32",
                     D, BQ, BK, SQ, permuted);
            kr = emu_build(&dev, f, 2, opts, "budget_measure");
            wg = 32;
            per = 1;
        } else {
            const char *f[] = {"cl/common.cl", "tests/nv_emu/nv_mma_emu.cl",
                               wgmma ? "tests/nv_emu/nv_wgmma_emu.cl" : "cl/nvidia/nv_budget.cl",
                               "cl/nvidia/nv_wgmma.cl", "cl/nvidia/nv_budget.cl"};
            snprintf(opts, sizeof opts,
                     "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=3 -DBLOCK_Q=%d -DBLOCK_K=%d "
                     "-DSAMPLE_Q=%d -DPERMUTED=%d -DNV_WARPS=%d -DNV_WGMMA=%d",
                     D, BQ, BK, SQ, permuted, warps, wgmma ? 1 : 0);
            kr = emu_build(&dev, f, wgmma ? 5 : 3, opts, "budget_measure");
            wg = 32 * warps;
            per = warps * (16 / SQ);
        }
        int bh_first = 0, group = Hq / Hkv;
        float scale = 1.0f / sqrtf(D);
        long qs[3] = {(long)Hq * Nq * D, (long)Nq * D, D},
             ks[3] = {(long)Hkv * Nk * D, (long)Nk * D, D};
        int a = 0;
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bq, &bq));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bk, &bk));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bp, &bp));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bperm, &bperm));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof brows, &brows));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bs, &bs));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bsc, &bsc));
        EMU_CHECK(clSetKernelArg(kr, a++, sizeof bl, &bl));
        int ints[] = {bh_first, Hq, group, Nq, Nk, nq, nk, np2, np4, np8};
        for (int i = 0; i < 10; ++i)
            EMU_CHECK(clSetKernelArg(kr, a++, 4, &ints[i]));
        EMU_CHECK(clSetKernelArg(kr, a++, 4, &scale));
        EMU_CHECK(clSetKernelArg(kr, a++, 4, &causal));
        for (int i = 0; i < 3; ++i)
            EMU_CHECK(clSetKernelArg(kr, a++, 8, &qs[i]));
        for (int i = 0; i < 3; ++i)
            EMU_CHECK(clSetKernelArg(kr, a++, 8, &ks[i]));
        size_t local[2] = {wg, 1},
               global[2] = {(size_t)((nq + per - 1) / per) * wg, (size_t)B * Hq};
        EMU_CHECK(clEnqueueNDRangeKernel(dev.queue, kr, 2, NULL, global, local, 0, NULL, NULL));
        out[v][0] = malloc(rowsn * 4);
        out[v][1] = malloc(rowsn * 12);
        EMU_CHECK(
            clEnqueueReadBuffer(dev.queue, bsc, CL_TRUE, 0, rowsn * 4, out[v][0], 0, NULL, NULL));
        EMU_CHECK(
            clEnqueueReadBuffer(dev.queue, bl, CL_TRUE, 0, rowsn * 12, out[v][1], 0, NULL, NULL));
        clReleaseKernel(kr);
        clReleaseMemObject(bsc);
        clReleaseMemObject(bl);
    }
    double worst[2] = {0, 0};
    int bad = 0;
    double ssum = 0;
    for (int o = 0; o < 2; ++o) {
        size_t n = o ? rowsn * 3 : rowsn;
        for (size_t i = 0; i < n; ++i) {
            double a = out[1][o][i], b = out[0][o][i];
            double err = fabs(a - b) / (1e-6 + 1e-4 * fabs(b));
            if (o == 0)
                ssum += b;
            if (!(err <= 1.0)) {
                if (bad++ < 5)
                    printf("  %s[%zu]: mma %.9g portable %.9g\n", o ? "loss" : "S", i, a, b);
            }
            if (err > worst[o] || isnan(err))
                worst[o] = isnan(err) ? INFINITY : err;
        }
    }
    printf("%s: bad %d, worst S %.3g loss %.3g (of tolerance), S total %.3f over %zu rows\n",
           bad ? "FAIL" : "ok", bad, worst[0], worst[1], ssum, (size_t)B * Hq * nq);
    for (int v = 0; v < 2; ++v)
        for (int o = 0; o < 2; ++o)
            free(out[v][o]);
    free(q);
    free(k);
    free(kp);
    free(perm);
    free(rows);
    cl_mem buffers[] = {bq, bk, bp, bperm, brows, bs};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
        clReleaseMemObject(buffers[i]);
    emu_device_close(&dev);
    return bad != 0;
}
