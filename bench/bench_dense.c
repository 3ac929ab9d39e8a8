/* SPDX-License-Identifier: Apache-2.0 */
/* Times clpsa's dense attention on one shape with OpenCL profiling events (median of many runs
 * after a warm-up) and checks sampled output rows against a double-precision computation.
 *
 *   clpsa_bench_dense [--device SPEC] [--batch B] [--heads H] [--seq N] [--dim D]
 *                     [--dtype fp32|fp16|bf16] [--causal] [--reps R] [--check-rows K]
 *
 * Prints one line "dense ... time_ms=... tflops=... rel_l2=..." for scripts to read. */
#include <clpsa/clpsa.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct options {
    const char *device;
    int batch, heads, seq, dim, causal, reps, check_rows;
    clpsa_dtype dtype;
} options;

static int parse(int argc, char **argv, options *o) {
    *o = (options){NULL, 1, 12, 4096, 128, 0, 20, 64, CLPSA_DTYPE_FP32};
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--causal")) {
            o->causal = 1;
            continue;
        }
        if (!value)
            return fprintf(stderr, "%s needs a value\n", a), -1;
        ++i;
        if (!strcmp(a, "--device"))
            o->device = value;
        else if (!strcmp(a, "--batch"))
            o->batch = atoi(value);
        else if (!strcmp(a, "--heads"))
            o->heads = atoi(value);
        else if (!strcmp(a, "--seq"))
            o->seq = atoi(value);
        else if (!strcmp(a, "--dim"))
            o->dim = atoi(value);
        else if (!strcmp(a, "--reps"))
            o->reps = atoi(value);
        else if (!strcmp(a, "--check-rows"))
            o->check_rows = atoi(value);
        else if (!strcmp(a, "--dtype"))
            o->dtype = !strcmp(value, "fp16")   ? CLPSA_DTYPE_FP16
                       : !strcmp(value, "bf16") ? CLPSA_DTYPE_BF16
                       : !strcmp(value, "fp32") ? CLPSA_DTYPE_FP32
                                                : CLPSA_DTYPE_DEFAULT;
        else
            return fprintf(stderr, "unknown option %s\n", a), -1;
    }
    return o->dtype == CLPSA_DTYPE_DEFAULT ? -1 : 0;
}

static uint64_t rng_state = 0x1234567887654321ull;
static float uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

static int compare_floats(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        const clpsa_status s_ = (call);                                                            \
        if (s_ != CLPSA_OK) {                                                                      \
            fprintf(stderr, "%s: %s (%s)\n", #call, clpsa_status_name(s_),                         \
                    clpsa_context_last_error(ctx));                                                \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o) != 0)
        return 2;
    clpsa_context *ctx = NULL;
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.device_spec = o.device;
    CHECK(clpsa_context_create(&cd, &ctx));

    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE;
    d.batch = o.batch;
    d.heads_q = o.heads;
    d.seq_q = o.seq;
    d.head_dim = o.dim;
    d.dtype = o.dtype;
    d.out_dtype = CLPSA_DTYPE_FP32;
    d.causal = o.causal;
    clpsa_plan *plan = NULL;
    CHECK(clpsa_plan_create(ctx, &d, &plan));
    clpsa_buffer_sizes sizes;
    CHECK(clpsa_plan_buffer_sizes(plan, &sizes));

    const size_t count = (size_t)o.batch * o.heads * o.seq * o.dim;
    float *host[3];
    void *stored = malloc(count * 4);
    cl_mem buffers[4];
    cl_command_queue queue = clpsa_context_queue(ctx);
    for (int t = 0; t < 3; ++t) {
        host[t] = malloc(count * sizeof(float));
        for (size_t i = 0; i < count; ++i)
            host[t][i] = uniform();
        /* Round on the host so the check sees exactly what the device sees. */
        clpsa_convert_from_float(o.dtype, host[t], stored, count);
        clpsa_convert_to_float(o.dtype, stored, host[t], count);
        CHECK(clpsa_context_alloc(ctx, sizes.q, &buffers[t]));
        clEnqueueWriteBuffer(queue, buffers[t], CL_TRUE, 0, sizes.q, stored, 0, NULL, NULL);
    }
    CHECK(clpsa_context_alloc(ctx, sizes.out, &buffers[3]));
    const float nan_fill = NAN;
    clEnqueueFillBuffer(queue, buffers[3], &nan_fill, sizeof nan_fill, 0, sizes.out, 0, NULL, NULL);

    double *times = malloc(sizeof(double) * (size_t)(o.reps + 1));
    for (int r = -2; r < o.reps; ++r) { /* two warm-up runs */
        cl_event event = NULL;
        CHECK(clpsa_plan_run(plan, queue, buffers[0], buffers[1], buffers[2], buffers[3], 0, NULL,
                             &event));
        clWaitForEvents(1, &event);
        cl_ulong start = 0, end = 0;
        clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
        clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
        clReleaseEvent(event);
        if (r >= 0)
            times[r] = (double)(end - start) * 1e-6;
    }
    qsort(times, (size_t)o.reps, sizeof *times, compare_floats);
    const double median_ms = times[o.reps / 2];

    float *out = malloc(sizes.out);
    clEnqueueReadBuffer(queue, buffers[3], CL_TRUE, 0, sizes.out, out, 0, NULL, NULL);
    /* Sampled rows against double precision. */
    double err2 = 0.0, ref2 = 0.0;
    int nan_count = 0;
    double *p = malloc(sizeof(double) * (size_t)o.seq);
    const double scale = 1.0 / sqrt((double)o.dim);
    for (int s = 0; s < o.check_rows; ++s) {
        const size_t bh = (size_t)(s * 7919) % ((size_t)o.batch * o.heads);
        const int t = (int)(((size_t)s * 104729u) % (size_t)o.seq);
        const float *q = host[0] + (bh * o.seq + t) * o.dim;
        const int end = o.causal ? t + 1 : o.seq;
        double mx = -INFINITY, l = 0.0;
        for (int c = 0; c < end; ++c) {
            const float *k = host[1] + (bh * o.seq + c) * o.dim;
            double dot = 0.0;
            for (int e = 0; e < o.dim; ++e)
                dot += (double)q[e] * k[e];
            p[c] = dot * scale;
            mx = p[c] > mx ? p[c] : mx;
        }
        for (int c = 0; c < end; ++c)
            l += (p[c] = exp(p[c] - mx));
        for (int e = 0; e < o.dim; ++e) {
            double acc = 0.0;
            for (int c = 0; c < end; ++c)
                acc += p[c] * host[2][(bh * o.seq + c) * o.dim + e];
            acc /= l;
            const double got = out[(bh * o.seq + t) * o.dim + e];
            nan_count += isnan(got);
            err2 += (got - acc) * (got - acc);
            ref2 += acc * acc;
        }
    }
    const double rel_l2 = nan_count ? NAN : sqrt(err2 / ref2);
    const double tflops = clpsa_plan_flops(plan) / (median_ms * 1e-3) * 1e-12;
    printf("dense device=\"%s\" B=%d H=%d N=%d D=%d dtype=%s causal=%d time_ms=%.3f "
           "tflops=%.2f rel_l2=%.3g checked_rows=%d\n",
           clpsa_context_device_name(ctx), o.batch, o.heads, o.seq, o.dim,
           clpsa_dtype_name(o.dtype), o.causal, median_ms, tflops, rel_l2, o.check_rows);
    for (int i = 0; i < 4; ++i)
        clReleaseMemObject(buffers[i]);
    for (int t = 0; t < 3; ++t)
        free(host[t]);
    free(stored);
    free(times);
    free(out);
    free(p);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    return rel_l2 <= (o.dtype == CLPSA_DTYPE_FP32 ? 1e-5 : 1e-2) ? 0 : 3;
}
