/* SPDX-License-Identifier: Apache-2.0 */
/* The dense method (CLPSA_METHOD_DENSE) against the double-precision reference: every head
 * dimension, storage type, layout, grouped-query sharing, causal alignment and sequence length
 * around the kernel's tile sizes, with poisoned outputs, canaries and a determinism rerun.
 *
 * Each case is one cmocka test named after its parameters; CLPSA_TEST_FILTER=<name> reruns
 * one case and CLPSA_TEST_SEED reproduces its data (both printed on failure). One context is
 * shared by the whole group so the in-memory program cache compiles each (D, dtype,
 * out dtype) kernel once: PoCL compilation, not the runs, dominates the suite's time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ref/ref_attention.h"
#include "support/test_support.h"

#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clpsa_context *ctx;

typedef struct dense_case {
    char name[160];
    int batch, heads_q, heads_kv, seq_q, seq_k, head_dim;
    clpsa_dtype dtype;
    clpsa_dtype out_dtype; /* CLPSA_DTYPE_DEFAULT: the input type */
    ts_layout q_layout, kv_layout, out_layout;
    int q_pad, kv_pad, out_pad; /* unused elements after each D-vector */
    float scale;                /* 0: the library's default, 1/sqrt(D) */
    int causal;
    char params[160]; /* clpsa_context_set_params text: the kernel variant and its tiles */
    int variant;      /* the dense.VARIANT that must have run */
} dense_case;

/* Tolerances follow the output type only. Inputs are rounded to their storage type on the
 * host and the reference reads those rounded values, so device and reference start from
 * identical numbers; what remains is the device's fp32 arithmetic (logits, online-softmax
 * rescaling, exp2, the weighted sum over at most ~1000 keys: a few 1e-7, at most ~1e-6 for
 * outputs of magnitude ~1) and the final rounding to the output type.
 * - fp32 out: accumulation only: rel L2 1e-5; elementwise 1e-5 + 1e-4*|ref|, about ten times
 *   the worst observed error (CLPSA_TEST_VERBOSE=1 prints it per case).
 * - fp16 out: round to nearest moves a value by at most half an ulp, 2^-11 |x| (4.9e-4 rel),
 *   so rtol is exactly that and atol 1e-5 absorbs the fp32 error and fp16's subnormal
 *   spacing (6e-8); a kernel that truncated instead (up to a full ulp) would fail. The
 *   rounding noise's rel L2 is ~2^-11/sqrt(3) = 2.8e-4; the limit 2e-3 leaves 7x room.
 * - bf16 out: the same with 8 significant bits: rtol 2^-8 (3.9e-3), rel L2 ~2.3e-3
 *   expected, limit 1e-2. */
static ts_tolerance tolerance_for(clpsa_dtype out_dtype) {
    switch (out_dtype) {
    case CLPSA_DTYPE_FP16:
        return (ts_tolerance){.atol = 1e-5, .rtol = 0x1p-11, .rel_l2 = 2e-3};
    case CLPSA_DTYPE_BF16:
        return (ts_tolerance){.atol = 1e-5, .rtol = 0x1p-8, .rel_l2 = 1e-2};
    default:
        return (ts_tolerance){.atol = 1e-5, .rtol = 1e-4, .rel_l2 = 1e-5};
    }
}

static ts_dims q_dims(const dense_case *c) {
    return (ts_dims){c->batch, c->heads_q, c->seq_q, c->head_dim};
}

static ts_dims kv_dims(const dense_case *c) {
    return (ts_dims){c->batch, c->heads_kv, c->seq_k, c->head_dim};
}

/* Host side of one case: rounded inputs, their strides, and the reference output. */
typedef struct dense_data {
    clpsa_strides q_strides, k_strides, v_strides, out_strides;
    size_t q_extent, k_extent, v_extent, out_extent;
    float *q, *k, *v;
    double *ref;
    size_t out_count; /* B * Hq * Nq * D */
} dense_data;

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ts_fail("out of host memory (%zu bytes)", bytes);
    return p;
}

/* Strides and extents of the case's four tensors. */
static void dense_data_layout(const dense_case *c, dense_data *data) {
    memset(data, 0, sizeof *data);
    const ts_dims qd = q_dims(c), kvd = kv_dims(c);
    data->q_strides = ts_strides(c->q_layout, qd, c->q_pad);
    data->k_strides = ts_strides(c->kv_layout, kvd, c->kv_pad);
    /* V gets its own padding so a kernel that reads V with K's strides is caught. */
    data->v_strides = ts_strides(c->kv_layout, kvd, c->kv_pad ? c->kv_pad + 5 : 0);
    data->out_strides = ts_strides(c->out_layout, qd, c->out_pad);
    data->q_extent = ts_extent(qd, data->q_strides);
    data->k_extent = ts_extent(kvd, data->k_strides);
    data->v_extent = ts_extent(kvd, data->v_strides);
    data->out_extent = ts_extent(qd, data->out_strides);
    data->out_count = (size_t)c->batch * c->heads_q * c->seq_q * c->head_dim;
}

/* Fresh inputs rounded to the storage type, and the reference output for them. The scale is
 * the fp32 value the device uses, not 1/sqrt(D) in double: to the reference it is an input. */
static void dense_data_fill(const dense_case *c, float effective_scale, dense_data *data) {
    const ts_dims qd = q_dims(c), kvd = kv_dims(c);
    data->q = checked_malloc(data->q_extent * sizeof(float));
    data->k = checked_malloc(data->k_extent * sizeof(float));
    data->v = checked_malloc(data->v_extent * sizeof(float));

    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin(c->name));
    ts_fill_tensor_normal(&rng, data->q, qd, data->q_strides, 1.0f);
    ts_fill_tensor_normal(&rng, data->k, kvd, data->k_strides, 1.0f);
    ts_fill_tensor_normal(&rng, data->v, kvd, data->v_strides, 1.0f);
    ts_round_to_dtype(c->dtype, data->q, data->q_extent);
    ts_round_to_dtype(c->dtype, data->k, data->k_extent);
    ts_round_to_dtype(c->dtype, data->v, data->v_extent);

    data->ref = checked_malloc(data->out_count * sizeof(double));
    const ref_attention_problem problem = {
        .batch = c->batch,
        .heads_q = c->heads_q,
        .heads_kv = c->heads_kv,
        .seq_q = c->seq_q,
        .seq_k = c->seq_k,
        .head_dim = c->head_dim,
        .q_strides = data->q_strides,
        .k_strides = data->k_strides,
        .v_strides = data->v_strides,
        .scale = (double)effective_scale,
        .causal = c->causal,
    };
    if (ref_attention_dense(&problem, data->q, data->k, data->v, data->ref) != 0)
        ts_fail("the reference rejected the problem");
}

static void dense_data_free(dense_data *data) {
    free(data->q);
    free(data->k);
    free(data->v);
    free(data->ref);
}

static clpsa_plan_desc plan_desc_of(const dense_case *c, const dense_data *data) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE;
    d.batch = c->batch;
    d.heads_q = c->heads_q;
    d.heads_kv = c->heads_kv;
    d.seq_q = c->seq_q;
    d.seq_k = c->seq_k;
    d.head_dim = c->head_dim;
    d.dtype = c->dtype;
    d.out_dtype = c->out_dtype;
    d.q_strides = data->q_strides;
    d.k_strides = data->k_strides;
    d.v_strides = data->v_strides;
    d.out_strides = data->out_strides;
    d.scale = c->scale;
    d.causal = c->causal;
    return d;
}

/* Checks one downloaded output (the whole strided extent): every element of the tensor
 * against the reference, rows that see nothing exactly zero, padding untouched (still NaN). */
static void check_output(const dense_case *c, const dense_data *data, const float *extent,
                         ts_tolerance tol, const char *what) {
    const ts_dims qd = q_dims(c);
    unsigned char *owned = calloc(data->out_extent, 1);
    float *got = checked_malloc(data->out_count * sizeof(float));
    if (!owned)
        ts_fail("out of host memory");
    for (int64_t b = 0; b < qd.batch; ++b)
        for (int64_t h = 0; h < qd.heads; ++h)
            for (int64_t n = 0; n < qd.seq; ++n)
                for (int64_t d = 0; d < qd.dim; ++d)
                    owned[ts_offset(data->out_strides, b, h, n, d)] = 1;
    for (size_t i = 0; i < data->out_extent; ++i)
        if (!owned[i] && !isnan(extent[i]))
            ts_fail("%s: padding element %zu of the output was written (%g)", what, i,
                    (double)extent[i]);
    free(owned);

    ts_gather(extent, qd, data->out_strides, got);
    ts_assert_close(what, got, data->ref, qd, tol);
    if (c->causal) {
        /* docs/algorithm.md §4: a row with nothing visible is zeros, exactly, never NaN or a tiny
         * mean. */
        const int64_t blind_rows = (int64_t)c->seq_q - c->seq_k;
        for (int64_t b = 0; b < qd.batch; ++b)
            for (int64_t h = 0; h < qd.heads; ++h)
                for (int64_t n = 0; n < blind_rows && n < qd.seq; ++n)
                    for (int64_t d = 0; d < qd.dim; ++d) {
                        const float x = got[((b * qd.heads + h) * qd.seq + n) * qd.dim + d];
                        if (x != 0.0f)
                            ts_fail("%s: causal row (b=%lld, h=%lld, n=%lld) sees no key but "
                                    "d=%lld is %g, not 0",
                                    what, (long long)b, (long long)h, (long long)n, (long long)d,
                                    (double)x);
                    }
    }
    free(got);
}

typedef struct dense_buffers {
    ts_buffer q, k, v, out;
} dense_buffers;

static void buffers_make(const dense_case *c, const clpsa_plan_desc *resolved,
                         const dense_data *data, dense_buffers *bufs) {
    ts_buffer_create(&bufs->q, ctx, "q", c->dtype, data->q_extent);
    ts_buffer_create(&bufs->k, ctx, "k", c->dtype, data->k_extent);
    ts_buffer_create(&bufs->v, ctx, "v", c->dtype, data->v_extent);
    ts_buffer_create(&bufs->out, ctx, "out", resolved->out_dtype, data->out_extent);
    ts_buffer_upload(&bufs->q, data->q);
    ts_buffer_upload(&bufs->k, data->k);
    ts_buffer_upload(&bufs->v, data->v);
}

static void buffers_release(dense_buffers *bufs) {
    ts_buffer_release(&bufs->q);
    ts_buffer_release(&bufs->k);
    ts_buffer_release(&bufs->v);
    ts_buffer_release(&bufs->out);
}

static void check_guards(const dense_buffers *bufs) {
    ts_buffer_check_canary(&bufs->q);
    ts_buffer_check_canary(&bufs->k);
    ts_buffer_check_canary(&bufs->v);
    ts_buffer_check_canary(&bufs->out);
    ts_buffer_check_unchanged(&bufs->q);
    ts_buffer_check_unchanged(&bufs->k);
    ts_buffer_check_unchanged(&bufs->v);
}

/* Poison, run on the context's queue, wait, download the whole output extent. */
static void run_once(clpsa_plan *plan, dense_buffers *bufs, float *extent) {
    ts_buffer_poison(&bufs->out);
    cl_event done = NULL;
    ts_check(ctx, clpsa_plan_run(plan, NULL, bufs->q.mem, bufs->k.mem, bufs->v.mem, bufs->out.mem,
                                 0, NULL, &done));
    if (!done)
        ts_fail("clpsa_plan_run returned no event although one was asked for");
    ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents");
    cl_int exec = 1;
    ts_check_cl(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec, NULL),
                "clGetEventInfo");
    clReleaseEvent(done);
    if (exec != CL_COMPLETE)
        ts_fail("the run's event ended with status %d, not CL_COMPLETE", (int)exec);
    ts_buffer_download(&bufs->out, extent);
}

static void test_dense_case(void **state) {
    const dense_case *c = *state;
    dense_data data;
    dense_data_layout(c, &data);
    const clpsa_plan_desc desc = plan_desc_of(c, &data);
    ts_case_begin(c->name);
    ts_check(ctx, clpsa_context_set_params(ctx, c->params));
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &desc, &plan));
    char ran[32];
    snprintf(ran, sizeof ran, "dense.VARIANT=%d ", c->variant);
    if (!strstr(clpsa_plan_parameter_source(plan), ran))
        ts_fail("asked for %s, the plan reports %s", c->params, clpsa_plan_parameter_source(plan));
    clpsa_plan_desc resolved;
    ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));
    const float want_scale = c->scale != 0.0f ? c->scale : 1.0f / sqrtf((float)c->head_dim);
    if (fabsf(resolved.scale - want_scale) > 1e-7f * fabsf(want_scale))
        ts_fail("resolved scale %.9g, expected %.9g", (double)resolved.scale, (double)want_scale);
    const clpsa_dtype out_dtype = c->out_dtype ? c->out_dtype : c->dtype;
    if (resolved.out_dtype != out_dtype)
        ts_fail("resolved out_dtype %d, expected %d", (int)resolved.out_dtype, (int)out_dtype);

    /* The reference takes the scale from the plan, which checks on the way that the default
     * resolves to 1/sqrt(D) and an explicit scale is kept as given. */
    dense_data_fill(c, resolved.scale, &data);
    clpsa_buffer_sizes sizes;
    ts_check(ctx, clpsa_plan_buffer_sizes(plan, &sizes));
    const size_t in_size = clpsa_dtype_size(c->dtype);
    if (sizes.q != data.q_extent * in_size || sizes.k != data.k_extent * in_size ||
        sizes.v != data.v_extent * in_size ||
        sizes.out != data.out_extent * clpsa_dtype_size(out_dtype))
        ts_fail("buffer sizes q %zu k %zu v %zu out %zu differ from the strided extents", sizes.q,
                sizes.k, sizes.v, sizes.out);

    dense_buffers bufs;
    buffers_make(c, &resolved, &data, &bufs);
    float *first = checked_malloc(data.out_extent * sizeof(float));
    float *second = checked_malloc(data.out_extent * sizeof(float));
    run_once(plan, &bufs, first);
    check_guards(&bufs);
    check_output(c, &data, first,
                 ts_tolerance_for_variant(tolerance_for(out_dtype), plan, "dense", c->dtype),
                 "dense output");
    /* A second run into a re-poisoned output must reproduce the first bit for bit: nothing
     * may depend on stale buffer contents or on scheduling. */
    run_once(plan, &bufs, second);
    check_guards(&bufs);
    for (size_t i = 0; i < data.out_extent; ++i)
        if (memcmp(&first[i], &second[i], sizeof(float)) != 0 &&
            !(isnan(first[i]) && isnan(second[i])))
            ts_fail("second run differs from the first at output element %zu: %.9g vs %.9g", i,
                    (double)first[i], (double)second[i]);
    free(first);
    free(second);
    buffers_release(&bufs);
    dense_data_free(&data);
    clpsa_plan_destroy(plan);
}

/* ---- Runs on the caller's queue, gated by a user event, returning an event ---- */

static void test_caller_queue_wait_list_and_event(void **state) {
    (void)state;
    const dense_case c = {.name = "caller_queue",
                          .batch = 2,
                          .heads_q = 4,
                          .heads_kv = 2,
                          .seq_q = 45,
                          .seq_k = 70,
                          .head_dim = 64,
                          .dtype = CLPSA_DTYPE_FP32};
    dense_data data;
    ts_case_begin(c.name);
    dense_data_layout(&c, &data);
    dense_data_fill(&c, 1.0f / sqrtf(64.0f), &data);
    clpsa_plan_desc desc = plan_desc_of(&c, &data);
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &desc, &plan));
    clpsa_plan_desc resolved;
    ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));
    dense_buffers bufs;
    buffers_make(&c, &resolved, &data, &bufs);

    cl_int err = CL_SUCCESS;
    cl_context cl_ctx = clpsa_context_cl_context(ctx);
    cl_command_queue queue = clCreateCommandQueue(cl_ctx, clpsa_context_device(ctx), 0, &err);
    ts_check_cl(err, "clCreateCommandQueue");
    float *got = checked_malloc(data.out_extent * sizeof(float));

    /* 1. A user event that is still pending: the run must wait for it. */
    cl_event gate = clCreateUserEvent(cl_ctx, &err);
    ts_check_cl(err, "clCreateUserEvent");
    cl_event done = NULL;
    ts_check(ctx, clpsa_plan_run(plan, queue, bufs.q.mem, bufs.k.mem, bufs.v.mem, bufs.out.mem, 1,
                                 &gate, &done));
    /* Problems found while the gate is closed are reported only after opening it: failing
     * with the run still blocked would leave a command that never completes on the queue. */
    char problem[160] = "";
    cl_int exec = CL_COMPLETE;
    cl_command_queue event_queue = NULL;
    if (!done)
        snprintf(problem, sizeof problem, "no event returned");
    else if (clFlush(queue) != CL_SUCCESS ||
             clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec, NULL) !=
                 CL_SUCCESS ||
             clGetEventInfo(done, CL_EVENT_COMMAND_QUEUE, sizeof event_queue, &event_queue, NULL) !=
                 CL_SUCCESS)
        snprintf(problem, sizeof problem, "clFlush or clGetEventInfo failed");
    else if (exec == CL_COMPLETE)
        snprintf(problem, sizeof problem, "the run completed before its wait-list event was set");
    else if (event_queue != queue)
        snprintf(problem, sizeof problem,
                 "the returned event belongs to queue %p, not the caller's %p", (void *)event_queue,
                 (void *)queue);
    ts_check_cl(clSetUserEventStatus(gate, CL_COMPLETE), "clSetUserEventStatus");
    if (problem[0])
        ts_fail("%s", problem);
    ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents");
    ts_check_cl(clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof exec, &exec, NULL),
                "clGetEventInfo");
    if (exec != CL_COMPLETE)
        ts_fail("the run's event ended with status %d", (int)exec);
    clReleaseEvent(done);
    clReleaseEvent(gate);
    ts_buffer_download(&bufs.out, got);
    check_guards(&bufs);
    check_output(&c, &data, got, tolerance_for(CLPSA_DTYPE_FP32), "user-event run");

    /* 2. A marker as the wait list and no event asked back. */
    ts_buffer_poison(&bufs.out);
    cl_event marker = NULL;
    ts_check_cl(clEnqueueMarkerWithWaitList(queue, 0, NULL, &marker),
                "clEnqueueMarkerWithWaitList");
    ts_check(ctx, clpsa_plan_run(plan, queue, bufs.q.mem, bufs.k.mem, bufs.v.mem, bufs.out.mem, 1,
                                 &marker, NULL));
    ts_check_cl(clFinish(queue), "clFinish");
    clReleaseEvent(marker);
    ts_buffer_download(&bufs.out, got);
    check_guards(&bufs);
    check_output(&c, &data, got, tolerance_for(CLPSA_DTYPE_FP32), "marker run");

    clReleaseCommandQueue(queue);
    free(got);
    buffers_release(&bufs);
    dense_data_free(&data);
    clpsa_plan_destroy(plan);
}

/* An explicit scale equal to 1/sqrt(D) must give exactly the default's output. */
static void test_default_scale_equals_explicit(void **state) {
    (void)state;
    dense_case c = {.name = "scale_default_vs_explicit",
                    .batch = 1,
                    .heads_q = 2,
                    .heads_kv = 2,
                    .seq_q = 40,
                    .seq_k = 50,
                    .head_dim = 96,
                    .dtype = CLPSA_DTYPE_FP32};
    const float explicit_scale = 1.0f / sqrtf(96.0f);
    dense_data data;
    ts_case_begin(c.name);
    dense_data_layout(&c, &data);
    dense_data_fill(&c, explicit_scale, &data);
    float *outputs[2];
    for (int i = 0; i < 2; ++i) {
        c.scale = i == 0 ? 0.0f : explicit_scale;
        clpsa_plan_desc desc = plan_desc_of(&c, &data);
        clpsa_plan *plan = NULL;
        ts_check(ctx, clpsa_plan_create(ctx, &desc, &plan));
        clpsa_plan_desc resolved;
        ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));
        dense_buffers bufs;
        buffers_make(&c, &resolved, &data, &bufs);
        outputs[i] = checked_malloc(data.out_extent * sizeof(float));
        run_once(plan, &bufs, outputs[i]);
        check_guards(&bufs);
        check_output(&c, &data, outputs[i], tolerance_for(CLPSA_DTYPE_FP32), "scale run");
        buffers_release(&bufs);
        clpsa_plan_destroy(plan);
    }
    if (memcmp(outputs[0], outputs[1], data.out_extent * sizeof(float)) != 0)
        ts_fail("scale 0 (default) and scale 1/sqrt(96) give different outputs");
    free(outputs[0]);
    free(outputs[1]);
    dense_data_free(&data);
}

/* ---- The case table ---- */

#define MAX_CASES 640
static dense_case cases[MAX_CASES];
static size_t case_count;

static const char *dtype_tag(clpsa_dtype t) {
    return t == CLPSA_DTYPE_DEFAULT ? "same" : clpsa_dtype_name(t);
}

/* A base case: B=1, Hq=2, Hkv=1, contiguous [B, H, N, D], default scale. */
static dense_case base(int d, clpsa_dtype dtype, int nq, int nk) {
    dense_case c;
    memset(&c, 0, sizeof c);
    c.batch = 1;
    c.heads_q = 2;
    c.heads_kv = 1;
    c.seq_q = nq;
    c.seq_k = nk;
    c.head_dim = d;
    c.dtype = dtype;
    return c;
}

/* The variant (and tile overrides) the cases added next run with, and their name prefix. */
static struct {
    char params[160], tag[24];
    int variant;
    bool subset;
} current;

static void add(dense_case c, const char *group) {
    dense_data layout_only;
    dense_data_layout(&c, &layout_only);
    const clpsa_plan_desc desc = plan_desc_of(&c, &layout_only);
    if (!ts_variant_takes(current.variant, &desc))
        return; /* the plan's own choice runs this case in the first pass */
    /* Runs beyond the plan's own choice and the portable kernel (other tiles, opt-in
     * variants) keep every case of a few programs: fp32 at each D, and D = 64 in each storage
     * type. PoCL compiles each (D, dtype, out dtype) program anew. */
    const clpsa_dtype out = c.out_dtype ? c.out_dtype : c.dtype;
    if (current.subset && !(out == c.dtype && (c.dtype == CLPSA_DTYPE_FP32 || c.head_dim == 64)))
        return;
    if (case_count == MAX_CASES) {
        fprintf(stderr, "test_dense: more than %d cases\n", MAX_CASES);
        abort();
    }
    char layout[48] = "";
    if (c.q_layout != TS_BHND || c.kv_layout != TS_BHND || c.out_layout != TS_BHND || c.q_pad ||
        c.kv_pad || c.out_pad)
        snprintf(layout, sizeof layout, "_q%s%d_kv%s%d_o%s%d", ts_layout_name(c.q_layout), c.q_pad,
                 ts_layout_name(c.kv_layout), c.kv_pad, ts_layout_name(c.out_layout), c.out_pad);
    char scale[24] = "";
    if (c.scale != 0.0f)
        snprintf(scale, sizeof scale, "_s%g", (double)c.scale);
    snprintf(c.params, sizeof c.params, "%s", current.params);
    c.variant = current.variant;
    snprintf(c.name, sizeof c.name, "%s_%s_d%d_%s_o%s_b%d_h%d-%d_n%d-%d%s%s%s", current.tag, group,
             c.head_dim, clpsa_dtype_name(c.dtype), dtype_tag(c.out_dtype), c.batch, c.heads_q,
             c.heads_kv, c.seq_q, c.seq_k, layout, scale, c.causal ? "_causal" : "");
    cases[case_count++] = c;
}

/* Sequence lengths around the tiles (assumed 16..128 rows and keys): 1, tile - 1, tile,
 * tile + 1, primes, Nq != Nk both ways. */
static void add_size_cases(bool every_type, int head_dim) {
    const int sizes[][2] = {{1, 1},     {1, 2},     {2, 7},      {7, 2},     {15, 17},   {16, 16},
                            {31, 31},   {32, 32},   {33, 33},    {63, 64},   {64, 63},   {65, 65},
                            {127, 128}, {128, 127}, {129, 129},  {257, 211}, {211, 257}, {1, 509},
                            {509, 1},   {509, 509}, {1021, 1031}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; ++i)
        add(base(head_dim, CLPSA_DTYPE_FP32, sizes[i][0], sizes[i][1]), "sizes");
    {
        dense_case c = base(head_dim, CLPSA_DTYPE_FP32, 129, 257);
        c.causal = 1;
        add(c, "sizes");
    }
    if (!every_type)
        return;
    add(base(128, CLPSA_DTYPE_FP16, 129, 127), "sizes");
    add(base(32, CLPSA_DTYPE_BF16, 127, 257), "sizes");
    {
        dense_case c = base(64, CLPSA_DTYPE_FP16, 1031, 1021);
        c.causal = 1;
        add(c, "sizes");
    }
}

static void build_variant_cases(void) {
    const clpsa_dtype dtypes[3] = {CLPSA_DTYPE_FP32, CLPSA_DTYPE_FP16, CLPSA_DTYPE_BF16};
    const int dims[5] = {32, 64, 96, 128, 256};

    /* Every head dimension with every storage type (output in the input type). Nq, Nk cross
     * a 32-row/key tile boundary and differ, so rows and keys are both ragged. */
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j)
            add(base(dims[i], dtypes[j], 37, 70), "dims");
    /* The same programs with the causal mask and Nq > Nk (rows that see nothing) in BNHD:
     * the mask is a run-time argument, so these cost no extra compilation. */
    for (int i = 0; i < 5; ++i)
        for (int j = 0; j < 3; ++j) {
            dense_case c = base(dims[i], dtypes[j], 70, 37);
            c.causal = 1;
            c.q_layout = c.kv_layout = c.out_layout = TS_BNHD;
            add(c, "dims");
        }

    /* fp32 output from 16-bit inputs (and 16-bit outputs of other inputs): output tolerance
     * is then fp32's, which only holds if the reference saw the device's exact inputs. */
    const struct {
        int d;
        clpsa_dtype in, out;
    } outs[] = {
        {64, CLPSA_DTYPE_FP16, CLPSA_DTYPE_FP32},  {64, CLPSA_DTYPE_BF16, CLPSA_DTYPE_FP32},
        {128, CLPSA_DTYPE_FP16, CLPSA_DTYPE_FP32}, {256, CLPSA_DTYPE_BF16, CLPSA_DTYPE_FP32},
        {64, CLPSA_DTYPE_FP32, CLPSA_DTYPE_FP16},  {64, CLPSA_DTYPE_FP16, CLPSA_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; ++i) {
        dense_case c = base(outs[i].d, outs[i].in, 33, 65);
        c.out_dtype = outs[i].out;
        add(c, "outdtype");
    }
    {
        /* An explicit out_dtype equal to the input type is the same as the default. */
        dense_case c = base(64, CLPSA_DTYPE_FP16, 33, 65);
        c.out_dtype = CLPSA_DTYPE_FP16;
        add(c, "outdtype");
    }

    add_size_cases(true, 64);

    /* Layouts: all BNHD, mixed (Q BNHD, K/V BHND, out BHND), padded rows in both layouts; two
     * batches and two kv heads so every stride is exercised. */
    const struct {
        ts_layout q, kv, out;
        int q_pad, kv_pad, out_pad;
    } layouts[] = {
        {TS_BNHD, TS_BNHD, TS_BNHD, 0, 0, 0}, {TS_BNHD, TS_BHND, TS_BHND, 0, 0, 0},
        {TS_BHND, TS_BNHD, TS_BNHD, 0, 0, 0}, {TS_BHND, TS_BHND, TS_BHND, 8, 3, 16},
        {TS_BNHD, TS_BNHD, TS_BNHD, 8, 3, 1}, {TS_BNHD, TS_BHND, TS_BNHD, 0, 7, 24},
    };
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; ++i)
        for (int j = 0; j < 2; ++j) {
            dense_case c = base(64, j == 0 ? CLPSA_DTYPE_FP32 : CLPSA_DTYPE_FP16, 33, 65);
            c.batch = 2;
            c.heads_q = 4;
            c.heads_kv = 2;
            c.q_layout = layouts[i].q;
            c.kv_layout = layouts[i].kv;
            c.out_layout = layouts[i].out;
            c.q_pad = layouts[i].q_pad;
            c.kv_pad = layouts[i].kv_pad;
            c.out_pad = layouts[i].out_pad;
            add(c, "layout");
        }

    /* Grouped-query attention: 3 and 4 query heads per kv head, plus plain multi-head. */
    const int heads[][2] = {{6, 2}, {4, 1}, {3, 3}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; ++i)
        for (int j = 0; j < 2; ++j) {
            dense_case c = base(64, j == 0 ? CLPSA_DTYPE_FP32 : CLPSA_DTYPE_BF16, 65, 33);
            c.batch = 2;
            c.heads_q = heads[i][0];
            c.heads_kv = heads[i][1];
            if (j == 1)
                c.q_layout = c.kv_layout = c.out_layout = TS_BNHD;
            add(c, "gqa");
        }

    /* Causal, bottom-right aligned: Nq == Nk, Nq < Nk, Nq > Nk (the first Nq - Nk rows see
     * nothing, spanning whole tiles when the gap is large), single rows and keys. */
    const int causal_sizes[][2] = {{65, 65}, {64, 64}, {33, 129}, {129, 33},  {100, 5},
                                   {1, 1},   {1, 300}, {300, 1},  {211, 257}, {257, 211}};
    for (size_t i = 0; i < sizeof causal_sizes / sizeof causal_sizes[0]; ++i) {
        dense_case c = base(64, CLPSA_DTYPE_FP32, causal_sizes[i][0], causal_sizes[i][1]);
        c.causal = 1;
        add(c, "causal");
    }
    {
        dense_case c = base(128, CLPSA_DTYPE_FP16, 97, 40);
        c.causal = 1;
        c.batch = 2;
        c.heads_q = 6;
        c.heads_kv = 2;
        c.q_layout = c.out_layout = TS_BNHD;
        add(c, "causal");
    }
    {
        dense_case c = base(256, CLPSA_DTYPE_BF16, 40, 97);
        c.causal = 1;
        c.out_dtype = CLPSA_DTYPE_FP32;
        add(c, "causal");
    }
    {
        dense_case c = base(32, CLPSA_DTYPE_FP32, 70, 37);
        c.causal = 1;
        c.q_pad = 4;
        c.kv_pad = 4;
        c.out_pad = 4;
        add(c, "causal");
    }

    /* Explicit scales: sharp (max subtraction matters), tiny (nearly uniform weights),
     * negative (allowed: finite). */
    const float scales[] = {1.0f, 0.5f, 0.01f, -0.25f};
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; ++i) {
        dense_case c = base(i % 2 ? 64 : 32, CLPSA_DTYPE_FP32, 65, 129);
        c.scale = scales[i];
        add(c, "scale");
    }
    {
        dense_case c = base(64, CLPSA_DTYPE_FP16, 65, 129);
        c.scale = 0.5f;
        c.causal = 1;
        add(c, "scale");
    }
}

/* Every case for every variant the device can run (the first is what a plan gets without
 * an override), and the sizes again with the CPU variant's smallest and largest tiles. */
static void build_cases(void) {
    int variants[8];
    const int count = ts_variants_available(ctx, "dense", variants, 8);
    bool portable = false;
    for (int i = 0; i < count; ++i)
        portable = portable || variants[i] == 1;
    if (!portable) {
        fprintf(stderr, "test_dense: the portable variant (dense.VARIANT=1) must always run\n");
        abort();
    }
    for (int i = 0; i < count; ++i) {
        current.variant = variants[i];
        current.subset = i > 0 && variants[i] != 1;
        snprintf(current.params, sizeof current.params, "dense.VARIANT=%d", variants[i]);
        snprintf(current.tag, sizeof current.tag, "v%d", variants[i]);
        build_variant_cases();
        /* The tiles of the CPU and SIMT variants other than their defaults; the SIMT ones that
         * split the head dimension in four or stage Q^T with every tile also at D = 128, and 8
         * rows per work-item at D = 64 (whole) and D = 128 (two parts, Q^T resident or
         * staged). */
        static const struct {
            int variant, rows, tile;
            const char *prefix;
            int split;  /* SIMT_DSPLIT (0: not a SIMT parameter) */
            int qstage; /* SIMT_QSTAGE (0: not a SIMT parameter) */
            int d;      /* head dimension of the size cases */
            int rpw;    /* SIMT_RPW (0: not a SIMT parameter) */
            int unroll; /* SIMT_UNROLL (0: not a SIMT parameter; each value on each device) */
        } tiles[] = {{3, 16, 16, "CPU", 0, 0, 64, 0, 0},   {3, 128, 64, "CPU", 0, 0, 64, 0, 0},
                     {3, 32, 64, "CPU", 0, 0, 64, 0, 0},   {4, 32, 64, "SIMT", 0, 0, 64, 0, 4},
                     {4, 32, 64, "SIMT", 2, 0, 64, 0, 0},  {4, 64, 64, "SIMT", 2, 2, 64, 0, 0},
                     {4, 64, 64, "SIMT", 2, 2, 128, 0, 0}, {4, 64, 32, "SIMT", 4, 1, 128, 0, 32},
                     {4, 32, 64, "SIMT", 4, 2, 128, 0, 4}, {4, 32, 64, "SIMT", 1, 1, 64, 8, 32},
                     {4, 32, 64, "SIMT", 2, 1, 128, 8, 0}, {4, 64, 64, "SIMT", 2, 2, 128, 8, 0}};
        for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; ++t) {
            if (tiles[t].variant != variants[i])
                continue;
            /* The SIMT parameters the entry sets (0: left to the plan). */
            const struct {
                const char *name;
                int value;
            } simt[] = {{"SIMT_DSPLIT", tiles[t].split},
                        {"SIMT_QSTAGE", tiles[t].qstage},
                        {"SIMT_RPW", tiles[t].rpw},
                        {"SIMT_UNROLL", tiles[t].unroll}};
            char extra[96] = "";
            for (size_t k = 0; k < sizeof simt / sizeof simt[0]; ++k)
                if (simt[k].value) {
                    const size_t used = strlen(extra);
                    snprintf(extra + used, sizeof extra - used, ",dense.%s=%d", simt[k].name,
                             simt[k].value);
                }
            snprintf(current.params, sizeof current.params,
                     "dense.VARIANT=%d,dense.%s_ROWS=%d,dense.%s_TILE_N=%d%s", tiles[t].variant,
                     tiles[t].prefix, tiles[t].rows, tiles[t].prefix, tiles[t].tile, extra);
            snprintf(current.tag, sizeof current.tag, "v%dr%dt%ds%dq%dd%dw%du%d", tiles[t].variant,
                     tiles[t].rows, tiles[t].tile, tiles[t].split, tiles[t].qstage, tiles[t].d,
                     tiles[t].rpw, tiles[t].unroll);
            add_size_cases(false, tiles[t].d); /* fp32: one more program per tile */
        }
        /* The matrix-unit variants' two-stage loops (for nvidia-wgmma, the overlapped one):
         * 16-bit storage at D = 64, sizes around their 32-key tiles, causal with Nq != Nk. */
        if (variants[i] == 2 || variants[i] == 5) {
            snprintf(current.params, sizeof current.params, "dense.VARIANT=%d,dense.NV_STAGES=2",
                     variants[i]);
            snprintf(current.tag, sizeof current.tag, "v%ds2", variants[i]);
            const int sizes[][2] = {{1, 1}, {31, 33}, {64, 64}, {129, 257}, {509, 1031}};
            for (size_t n = 0; n < sizeof sizes / sizeof sizes[0]; ++n)
                for (int causal = 0; causal < 2; ++causal) {
                    dense_case c = base(64, n % 2 ? CLPSA_DTYPE_FP16 : CLPSA_DTYPE_BF16,
                                        sizes[n][0], sizes[n][1]);
                    c.causal = causal;
                    add(c, "stages");
                }
        }
    }
}

static int group_setup(void **state) {
    (void)state;
    return ctx ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    return 0;
}

int main(void) {
    ctx = ts_context_create();
    if (!ctx)
        return 1;
    build_cases();
    static struct CMUnitTest tests[MAX_CASES + 2];
    size_t count = 0;
    tests[count++] = (struct CMUnitTest){"caller_queue_wait_list_and_event",
                                         test_caller_queue_wait_list_and_event, NULL, NULL, NULL};
    tests[count++] = (struct CMUnitTest){"default_scale_equals_explicit",
                                         test_default_scale_equals_explicit, NULL, NULL, NULL};
    for (size_t i = 0; i < case_count; ++i)
        tests[count++] = (struct CMUnitTest){cases[i].name, test_dense_case, NULL, NULL, &cases[i]};
    ts_apply_test_filter();
    return _cmocka_run_group_tests("test_dense", tests, count, group_setup, group_teardown);
}
