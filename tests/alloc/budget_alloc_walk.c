/* SPDX-License-Identifier: Apache-2.0 */
/* Runs cl/budget.cl's budget_allocate on a CPU OpenCL device and compares every row's levels
 * with a host copy of the allocation's definition in fp32: the row's hull upgrades sorted by
 * ratio (larger first, then lower block, then earlier step) and walked one after another,
 * each taken when it is its block's next step and fits. The kernel finds the same result by a
 * selection (no sort, no serial walk); this checks that it equals the walk exactly, ties
 * included. The inputs are dyadic (few mantissa bits), so the hull's products and differences
 * are exact in fp32 on both sides and contraction cannot change them: many exact ties
 * (identical blocks, zero-loss blocks, ratios equal across steps of different blocks), empty
 * blocks (w = 0), budgets from below zero (forced blocks beyond it) through 1 unit to all of
 * the row, nk 1, 2, 3, primes, 1013, and causal rows with forced and future blocks. Run from
 * the source tree (it reads cl/). Exit 0 when every row agrees, 77 without a CPU device. */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/read_text.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(uint32_t n) { /* uniform-enough in [0, n) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32) % n;
}

typedef struct host_upgrade {
    float ratio;
    int key, cost, level;
} host_upgrade;

static int host_order(const void *pa, const void *pb) {
    const host_upgrade *a = pa, *b = pb;
    if (a->ratio != b->ratio)
        return a->ratio > b->ratio ? -1 : 1;
    return (a->key > b->key) - (a->key < b->key);
}

/* The allocation's definition, in the kernel's fp32 arithmetic, one row. */
static void host_allocate(const float *w_row, const float *loss_row, int nk, int i, int seq_q,
                          int seq_k, int block_q, int block_k, int text_blocks, int text_row_first,
                          int causal, int budget_units, signed char *out) {
    host_upgrade *ups = malloc((size_t)nk * 4 * sizeof *ups);
    int *next = calloc((size_t)nk, sizeof *next);
    int count = 0, left = budget_units;
    const int shift = seq_k - seq_q;
    const int last_row = (i + 1) * block_q < seq_q ? (i + 1) * block_q - 1 : seq_q - 1;
    const int diagonal_key = last_row + shift;
    const int diagonal =
        diagonal_key >= 0 ? (diagonal_key < seq_k - 1 ? diagonal_key : seq_k - 1) / block_k : -1;
    const int text_row = last_row >= text_row_first;
    for (int j = 0; j < nk; ++j) {
        const int future = causal && j * block_k > diagonal_key;
        const int forced =
            !future && (j >= nk - text_blocks || text_row || (causal && (j == 0 || j == diagonal)));
        out[j] = forced ? 1 : 0;
        left -= forced ? 8 : 0;
        if (forced || future)
            continue;
        const float w = w_row[j];
        static const int point_level[5] = {0, 8, 4, 2, 1};
        static const int point_cost[5] = {0, 1, 2, 4, 8};
        const float e[5] = {w, w * loss_row[j * 3 + 2], w * loss_row[j * 3 + 1],
                            w * loss_row[j * 3], 0.0f};
        int hull[5], n = 0;
        for (int x = 0; x < 5; ++x) {
            if (n > 0 && !(e[x] < e[hull[n - 1]]))
                continue;
            while (n >= 2) {
                const int a = hull[n - 2], m = hull[n - 1];
                if ((e[m] - e[a]) * (float)(point_cost[x] - point_cost[a]) >=
                    (e[x] - e[a]) * (float)(point_cost[m] - point_cost[a]))
                    --n;
                else
                    break;
            }
            hull[n++] = x;
        }
        for (int s = 0; s + 1 < n; ++s) {
            host_upgrade *u = &ups[count++];
            const int cost = point_cost[hull[s + 1]] - point_cost[hull[s]];
            u->key = j * 4 + s;
            u->cost = cost;
            u->level = point_level[hull[s + 1]];
            u->ratio = (e[hull[s]] - e[hull[s + 1]]) / (float)cost;
        }
    }
    qsort(ups, (size_t)count, sizeof *ups, host_order);
    for (int x = 0; x < count; ++x) {
        const int j = ups[x].key / 4, s = ups[x].key % 4;
        if (next[j] != s || ups[x].cost > left)
            continue;
        left -= ups[x].cost;
        out[j] = (signed char)ups[x].level;
        next[j] = s + 1;
    }
    free(ups);
    free(next);
}

/* One block's mass and losses (levels 2, 4, 8) in pattern p. */
static void fill_block(int p, float *w, float *l) {
    static const float losses[6] = {0.0f, 0.0625f, 0.125f, 0.25f, 0.5f, 0.75f};
    switch (p) {
    case 0: /* every block the same: all ratios tie across blocks */
        *w = 0.25f;
        l[0] = 0.0625f, l[1] = 0.25f, l[2] = 0.5f;
        break;
    case 1: /* zero-loss blocks (one upgrade, 0 -> 8) of a few masses, and empty ones */
        *w = (float)rnd(4) / 8.0f;
        l[0] = l[1] = l[2] = 0.0f;
        break;
    case 2: /* masses of two octaves: step s of one block ties step s + 1 of another */
        *w = rnd(2) ? 0.5f : 0.25f;
        l[0] = 0.0625f, l[1] = 0.25f, l[2] = 0.5f;
        break;
    default: /* dyadic masses and losses in any order (hulls of 2 to 5 points) */
        *w = (float)rnd(64) / 1024.0f;
        for (int x = 0; x < 3; ++x)
            l[x] = losses[rnd(6)];
        break;
    }
}

int main(void) {
    cl_platform_id platforms[8];
    cl_uint np = 0;
    cl_device_id dev = NULL;
    if (clGetPlatformIDs(8, platforms, &np) != CL_SUCCESS)
        np = 0;
    for (cl_uint p = 0; p < np && !dev; ++p)
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_CPU, 1, &dev, NULL) != CL_SUCCESS)
            dev = NULL;
    if (!dev) {
        fprintf(stderr, "budget_alloc_walk: no CPU OpenCL device, skipped\n");
        return 77;
    }
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    cl_command_queue queue = clCreateCommandQueue(ctx, dev, 0, &err);
    char *src[2] = {ts_read_text("cl/common.cl"), ts_read_text("cl/budget.cl")};
    /* common.cl needs the measurement's defines to parse; the allocation uses none of them */
    static const int nks[] = {1, 2, 3, 7, 64, 127, 1013};
    static const int wgs[] = {32, 64, 256};
    long rows_checked = 0, failures = 0;
    /* one program per work-group size, for the largest nk (UPGRADE_N is an upper bound on a
     * row's 4 nk upgrades; the plan builds it for exactly 4 nk, as at nk = 1013 here) */
    const int max_nk = nks[sizeof nks / sizeof nks[0] - 1];
    for (size_t b = 0; b < sizeof wgs / sizeof wgs[0]; ++b) {
        {
            const int wg = wgs[b];
            char opts[256];
            snprintf(opts, sizeof opts,
                     "-cl-std=CL1.2 -DUPGRADE_N=%d -DASSIGN_WG=%d -DHEAD_DIM=64 -DIN_TYPE=1 "
                     "-DPERMUTED=0",
                     4 * max_nk, wg);
            cl_program prog = clCreateProgramWithSource(ctx, 2, (const char **)src, NULL, &err);
            if (clBuildProgram(prog, 1, &dev, opts, NULL, NULL) != CL_SUCCESS) {
                char log[16384];
                clGetProgramBuildInfo(prog, dev, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
                fprintf(stderr, "build failed (%s):\n%s\n", opts, log);
                return 1;
            }
            cl_kernel kern = clCreateKernel(prog, "budget_allocate", &err);
            for (size_t a = 0; a < sizeof nks / sizeof nks[0]; ++a)
                for (int causal = 0; causal <= 1; ++causal) {
                    const int nk = nks[a];
                    /* rows: 4 tie patterns x 2 draws; block 64 x 64, seq = 64 nk (causal: square,
                     * so row i sees blocks 0..i and forces 0 and i), text on the last block */
                    const int block = 64, seq = 64 * nk, text_blocks = causal ? 0 : (nk > 2);
                    const int rows = 8;
                    const int blocks_q = rows > nk ? rows : nk; /* row r is query block r */
                    float *w = malloc((size_t)rows * nk * sizeof *w);
                    float *loss = malloc((size_t)rows * nk * 3 * sizeof *loss);
                    signed char *got = malloc((size_t)rows * nk), *want = malloc((size_t)nk);
                    for (int r = 0; r < rows; ++r)
                        for (int j = 0; j < nk; ++j)
                            fill_block(r / 2, &w[r * nk + j], &loss[(r * nk + j) * 3]);
                    cl_mem bw = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                               (size_t)rows * nk * 4, w, &err);
                    cl_mem bl = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                               (size_t)rows * nk * 12, loss, &err);
                    cl_mem bm =
                        clCreateBuffer(ctx, CL_MEM_READ_WRITE, (size_t)rows * nk, NULL, &err);
                    const cl_int heads = 1, seq_i = seq, blk = block, bq = blocks_q, bk = nk;
                    const cl_int tb = text_blocks, trf = seq, cz = causal;
                    const int all = 8 * nk;
                    /* below zero (forced blocks beyond the budget), 0, 1 unit (the lowest density,
                     * 1 / (8 nk)), around 1/8 and 0.15 of the row, half, more than all of it */
                    const int budgets[7] = {-3,           0,           1,      all / 8 + 1,
                                            all * 3 / 20, all / 2 + 3, all + 5};
                    for (int x = 0; x < 7; ++x) {
                        const cl_int u = budgets[x];
                        memset(got, 0x5a, (size_t)rows * nk); /* poisoned */
                        clEnqueueWriteBuffer(queue, bm, CL_TRUE, 0, (size_t)rows * nk, got, 0, NULL,
                                             NULL);
                        clSetKernelArg(kern, 0, sizeof bw, &bw);
                        clSetKernelArg(kern, 1, sizeof bl, &bl);
                        clSetKernelArg(kern, 2, sizeof bm, &bm);
                        clSetKernelArg(kern, 3, 4, &heads);
                        clSetKernelArg(kern, 4, 4, &seq_i);
                        clSetKernelArg(kern, 5, 4, &seq_i);
                        clSetKernelArg(kern, 6, 4, &blk);
                        clSetKernelArg(kern, 7, 4, &blk);
                        clSetKernelArg(kern, 8, 4, &bq);
                        clSetKernelArg(kern, 9, 4, &bk);
                        clSetKernelArg(kern, 10, 4, &tb);
                        clSetKernelArg(kern, 11, 4, &trf);
                        clSetKernelArg(kern, 12, 4, &cz);
                        clSetKernelArg(kern, 13, 4, &u);
                        const size_t global = (size_t)rows * wg, local = (size_t)wg;
                        err = clEnqueueNDRangeKernel(queue, kern, 1, NULL, &global, &local, 0, NULL,
                                                     NULL);
                        if (err != CL_SUCCESS) {
                            fprintf(stderr, "enqueue failed: %d\n", err);
                            return 1;
                        }
                        clEnqueueReadBuffer(queue, bm, CL_TRUE, 0, (size_t)rows * nk, got, 0, NULL,
                                            NULL);
                        for (int r = 0; r < rows; ++r) {
                            host_allocate(w + r * nk, loss + r * nk * 3, nk, r, seq, seq, block,
                                          block, text_blocks, seq, causal, u, want);
                            ++rows_checked;
                            for (int j = 0; j < nk; ++j)
                                if (got[r * nk + j] != want[j]) {
                                    if (failures++ < 10)
                                        fprintf(
                                            stderr,
                                            "nk %d wg %d causal %d row %d (pattern %d, %d units): "
                                            "block %d level %d, walk %d\n",
                                            nk, wg, causal, r, r / 2, u, j, got[r * nk + j],
                                            want[j]);
                                    break;
                                }
                        }
                    }
                    clReleaseMemObject(bw);
                    clReleaseMemObject(bl);
                    clReleaseMemObject(bm);
                    free(w);
                    free(loss);
                    free(got);
                    free(want);
                }
            clReleaseKernel(kern);
            clReleaseProgram(prog);
        }
    }
    printf("budget_alloc_walk: %ld rows, %ld differ from the walk\n", rows_checked, failures);
    free(src[0]);
    free(src[1]);
    clReleaseCommandQueue(queue);
    clReleaseContext(ctx);
    return failures ? 1 : 0;
}
