/* SPDX-License-Identifier: Apache-2.0 */
/* Bad input through the public API: every rejected value gets its status, a sentence naming
 * the value and the rule in last_error, and nothing written to the output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>

#include "support/test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

static clpsa_context *ctx;

#define POISON 0xA5u

static void expect_error(clpsa_status got, clpsa_status want, const char *needle) {
    if (got != want)
        fail_msg("status %s, expected %s; last_error: %s", clpsa_status_name(got),
                 clpsa_status_name(want), clpsa_context_last_error(ctx));
    if (needle && !strstr(clpsa_context_last_error(ctx), needle))
        fail_msg("last_error \"%s\" does not mention \"%s\"", clpsa_context_last_error(ctx),
                 needle);
}

static int group_setup(void **state) {
    (void)state;
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_ERROR;
    return clpsa_context_create(&desc, &ctx) == CLPSA_OK ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    return 0;
}

static clpsa_plan_desc small_desc(void) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1;
    d.heads_q = 2;
    d.heads_kv = 1;
    d.seq_q = 5;
    d.seq_k = 7;
    d.head_dim = 32;
    return d;
}

static cl_uint context_refs(cl_context c) {
    cl_uint refs = 0;
    assert_int_equal(clGetContextInfo(c, CL_CONTEXT_REFERENCE_COUNT, sizeof refs, &refs, NULL),
                     CL_SUCCESS);
    return refs;
}

static cl_uint queue_refs(cl_command_queue q) {
    cl_uint refs = 0;
    assert_int_equal(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof refs, &refs, NULL),
                     CL_SUCCESS);
    return refs;
}

static clpsa_status try_plan(const clpsa_plan_desc *d) {
    clpsa_plan *plan = (clpsa_plan *)0x1; /* must be reset to NULL on failure */
    const clpsa_status status = clpsa_plan_create(ctx, d, &plan);
    if (status != CLPSA_OK)
        assert_null(plan);
    clpsa_plan_destroy(plan);
    return status;
}

static void test_destroy_null_is_noop(void **state) {
    (void)state;
    clpsa_context_destroy(NULL);
    clpsa_plan_destroy(NULL);
    /* No failure without a context on this thread yet: the record is empty. */
    assert_string_equal(clpsa_context_last_error(NULL), "");
}

static void test_context_create_rejects_null_and_half_wrapped(void **state) {
    (void)state;
    assert_int_equal(clpsa_context_create(NULL, NULL), CLPSA_ERROR_NULL_ARGUMENT);
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    assert_non_null(strstr(clpsa_context_last_error(NULL), "out must not be NULL"));
    desc.device = clpsa_context_device(ctx); /* device without its cl_context */
    clpsa_context *other = (clpsa_context *)0x1;
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_ERROR_NULL_ARGUMENT);
    assert_null(other);
    /* No context came back, so the detail is the thread's, read with a NULL context. */
    assert_non_null(strstr(clpsa_context_last_error(NULL), "cl_context"));
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    desc.queue = clpsa_context_queue(ctx); /* queue without its cl_context */
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_ERROR_NULL_ARGUMENT);
    assert_non_null(strstr(clpsa_context_last_error(NULL), "queue was given without"));
}

/* Another thread's failure is not this thread's last error. */
static void *fail_create_in_thread(void *arg) {
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    desc.device_spec = "thread-only-device-name";
    clpsa_context *other = NULL;
    *(clpsa_status *)arg = clpsa_context_create(&desc, &other);
    if (!strstr(clpsa_context_last_error(NULL), "thread-only-device-name"))
        *(clpsa_status *)arg = CLPSA_OK; /* the detail must be there, in this thread */
    return NULL;
}

static void test_context_create_error_is_per_thread(void **state) {
    (void)state;
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    desc.device_spec = "main-thread-device-name";
    clpsa_context *other = NULL;
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_ERROR_DEVICE_NOT_FOUND);
    clpsa_status in_thread = CLPSA_OK;
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, fail_create_in_thread, &in_thread), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(in_thread, CLPSA_ERROR_DEVICE_NOT_FOUND);
    assert_non_null(strstr(clpsa_context_last_error(NULL), "main-thread-device-name"));
    assert_null(strstr(clpsa_context_last_error(NULL), "thread-only-device-name"));
    /* A successful creation starts the record afresh. */
    desc.device_spec = NULL;
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_OK);
    assert_string_equal(clpsa_context_last_error(NULL), "");
    clpsa_context_destroy(other);
}

static void test_device_spec_not_found(void **state) {
    (void)state;
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    clpsa_context *other = NULL;
    desc.device_spec = "no-such-device-anywhere";
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_ERROR_DEVICE_NOT_FOUND);
    assert_non_null(strstr(clpsa_context_last_error(NULL), "no-such-device-anywhere"));
    desc.device_spec = "999";
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_ERROR_DEVICE_NOT_FOUND);
    assert_null(other);
    desc.device_spec = "0";
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_OK);
    assert_non_null(strstr(clpsa_context_device_reason(other), "device_spec=0"));
    clpsa_context_destroy(other);
}

/* A cl_context and queue of the test's own on ctx's device, and a desc that wraps them. */
static clpsa_context_desc own_objects(cl_context *context, cl_command_queue *queue) {
    cl_device_id device = clpsa_context_device(ctx);
    cl_int err = CL_SUCCESS;
    *context = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    *queue = clCreateCommandQueue(*context, device, 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_OFF + 1;
    desc.cl_context = *context;
    desc.device = device;
    desc.queue = *queue;
    return desc;
}

static void test_wraps_caller_objects_and_checks_queue(void **state) {
    (void)state;
    cl_context mine = NULL;
    cl_command_queue my_queue = NULL;
    clpsa_context_desc desc = own_objects(&mine, &my_queue);
    desc.queue = clpsa_context_queue(ctx); /* belongs to ctx's own cl_context */
    clpsa_context *wrapped = NULL;
    assert_int_equal(clpsa_context_create(&desc, &wrapped), CLPSA_ERROR_WRONG_CONTEXT);
    desc.queue = my_queue;
    const cl_uint context_before = context_refs(mine), queue_before = queue_refs(my_queue);
    assert_int_equal(clpsa_context_create(&desc, &wrapped), CLPSA_OK);
    assert_ptr_equal(clpsa_context_cl_context(wrapped), mine);
    assert_ptr_equal(clpsa_context_queue(wrapped), my_queue);
    assert_string_equal(clpsa_context_device_reason(wrapped), "wrapped by caller");
    /* The wrapped context and queue are retained: one reference more each while wrapped (the
     * driver's own references, such as the queue's on its context, come on top of the
     * caller's)... */
    assert_int_equal(context_refs(mine), context_before + 1);
    assert_int_equal(queue_refs(my_queue), queue_before + 1);
    clpsa_context_destroy(wrapped);
    /* ...and released on destroy: the caller's own references remain. */
    assert_int_equal(context_refs(mine), context_before);
    assert_int_equal(queue_refs(my_queue), queue_before);
    clReleaseCommandQueue(my_queue);
    clReleaseContext(mine);
}

/* The caller may release its cl_context and queue right after wrapping them: clpsa holds its
 * own references, and a plan still builds and runs on them. */
static void test_wrapped_objects_outlive_the_callers_references(void **state) {
    (void)state;
    cl_context mine = NULL;
    cl_command_queue my_queue = NULL;
    const clpsa_context_desc desc = own_objects(&mine, &my_queue);
    clpsa_context *wrapped = NULL;
    assert_int_equal(clpsa_context_create(&desc, &wrapped), CLPSA_OK);
    clReleaseCommandQueue(my_queue);
    clReleaseContext(mine);

    clpsa_plan_desc d = small_desc();
    d.method = CLPSA_METHOD_DENSE;
    clpsa_plan *plan = NULL;
    assert_int_equal(clpsa_plan_create(wrapped, &d, &plan), CLPSA_OK);
    clpsa_buffer_sizes sizes;
    assert_int_equal(clpsa_plan_buffer_sizes(plan, &sizes), CLPSA_OK);
    cl_mem q = NULL, k = NULL, v = NULL, out = NULL;
    assert_int_equal(clpsa_context_alloc(wrapped, sizes.q, &q), CLPSA_OK);
    assert_int_equal(clpsa_context_alloc(wrapped, sizes.k, &k), CLPSA_OK);
    assert_int_equal(clpsa_context_alloc(wrapped, sizes.v, &v), CLPSA_OK);
    assert_int_equal(clpsa_context_alloc(wrapped, sizes.out, &out), CLPSA_OK);
    cl_event done = NULL;
    assert_int_equal(clpsa_plan_run(plan, NULL, q, k, v, out, 0, NULL, &done), CLPSA_OK);
    assert_int_equal(clWaitForEvents(1, &done), CL_SUCCESS);
    clReleaseEvent(done);
    clReleaseMemObject(q);
    clReleaseMemObject(k);
    clReleaseMemObject(v);
    clReleaseMemObject(out);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(wrapped);
}

static void test_plan_create_null_arguments(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    clpsa_plan *plan = NULL;
    assert_int_equal(clpsa_plan_create(NULL, &d, &plan), CLPSA_ERROR_NULL_ARGUMENT);
    expect_error(clpsa_plan_create(ctx, NULL, &plan), CLPSA_ERROR_NULL_ARGUMENT, "desc");
    expect_error(clpsa_plan_create(ctx, &d, NULL), CLPSA_ERROR_NULL_ARGUMENT, "out");
}

static void test_plan_rejects_bad_sizes(void **state) {
    (void)state;
    const char *fields[] = {"batch", "heads_q", "heads_kv", "seq_q", "seq_k", "head_dim"};
    const int bad_values[] = {0, -1, -1000};
    for (size_t f = 0; f < 6; ++f) {
        for (size_t v = 0; v < 3; ++v) {
            clpsa_plan_desc d = small_desc();
            int *field[] = {&d.batch, &d.heads_q, &d.heads_kv, &d.seq_q, &d.seq_k, &d.head_dim};
            *field[f] = bad_values[v];
            /* 0 means "default" for heads_kv and seq_k: only negatives are errors there. */
            if (bad_values[v] == 0 && (f == 2 || f == 4))
                continue;
            char needle[64];
            snprintf(needle, sizeof needle, "%s = %d", fields[f], bad_values[v]);
            expect_error(try_plan(&d), CLPSA_ERROR_INVALID_SHAPE, needle);
        }
    }
}

static void test_plan_rejects_heads_not_multiple(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.heads_q = 6;
    d.heads_kv = 4;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_SHAPE,
                 "heads_q = 6 is not a multiple of heads_kv = 4");
}

static void test_plan_rejects_unsupported_head_dim(void **state) {
    (void)state;
    const int dims[] = {12, 100, 264, 512, 7};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; ++i) {
        clpsa_plan_desc d = small_desc();
        d.head_dim = dims[i];
        char needle[32];
        snprintf(needle, sizeof needle, "head_dim = %d", dims[i]);
        expect_error(try_plan(&d), CLPSA_ERROR_UNSUPPORTED, needle);
    }
}

static void test_plan_rejects_bad_options(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.dtype = (clpsa_dtype)9;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_VALUE, "dtype = 9");
    d = small_desc();
    d.out_dtype = (clpsa_dtype)-3;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_VALUE, "out_dtype = -3");
    d = small_desc();
    d.scale = NAN;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_VALUE, "scale");
    d = small_desc();
    d.scale = INFINITY;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_VALUE, "must be finite");
    d = small_desc();
    d.method = (clpsa_method)77;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_VALUE, "method = 77");
    d = small_desc();
    d.batch = 70000;
    expect_error(try_plan(&d), CLPSA_ERROR_UNSUPPORTED, "65535");
    d = small_desc();
    d.head_dim = 256;
    d.block_q = d.block_k = 256;
    d.estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
    d.antidiagonal_stride = 256; /* 256 x 256 private values per work-item */
    expect_error(try_plan(&d), CLPSA_ERROR_UNSUPPORTED, "antidiagonal_stride = 256");
}

static void test_plan_rejects_bad_strides(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.q_strides = clpsa_strides_bhnd(2, 5, 32);
    d.q_strides.dim = 2;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_STRIDES, "q_strides.dim = 2");

    d = small_desc();
    d.k_strides = clpsa_strides_bhnd(1, 7, 32);
    d.k_strides.seq = 16; /* rows of 32 elements 16 apart overlap */
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_STRIDES, "k_strides.seq = 16 overlaps");

    d = small_desc();
    d.out_strides = clpsa_strides_bhnd(2, 5, 32);
    d.out_strides.head = 32; /* heads interleave with the rows of the other head */
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_STRIDES, "out_strides");

    d = small_desc();
    d.v_strides = clpsa_strides_bhnd(1, 7, 32);
    d.v_strides.seq = -32;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_STRIDES, "v_strides.seq = -32");

    d = small_desc();
    d.out_strides = clpsa_strides_bhnd(2, 5, 32);
    d.out_strides.batch = 0; /* only one batch: stride unused, still non-overlapping */
    assert_int_equal(try_plan(&d), CLPSA_OK);

    d = small_desc();
    d.q_strides = clpsa_strides_bhnd(2, 5, 32);
    d.q_strides.seq = INT64_MAX / 2;
    d.q_strides.head = INT64_MAX / 2 + 1;
    expect_error(try_plan(&d), CLPSA_ERROR_INVALID_STRIDES, "overflows");
}

/* ---- run-time checks ---- */

typedef struct run_fixture {
    clpsa_plan *plan;
    clpsa_buffer_sizes sizes;
    cl_mem q, k, v, out;
} run_fixture;

static cl_mem make_buffer(cl_context context, size_t bytes, unsigned char fill) {
    cl_int err = CL_SUCCESS;
    unsigned char *host = malloc(bytes);
    memset(host, fill, bytes);
    cl_mem buffer =
        clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, host, &err);
    free(host);
    assert_int_equal(err, CL_SUCCESS);
    return buffer;
}

static void fixture_init(run_fixture *f) {
    clpsa_plan_desc d = small_desc();
    assert_int_equal(clpsa_plan_create(ctx, &d, &f->plan), CLPSA_OK);
    assert_int_equal(clpsa_plan_buffer_sizes(f->plan, &f->sizes), CLPSA_OK);
    assert_int_equal(f->sizes.q, 2 * 5 * 32 * 4);
    assert_int_equal(f->sizes.k, 1 * 7 * 32 * 4);
    cl_context context = clpsa_context_cl_context(ctx);
    /* Inputs hold small finite values (0x3c3c3c3c ~ 0.0115); out is poisoned. */
    f->q = make_buffer(context, f->sizes.q, 0x3c);
    f->k = make_buffer(context, f->sizes.k, 0x3c);
    f->v = make_buffer(context, f->sizes.v, 0x3c);
    f->out = make_buffer(context, f->sizes.out, POISON);
}

static void fixture_free(run_fixture *f) {
    clReleaseMemObject(f->q);
    clReleaseMemObject(f->k);
    clReleaseMemObject(f->v);
    clReleaseMemObject(f->out);
    clpsa_plan_destroy(f->plan);
}

static void assert_out_untouched(const run_fixture *f) {
    cl_command_queue queue = clpsa_context_queue(ctx);
    assert_int_equal(clFinish(queue), CL_SUCCESS);
    unsigned char *host = malloc(f->sizes.out);
    assert_int_equal(
        clEnqueueReadBuffer(queue, f->out, CL_TRUE, 0, f->sizes.out, host, 0, NULL, NULL),
        CL_SUCCESS);
    for (size_t i = 0; i < f->sizes.out; ++i)
        if (host[i] != POISON)
            fail_msg("output byte %zu was written (0x%02x) by a rejected run", i, host[i]);
    free(host);
}

static void test_run_rejects_null_buffers(void **state) {
    (void)state;
    run_fixture f;
    fixture_init(&f);
    expect_error(clpsa_plan_run(f.plan, NULL, NULL, f.k, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_NULL_ARGUMENT, "buffer q is NULL");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, NULL, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_NULL_ARGUMENT, "buffer k is NULL");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, NULL, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_NULL_ARGUMENT, "buffer v is NULL");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, f.v, NULL, 0, NULL, NULL),
                 CLPSA_ERROR_NULL_ARGUMENT, "buffer out is NULL");
    assert_int_equal(clpsa_plan_run(NULL, NULL, f.q, f.k, f.v, f.out, 0, NULL, NULL),
                     CLPSA_ERROR_NULL_ARGUMENT);
    assert_out_untouched(&f);
    fixture_free(&f);
}

static void test_run_rejects_small_buffers(void **state) {
    (void)state;
    run_fixture f;
    fixture_init(&f);
    cl_context context = clpsa_context_cl_context(ctx);
    cl_mem small_q = make_buffer(context, f.sizes.q - 1, 0x3c);
    cl_mem small_k = make_buffer(context, f.sizes.k - 4, 0x3c);
    cl_mem small_v = make_buffer(context, 4, 0x3c);
    cl_mem small_out = make_buffer(context, f.sizes.out - 2, POISON);
    expect_error(clpsa_plan_run(f.plan, NULL, small_q, f.k, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer q holds 1279 bytes");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, small_k, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer k holds 892 bytes");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, small_v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer v holds 4 bytes");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, f.v, small_out, 0, NULL, NULL),
                 CLPSA_ERROR_BUFFER_TOO_SMALL, "spans 1280 bytes");
    assert_out_untouched(&f);
    clReleaseMemObject(small_q);
    clReleaseMemObject(small_k);
    clReleaseMemObject(small_v);
    clReleaseMemObject(small_out);
    fixture_free(&f);
}

static void test_run_rejects_foreign_context(void **state) {
    (void)state;
    run_fixture f;
    fixture_init(&f);
    cl_device_id device = clpsa_context_device(ctx);
    cl_int err = CL_SUCCESS;
    cl_context other = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem foreign = make_buffer(other, f.sizes.k, 0x3c);
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, foreign, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_WRONG_CONTEXT, "buffer k belongs to cl_context");
    cl_command_queue other_queue = clCreateCommandQueue(other, device, 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    expect_error(clpsa_plan_run(f.plan, other_queue, f.q, f.k, f.v, f.out, 0, NULL, NULL),
                 CLPSA_ERROR_WRONG_CONTEXT, "queue");
    assert_out_untouched(&f);
    clReleaseCommandQueue(other_queue);
    clReleaseMemObject(foreign);
    clReleaseContext(other);
    fixture_free(&f);
}

static void test_run_rejects_aliasing_and_bad_wait_list(void **state) {
    (void)state;
    run_fixture f;
    fixture_init(&f);
    /* q is large enough to serve as out (same shape): aliasing must still be refused. */
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, f.v, f.q, 0, NULL, NULL),
                 CLPSA_ERROR_INVALID_VALUE, "alias");
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, f.v, f.out, 2, NULL, NULL),
                 CLPSA_ERROR_NULL_ARGUMENT, "num_events = 2");
    cl_int err = CL_SUCCESS;
    cl_event user = clCreateUserEvent(clpsa_context_cl_context(ctx), &err);
    assert_int_equal(err, CL_SUCCESS);
    expect_error(clpsa_plan_run(f.plan, NULL, f.q, f.k, f.v, f.out, 0, &user, NULL),
                 CLPSA_ERROR_INVALID_VALUE, "num_events = 0");
    clSetUserEventStatus(user, CL_COMPLETE);
    clReleaseEvent(user);
    assert_out_untouched(&f);
    fixture_free(&f);
}

/* A PSA plan run on two queues in turn (each run waits for the last, whatever its queue), and
 * the read-back rules: what the last run used, not what was supplied after it. */
static void test_psa_runs_across_queues_and_read_back(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.seq_q = 70;
    d.seq_k = 90;
    d.block_q = 32;
    d.block_k = 16;
    clpsa_plan *plan = NULL;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_OK);
    clpsa_buffer_sizes sizes;
    assert_int_equal(clpsa_plan_buffer_sizes(plan, &sizes), CLPSA_OK);
    cl_context context = clpsa_context_cl_context(ctx);
    cl_mem q = make_buffer(context, sizes.q, 0x3c), k = make_buffer(context, sizes.k, 0x3d);
    cl_mem v = make_buffer(context, sizes.v, 0x3e), out = make_buffer(context, sizes.out, POISON);
    cl_int err = CL_SUCCESS;
    cl_command_queue other = clCreateCommandQueue(context, clpsa_context_device(ctx), 0, &err);
    assert_int_equal(err, CL_SUCCESS);
    clpsa_block_grid grid;
    assert_int_equal(clpsa_plan_block_grid(plan, &grid), CLPSA_OK);
    int8_t *levels = malloc(grid.count);
    float *scores = malloc(grid.count * sizeof(float));
    float *first = malloc(sizes.out), *second = malloc(sizes.out);
    expect_error(clpsa_plan_read_levels(plan, levels), CLPSA_ERROR_INVALID_VALUE,
                 "has not run yet");

    assert_int_equal(clpsa_plan_run(plan, NULL, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    assert_int_equal(clpsa_plan_run(plan, other, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    assert_int_equal(clFinish(other), CL_SUCCESS);
    cl_command_queue queue = clpsa_context_queue(ctx);
    clEnqueueReadBuffer(queue, out, CL_TRUE, 0, sizes.out, first, 0, NULL, NULL);
    assert_int_equal(clpsa_plan_run(plan, queue, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    clEnqueueReadBuffer(queue, out, CL_TRUE, 0, sizes.out, second, 0, NULL, NULL);
    assert_memory_equal(first, second, sizes.out);

    memset(levels, 1, grid.count);
    assert_int_equal(clpsa_plan_set_levels(plan, levels), CLPSA_OK);
    expect_error(clpsa_plan_read_levels(plan, levels), CLPSA_ERROR_INVALID_VALUE,
                 "supplied after the last run");
    expect_error(clpsa_plan_read_scores(plan, scores), CLPSA_ERROR_INVALID_VALUE,
                 "supplied after the last run");
    assert_int_equal(clpsa_plan_run(plan, other, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    memset(levels, 0, grid.count);
    assert_int_equal(clpsa_plan_read_levels(plan, levels), CLPSA_OK);
    for (size_t x = 0; x < grid.count; ++x)
        assert_int_equal(levels[x], 1);
    /* Back to estimating: the last run still used a supplied map and computed no scores. */
    assert_int_equal(clpsa_plan_set_levels(plan, NULL), CLPSA_OK);
    expect_error(clpsa_plan_read_scores(plan, scores), CLPSA_ERROR_INVALID_VALUE,
                 "computed no scores");
    assert_int_equal(clpsa_plan_run(plan, NULL, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    assert_int_equal(clpsa_plan_read_scores(plan, scores), CLPSA_OK);
    /* Supplied scores replace the ones the last run used: read-back waits for a run too. */
    for (size_t x = 0; x < grid.count; ++x)
        scores[x] = 1.0f + (float)(x % 3);
    assert_int_equal(clpsa_plan_set_scores(plan, scores), CLPSA_OK);
    expect_error(clpsa_plan_read_scores(plan, scores), CLPSA_ERROR_INVALID_VALUE,
                 "supplied after the last run");
    expect_error(clpsa_plan_read_levels(plan, levels), CLPSA_ERROR_INVALID_VALUE,
                 "supplied after the last run");
    assert_int_equal(clpsa_plan_run(plan, NULL, q, k, v, out, 0, NULL, NULL), CLPSA_OK);
    float *used = malloc(grid.count * sizeof(float));
    assert_int_equal(clpsa_plan_read_scores(plan, used), CLPSA_OK);
    assert_memory_equal(used, scores, grid.count * sizeof(float));
    free(used);
    free(levels);
    free(scores);
    free(first);
    free(second);
    clpsa_plan_destroy(plan); /* the plan held `other`; the caller's reference stays valid */
    assert_int_equal(clFinish(other), CL_SUCCESS);
    clReleaseCommandQueue(other);
    clReleaseMemObject(q);
    clReleaseMemObject(k);
    clReleaseMemObject(v);
    clReleaseMemObject(out);
}

/* Every rejected read-back and supply call: its status, and a last_error naming the call and
 * the rule; the caller's arrays stay untouched. */
static void test_read_back_and_supply_reject_bad_input(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.method = CLPSA_METHOD_DENSE;
    clpsa_plan *dense = NULL, *psa = NULL;
    assert_int_equal(clpsa_plan_create(ctx, &d, &dense), CLPSA_OK);
    d = small_desc();
    d.block_q = 32;
    d.block_k = 16;
    assert_int_equal(clpsa_plan_create(ctx, &d, &psa), CLPSA_OK);
    int8_t levels[4096];
    float scores[4096];
    clpsa_level_stats stats;
    clpsa_stage_times times;
    clpsa_block_grid grid;
    memset(levels, 1, sizeof levels);
    for (size_t i = 0; i < 4096; ++i)
        scores[i] = 1.0f;

    /* NULL plan */
    assert_int_equal(clpsa_plan_block_grid(NULL, &grid), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_set_scores(NULL, scores), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_set_levels(NULL, levels), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_read_levels(NULL, levels), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_read_scores(NULL, scores), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_read_stats(NULL, &stats), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_plan_read_stage_times(NULL, &times), CLPSA_ERROR_NULL_ARGUMENT);

    /* a dense plan has no blocks, level map or scores */
    memset(&grid, 0x5A, sizeof grid);
    expect_error(clpsa_plan_block_grid(dense, &grid), CLPSA_ERROR_INVALID_VALUE,
                 "CLPSA_METHOD_DENSE");
    assert_int_equal(grid.count, 0);
    expect_error(clpsa_plan_set_scores(dense, scores), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_set_scores: the plan's method is CLPSA_METHOD_DENSE");
    expect_error(clpsa_plan_set_levels(dense, levels), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_set_levels: the plan's method is CLPSA_METHOD_DENSE");
    memset(levels, 0x5A, sizeof levels);
    expect_error(clpsa_plan_read_levels(dense, levels), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_read_levels: the plan's method is CLPSA_METHOD_DENSE");
    assert_int_equal(levels[0], 0x5A);
    expect_error(clpsa_plan_read_scores(dense, scores), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_read_scores: the plan's method is CLPSA_METHOD_DENSE");
    expect_error(clpsa_plan_read_stats(dense, &stats), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_read_stats: the plan's method is CLPSA_METHOD_DENSE");
    expect_error(clpsa_plan_read_stage_times(dense, &times), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_read_stage_times: the plan's method is CLPSA_METHOD_DENSE");

    /* NULL outputs, and reading before the first run */
    expect_error(clpsa_plan_block_grid(psa, NULL), CLPSA_ERROR_NULL_ARGUMENT, "out is NULL");
    expect_error(clpsa_plan_read_levels(psa, NULL), CLPSA_ERROR_NULL_ARGUMENT, "levels is NULL");
    expect_error(clpsa_plan_read_scores(psa, NULL), CLPSA_ERROR_NULL_ARGUMENT, "scores is NULL");
    expect_error(clpsa_plan_read_stats(psa, NULL), CLPSA_ERROR_NULL_ARGUMENT, "out is NULL");
    expect_error(clpsa_plan_read_stage_times(psa, NULL), CLPSA_ERROR_NULL_ARGUMENT, "out is NULL");
    memset(&stats, 0x5A, sizeof stats);
    expect_error(clpsa_plan_read_stats(psa, &stats), CLPSA_ERROR_INVALID_VALUE,
                 "clpsa_plan_read_stats: the plan has not run yet");
    const unsigned char *bytes = (const unsigned char *)&stats;
    for (size_t i = 0; i < sizeof stats; ++i)
        assert_int_equal(bytes[i], 0x5A);
    memset(&times, 0x5A, sizeof times);
    expect_error(clpsa_plan_read_stage_times(psa, &times), CLPSA_ERROR_INVALID_VALUE,
                 "has not run yet");
    assert_true(times.total_ms == 0.0 && times.pool_ms == 0.0); /* zeroed on failure */
    clpsa_plan_destroy(dense);
    clpsa_plan_destroy(psa);
}

static void test_alloc_out_of_memory(void **state) {
    (void)state;
    cl_mem buffer = (cl_mem)0x1;
    expect_error(clpsa_context_alloc(ctx, SIZE_MAX / 2, &buffer), CLPSA_ERROR_OUT_OF_MEMORY,
                 "exceed the device's limits");
    assert_null(buffer);
    expect_error(clpsa_context_alloc(ctx, 0, &buffer), CLPSA_ERROR_INVALID_VALUE, "bytes is 0");
    assert_int_equal(clpsa_context_alloc(ctx, 64, NULL), CLPSA_ERROR_NULL_ARGUMENT);
    assert_int_equal(clpsa_context_alloc(ctx, 64, &buffer), CLPSA_OK);
    clReleaseMemObject(buffer);
}

/* A kernel that does not compile: the status says so and the build log reaches last_error. */
static void test_build_failure_reports_log(void **state) {
    (void)state;
    char dir[] = "/tmp/clpsa-broken-kernels-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char common[256], path[256];
    snprintf(common, sizeof common, "%s/common.cl", dir);
    snprintf(path, sizeof path, "%s/dense.cl", dir);
    FILE *file = fopen(common, "w");
    assert_non_null(file);
    fclose(file);
    file = fopen(path, "w");
    assert_non_null(file);
    fputs("__kernel void dense_attention(__global float *x) { this_is_not_c; }\n", file);
    fclose(file);
    setenv("CLPSA_KERNEL_DIR", dir, 1);
    clpsa_plan_desc d = small_desc();
    d.method = CLPSA_METHOD_DENSE;
    d.seq_q = 40; /* more than 16 query rows: the dense kernel, not the decode kernels */
    clpsa_plan *plan = NULL;
    const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
    unsetenv("CLPSA_KERNEL_DIR");
    remove(path);
    remove(common);
    rmdir(dir);
    expect_error(status, CLPSA_ERROR_BUILD_FAILED, "build log");
    expect_error(status, CLPSA_ERROR_BUILD_FAILED, "this_is_not_c");
    assert_null(plan);

    /* A directory without the kernel file is an I/O error naming the path. */
    setenv("CLPSA_KERNEL_DIR", "/nonexistent-clpsa-dir", 1);
    const clpsa_status missing = clpsa_plan_create(ctx, &d, &plan);
    unsetenv("CLPSA_KERNEL_DIR");
    expect_error(missing, CLPSA_ERROR_IO, "/nonexistent-clpsa-dir/common.cl");
}

static void test_log_callback_and_level(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log = ts_log_callback;
    desc.log_user = &log;
    desc.log_level = CLPSA_LOG_INFO;
    clpsa_context *other = NULL;
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_OK);
    assert_true(log.count >= 1);
    assert_non_null(strstr(log.last, "device:"));
    clpsa_context_destroy(other);

    /* Level from the environment when the desc leaves it 0. */
    log.count = 0;
    desc.log_level = 0;
    setenv("CLPSA_LOG", "error", 1);
    assert_int_equal(clpsa_context_create(&desc, &other), CLPSA_OK);
    unsetenv("CLPSA_LOG");
    assert_int_equal(log.count, 0);
    clpsa_context_destroy(other);
}

static void test_plan_reports_resolved_desc(void **state) {
    (void)state;
    clpsa_plan_desc d = small_desc();
    d.heads_kv = 0;
    d.seq_k = 0;
    clpsa_plan *plan = NULL;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_OK);
    clpsa_plan_desc resolved;
    assert_int_equal(clpsa_plan_get_desc(plan, &resolved), CLPSA_OK);
    assert_int_equal(resolved.heads_kv, 2);
    assert_int_equal(resolved.seq_k, 5);
    assert_int_equal(resolved.dtype, CLPSA_DTYPE_FP32);
    assert_int_equal(resolved.out_dtype, CLPSA_DTYPE_FP32);
    assert_true(fabsf(resolved.scale - 1.0f / sqrtf(32.0f)) < 1e-7f);
    assert_int_equal(resolved.q_strides.seq, 32);
    assert_true(clpsa_plan_flops(plan) == 4.0 * 2 * 5 * 5 * 32);
    clpsa_plan_destroy(plan);
    d.causal = 1;
    d.seq_k = 7; /* rows see 3..7 keys: 25 pairs per head */
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_OK);
    assert_true(clpsa_plan_flops(plan) == 4.0 * 2 * 25 * 32);
    clpsa_plan_destroy(plan);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_destroy_null_is_noop),
        cmocka_unit_test(test_context_create_rejects_null_and_half_wrapped),
        cmocka_unit_test(test_device_spec_not_found),
        cmocka_unit_test(test_context_create_error_is_per_thread),
        cmocka_unit_test(test_wraps_caller_objects_and_checks_queue),
        cmocka_unit_test(test_wrapped_objects_outlive_the_callers_references),
        cmocka_unit_test(test_plan_create_null_arguments),
        cmocka_unit_test(test_plan_rejects_bad_sizes),
        cmocka_unit_test(test_plan_rejects_heads_not_multiple),
        cmocka_unit_test(test_plan_rejects_unsupported_head_dim),
        cmocka_unit_test(test_plan_rejects_bad_options),
        cmocka_unit_test(test_plan_rejects_bad_strides),
        cmocka_unit_test(test_run_rejects_null_buffers),
        cmocka_unit_test(test_run_rejects_small_buffers),
        cmocka_unit_test(test_run_rejects_foreign_context),
        cmocka_unit_test(test_run_rejects_aliasing_and_bad_wait_list),
        cmocka_unit_test(test_psa_runs_across_queues_and_read_back),
        cmocka_unit_test(test_read_back_and_supply_reject_bad_input),
        cmocka_unit_test(test_alloc_out_of_memory),
        cmocka_unit_test(test_build_failure_reports_log),
        cmocka_unit_test(test_log_callback_and_level),
        cmocka_unit_test(test_plan_reports_resolved_desc),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
