/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example 4: token-by-token decode against a key/value cache that grows in place.
 *
 * One dense plan is made for one query row per step over a cache of CAPACITY tokens
 * (clpsa_plan_desc.kv_capacity), grouped-query heads, causal. Each step writes the new token's
 * key and value into the cache buffers at its position (nothing else is copied), sets the new
 * length with clpsa_plan_set_kv_length and runs: the plan is compiled once, and the split-K
 * decode kernels spread every step's keys over the device. Some steps are checked against
 * attention computed on the host in double precision.
 *
 * Build: cc decode_steps.c $(pkg-config --cflags --libs clpsa) -lm
 * Exit status: 0 when the checks pass, 1 otherwise.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clpsa/clpsa.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { HEADS_Q = 8, HEADS_KV = 2, DIM = 64, CAPACITY = 4096, PROMPT = 1000, STEPS = 200 };

static void check_clpsa(clpsa_status status, const clpsa_context *ctx, const char *what) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "decode_steps: %s: %s: %s\n", what, clpsa_status_name(status),
            clpsa_context_last_error(ctx));
    exit(1);
}

static void check_cl(cl_int err, const char *what) {
    if (err == CL_SUCCESS)
        return;
    fprintf(stderr, "decode_steps: %s failed: %s (%d)\n", what, clpsa_opencl_error_name(err),
            (int)err);
    exit(1);
}

static float noise(void) {
    return 2.0f * (float)rand() / (float)RAND_MAX - 1.0f;
}

/* Writes tokens [from, to) of the host cache (contiguous [Hkv, CAPACITY, DIM]) into the
 * device buffer: one contiguous span per kv head. */
static void append(cl_command_queue queue, cl_mem buffer, const float *host, int from, int to) {
    for (int h = 0; h < HEADS_KV; ++h) {
        const size_t first = ((size_t)h * CAPACITY + from) * DIM;
        check_cl(clEnqueueWriteBuffer(queue, buffer, CL_FALSE, first * sizeof(float),
                                      (size_t)(to - from) * DIM * sizeof(float), host + first, 0,
                                      NULL, NULL),
                 "clEnqueueWriteBuffer");
    }
}

/* The step's query row of head h attends to keys [0, n): double-precision softmax. */
static double host_error(const float *q, const float *k, const float *v, const float *out,
                         int n) {
    double worst = 0.0;
    double *logits = malloc(sizeof(double) * (size_t)n);
    if (!logits)
        exit(1);
    for (int h = 0; h < HEADS_Q; ++h) {
        const int kvh = h / (HEADS_Q / HEADS_KV);
        double m = -INFINITY, sum = 0.0;
        for (int c = 0; c < n; ++c) {
            double dot = 0.0;
            for (int d = 0; d < DIM; ++d)
                dot += (double)q[h * DIM + d] * k[((size_t)kvh * CAPACITY + c) * DIM + d];
            logits[c] = dot / sqrt((double)DIM);
            m = logits[c] > m ? logits[c] : m;
        }
        for (int c = 0; c < n; ++c)
            sum += exp(logits[c] - m);
        for (int d = 0; d < DIM; ++d) {
            double x = 0.0;
            for (int c = 0; c < n; ++c)
                x += exp(logits[c] - m) * v[((size_t)kvh * CAPACITY + c) * DIM + d];
            const double e = fabs(x / sum - out[h * DIM + d]);
            worst = e > worst ? e : worst;
        }
    }
    free(logits);
    return worst;
}

int main(void) {
    clpsa_context *ctx = NULL;
    check_clpsa(clpsa_context_create(NULL, &ctx), NULL, "clpsa_context_create");
    cl_command_queue queue = clpsa_context_queue(ctx);

    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.method = CLPSA_METHOD_DENSE;
    desc.batch = 1;
    desc.heads_q = HEADS_Q;
    desc.heads_kv = HEADS_KV;
    desc.head_dim = DIM;
    desc.seq_q = 1;             /* one new token per step */
    desc.seq_k = PROMPT;        /* the prompt's keys are in the cache before the first step */
    desc.kv_capacity = CAPACITY; /* K and V buffers: [1, HEADS_KV, CAPACITY, DIM] */
    desc.causal = 1;            /* the query row is the last position */
    clpsa_plan *plan = NULL;
    check_clpsa(clpsa_plan_create(ctx, &desc, &plan), ctx, "clpsa_plan_create");
    printf("decode kernel: %s; %s\n", clpsa_plan_kernel_variant(plan, "decode"),
           clpsa_plan_parameter_source(plan));

    clpsa_buffer_sizes sizes;
    check_clpsa(clpsa_plan_buffer_sizes(plan, &sizes), ctx, "clpsa_plan_buffer_sizes");
    float *k = malloc(sizes.k), *v = malloc(sizes.v), *q = malloc(sizes.q), *out = malloc(sizes.out);
    if (!k || !v || !q || !out)
        return 1;
    srand(7);
    for (size_t i = 0; i < sizes.k / sizeof(float); ++i) {
        k[i] = noise();
        v[i] = noise();
    }
    cl_mem bufs[4];
    const size_t bytes[4] = {sizes.q, sizes.k, sizes.v, sizes.out};
    for (int i = 0; i < 4; ++i)
        check_clpsa(clpsa_context_alloc(ctx, bytes[i], &bufs[i]), ctx, "clpsa_context_alloc");
    append(queue, bufs[1], k, 0, PROMPT);
    append(queue, bufs[2], v, 0, PROMPT);

    cl_mem qb = bufs[0], kb = bufs[1], vb = bufs[2], ob = bufs[3];
    clpsa_cache_stats stats;
    clpsa_context_cache_stats(ctx, &stats);
    const uint64_t builds_before = stats.builds;
    double worst = 0.0;
    for (int s = 0; s < STEPS; ++s) {
        const int n = PROMPT + s + 1; /* the new token is at position n - 1 */
        for (int i = 0; i < HEADS_Q * DIM; ++i)
            q[i] = noise();
        check_cl(clEnqueueWriteBuffer(queue, qb, CL_FALSE, 0, sizes.q, q, 0, NULL, NULL),
                 "clEnqueueWriteBuffer(q)");
        append(queue, kb, k, n - 1, n);
        append(queue, vb, v, n - 1, n);
        check_clpsa(clpsa_plan_set_kv_length(plan, n), ctx, "clpsa_plan_set_kv_length");
        check_clpsa(clpsa_plan_run(plan, queue, qb, kb, vb, ob, 0, NULL, NULL), ctx,
                    "clpsa_plan_run");
        if (s % 50 == 0 || s == STEPS - 1) {
            check_cl(clEnqueueReadBuffer(queue, ob, CL_TRUE, 0, sizes.out, out, 0, NULL, NULL),
                     "clEnqueueReadBuffer");
            const double e = host_error(q, k, v, out, n);
            worst = e > worst ? e : worst;
        }
    }
    check_cl(clFinish(queue), "clFinish");
    clpsa_context_cache_stats(ctx, &stats);
    printf("%d steps from %d to %d keys: largest error against the host %.2e, %llu programs "
           "built during the steps\n",
           STEPS, PROMPT + 1, PROMPT + STEPS, worst,
           (unsigned long long)(stats.builds - builds_before));
    const int ok = worst < 1e-4 && stats.builds == builds_before;
    for (int i = 0; i < 4; ++i)
        clReleaseMemObject(bufs[i]);
    free(k);
    free(v);
    free(q);
    free(out);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    return ok ? 0 : 1;
}
