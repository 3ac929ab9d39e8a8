/* SPDX-License-Identifier: Apache-2.0 */
/* Decode step time against the key length: one dense plan of --rows query rows over a
 * key/value cache of the largest length, grown with clpsa_plan_set_kv_length (no rebuild), each
 * length timed as a step (run + clFinish, host wall clock: what a decode loop waits for; median
 * of --reps after two warm-ups). Beside each time: the floor, the step's K/V bytes over the
 * device's copy bandwidth measured here, and the error of one checked query row against a
 * double-precision computation. --dense times the dense kernel instead (dense.VARIANT
 * override: one work-group per few rows, no split of the keys).
 *
 *   clpsa_bench_decode [--device SPEC] [--batch B] [--heads-q H] [--heads-kv H] [--dim D]
 *                      [--rows NQ] [--dtype fp32|fp16|bf16] [--causal] [--reps R]
 *                      [--lengths N,N,...] [--dense] [--params TEXT]
 *
 * Prints one line per length: "decode nk=... time_ms=... floor_ms=... ...". */
#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LENGTHS 32

typedef struct options {
    const char *device, *params;
    int batch, heads_q, heads_kv, dim, rows, causal, reps, dense;
    clpsa_dtype dtype;
    int lengths[MAX_LENGTHS], count;
} options;

static int parse_lengths(const char *text, options *o) {
    o->count = 0;
    for (const char *at = text; *at && o->count < MAX_LENGTHS;) {
        char *end = NULL;
        const long n = strtol(at, &end, 10);
        if (end == at || n < 1 || n > (1 << 28))
            return -1;
        o->lengths[o->count++] = (int)n;
        at = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return o->count > 0 ? 0 : -1;
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){NULL, NULL, 1, 32, 8, 128, 1, 0, 10, 0, CLPSA_DTYPE_FP16, {0}, 0};
    parse_lengths("1024,2048,4096,8192,16384,32768,65536", o);
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--causal") || !strcmp(a, "--dense")) {
            *(!strcmp(a, "--causal") ? &o->causal : &o->dense) = 1;
            continue;
        }
        if (!value)
            return fprintf(stderr, "%s needs a value\n", a), -1;
        ++i;
        if (!strcmp(a, "--device"))
            o->device = value;
        else if (!strcmp(a, "--params"))
            o->params = value;
        else if (!strcmp(a, "--batch"))
            o->batch = atoi(value);
        else if (!strcmp(a, "--heads-q"))
            o->heads_q = atoi(value);
        else if (!strcmp(a, "--heads-kv"))
            o->heads_kv = atoi(value);
        else if (!strcmp(a, "--dim"))
            o->dim = atoi(value);
        else if (!strcmp(a, "--rows"))
            o->rows = atoi(value);
        else if (!strcmp(a, "--reps"))
            o->reps = atoi(value);
        else if (!strcmp(a, "--lengths")) {
            if (parse_lengths(value, o) != 0)
                return fprintf(stderr, "--lengths: comma-separated lengths >= 1\n"), -1;
        } else if (!strcmp(a, "--dtype"))
            o->dtype = !strcmp(value, "fp16")   ? CLPSA_DTYPE_FP16
                       : !strcmp(value, "bf16") ? CLPSA_DTYPE_BF16
                       : !strcmp(value, "fp32") ? CLPSA_DTYPE_FP32
                                                : CLPSA_DTYPE_DEFAULT;
        else
            return fprintf(stderr, "unknown option %s\n", a), -1;
    }
    return o->dtype == CLPSA_DTYPE_DEFAULT || o->reps < 1 ? -1 : 0;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void check(clpsa_status status, const clpsa_context *ctx, const char *what) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "bench_decode: %s: %s: %s\n", what, clpsa_status_name(status),
            clpsa_context_last_error(ctx));
    exit(1);
}

static void check_cl(cl_int err, const char *what) {
    if (err == CL_SUCCESS)
        return;
    fprintf(stderr, "bench_decode: %s: %s\n", what, clpsa_opencl_error_name(err));
    exit(1);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / 16777216.0 * 2.0 - 1.0);
}

/* Device copy bandwidth (GB/s, bytes read + written): the median of 5 copies of 256 MiB. */
static double copy_bandwidth(clpsa_context *ctx) {
    const size_t bytes = (size_t)256 << 20;
    cl_mem a = NULL, b = NULL;
    check(clpsa_context_alloc(ctx, bytes, &a), ctx, "alloc");
    check(clpsa_context_alloc(ctx, bytes, &b), ctx, "alloc");
    cl_command_queue queue = clpsa_context_queue(ctx);
    double times[6];
    for (int r = 0; r < 6; ++r) {
        const double start = now_ms();
        check_cl(clEnqueueCopyBuffer(queue, a, b, 0, 0, bytes, 0, NULL, NULL), "copy");
        check_cl(clFinish(queue), "clFinish");
        times[r] = now_ms() - start;
    }
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    qsort(times + 1, 5, sizeof times[0], compare_doubles);
    return 2.0 * (double)bytes / (times[3] * 1e-3) / 1e9;
}

int main(int argc, char **argv) {
    options o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: see the comment at the top of bench/bench_decode.c\n");
        return 2;
    }
    int capacity = 0;
    for (int i = 0; i < o.count; ++i)
        capacity = o.lengths[i] > capacity ? o.lengths[i] : capacity;
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.device_spec = o.device;
    clpsa_context *ctx = NULL;
    check(clpsa_context_create(&cd, &ctx), NULL, "clpsa_context_create");
    if (o.dense || o.params) {
        char text[512];
        snprintf(text, sizeof text, "%s%s%s", o.dense ? "dense.VARIANT=1" : "",
                 o.dense && o.params ? "," : "", o.params ? o.params : "");
        check(clpsa_context_set_params(ctx, text), ctx, "clpsa_context_set_params");
    }
    cl_command_queue queue = clpsa_context_queue(ctx);
    const double gbps = copy_bandwidth(ctx);

    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE;
    d.batch = o.batch;
    d.heads_q = o.heads_q;
    d.heads_kv = o.heads_kv;
    d.seq_q = o.rows;
    d.seq_k = o.lengths[0];
    d.kv_capacity = capacity;
    d.head_dim = o.dim;
    d.dtype = o.dtype;
    d.out_dtype = CLPSA_DTYPE_FP32;
    d.causal = o.causal;
    clpsa_plan *plan = NULL;
    check(clpsa_plan_create(ctx, &d, &plan), ctx, "clpsa_plan_create");
    const char *variant = clpsa_plan_kernel_variant(plan, o.dense ? "dense" : "decode");
    printf("# device: %s\n# %s kernel %s; %s\n# copy bandwidth %.1f GB/s\n",
           clpsa_context_device_name(ctx), o.dense ? "dense" : "decode", variant,
           clpsa_plan_parameter_source(plan), gbps);

    clpsa_buffer_sizes sizes;
    check(clpsa_plan_buffer_sizes(plan, &sizes), ctx, "clpsa_plan_buffer_sizes");
    const size_t es = clpsa_dtype_size(o.dtype);
    const size_t kv_count = sizes.k / es, q_count = sizes.q / es;
    float *host_k = malloc(kv_count * sizeof(float)), *host_v = malloc(kv_count * sizeof(float));
    float *host_q = malloc(q_count * sizeof(float));
    float *out = malloc(sizes.out);
    void *stored = malloc(sizes.k);
    if (!host_k || !host_v || !host_q || !out || !stored)
        return 1;
    cl_mem q = NULL, k = NULL, v = NULL, o_buf = NULL;
    check(clpsa_context_alloc(ctx, sizes.q, &q), ctx, "alloc");
    check(clpsa_context_alloc(ctx, sizes.k, &k), ctx, "alloc");
    check(clpsa_context_alloc(ctx, sizes.v, &v), ctx, "alloc");
    check(clpsa_context_alloc(ctx, sizes.out, &o_buf), ctx, "alloc");
    float *fills[3] = {host_q, host_k, host_v};
    const size_t counts[3] = {q_count, kv_count, kv_count};
    const cl_mem targets[3] = {q, k, v};
    for (int t = 0; t < 3; ++t) {
        for (size_t i = 0; i < counts[t]; ++i)
            fills[t][i] = uniform();
        clpsa_convert_from_float(o.dtype, fills[t], stored, counts[t]);
        clpsa_convert_to_float(o.dtype, stored, fills[t], counts[t]); /* what the device reads */
        check_cl(clEnqueueWriteBuffer(queue, targets[t], CL_TRUE, 0, counts[t] * es, stored, 0,
                                      NULL, NULL),
                 "upload");
    }

    clpsa_cache_stats before, after;
    clpsa_context_cache_stats(ctx, &before);
    double *times = malloc(sizeof(double) * (size_t)o.reps);
    for (int i = 0; i < o.count; ++i) {
        const int nk = o.lengths[i];
        check(clpsa_plan_set_kv_length(plan, nk), ctx, "clpsa_plan_set_kv_length");
        for (int r = -2; r < o.reps; ++r) {
            const double start = now_ms();
            check(clpsa_plan_run(plan, queue, q, k, v, o_buf, 0, NULL, NULL), ctx, "run");
            check_cl(clFinish(queue), "clFinish");
            if (r >= 0)
                times[r] = now_ms() - start;
        }
        qsort(times, (size_t)o.reps, sizeof times[0], compare_doubles);
        const double median = times[o.reps / 2];
        /* Row (b 0, head 0, last query row) in double. */
        check_cl(clEnqueueReadBuffer(queue, o_buf, CL_TRUE, 0, sizes.out, out, 0, NULL, NULL),
                 "read");
        const int t = o.rows - 1, visible = o.causal ? nk - o.rows + t + 1 : nk;
        const double scale = 1.0 / sqrt((double)o.dim);
        double m = -INFINITY, sum = 0.0, num = 0.0, den = 0.0;
        double *logits = malloc(sizeof(double) * (size_t)(visible > 0 ? visible : 1));
        for (int c = 0; c < visible; ++c) {
            double dot = 0.0;
            for (int x = 0; x < o.dim; ++x)
                dot += (double)host_q[(size_t)t * o.dim + x] * host_k[(size_t)c * o.dim + x];
            logits[c] = scale * dot;
            m = logits[c] > m ? logits[c] : m;
        }
        for (int c = 0; c < visible; ++c)
            sum += exp(logits[c] - m);
        for (int x = 0; x < o.dim; ++x) {
            double ref = 0.0;
            for (int c = 0; c < visible; ++c)
                ref += exp(logits[c] - m) * host_v[(size_t)c * o.dim + x];
            ref = visible > 0 ? ref / sum : 0.0;
            const double e = out[(size_t)t * o.dim + x] - ref;
            num += e * e;
            den += ref * ref;
        }
        free(logits);
        const double bytes = 2.0 * o.batch * o.heads_kv * (double)nk * o.dim * (double)es;
        const double floor_ms = bytes / (gbps * 1e9) * 1e3; /* at the copy's total traffic */
        printf("decode nk=%d rows=%d B=%d Hq=%d Hkv=%d D=%d %s%s time_ms=%.4f floor_ms=%.4f "
               "kv_mb=%.2f achieved_gbps=%.1f rel_l2=%.2e\n",
               nk, o.rows, o.batch, o.heads_q, o.heads_kv, o.dim, clpsa_dtype_name(o.dtype),
               o.causal ? " causal" : "", median, floor_ms, bytes / 1e6,
               bytes / (median * 1e-3) / 1e9, den > 0 ? sqrt(num / den) : sqrt(num));
    }
    clpsa_context_cache_stats(ctx, &after);
    printf("# programs built while the cache grew: %llu\n",
           (unsigned long long)(after.builds - before.builds));
    free(times);
    free(host_k);
    free(host_v);
    free(host_q);
    free(out);
    free(stored);
    clReleaseMemObject(q);
    clReleaseMemObject(k);
    clReleaseMemObject(v);
    clReleaseMemObject(o_buf);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    return 0;
}
