/* SPDX-License-Identifier: Apache-2.0 */
/* Multi-device plans (clpsa_multi.h) on two OpenCL devices of one platform (PoCL: run with
 * POCL_DEVICES="pthread pthread", as ctest does): results equal one plan over all heads on one
 * device, through every transfer path (sub-buffers, rectangular copies in one cl_context,
 * host staging across cl_contexts, per-device slices), and every bad input is rejected with
 * its status and a sentence. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_multi.h>

#include "support/test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cl_device_id devices[2];
static cl_context shared_cl;         /* both devices */
static cl_context own_cl[2];         /* one device each */
static clpsa_context *shared_ctx[2]; /* on shared_cl */
static clpsa_context *own_ctx[2];    /* on own_cl[i] */

static ts_log home_log; /* INFO lines of shared_ctx[0], the home device of its plans */

static clpsa_context *wrap(cl_context cl, cl_device_id device, ts_log *log) {
    cl_int err = CL_SUCCESS;
    cl_command_queue queue = clCreateCommandQueue(cl, device, 0, &err);
    if (err != CL_SUCCESS)
        return NULL;
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.cl_context = cl;
    desc.device = device;
    desc.queue = queue;
    desc.log_level = log ? CLPSA_LOG_INFO : CLPSA_LOG_ERROR;
    if (log) {
        desc.log = ts_log_callback;
        desc.log_user = log;
    }
    clpsa_context *ctx = NULL;
    clpsa_context_create(&desc, &ctx);
    clReleaseCommandQueue(queue);
    return ctx;
}

static int group_setup(void **state) {
    (void)state;
    cl_platform_id platforms[8];
    cl_uint np = 0;
    if (clGetPlatformIDs(8, platforms, &np) != CL_SUCCESS)
        return -1;
    for (cl_uint p = 0; p < np; ++p) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 2, devices, &nd) == CL_SUCCESS &&
            nd >= 2)
            break;
        devices[0] = devices[1] = NULL;
    }
    if (!devices[1]) {
        fprintf(stderr, "test_multi: no OpenCL platform with two devices; with PoCL set "
                        "POCL_DEVICES=\"pthread pthread\"\n");
        return -1;
    }
    cl_int err = CL_SUCCESS;
    shared_cl = clCreateContext(NULL, 2, devices, NULL, NULL, &err);
    for (int i = 0; i < 2 && err == CL_SUCCESS; ++i)
        own_cl[i] = clCreateContext(NULL, 1, &devices[i], NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return -1;
    for (int i = 0; i < 2; ++i) {
        shared_ctx[i] = wrap(shared_cl, devices[i], i == 0 ? &home_log : NULL);
        own_ctx[i] = wrap(own_cl[i], devices[i], NULL);
        if (!shared_ctx[i] || !own_ctx[i])
            return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    for (int i = 0; i < 2; ++i) {
        clpsa_context_destroy(shared_ctx[i]);
        clpsa_context_destroy(own_ctx[i]);
        if (own_cl[i])
            clReleaseContext(own_cl[i]);
    }
    if (shared_cl)
        clReleaseContext(shared_cl);
    return 0;
}

/* ---- Helpers ---- */
typedef struct shape {
    int batch, heads_q, heads_kv, seq, dim;
    int bnhd; /* whole tensors [B, N, H, D] instead of [B, H, N, D] */
    clpsa_method method;
} shape;

static void fill_desc(const shape *s, clpsa_plan_desc *d) {
    clpsa_plan_desc_init(d);
    d->method = s->method;
    d->batch = s->batch;
    d->heads_q = s->heads_q;
    d->heads_kv = s->heads_kv;
    d->seq_q = s->seq;
    d->head_dim = s->dim;
    d->block_q = 32;
    d->block_k = 32;
    if (s->bnhd) {
        d->q_strides = d->out_strides = clpsa_strides_bnhd(s->heads_q, s->seq, s->dim);
        d->k_strides = d->v_strides = clpsa_strides_bnhd(s->heads_kv, s->seq, s->dim);
    }
}

static size_t elements(const shape *s, int heads) {
    return (size_t)s->batch * heads * s->seq * s->dim;
}

static cl_mem upload(clpsa_context *ctx, const float *host, size_t count) {
    cl_mem mem = NULL;
    ts_check(ctx, clpsa_context_alloc(ctx, count * sizeof(float), &mem));
    ts_check_cl(clEnqueueWriteBuffer(clpsa_context_queue(ctx), mem, CL_TRUE, 0,
                                     count * sizeof(float), host, 0, NULL, NULL),
                "clEnqueueWriteBuffer");
    return mem;
}

static float *download(clpsa_context *ctx, cl_mem mem, size_t count) {
    float *host = malloc(count * sizeof *host);
    assert_non_null(host);
    ts_check_cl(clEnqueueReadBuffer(clpsa_context_queue(ctx), mem, CL_TRUE, 0,
                                    count * sizeof(float), host, 0, NULL, NULL),
                "clEnqueueReadBuffer");
    return host;
}

static void poison(clpsa_context *ctx, cl_mem mem, size_t count) {
    const float nan = NAN;
    ts_check_cl(clEnqueueFillBuffer(clpsa_context_queue(ctx), mem, &nan, sizeof nan, 0,
                                    count * sizeof(float), 0, NULL, NULL),
                "clEnqueueFillBuffer");
    ts_check_cl(clFinish(clpsa_context_queue(ctx)), "clFinish");
}

typedef struct tensors {
    float *q, *k, *v, *ref; /* whole host tensors and the single-device result */
} tensors;

static void free_tensors(tensors *t) {
    free(t->q);
    free(t->k);
    free(t->v);
    free(t->ref);
}

/* Random inputs, and the result of one plan over all heads on reference_ctx. */
static tensors make_reference(const shape *s, clpsa_context *reference_ctx) {
    tensors t;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    const size_t nq = elements(s, s->heads_q), nk = elements(s, s->heads_kv);
    t.q = malloc(nq * sizeof *t.q);
    t.k = malloc(nk * sizeof *t.k);
    t.v = malloc(nk * sizeof *t.v);
    assert_true(t.q && t.k && t.v);
    ts_fill_normal(&rng, t.q, nq, 0.0f, 1.0f);
    ts_fill_normal(&rng, t.k, nk, 0.0f, 1.0f);
    ts_fill_normal(&rng, t.v, nk, 0.0f, 1.0f);
    clpsa_plan_desc d;
    fill_desc(s, &d);
    clpsa_plan *plan = NULL;
    ts_check(reference_ctx, clpsa_plan_create(reference_ctx, &d, &plan));
    cl_mem q = upload(reference_ctx, t.q, nq), k = upload(reference_ctx, t.k, nk),
           v = upload(reference_ctx, t.v, nk), out = NULL;
    ts_check(reference_ctx, clpsa_context_alloc(reference_ctx, nq * sizeof(float), &out));
    poison(reference_ctx, out, nq);
    ts_check(reference_ctx, clpsa_plan_run(plan, NULL, q, k, v, out, 0, NULL, NULL));
    t.ref = download(reference_ctx, out, nq);
    clpsa_plan_destroy(plan);
    clReleaseMemObject(q);
    clReleaseMemObject(k);
    clReleaseMemObject(v);
    clReleaseMemObject(out);
    return t;
}

/* Same devices and kernels, so the split run must match to the last bit but for summation
 * order; 1e-6 leaves room for none of the algorithm's own error. */
static void expect_equal(const char *what, const float *got, const float *ref, size_t count) {
    for (size_t i = 0; i < count; ++i)
        if (!(fabsf(got[i] - ref[i]) <= 1e-6f + 1e-6f * fabsf(ref[i])))
            ts_fail("%s: element %zu is %.9g, the single-device run gave %.9g", what, i,
                    (double)got[i], (double)ref[i]);
}

static clpsa_multi_plan *create_multi(clpsa_context *const ctxs[2], const double *weights,
                                      int timed, const shape *s) {
    clpsa_multi_device list[2] = {{ctxs[0], NULL}, {ctxs[1], NULL}};
    clpsa_multi_desc m;
    clpsa_multi_desc_init(&m);
    m.devices = list;
    m.num_devices = 2;
    m.weights = weights;
    m.timed_weights = timed;
    clpsa_plan_desc d;
    fill_desc(s, &d);
    clpsa_multi_plan *mp = NULL;
    const clpsa_status status = clpsa_multi_plan_create(&m, &d, &mp);
    if (status != CLPSA_OK)
        ts_fail("clpsa_multi_plan_create: %s: %s", clpsa_status_name(status),
                clpsa_context_last_error(NULL));
    return mp;
}

/* Whole tensors on device 0 (the home device), split over both. Runs twice, to check that a
 * second run reuses the staging correctly. */
static void check_whole_run(clpsa_context *const ctxs[2], const double *weights, int timed,
                            const shape *s, const int expected_kv[2]) {
    tensors t = make_reference(s, ctxs[0]);
    clpsa_multi_plan *mp = create_multi(ctxs, weights, timed, s);
    int total = 0;
    for (int i = 0; i < 2; ++i) {
        clpsa_multi_shard sh;
        ts_check(NULL, clpsa_multi_plan_shard(mp, i, &sh));
        if (expected_kv && sh.heads_kv != expected_kv[i])
            ts_fail("device %d holds %d kv heads, expected %d", i, sh.heads_kv, expected_kv[i]);
        if (sh.kv_first != total || sh.heads_kv < 1 ||
            sh.heads_q != sh.heads_kv * (s->heads_q / s->heads_kv))
            ts_fail("device %d: shard kv [%d, +%d), q %d heads is not a whole-group slice", i,
                    sh.kv_first, sh.heads_kv, sh.heads_q);
        total += sh.heads_kv;
    }
    assert_int_equal(total, s->heads_kv);
    const size_t nq = elements(s, s->heads_q), nk = elements(s, s->heads_kv);
    cl_mem q = upload(ctxs[0], t.q, nq), k = upload(ctxs[0], t.k, nk), v = upload(ctxs[0], t.v, nk),
           out = NULL;
    ts_check(ctxs[0], clpsa_context_alloc(ctxs[0], nq * sizeof(float), &out));
    for (int run = 0; run < 2; ++run) {
        poison(ctxs[0], out, nq);
        cl_event events[2] = {NULL, NULL};
        const clpsa_status status = clpsa_multi_plan_run(mp, q, k, v, out, 0, NULL, events);
        if (status != CLPSA_OK)
            ts_fail("clpsa_multi_plan_run: %s: %s", clpsa_status_name(status),
                    clpsa_multi_plan_last_error(mp));
        assert_non_null(events[0]);
        assert_non_null(events[1]);
        ts_check_cl(clWaitForEvents(2, events), "clWaitForEvents");
        clReleaseEvent(events[0]);
        clReleaseEvent(events[1]);
        float *got = download(ctxs[0], out, nq);
        expect_equal("multi-device run", got, t.ref, nq);
        free(got);
    }
    clpsa_multi_plan_destroy(mp);
    clReleaseMemObject(q);
    clReleaseMemObject(k);
    clReleaseMemObject(v);
    clReleaseMemObject(out);
    free_tensors(&t);
}

/* ---- Results ---- */
static void test_split_heads(void **state) {
    (void)state;
    int c[3];
    assert_int_equal(clpsa_split_heads(5, 2, NULL, c), CLPSA_OK);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[1], 2);
    const double w31[2] = {3.0, 1.0};
    assert_int_equal(clpsa_split_heads(8, 2, w31, c), CLPSA_OK);
    assert_int_equal(c[0], 6);
    assert_int_equal(c[1], 2);
    const double skewed[3] = {100.0, 1.0, 1.0}; /* every part keeps one group */
    assert_int_equal(clpsa_split_heads(4, 3, skewed, c), CLPSA_OK);
    assert_int_equal(c[0], 2);
    assert_int_equal(c[1], 1);
    assert_int_equal(c[2], 1);
    assert_int_equal(clpsa_split_heads(7, 3, NULL, c), CLPSA_OK);
    assert_int_equal(c[0] + c[1] + c[2], 7);
    assert_int_equal(c[0], 3);
}

static void test_in_place_shared_context(void **state) {
    (void)state;
    ts_case_begin("in_place_shared_context");
    /* B = 1, [B, H, N, D]: each slice is one contiguous range at a 64-byte multiple, used
     * through sub-buffers. */
    const shape s = {1, 4, 4, 200, 32, 0, CLPSA_METHOD_PSA};
    check_whole_run(shared_ctx, NULL, 0, &s, (const int[2]){2, 2});
    /* the plan said how it moves the slices; the last line is device 1's */
    if (!strstr(home_log.last, "device 1") ||
        !strstr(home_log.last, "q in place, k in place, v in place, out in place"))
        ts_fail("expected every tensor of device 1 in place, the plan logged: %s", home_log.last);
}

static void test_copies_shared_context_gqa(void **state) {
    (void)state;
    ts_case_begin("copies_shared_context_gqa");
    /* [B, N, H, D], B = 2, two query heads per kv head, weights 2:1 over 3 groups. */
    const shape s = {2, 6, 3, 150, 32, 1, CLPSA_METHOD_PSA};
    const double w[2] = {2.0, 1.0};
    check_whole_run(shared_ctx, w, 0, &s, (const int[2]){2, 1});
    if (!strstr(home_log.last, "q copied, k copied, v copied, out copied"))
        ts_fail("expected rectangular copies for [B, N, H, D], the plan logged: %s", home_log.last);
}

static void test_host_staging_two_contexts(void **state) {
    (void)state;
    ts_case_begin("host_staging_two_contexts");
    const shape s = {2, 5, 5, 130, 32, 0, CLPSA_METHOD_PSA};
    check_whole_run(own_ctx, NULL, 0, &s, (const int[2]){3, 2});
    const shape sd = {1, 4, 2, 100, 64, 1, CLPSA_METHOD_DENSE};
    check_whole_run(own_ctx, (const double[2]){1.0, 5.0}, 0, &sd, (const int[2]){1, 1});
}

static void test_timed_weights(void **state) {
    (void)state;
    ts_case_begin("timed_weights");
    const shape s = {1, 4, 4, 128, 32, 0, CLPSA_METHOD_PSA};
    check_whole_run(shared_ctx, NULL, 1, &s, NULL);
    clpsa_multi_plan *mp = create_multi(shared_ctx, NULL, 1, &s);
    for (int i = 0; i < 2; ++i) {
        clpsa_multi_shard sh;
        ts_check(NULL, clpsa_multi_plan_shard(mp, i, &sh));
        if (!(sh.weight > 0.0) || !isfinite(sh.weight))
            ts_fail("device %d: timed weight %g", i, sh.weight);
    }
    clpsa_multi_plan_destroy(mp);
}

/* Per-device slices: each device's buffers hold its heads only, in the shard's layout. */
static void test_sliced(void **state) {
    (void)state;
    ts_case_begin("sliced");
    const shape s = {2, 4, 2, 120, 32, 1, CLPSA_METHOD_PSA};
    tensors t = make_reference(&s, own_ctx[0]);
    clpsa_multi_plan *mp = create_multi(own_ctx, NULL, 0, &s);
    cl_mem q[2], k[2], v[2], out[2];
    for (int i = 0; i < 2; ++i) {
        clpsa_multi_shard sh;
        ts_check(NULL, clpsa_multi_plan_shard(mp, i, &sh));
        /* [B, N, h, D] slices of the [B, N, H, D] whole tensors */
        assert_int_equal(sh.q_strides.seq, (int64_t)sh.heads_q * s.dim);
        const size_t nq = elements(&s, sh.heads_q), nk = elements(&s, sh.heads_kv);
        float *hq = malloc(nq * sizeof *hq), *hk = malloc(nk * sizeof *hk),
              *hv = malloc(nk * sizeof *hv);
        assert_true(hq && hk && hv);
        for (int b = 0; b < s.batch; ++b)
            for (int n = 0; n < s.seq; ++n) {
                for (int h = 0; h < sh.heads_q; ++h)
                    memcpy(hq + (((size_t)b * s.seq + n) * sh.heads_q + h) * s.dim,
                           t.q + (((size_t)b * s.seq + n) * s.heads_q + sh.head_first + h) * s.dim,
                           s.dim * sizeof(float));
                for (int h = 0; h < sh.heads_kv; ++h) {
                    const size_t dst = (((size_t)b * s.seq + n) * sh.heads_kv + h) * s.dim;
                    const size_t src =
                        (((size_t)b * s.seq + n) * s.heads_kv + sh.kv_first + h) * s.dim;
                    memcpy(hk + dst, t.k + src, s.dim * sizeof(float));
                    memcpy(hv + dst, t.v + src, s.dim * sizeof(float));
                }
            }
        q[i] = upload(own_ctx[i], hq, nq);
        k[i] = upload(own_ctx[i], hk, nk);
        v[i] = upload(own_ctx[i], hv, nk);
        ts_check(own_ctx[i], clpsa_context_alloc(own_ctx[i], nq * sizeof(float), &out[i]));
        poison(own_ctx[i], out[i], nq);
        free(hq);
        free(hk);
        free(hv);
    }
    cl_event events[2];
    const clpsa_status status = clpsa_multi_plan_run_sliced(mp, q, k, v, out, 0, NULL, events);
    if (status != CLPSA_OK)
        ts_fail("run_sliced: %s: %s", clpsa_status_name(status), clpsa_multi_plan_last_error(mp));
    ts_check(NULL, clpsa_multi_plan_finish(mp));
    for (int i = 0; i < 2; ++i) {
        clpsa_multi_shard sh;
        ts_check(NULL, clpsa_multi_plan_shard(mp, i, &sh));
        const size_t nq = elements(&s, sh.heads_q);
        float *got = download(own_ctx[i], out[i], nq);
        for (int b = 0; b < s.batch; ++b)
            for (int n = 0; n < s.seq; ++n)
                for (int h = 0; h < sh.heads_q; ++h)
                    expect_equal(
                        "sliced run", got + (((size_t)b * s.seq + n) * sh.heads_q + h) * s.dim,
                        t.ref + (((size_t)b * s.seq + n) * s.heads_q + sh.head_first + h) * s.dim,
                        (size_t)s.dim);
        free(got);
        clReleaseEvent(events[i]);
        clReleaseMemObject(q[i]);
        clReleaseMemObject(k[i]);
        clReleaseMemObject(v[i]);
        clReleaseMemObject(out[i]);
    }
    clpsa_multi_plan_destroy(mp);
    free_tensors(&t);
}

/* ---- Bad input ---- */
static void expect_create_error(const clpsa_multi_desc *m, const clpsa_plan_desc *d,
                                clpsa_status want, const char *needle) {
    clpsa_multi_plan *mp = (clpsa_multi_plan *)&mp; /* must come back NULL */
    const clpsa_status got = clpsa_multi_plan_create(m, d, &mp);
    if (got != want)
        fail_msg("status %s, expected %s; last_error: %s", clpsa_status_name(got),
                 clpsa_status_name(want), clpsa_context_last_error(NULL));
    assert_null(mp);
    if (!strstr(clpsa_context_last_error(NULL), needle))
        fail_msg("last_error \"%s\" does not mention \"%s\"", clpsa_context_last_error(NULL),
                 needle);
}

static void test_create_errors(void **state) {
    (void)state;
    const shape s = {1, 4, 2, 64, 32, 0, CLPSA_METHOD_PSA};
    clpsa_plan_desc d;
    fill_desc(&s, &d);
    clpsa_multi_device list[2] = {{shared_ctx[0], NULL}, {shared_ctx[1], NULL}};
    clpsa_multi_desc m;
    clpsa_multi_desc_init(&m);
    m.devices = list;
    m.num_devices = 2;
    clpsa_multi_plan *mp = NULL;
    assert_int_equal(clpsa_multi_plan_create(NULL, &d, &mp), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_multi_plan_create(&m, NULL, &mp), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_multi_plan_create(&m, &d, NULL), CLPSA_ERROR_NULL_ARGUMENT);
    assert_non_null(strstr(clpsa_context_last_error(NULL), "must not be NULL"));

    clpsa_multi_desc bad = m;
    bad.devices = NULL;
    expect_create_error(&bad, &d, CLPSA_ERROR_NULL_ARGUMENT, "devices is NULL");
    bad = m;
    bad.num_devices = 0;
    expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "must not be empty");
    bad = m;
    bad.home = 2;
    expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "home = 2");
    const double weights[][2] = {{1.0, NAN}, {-1.0, 1.0}, {1.0, 0.0}, {INFINITY, 1.0}};
    for (size_t i = 0; i < sizeof weights / sizeof weights[0]; ++i) {
        bad = m;
        bad.weights = weights[i];
        expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "finite and > 0");
    }
    bad = m;
    bad.weights = weights[1];
    bad.timed_weights = 1;
    expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "not both");

    clpsa_multi_device twice[2] = {{shared_ctx[0], NULL}, {shared_ctx[0], NULL}};
    bad = m;
    bad.devices = twice;
    expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "same clpsa_context");
    clpsa_multi_device no_ctx[2] = {{shared_ctx[0], NULL}, {NULL, NULL}};
    bad = m;
    bad.devices = no_ctx;
    expect_create_error(&bad, &d, CLPSA_ERROR_NULL_ARGUMENT, "device 1: ctx is NULL");
    /* device 1's queue from another cl_context, then from another device of its context */
    clpsa_multi_device foreign[2] = {{shared_ctx[0], NULL},
                                     {shared_ctx[1], clpsa_context_queue(own_ctx[1])}};
    bad = m;
    bad.devices = foreign;
    expect_create_error(&bad, &d, CLPSA_ERROR_WRONG_CONTEXT, "belongs to cl_context");
    clpsa_multi_device crossed[2] = {{shared_ctx[0], NULL},
                                     {shared_ctx[1], clpsa_context_queue(shared_ctx[0])}};
    bad = m;
    bad.devices = crossed;
    expect_create_error(&bad, &d, CLPSA_ERROR_INVALID_VALUE, "is a queue of device");

    clpsa_plan_desc one_group = d;
    one_group.heads_kv = 1;
    expect_create_error(&m, &one_group, CLPSA_ERROR_INVALID_SHAPE, "at least one whole group");
    clpsa_plan_desc ragged = d;
    ragged.heads_q = 5;
    expect_create_error(&m, &ragged, CLPSA_ERROR_INVALID_SHAPE, "multiple of heads_kv");
    clpsa_plan_desc growing = d;
    growing.kv_capacity = (growing.seq_k ? growing.seq_k : growing.seq_q) + 1;
    expect_create_error(&m, &growing, CLPSA_ERROR_UNSUPPORTED, "fixed key length");
    clpsa_plan_desc bad_dim = d;
    bad_dim.head_dim = 12; /* rejected by the device plans: the device is named */
    expect_create_error(&m, &bad_dim, CLPSA_ERROR_UNSUPPORTED, "device 0");

    /* a plan's shard must lie inside the model's heads */
    clpsa_plan_desc shard = d;
    shard.shard_head_first = 3;
    shard.shard_heads_q = 6;
    clpsa_plan *plan = (clpsa_plan *)&plan;
    assert_int_equal(clpsa_plan_create(shared_ctx[0], &shard, &plan), CLPSA_ERROR_INVALID_SHAPE);
    assert_null(plan);
    assert_non_null(strstr(clpsa_context_last_error(shared_ctx[0]), "must lie inside"));

    int counts[2];
    assert_int_equal(clpsa_split_heads(2, 3, NULL, counts), CLPSA_ERROR_INVALID_SHAPE);
    assert_non_null(strstr(clpsa_context_last_error(NULL), "1 <= parts <= groups"));
    assert_int_equal(clpsa_split_heads(2, 2, NULL, NULL), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_split_heads(2, 2, weights[0], counts), CLPSA_ERROR_INVALID_VALUE);
    assert_int_equal(clpsa_split_heads(0, 1, NULL, counts), CLPSA_ERROR_INVALID_SHAPE);
}

static void expect_run_error(clpsa_multi_plan *mp, clpsa_status got, clpsa_status want,
                             const char *needle) {
    if (got != want)
        fail_msg("status %s, expected %s; last_error: %s", clpsa_status_name(got),
                 clpsa_status_name(want), clpsa_multi_plan_last_error(mp));
    if (!strstr(clpsa_multi_plan_last_error(mp), needle))
        fail_msg("last_error \"%s\" does not mention \"%s\"", clpsa_multi_plan_last_error(mp),
                 needle);
}

static void test_run_errors(void **state) {
    (void)state;
    const shape s = {1, 2, 2, 64, 32, 0, CLPSA_METHOD_PSA};
    clpsa_multi_plan *mp = create_multi(own_ctx, NULL, 0, &s);
    const size_t n = elements(&s, 2);
    cl_mem q, k, v, out, small, foreign;
    ts_check(own_ctx[0], clpsa_context_alloc(own_ctx[0], n * 4, &q));
    ts_check(own_ctx[0], clpsa_context_alloc(own_ctx[0], n * 4, &k));
    ts_check(own_ctx[0], clpsa_context_alloc(own_ctx[0], n * 4, &v));
    ts_check(own_ctx[0], clpsa_context_alloc(own_ctx[0], n * 4, &out));
    ts_check(own_ctx[0], clpsa_context_alloc(own_ctx[0], n * 2, &small));
    ts_check(own_ctx[1], clpsa_context_alloc(own_ctx[1], n * 4, &foreign));
    cl_event events[2] = {(cl_event)&mp, (cl_event)&mp};
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, NULL, v, out, 0, NULL, events),
                     CLPSA_ERROR_NULL_ARGUMENT, "buffer k is NULL");
    assert_null(events[0]);
    assert_null(events[1]);
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, k, v, q, 0, NULL, NULL),
                     CLPSA_ERROR_INVALID_VALUE, "must not alias");
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, k, small, out, 0, NULL, NULL),
                     CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer v holds");
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, k, v, foreign, 0, NULL, NULL),
                     CLPSA_ERROR_WRONG_CONTEXT, "home device 0");
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, k, v, out, 1, NULL, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT, "wait_list is NULL");
    cl_event dummy = NULL;
    expect_run_error(mp, clpsa_multi_plan_run(mp, q, k, v, out, 0, &dummy, NULL),
                     CLPSA_ERROR_INVALID_VALUE, "num_events = 0");
    const cl_mem qs[2] = {q, foreign};
    expect_run_error(mp, clpsa_multi_plan_run_sliced(mp, qs, NULL, qs, qs, 0, NULL, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT, "must not be NULL");
    cl_int err = CL_SUCCESS;
    cl_event user = clCreateUserEvent(clpsa_context_cl_context(own_ctx[0]), &err);
    ts_check_cl(err, "clCreateUserEvent");
    expect_run_error(mp, clpsa_multi_plan_run_sliced(mp, qs, qs, qs, qs, 1, &user, NULL),
                     CLPSA_ERROR_WRONG_CONTEXT, "different cl_contexts");
    clSetUserEventStatus(user, CL_COMPLETE);
    clReleaseEvent(user);
    /* a slice buffer of device 1 given to device 0 */
    const cl_mem swapped[2] = {foreign, q};
    expect_run_error(mp, clpsa_multi_plan_run_sliced(mp, swapped, qs, qs, qs, 0, NULL, NULL),
                     CLPSA_ERROR_WRONG_CONTEXT, "device 0");
    clpsa_multi_shard sh;
    assert_int_equal(clpsa_multi_plan_shard(mp, 2, &sh), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_multi_plan_last_error(mp), "index = 2"));
    assert_int_equal(clpsa_multi_plan_shard(NULL, 0, &sh), CLPSA_ERROR_NULL_ARGUMENT);
    assert_null(clpsa_multi_plan_device_plan(mp, -1));
    assert_non_null(clpsa_multi_plan_device_plan(mp, 1));
    assert_int_equal(clpsa_multi_plan_device_count(mp), 2);
    assert_int_equal(clpsa_multi_plan_run(NULL, q, k, v, out, 0, NULL, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_multi_plan_finish(NULL), CLPSA_ERROR_NULL_ARGUMENT);
    cl_mem all[] = {q, k, v, out, small, foreign};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clReleaseMemObject(all[i]);
    clpsa_multi_plan_destroy(mp);
    clpsa_multi_plan_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_heads),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_run_errors),
        cmocka_unit_test(test_in_place_shared_context),
        cmocka_unit_test(test_copies_shared_context_gqa),
        cmocka_unit_test(test_host_staging_two_contexts),
        cmocka_unit_test(test_sliced),
        cmocka_unit_test(test_timed_weights),
    };
    ts_apply_test_filter();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
