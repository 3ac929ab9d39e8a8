/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example 1: a program that owns its OpenCL context, queue, buffers and events, and hands them
 * to clpsa for one attention call.
 *
 * The program picks a device, creates its context and an in-order queue, uploads Q, K and V
 * with non-blocking writes, and passes the three write events as the wait list of
 * clpsa_plan_run, which only enqueues. The read-back of the output waits on the event clpsa
 * returns. It computes Pyramid Sparse Attention (the default method) and exact attention on
 * the same inputs, checks a few exact rows against a computation on the host, and prints how
 * far PSA is from exact attention and how much of the dense work it did.
 *
 * Build: cc own_context.c $(pkg-config --cflags --libs clpsa) -lm
 * Exit status: 0 when the checks pass, 1 otherwise.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clpsa/clpsa.h> /* after CL/cl.h is fine: clpsa keeps the version chosen above */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { HEADS_Q = 4, HEADS_KV = 2, TOKENS = 1024, DIM = 64 };

/* Stops the program with the reason; clpsa's detail is in last_error (NULL: the thread's
 * record, which is where a failed clpsa_context_create leaves it). */
static void check_clpsa(clpsa_status status, const clpsa_context *ctx, const char *what) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "own_context: %s: %s: %s\n", what, clpsa_status_name(status),
            clpsa_context_last_error(ctx));
    exit(1);
}

static void check_cl(cl_int err, const char *what) {
    if (err == CL_SUCCESS)
        return;
    fprintf(stderr, "own_context: %s failed: %s (%d)\n", what, clpsa_opencl_error_name(err),
            (int)err);
    exit(1);
}

/* Attention is local in real models: queries and keys carry features of their position, so
 * nearby tokens score high. A little noise keeps it from being exact. */
static void fill(float *x, int heads, unsigned seed, float sharpness) {
    srand(seed);
    for (int h = 0; h < heads; ++h)
        for (int t = 0; t < TOKENS; ++t)
            for (int d = 0; d < DIM; ++d) {
                const float frequency = 0.002f + 0.05f * (float)(d / 2) / DIM;
                const float phase = frequency * (float)t + 0.3f * (float)h;
                const float noise = (float)rand() / (float)RAND_MAX - 0.5f;
                x[((size_t)h * TOKENS + t) * DIM + d] =
                    sharpness * (d % 2 ? sinf(phase) : cosf(phase)) + 0.1f * noise;
            }
}

/* Exact attention of one query row in double precision. */
static void host_row(const float *q, const float *k, const float *v, int h, int t, double *out) {
    const int hk = h / (HEADS_Q / HEADS_KV);
    const double scale = 1.0 / sqrt((double)DIM);
    const float *qr = q + ((size_t)h * TOKENS + t) * DIM;
    double logits[TOKENS], top = -INFINITY, sum = 0;
    for (int c = 0; c < TOKENS; ++c) {
        const float *kr = k + ((size_t)hk * TOKENS + c) * DIM;
        double dot = 0;
        for (int d = 0; d < DIM; ++d)
            dot += (double)qr[d] * kr[d];
        logits[c] = scale * dot;
        top = fmax(top, logits[c]);
    }
    for (int d = 0; d < DIM; ++d)
        out[d] = 0;
    for (int c = 0; c < TOKENS; ++c) {
        const double w = exp(logits[c] - top);
        sum += w;
        for (int d = 0; d < DIM; ++d)
            out[d] += w * v[((size_t)hk * TOKENS + c) * DIM + d];
    }
    for (int d = 0; d < DIM; ++d)
        out[d] /= sum;
}

int main(void) {
    /* ---- the program's own OpenCL objects ---- */
    cl_platform_id platforms[8];
    cl_uint platform_count = 0;
    check_cl(clGetPlatformIDs(8, platforms, &platform_count), "clGetPlatformIDs");
    cl_device_id device = NULL;
    for (cl_uint p = 0; p < platform_count && !device; ++p)
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 1, &device, NULL) != CL_SUCCESS)
            device = NULL;
    if (!device) {
        fprintf(stderr, "own_context: no OpenCL device\n");
        return 1;
    }
    cl_int err = CL_SUCCESS;
    cl_context cl_ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    check_cl(err, "clCreateContext");
    cl_command_queue queue = clCreateCommandQueue(cl_ctx, device, 0, &err);
    check_cl(err, "clCreateCommandQueue");

    /* ---- clpsa wraps them: it retains the context and queue until clpsa_context_destroy,
     * and enqueues only on queues the program gives it ---- */
    clpsa_context_desc cdesc;
    clpsa_context_desc_init(&cdesc);
    cdesc.cl_context = cl_ctx;
    cdesc.device = device;
    cdesc.queue = queue;
    clpsa_context *ctx = NULL;
    check_clpsa(clpsa_context_create(&cdesc, &ctx), NULL, "clpsa_context_create");
    printf("device: %s\n", clpsa_context_device_name(ctx));

    clpsa_plan_desc pdesc;
    clpsa_plan_desc_init(&pdesc);
    pdesc.batch = 1;
    pdesc.heads_q = HEADS_Q;
    pdesc.heads_kv = HEADS_KV; /* grouped-query attention: 2 query heads per kv head */
    pdesc.seq_q = TOKENS;
    pdesc.head_dim = DIM;
    clpsa_plan *psa = NULL, *dense = NULL;
    check_clpsa(clpsa_plan_create(ctx, &pdesc, &psa), ctx, "clpsa_plan_create (PSA)");
    pdesc.method = CLPSA_METHOD_DENSE;
    check_clpsa(clpsa_plan_create(ctx, &pdesc, &dense), ctx, "clpsa_plan_create (dense)");

    /* ---- the program's buffers, filled by non-blocking writes ---- */
    const size_t q_count = (size_t)HEADS_Q * TOKENS * DIM, kv_count = (size_t)HEADS_KV * TOKENS * DIM;
    float *q = malloc(q_count * sizeof *q), *k = malloc(kv_count * sizeof *k);
    float *v = malloc(kv_count * sizeof *v), *out_psa = malloc(q_count * sizeof *out_psa);
    float *out_dense = malloc(q_count * sizeof *out_dense);
    if (!q || !k || !v || !out_psa || !out_dense) {
        fprintf(stderr, "own_context: out of host memory\n");
        return 1;
    }
    fill(q, HEADS_Q, 1, 2.0f);
    fill(k, HEADS_KV, 2, 1.0f);
    fill(v, HEADS_KV, 3, 0.5f);
    cl_mem q_buf = clCreateBuffer(cl_ctx, CL_MEM_READ_ONLY, q_count * sizeof *q, NULL, &err);
    check_cl(err, "clCreateBuffer(q)");
    cl_mem k_buf = clCreateBuffer(cl_ctx, CL_MEM_READ_ONLY, kv_count * sizeof *k, NULL, &err);
    check_cl(err, "clCreateBuffer(k)");
    cl_mem v_buf = clCreateBuffer(cl_ctx, CL_MEM_READ_ONLY, kv_count * sizeof *v, NULL, &err);
    check_cl(err, "clCreateBuffer(v)");
    cl_mem psa_buf = clCreateBuffer(cl_ctx, CL_MEM_WRITE_ONLY, q_count * sizeof *q, NULL, &err);
    check_cl(err, "clCreateBuffer(out)");
    cl_mem dense_buf = clCreateBuffer(cl_ctx, CL_MEM_WRITE_ONLY, q_count * sizeof *q, NULL, &err);
    check_cl(err, "clCreateBuffer(out)");
    cl_event uploaded[3];
    check_cl(clEnqueueWriteBuffer(queue, q_buf, CL_FALSE, 0, q_count * sizeof *q, q, 0, NULL,
                                  &uploaded[0]),
             "write q");
    check_cl(clEnqueueWriteBuffer(queue, k_buf, CL_FALSE, 0, kv_count * sizeof *k, k, 0, NULL,
                                  &uploaded[1]),
             "write k");
    check_cl(clEnqueueWriteBuffer(queue, v_buf, CL_FALSE, 0, kv_count * sizeof *v, v, 0, NULL,
                                  &uploaded[2]),
             "write v");

    /* ---- attention after the uploads; both calls return at once ---- */
    cl_event psa_done = NULL, dense_done = NULL;
    check_clpsa(clpsa_plan_run(psa, queue, q_buf, k_buf, v_buf, psa_buf, 3, uploaded, &psa_done),
                ctx, "clpsa_plan_run (PSA)");
    check_clpsa(
        clpsa_plan_run(dense, queue, q_buf, k_buf, v_buf, dense_buf, 3, uploaded, &dense_done),
        ctx, "clpsa_plan_run (dense)");
    cl_event read[2];
    check_cl(clEnqueueReadBuffer(queue, psa_buf, CL_FALSE, 0, q_count * sizeof *q, out_psa, 1,
                                 &psa_done, &read[0]),
             "read PSA output");
    check_cl(clEnqueueReadBuffer(queue, dense_buf, CL_FALSE, 0, q_count * sizeof *q, out_dense, 1,
                                 &dense_done, &read[1]),
             "read dense output");
    check_cl(clWaitForEvents(2, read), "clWaitForEvents");

    /* ---- checks ---- */
    int ok = 1;
    double worst = 0;
    const int rows[][2] = {{0, 0}, {1, 511}, {3, TOKENS - 1}};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; ++r) {
        double want[DIM];
        host_row(q, k, v, rows[r][0], rows[r][1], want);
        for (int d = 0; d < DIM; ++d) {
            const double got = out_dense[((size_t)rows[r][0] * TOKENS + rows[r][1]) * DIM + d];
            worst = fmax(worst, fabs(got - want[d]));
        }
    }
    printf("dense attention vs host: max |difference| %.2e over %zu rows\n", worst,
           sizeof rows / sizeof rows[0]);
    ok = ok && worst < 1e-4;
    double diff = 0, norm = 0;
    for (size_t i = 0; i < q_count; ++i) {
        diff += ((double)out_psa[i] - out_dense[i]) * ((double)out_psa[i] - out_dense[i]);
        norm += (double)out_dense[i] * out_dense[i];
    }
    const double rel_l2 = sqrt(diff / norm);
    clpsa_level_stats stats;
    check_clpsa(clpsa_plan_read_stats(psa, &stats), ctx, "clpsa_plan_read_stats");
    printf("PSA: density %.3f of the dense work, relative L2 error vs dense %.4f\n",
           stats.density, rel_l2);
    ok = ok && isfinite(rel_l2) && rel_l2 < 0.2 && stats.density > 0 && stats.density < 1;

    for (int i = 0; i < 3; ++i)
        clReleaseEvent(uploaded[i]);
    clReleaseEvent(psa_done);
    clReleaseEvent(dense_done);
    clReleaseEvent(read[0]);
    clReleaseEvent(read[1]);
    clpsa_plan_destroy(psa);
    clpsa_plan_destroy(dense);
    clpsa_context_destroy(ctx);
    clReleaseMemObject(q_buf);
    clReleaseMemObject(k_buf);
    clReleaseMemObject(v_buf);
    clReleaseMemObject(psa_buf);
    clReleaseMemObject(dense_buf);
    clReleaseCommandQueue(queue);
    clReleaseContext(cl_ctx);
    free(q);
    free(k);
    free(v);
    free(out_psa);
    free(out_dense);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
