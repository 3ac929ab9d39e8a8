/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench`: times PSA (pipeline, attend stage, estimate + assign stages), clpsa's dense
 * attention, the binary block-sparse baseline at PSA's density and a dense attention built from
 * CLBlast GEMMs, over workloads, shapes, dtypes and target densities, with each sparse method's
 * error against dense; writes JSON and CSV for bench/plot.py and a table.
 *
 * A case is one set of inputs (workload source, shape, dtype). Dense attention and the CLBlast
 * baseline do not depend on the density or on PSA's token order, so they are measured once per
 * case and their records repeated for each (order, density); the video workload's tensors serve
 * both its raster and its hilbert records. */
#include "bench_internal.h"
#include "run_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COMMAND CLPSA__BENCH_COMMAND
const float clpsa__bench_tau_base[4] = {0.4f, 0.5f, 0.6f, 0.8f};
#define SCALE_MAX (1.0 / 0.4)
#define SEARCH_STEPS 24

const char *clpsa__bench_method_name(bench_method method) {
    static const char *const names[BENCH_METHOD_COUNT] = {
        "psa",    "psa_attend",    "psa_estimate_assign", "dense",
        "binary", "dense_clblast", "psa_threshold"};
    return method >= 0 && method < BENCH_METHOD_COUNT ? names[method] : "?";
}

typedef struct timing {
    double total_ms, pool_ms, estimate_ms, assign_ms, attend_ms;
} timing;

typedef struct bench_state {
    const bench_options *o;
    clpsa_context *ctx;
    cl_command_queue queue;
    bench_results results;
    bool terminal;
    int case_index, case_total;
    char case_label[128];
    bench_workload workload; /* whose PSA runs the progress line is about */
    double dense_flops;      /* of the current case */

    /* The current case's device buffers and outputs. */
    cl_mem in[3];   /* Q, K, V as stored (dtype) */
    cl_mem in32[3]; /* fp32 copies for CLBlast; NULL when `in` already is fp32 */
    cl_mem out;     /* fp32 [B, Hq, Nq, D], shared by every method */
    size_t out_count;
    float *dense_out, *method_out;
} bench_state;

/* One line redrawn in place on a terminal; nothing when stderr is a file or a pipe. */
static void progress(const bench_state *st, const char *fmt, ...) {
    if (!st->terminal)
        return;
    char what[160];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof what, fmt, args);
    va_end(args);
    fprintf(stderr, "\r\033[K[%d/%d] %s: %s", st->case_index + 1, st->case_total, st->case_label,
            what);
    fflush(stderr);
}

static int add_record(bench_state *st, const bench_record *r) {
    bench_results *res = &st->results;
    if (res->count == res->capacity) {
        const size_t capacity = res->capacity ? 2 * res->capacity : 64;
        bench_record *grown = realloc(res->records, capacity * sizeof *grown);
        if (!grown)
            return clpsa__tool_fail(COMMAND, "out of memory for the records");
        res->records = grown;
        res->capacity = capacity;
    }
    res->records[res->count++] = *r;
    return CLPSA__EXIT_OK;
}

static double tflops(double flops, double ms) {
    return ms > 0.0 ? flops / (ms * 1e-3) * 1e-12 : NAN;
}

/* ---- Buffers ---- */

static void release_case(bench_state *st) {
    for (int t = 0; t < 3; ++t) {
        if (st->in[t])
            clReleaseMemObject(st->in[t]);
        if (st->in32[t])
            clReleaseMemObject(st->in32[t]);
        st->in[t] = st->in32[t] = NULL;
    }
    if (st->out)
        clReleaseMemObject(st->out);
    st->out = NULL;
    free(st->dense_out);
    free(st->method_out);
    st->dense_out = st->method_out = NULL;
}

static int upload(bench_state *st, const float *host, size_t count, clpsa_dtype dtype, size_t bytes,
                  cl_mem *buffer) {
    const size_t element = clpsa_dtype_size(dtype);
    if (bytes < count * element)
        bytes = count * element;
    clpsa_status status = clpsa_context_alloc(st->ctx, bytes, buffer);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_context_alloc", status, st->ctx);
    void *stored = malloc(count * element);
    if (!stored)
        return clpsa__tool_fail(COMMAND, "out of memory staging an input");
    status = clpsa_convert_from_float(dtype, host, stored, count);
    cl_int err = CL_SUCCESS;
    if (status == CLPSA_OK)
        err = clEnqueueWriteBuffer(st->queue, *buffer, CL_TRUE, 0, count * element, stored, 0, NULL,
                                   NULL);
    free(stored);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_convert_from_float", status, NULL);
    return err == CL_SUCCESS ? CLPSA__EXIT_OK
                             : clpsa__tool_cl_error(COMMAND, "clEnqueueWriteBuffer", err);
}

/* Buffers sized for the plan (which may ask for more than the tensors' bytes). */
static int upload_case(bench_state *st, const bench_case *c, const clpsa_plan *plan) {
    clpsa_buffer_sizes sizes;
    const clpsa_status status = clpsa_plan_buffer_sizes(plan, &sizes);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_buffer_sizes", status, st->ctx);
    const bench_shape *s = &c->shape;
    const size_t q_count = (size_t)s->batch * s->heads_q * s->seq_q * s->dim;
    const size_t kv_count = (size_t)s->batch * s->heads_kv * s->seq_k * s->dim;
    const size_t counts[3] = {q_count, kv_count, kv_count};
    const size_t bytes[3] = {sizes.q, sizes.k, sizes.v};
    st->out_count = q_count;
    st->dense_out = malloc(q_count * sizeof(float));
    st->method_out = malloc(q_count * sizeof(float));
    if (!st->dense_out || !st->method_out)
        return clpsa__tool_fail(COMMAND, "out of memory for the outputs");
    int rc = CLPSA__EXIT_OK;
    for (int t = 0; t < 3 && rc == CLPSA__EXIT_OK; ++t) {
        rc = upload(st, c->host[t], counts[t], c->dtype, bytes[t], &st->in[t]);
        /* CLBlast reads fp32: the same rounded values, widened. */
        if (rc == CLPSA__EXIT_OK && c->dtype != CLPSA_DTYPE_FP32)
            rc = upload(st, c->host[t], counts[t], CLPSA_DTYPE_FP32, 0, &st->in32[t]);
    }
    if (rc != CLPSA__EXIT_OK)
        return rc;
    const size_t out_bytes = sizes.out > q_count * sizeof(float) ? sizes.out : q_count * 4;
    const clpsa_status s2 = clpsa_context_alloc(st->ctx, out_bytes, &st->out);
    return s2 == CLPSA_OK ? CLPSA__EXIT_OK
                          : clpsa__tool_library_error(COMMAND, "clpsa_context_alloc", s2, st->ctx);
}

/* NaN first: an output element a method never writes cannot pass for a result. */
static int poison_output(bench_state *st) {
    const float nan_fill = NAN;
    const cl_int err = clEnqueueFillBuffer(st->queue, st->out, &nan_fill, sizeof nan_fill, 0,
                                           st->out_count * sizeof(float), 0, NULL, NULL);
    return err == CL_SUCCESS ? CLPSA__EXIT_OK
                             : clpsa__tool_cl_error(COMMAND, "clEnqueueFillBuffer", err);
}

static int read_output(bench_state *st, float *host) {
    const cl_int err = clEnqueueReadBuffer(st->queue, st->out, CL_TRUE, 0,
                                           st->out_count * sizeof(float), host, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLPSA__EXIT_OK
                             : clpsa__tool_cl_error(COMMAND, "clEnqueueReadBuffer", err);
}

/* ---- Timing ---- */

/* One run, waited for (tool_common.c); PSA and binary report per stage. */
static int timed_run(bench_state *st, clpsa_plan *plan, bool staged, timing *t) {
    const cl_mem buffers[4] = {st->in[0], st->in[1], st->in[2], st->out};
    clpsa_stage_times s;
    const int rc = clpsa__tool_timed_run(COMMAND, st->ctx, plan, st->queue, buffers, staged, &s);
    *t = (timing){s.total_ms, s.pool_ms, s.estimate_ms, s.assign_ms, s.attend_ms};
    return rc;
}

/* A warm-up run, then the median of each figure over the reps; the output lands in `out`. */
static int measure(bench_state *st, clpsa_plan *plan, bool staged, timing *median, float *out) {
    const int reps = st->o->reps;
    double *values = malloc((size_t)reps * 5 * sizeof(double));
    if (!values)
        return clpsa__tool_fail(COMMAND, "out of memory");
    timing t;
    int rc = poison_output(st);
    if (rc == CLPSA__EXIT_OK)
        rc = timed_run(st, plan, staged, &t);
    for (int r = 0; r < reps && rc == CLPSA__EXIT_OK; ++r) {
        rc = timed_run(st, plan, staged, &t);
        const double figures[5] = {t.total_ms, t.pool_ms, t.estimate_ms, t.assign_ms, t.attend_ms};
        for (int f = 0; f < 5; ++f)
            values[(size_t)f * reps + r] = figures[f];
    }
    if (rc == CLPSA__EXIT_OK) {
        double *slots[5] = {&median->total_ms, &median->pool_ms, &median->estimate_ms,
                            &median->assign_ms, &median->attend_ms};
        for (int f = 0; f < 5; ++f)
            *slots[f] = clpsa__tool_median(values + (size_t)f * reps, (size_t)reps);
    }
    free(values);
    return rc == CLPSA__EXIT_OK ? read_output(st, out) : rc;
}

/* ---- Plans ---- */

static void plan_desc(const bench_state *st, const bench_case *c, clpsa_method method,
                      clpsa_ordering order, clpsa_plan_desc *d) {
    clpsa_plan_desc_init(d);
    d->method = method;
    d->batch = c->shape.batch;
    d->heads_q = c->shape.heads_q;
    d->heads_kv = c->shape.heads_kv;
    d->seq_q = c->shape.seq_q;
    d->seq_k = c->shape.seq_k;
    d->head_dim = c->shape.dim;
    d->dtype = c->dtype;
    d->out_dtype = CLPSA_DTYPE_FP32;
    const bool understanding = c->workload == BENCH_WORKLOAD_VIDEO_TEXT;
    d->causal = st->o->causal || understanding;
    if (method == CLPSA_METHOD_DENSE)
        return;
    if (understanding) {
        /* Its estimate, mode, blocks and cap; the thresholds come from the density search. */
        d->preset = "understanding";
        d->text_tokens = c->text_tokens;
    }
    d->block_q = st->o->block_q;
    d->block_k = st->o->block_k;
    if (c->grid[0]) {
        memcpy(d->grid, c->grid, sizeof d->grid);
        d->ordering = order;
    }
}

static int create_plan(bench_state *st, const clpsa_plan_desc *d, const char *what,
                       clpsa_plan **plan) {
    const clpsa_status status = clpsa_plan_create(st->ctx, d, plan);
    if (status == CLPSA_OK)
        return CLPSA__EXIT_OK;
    char call[64];
    snprintf(call, sizeof call, "clpsa_plan_create(%s)", what);
    return clpsa__tool_library_error(COMMAND, call, status, st->ctx);
}

static int read_density(bench_state *st, clpsa_plan *plan, double *density) {
    clpsa_level_stats stats;
    const clpsa_status status = clpsa_plan_read_stats(plan, &stats);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_read_stats", status, st->ctx);
    *density = stats.density;
    return CLPSA__EXIT_OK;
}

static void scaled_tau(double scale, float tau[4]) {
    for (int f = 0; f < 4; ++f) {
        const double x = scale * clpsa__bench_tau_base[f];
        tau[f] = x >= 1.0 ? 1.0f : (float)x;
    }
}

/* PSA's density with thresholds tau: one run (the density does not depend on timing). */
static int probe(bench_state *st, const clpsa_plan_desc *psa, const float tau[4], double *density) {
    clpsa_plan_desc d = *psa;
    memcpy(d.thresholds, tau, sizeof d.thresholds);
    clpsa_plan *plan = NULL;
    int rc = create_plan(st, &d, "psa", &plan);
    timing t;
    if (rc == CLPSA__EXIT_OK)
        rc = timed_run(st, plan, true, &t);
    if (rc == CLPSA__EXIT_OK)
        rc = read_density(st, plan, density);
    clpsa_plan_destroy(plan);
    return rc;
}

/* Thresholds for a target density: bisection on s in tau = min(1, s * base_tau). A larger s
 * moves every level boundary of threshold mode right (finer levels), so the density does not
 * decrease with s; it moves in steps (whole blocks), hence the tolerance and the closest found
 * as the answer when no step lands within it. */
static int search_tau(bench_state *st, const clpsa_plan_desc *psa, double target, float tau[4]) {
    double lo = CLPSA__BENCH_SCALE_MIN, hi = SCALE_MAX, density = 0.0;
    scaled_tau(lo, tau);
    int rc = probe(st, psa, tau, &density);
    double best_scale = lo, best_error = fabs(density - target);
    /* At the smallest s PSA keeps its minimum (min_full, the block crossing each threshold):
     * a target below that is out of reach, and the minimum is the closest. */
    bool done =
        rc != CLPSA__EXIT_OK || density >= target || best_error <= CLPSA__BENCH_DENSITY_TOLERANCE;
    for (int step = 0; !done && step < SEARCH_STEPS; ++step) {
        const double mid = 0.5 * (lo + hi);
        float trial[4];
        scaled_tau(mid, trial);
        progress(st, "%s, density %.2f: searching thresholds, s = %.4f",
                 clpsa__bench_workload_name(st->workload), target, mid);
        rc = probe(st, psa, trial, &density);
        if (rc == CLPSA__EXIT_OK && fabs(density - target) < best_error) {
            best_error = fabs(density - target);
            best_scale = mid;
        }
        *(density < target ? &lo : &hi) = mid;
        done = rc != CLPSA__EXIT_OK || best_error <= CLPSA__BENCH_DENSITY_TOLERANCE;
    }
    scaled_tau(best_scale, tau);
    return rc;
}

/* ---- One case ---- */

typedef struct case_result {
    timing dense;
    double dense_flops, clblast_ms, clblast_vs_dense;
    float scale;
} case_result;

static bench_record record_base(const bench_case *c, bench_workload workload, double target,
                                bench_method method) {
    bench_record r;
    memset(&r, 0, sizeof r);
    r.workload = workload;
    r.shape = c->shape;
    memcpy(r.grid, c->grid, sizeof r.grid);
    r.dtype = c->dtype;
    r.target_density = target;
    r.method = method;
    r.rel_l2 = NAN;
    r.clblast_vs_dense = NAN;
    r.pool_ms = r.estimate_ms = r.assign_ms = r.attend_ms = NAN;
    return r;
}

/* A record of a PSA or binary run: its density, stage times, and error against dense (of the
 * output the run left in method_out). */
static bench_record staged_record(const bench_state *st, const bench_case *c,
                                  bench_workload workload, double target, bench_method method,
                                  double density, const timing *t) {
    bench_record r = record_base(c, workload, target, method);
    r.density = density;
    r.rel_l2 = clpsa__run_rel_l2(st->method_out, st->dense_out, st->out_count);
    r.has_tau = true;
    r.pool_ms = t->pool_ms;
    r.estimate_ms = t->estimate_ms;
    r.assign_ms = t->assign_ms;
    r.attend_ms = t->attend_ms;
    return r;
}

static int run_dense(bench_state *st, const bench_case *c, case_result *cr) {
    clpsa_plan_desc d;
    plan_desc(st, c, CLPSA_METHOD_DENSE, CLPSA_ORDER_RASTER, &d);
    clpsa_plan *plan = NULL;
    int rc = create_plan(st, &d, "dense", &plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    clpsa_plan_desc resolved;
    clpsa_plan_get_desc(plan, &resolved);
    cr->scale = resolved.scale != 0.0f ? resolved.scale : (float)(1.0 / sqrt((double)c->shape.dim));
    cr->dense_flops = clpsa_plan_flops(plan);
    progress(st, "uploading");
    rc = upload_case(st, c, plan);
    progress(st, "dense");
    if (rc == CLPSA__EXIT_OK)
        rc = measure(st, plan, false, &cr->dense, st->dense_out);
    clpsa_plan_destroy(plan);
    return rc;
}

static int run_clblast(bench_state *st, const bench_case *c, case_result *cr) {
    progress(st, "dense_clblast (CLBlast compiles its kernels on first use)");
    bench_clblast *b = NULL;
    int rc = clpsa__bench_clblast_create(clpsa_context_cl_context(st->ctx),
                                         clpsa_context_device(st->ctx), &c->shape, &b);
    cl_mem *in = c->dtype == CLPSA_DTYPE_FP32 ? st->in : st->in32;
    const int reps = st->o->reps;
    double *ms = malloc((size_t)(reps + 1) * sizeof(double));
    if (!ms && rc == CLPSA__EXIT_OK)
        rc = clpsa__tool_fail(COMMAND, "out of memory");
    if (rc == CLPSA__EXIT_OK)
        rc = poison_output(st);
    for (int r = 0; r <= reps && rc == CLPSA__EXIT_OK; ++r) /* r = 0: warm-up */
        rc =
            clpsa__bench_clblast_run(b, st->queue, in[0], in[1], in[2], st->out, cr->scale, &ms[r]);
    if (rc == CLPSA__EXIT_OK) {
        cr->clblast_ms = clpsa__tool_median(ms + 1, (size_t)reps);
        rc = read_output(st, st->method_out);
    }
    if (rc == CLPSA__EXIT_OK)
        cr->clblast_vs_dense = clpsa__run_rel_l2(st->method_out, st->dense_out, st->out_count);
    free(ms);
    clpsa__bench_clblast_destroy(b);
    return rc;
}

/* The FLOPs of the estimate: the sampled dot products (or the antidiagonal ones). */
static double estimate_flops(const clpsa_plan *plan) {
    clpsa_plan_desc d;
    clpsa_block_grid g;
    if (clpsa_plan_get_desc(plan, &d) != CLPSA_OK || clpsa_plan_block_grid(plan, &g) != CLPSA_OK)
        return NAN;
    if (d.estimator == CLPSA_ESTIMATOR_ANTIDIAGONAL) {
        const int stride = d.antidiagonal_stride > 0 ? d.antidiagonal_stride : 8;
        return 2.0 * d.head_dim * d.batch * d.heads_q * (double)d.seq_q * d.seq_k / stride;
    }
    if (d.mode == CLPSA_MODE_BUDGET) /* every key and pooled token against s_q rows a block */
        return 2.0 * d.head_dim * (double)g.count / g.blocks_k * d.sample_q *
               ((double)d.seq_k + (d.seq_k + 1) / 2 + (d.seq_k + 3) / 4 + (d.seq_k + 7) / 8);
    const int sq = d.sample_q > 0 ? d.sample_q : g.block_q / 4;
    const int sk = d.sample_k > 0 ? d.sample_k : g.block_k / 4;
    return 2.0 * d.head_dim * (double)g.count * sq * sk;
}

/* The threshold rule beside budget mode in a density sweep: thresholds found by bisection for
 * the density budget mode spent, one psa_threshold record (the whole pipeline). */
static int run_threshold(bench_state *st, const bench_case *c, const clpsa_plan_desc *base,
                         bench_workload workload, double target, double density) {
    clpsa_plan_desc psa = *base;
    psa.mode = CLPSA_MODE_THRESHOLD;
    psa.density = 0.0f;
    float tau[4];
    int rc = search_tau(st, &psa, density, tau);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    memcpy(psa.thresholds, tau, sizeof tau);
    if (tau[0] == 0.0f && tau[1] == 0.0f && tau[2] == 0.0f && tau[3] == 0.0f)
        psa.thresholds[3] = 1e-6f; /* all zero would mean the library's defaults */
    progress(st, "%s, threshold rule at density %.2f", clpsa__bench_workload_name(workload),
             target);
    clpsa_plan *plan = NULL;
    timing t;
    double spent = 0.0;
    rc = create_plan(st, &psa, "psa, threshold mode", &plan);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(st, plan, true, &t, st->method_out);
    if (rc == CLPSA__EXIT_OK)
        rc = read_density(st, plan, &spent);
    clpsa_plan_destroy(plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    bench_record r = staged_record(st, c, workload, target, BENCH_METHOD_PSA_THRESHOLD, spent, &t);
    r.has_tau = true;
    r.rule = "threshold";
    memcpy(r.tau, psa.thresholds, sizeof r.tau);
    r.time_ms = t.total_ms;
    r.tflops = tflops(st->dense_flops * spent, t.total_ms);
    return add_record(st, &r);
}

/* PSA and binary at one target density (NAN: --tau) in one token order; adds their records
 * and the dense ones. A target density runs budget mode at exactly that density, and the
 * threshold rule beside it; --tau runs the threshold rule with those thresholds. */
static int run_density(bench_state *st, const bench_case *c, const case_result *cr,
                       bench_workload workload, clpsa_ordering order, double target) {
    clpsa_plan_desc psa;
    plan_desc(st, c, CLPSA_METHOD_PSA, order, &psa);
    int rc = CLPSA__EXIT_OK;
    st->workload = workload;
    st->dense_flops = cr->dense_flops;
    const bool budget = !isnan(target);
    if (budget) {
        psa.mode = CLPSA_MODE_BUDGET;
        psa.density = (float)target;
    } else {
        memcpy(psa.thresholds, st->o->tau, sizeof psa.thresholds);
        if (psa.thresholds[0] == 0.0f && psa.thresholds[1] == 0.0f && psa.thresholds[2] == 0.0f &&
            psa.thresholds[3] == 0.0f)
            psa.thresholds[3] = 1e-6f; /* all zero would mean the library's defaults */
    }

    const char *name = clpsa__bench_workload_name(workload);
    progress(st, isnan(target) ? "%s, psa" : "%s, psa at density %.2f", name, target);
    clpsa_plan *plan = NULL;
    timing t;
    double density = 0.0, est_flops = NAN;
    rc = create_plan(st, &psa, "psa", &plan);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(st, plan, true, &t, st->method_out);
    if (rc == CLPSA__EXIT_OK)
        rc = read_density(st, plan, &density);
    if (rc == CLPSA__EXIT_OK) {
        est_flops = estimate_flops(plan);
        clpsa_block_grid g;
        if (clpsa_plan_block_grid(plan, &g) == CLPSA_OK) {
            st->results.block_q = g.block_q;
            st->results.block_k = g.block_k;
        }
    }
    clpsa_plan_destroy(plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    bench_record r = staged_record(st, c, workload, target, BENCH_METHOD_PSA, density, &t);
    r.rule = budget ? "budget" : "threshold";
    r.has_tau = !budget;
    memcpy(r.tau, psa.thresholds, sizeof r.tau);
    bench_record parts[3] = {r, r, r};
    parts[0].time_ms = t.total_ms;
    parts[0].tflops = tflops(cr->dense_flops * density, t.total_ms);
    parts[1].method = BENCH_METHOD_PSA_ATTEND;
    parts[1].time_ms = t.attend_ms;
    parts[1].tflops = tflops(cr->dense_flops * density, t.attend_ms);
    parts[2].method = BENCH_METHOD_ESTIMATE_ASSIGN;
    parts[2].time_ms = t.estimate_ms + t.assign_ms;
    parts[2].tflops = tflops(est_flops, t.estimate_ms + t.assign_ms);
    for (int i = 0; i < 3 && rc == CLPSA__EXIT_OK; ++i)
        rc = add_record(st, &parts[i]);
    if (rc != CLPSA__EXIT_OK)
        return rc;

    /* Equal budget: binary keeps ceil(density * nk) blocks a row, at least one. */
    progress(st, isnan(target) ? "%s, binary" : "%s, binary at density %.2f", name, target);
    clpsa_plan_desc bin = psa;
    bin.method = CLPSA_METHOD_BINARY;
    bin.mode = 0; /* binary keeps the top blocks by the sampled estimate's S */
    bin.density = 0.0f;
    bin.binary_density = density > 1.0 ? 1.0f : density > 1e-6 ? (float)density : 1e-6f;
    double bin_density = 0.0;
    rc = create_plan(st, &bin, "binary", &plan);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(st, plan, true, &t, st->method_out);
    if (rc == CLPSA__EXIT_OK)
        rc = read_density(st, plan, &bin_density);
    clpsa_plan_destroy(plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    r = staged_record(st, c, workload, target, BENCH_METHOD_BINARY, bin_density, &t);
    r.has_tau = false;
    r.time_ms = t.total_ms;
    r.tflops = tflops(cr->dense_flops * bin_density, t.total_ms);
    rc = add_record(st, &r);

    r = record_base(c, workload, target, BENCH_METHOD_DENSE);
    r.density = 1.0;
    r.time_ms = cr->dense.total_ms;
    r.tflops = tflops(cr->dense_flops, cr->dense.total_ms);
    if (rc == CLPSA__EXIT_OK)
        rc = add_record(st, &r);
    r = record_base(c, workload, target, BENCH_METHOD_CLBLAST);
    r.density = 1.0;
    r.time_ms = cr->clblast_ms;
    r.tflops = tflops(cr->dense_flops, cr->clblast_ms);
    r.clblast_vs_dense = cr->clblast_vs_dense;
    if (rc == CLPSA__EXIT_OK && !st->o->no_clblast)
        rc = add_record(st, &r);
    if (rc == CLPSA__EXIT_OK && budget)
        rc = run_threshold(st, c, &psa, workload, target, density);
    return rc;
}

/* The token orders a source is benchmarked in, as workload names of the records. */
static int source_workloads(const bench_options *o, bench_workload source,
                            bench_workload workloads[2]) {
    if (source != BENCH_WORKLOAD_VIDEO)
        return o->workloads[source] ? (workloads[0] = source, 1) : 0;
    int n = 0;
    if (o->workloads[BENCH_WORKLOAD_VIDEO])
        workloads[n++] = BENCH_WORKLOAD_VIDEO;
    if (o->workloads[BENCH_WORKLOAD_HILBERT])
        workloads[n++] = BENCH_WORKLOAD_HILBERT;
    return n;
}

static int run_case(bench_state *st, bench_case *c, const bench_workload *workloads, int count) {
    case_result cr;
    memset(&cr, 0, sizeof cr);
    int rc = run_dense(st, c, &cr);
    if (rc == CLPSA__EXIT_OK && !st->o->no_clblast)
        rc = run_clblast(st, c, &cr);
    const bench_options *o = st->o;
    const int targets = o->tau_given ? 1 : o->density_count;
    for (int w = 0; w < count && rc == CLPSA__EXIT_OK; ++w) {
        const clpsa_ordering order =
            workloads[w] == BENCH_WORKLOAD_HILBERT ? CLPSA_ORDER_HILBERT : CLPSA_ORDER_RASTER;
        for (int i = 0; i < targets && rc == CLPSA__EXIT_OK; ++i)
            rc = run_density(st, c, &cr, workloads[w], order, o->tau_given ? NAN : o->densities[i]);
    }
    release_case(st);
    return rc;
}

static int run_all(bench_state *st) {
    const bench_options *o = st->o;
    const bench_workload sources[4] = {BENCH_WORKLOAD_RANDOM, BENCH_WORKLOAD_VIDEO,
                                       BENCH_WORKLOAD_VIDEO_TEXT, BENCH_WORKLOAD_FILES};
    const int shapes = o->workloads[BENCH_WORKLOAD_FILES] ? 1 : o->shape_count;
    bench_workload workloads[2];
    st->case_total = 0;
    for (int s = 0; s < 4; ++s)
        if (source_workloads(o, sources[s], workloads) > 0)
            st->case_total += shapes * o->dtype_count;
    int rc = CLPSA__EXIT_OK;
    for (int s = 0; s < 4 && rc == CLPSA__EXIT_OK; ++s) {
        const int count = source_workloads(o, sources[s], workloads);
        for (int i = 0; count > 0 && i < shapes && rc == CLPSA__EXIT_OK; ++i) {
            for (int t = 0; t < o->dtype_count && rc == CLPSA__EXIT_OK; ++t) {
                bench_case c;
                memset(&c, 0, sizeof c);
                c.workload = sources[s];
                c.dtype = o->dtypes[t];
                if (sources[s] != BENCH_WORKLOAD_FILES)
                    c.shape = o->shapes[i];
                if (sources[s] == BENCH_WORKLOAD_VIDEO)
                    clpsa__bench_grid_for(o, c.shape.seq_q, c.grid);
                if (sources[s] == BENCH_WORKLOAD_VIDEO_TEXT) {
                    c.text_tokens = o->text_tokens;
                    clpsa__bench_grid_for(o, c.shape.seq_q - c.text_tokens, c.grid);
                }
                rc = clpsa__bench_case_load(o, &c);
                if (rc != CLPSA__EXIT_OK)
                    break;
                snprintf(st->case_label, sizeof st->case_label, "%s %dx%dx%dx%d %s",
                         sources[s] == BENCH_WORKLOAD_VIDEO
                             ? "video"
                             : clpsa__bench_workload_name(sources[s]),
                         c.shape.batch, c.shape.heads_q, c.shape.seq_q, c.shape.dim,
                         clpsa_dtype_name(c.dtype));
                rc = run_case(st, &c, workloads, count);
                clpsa__bench_case_free(&c);
                ++st->case_index;
            }
        }
    }
    if (st->terminal)
        fputs("\r\033[K", stderr);
    return rc;
}

int clpsa__cmd_bench(int argc, char **argv) {
    bench_options o;
    bool help = false;
    int rc = clpsa__bench_parse_options(argc, argv, &o, &help);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    if (help) {
        clpsa__bench_usage(stdout);
        return CLPSA__EXIT_OK;
    }
    bench_state st;
    memset(&st, 0, sizeof st);
    st.o = &o;
    st.terminal = isatty(fileno(stderr)) != 0;
    clpsa_context_desc cdesc;
    clpsa__tool_context_desc_init(&cdesc, o.device);
    const clpsa_status status = clpsa_context_create(&cdesc, &st.ctx);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_context_create", status, NULL);
    st.queue = clpsa_context_queue(st.ctx);
    st.results.device = clpsa_context_device_name(st.ctx);
    st.results.device_reason = clpsa_context_device_reason(st.ctx);
    const double start = clpsa__tool_wall_ms();
    rc = run_all(&st);
    st.results.wall_s = (clpsa__tool_wall_ms() - start) * 1e-3;
    release_case(&st);
    if (rc == CLPSA__EXIT_OK)
        rc = clpsa__bench_write_reports(&o, &st.results);
    free(st.results.records);
    clpsa_context_destroy(st.ctx);
    return rc;
}
