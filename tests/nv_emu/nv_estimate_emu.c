/* SPDX-License-Identifier: Apache-2.0 */
/* Runs cl/nvidia/nv_estimate.cl on a CPU OpenCL device over nv_mma_emu.cl (and, with the
 * optional last argument 1, its NV_WGMMA path over nv_wgmma_emu.cl) and compares its block
 * importance S with cl/estimate.cl's estimate_sampled (the kernel test_psa checks against the
 * double-precision reference) on the same random bf16 inputs, sampled offsets and ordering:
 * S to 1e-6 + 1e-4 relative (the emulation sums the products in another order, and the
 * portable kernel scales q before the dot products instead of the maxima after). Covers the
 * kernel's warps of one or two m-tiles, query blocks per work-group, ragged last tiles and
 * blocks, GQA and a permutation. Arguments: one shape, see the usage line; run from the source
 * tree (it reads cl/ and tests/nv_emu/). Exit 0 when they agree, 77 without a CPU device. */
#include "emu_host.h"

typedef struct shape {
    int batch, heads_q, heads_kv, seq_q, seq_k, dim, block_q, block_k, sample_q, sample_k;
    int permuted, warps, tile, wgmma;
} shape;

/* The m-tiles of 16 sampled rows a warp of nv_estimate.cl takes, and so its warps per query
 * block and query blocks per work-group (src/variant_nvidia.c computes the same). */
static int blocks_per_group(const shape *s) {
    const int two = !s->wgmma && s->sample_q > 16;
    const int rows_per_warp = 16 * (two ? 2 : 1);
    const int warps_per_block = (s->sample_q + rows_per_warp - 1) / rows_per_warp;
    return s->warps / warps_per_block;
}

int main(int argc, char **argv) {
    if (argc < 14) {
        printf("usage: B Hq Hkv Nq Nk D BQ BK SQ SK permuted warps tile [wgmma]\n");
        return 2;
    }
    shape s;
    int *fields[] = {&s.batch,    &s.heads_q, &s.heads_kv, &s.seq_q,    &s.seq_k,
                     &s.dim,      &s.block_q, &s.block_k,  &s.sample_q, &s.sample_k,
                     &s.permuted, &s.warps,   &s.tile};
    for (int i = 0; i < 13; ++i)
        *fields[i] = atoi(argv[i + 1]);
    s.wgmma = argc > 14 ? atoi(argv[14]) : 0;
    if (s.permuted && s.seq_q != s.seq_k) {
        printf("a permutation needs Nq == Nk (as the library's orderings)\n");
        return 2;
    }
    srand((unsigned)(s.seq_q * 7 + s.seq_k * 13 + s.dim + s.block_q + s.block_k * 3 +
                     s.sample_q * 5 + s.sample_k + s.permuted + s.warps + s.tile));
    emu_device dev;
    if (!emu_device_open(&dev)) {
        printf("no CPU OpenCL device: skipped\n");
        return 77;
    }
    const int heads = s.batch * s.heads_q;
    const int nq = (s.seq_q + s.block_q - 1) / s.block_q,
              nk = (s.seq_k + s.block_k - 1) / s.block_k;
    const size_t qn = (size_t)heads * s.seq_q * s.dim;
    const size_t kn = (size_t)s.batch * s.heads_kv * s.seq_k * s.dim;
    unsigned short *q = malloc(qn * 2), *k = malloc(kn * 2);
    for (size_t i = 0; i < qn; ++i)
        q[i] = emu_to_bf16((float)(2 * emu_gauss()));
    for (size_t i = 0; i < kn; ++i)
        k[i] = emu_to_bf16((float)emu_gauss());
    const int n = s.seq_q > s.seq_k ? s.seq_q : s.seq_k;
    int *perm = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; ++i)
        perm[i] = i;
    if (s.permuted)
        for (int i = n - 1; i > 0; --i) {
            const int j = rand() % (i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    int *rows = malloc(sizeof(int) * (size_t)heads * s.sample_q);
    int *cols = malloc(sizeof(int) * (size_t)heads * s.sample_k);
    for (int i = 0; i < heads * s.sample_q; ++i)
        rows[i] = rand() % s.block_q;
    for (int i = 0; i < heads * s.sample_k; ++i)
        cols[i] = rand() % s.block_k;

    cl_int err;
    const cl_mem_flags in = CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR;
    cl_mem bq = clCreateBuffer(dev.context, in, qn * 2, q, &err);
    EMU_CHECK(err);
    cl_mem bk = clCreateBuffer(dev.context, in, kn * 2, k, &err);
    EMU_CHECK(err);
    cl_mem bperm = clCreateBuffer(dev.context, in, sizeof(int) * (size_t)n, perm, &err);
    EMU_CHECK(err);
    cl_mem brows =
        clCreateBuffer(dev.context, in, sizeof(int) * (size_t)heads * s.sample_q, rows, &err);
    EMU_CHECK(err);
    cl_mem bcols =
        clCreateBuffer(dev.context, in, sizeof(int) * (size_t)heads * s.sample_k, cols, &err);
    EMU_CHECK(err);
    /* The kernels' m2 (rows x nk per query block and head), then the emulation's exchange area:
     * NV_THREADS x 8 words per work-group (nv_mma_emu.cl's EMU_BUF). */
    const int per_group = blocks_per_group(&s);
    const size_t groups = (size_t)((nq + per_group - 1) / per_group) * heads;
    const size_t m2 = (size_t)heads * nq * s.sample_q * nk;
    const size_t scratch_n = m2 + 2 + groups * 32 * s.warps * 8;
    cl_mem bscratch = clCreateBuffer(dev.context, CL_MEM_READ_WRITE, scratch_n * 4, NULL, &err);
    EMU_CHECK(err);
    const size_t cells = (size_t)heads * nq * nk;
    float *out[2];
    char opts[512];
    for (int v = 0; v < 2; ++v) {
        cl_mem bscores = clCreateBuffer(dev.context, CL_MEM_READ_WRITE, cells * 4, NULL, &err);
        EMU_CHECK(err);
        const float poison = NAN;
        EMU_CHECK(clEnqueueFillBuffer(dev.queue, bscores, &poison, 4, 0, cells * 4, 0, NULL, NULL));
        cl_kernel kernel;
        size_t local[2] = {32, 1}, global[2] = {(size_t)nq * 32, (size_t)heads};
        if (v == 0) {
            const char *files[] = {"cl/common.cl", "cl/estimate.cl"};
            snprintf(opts, sizeof opts,
                     "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=3 -DBLOCK_Q=%d -DBLOCK_K=%d "
                     "-DSAMPLE_Q=%d -DSAMPLE_K=%d -DPERMUTED=%d -DEST_WG=32",
                     s.dim, s.block_q, s.block_k, s.sample_q, s.sample_k, s.permuted);
            kernel = emu_build(&dev, files, 2, opts, "estimate_sampled");
        } else {
            const char *mma[] = {"cl/common.cl", "tests/nv_emu/nv_mma_emu.cl",
                                 "cl/nvidia/nv_estimate.cl"};
            const char *wgmma[] = {"cl/common.cl", "tests/nv_emu/nv_mma_emu.cl",
                                   "tests/nv_emu/nv_wgmma_emu.cl", "cl/nvidia/nv_wgmma.cl",
                                   "cl/nvidia/nv_estimate.cl"};
            snprintf(opts, sizeof opts,
                     "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=3 -DBLOCK_Q=%d -DBLOCK_K=%d "
                     "-DSAMPLE_Q=%d -DSAMPLE_K=%d -DPERMUTED=%d -DNV_WARPS=%d -DNV_TILE_N=%d "
                     "-DNV_WGMMA=%d -DEMU_FLOATS_PER_CELL=1",
                     s.dim, s.block_q, s.block_k, s.sample_q, s.sample_k, s.permuted, s.warps,
                     s.tile, s.wgmma);
            kernel = s.wgmma ? emu_build(&dev, wgmma, 5, opts, "estimate_sampled")
                             : emu_build(&dev, mma, 3, opts, "estimate_sampled");
            local[0] = (size_t)32 * s.warps;
            global[0] = (size_t)((nq + per_group - 1) / per_group) * local[0];
        }
        const int bh_first = 0, group = s.heads_q / s.heads_kv;
        const float scale = 1.0f / sqrtf((float)s.dim);
        const cl_long qs[3] = {(cl_long)s.heads_q * s.seq_q * s.dim, (cl_long)s.seq_q * s.dim,
                               s.dim};
        const cl_long ks[3] = {(cl_long)s.heads_kv * s.seq_k * s.dim, (cl_long)s.seq_k * s.dim,
                               s.dim};
        cl_uint a = 0;
        const cl_mem buffers[] = {bq, bk, bperm, brows, bcols, bscratch, bscores};
        for (int i = 0; i < 7; ++i)
            EMU_CHECK(clSetKernelArg(kernel, a++, sizeof(cl_mem), &buffers[i]));
        const int ints[] = {bh_first, s.heads_q, group, s.seq_q, s.seq_k, nq, nk};
        for (int i = 0; i < 7; ++i)
            EMU_CHECK(clSetKernelArg(kernel, a++, sizeof(int), &ints[i]));
        EMU_CHECK(clSetKernelArg(kernel, a++, sizeof(float), &scale));
        for (int i = 0; i < 3; ++i)
            EMU_CHECK(clSetKernelArg(kernel, a++, sizeof(cl_long), &qs[i]));
        for (int i = 0; i < 3; ++i)
            EMU_CHECK(clSetKernelArg(kernel, a++, sizeof(cl_long), &ks[i]));
        EMU_CHECK(clEnqueueNDRangeKernel(dev.queue, kernel, 2, NULL, global, local, 0, NULL, NULL));
        out[v] = malloc(cells * 4);
        EMU_CHECK(
            clEnqueueReadBuffer(dev.queue, bscores, CL_TRUE, 0, cells * 4, out[v], 0, NULL, NULL));
        clReleaseKernel(kernel);
        clReleaseMemObject(bscores);
    }

    int bad = 0;
    double worst = 0, total = 0;
    for (size_t i = 0; i < cells; ++i) {
        const double got = out[1][i], want = out[0][i];
        const double err_ratio = fabs(got - want) / (1e-6 + 1e-4 * fabs(want));
        total += want;
        if (!(err_ratio <= 1.0) && bad++ < 5)
            printf("  S[%zu]: mma %.9g portable %.9g\n", i, got, want);
        if (!(err_ratio <= worst))
            worst = isnan(err_ratio) ? INFINITY : err_ratio;
    }
    printf("%s: bad %d, worst S %.3g (of tolerance), S total %.3f over %d rows, %d query blocks "
           "per work-group\n",
           bad ? "FAIL" : "ok", bad, worst, total, heads * nq, per_group);
    free(out[0]);
    free(out[1]);
    free(q);
    free(k);
    free(perm);
    free(rows);
    free(cols);
    const cl_mem buffers[] = {bq, bk, bperm, brows, bcols, bscratch};
    for (int i = 0; i < 6; ++i)
        clReleaseMemObject(buffers[i]);
    emu_device_close(&dev);
    return bad != 0;
}
