/* SPDX-License-Identifier: Apache-2.0 */
/* Threads (issue 14; docs/api.md, "Threads"): THREADS threads create their own dense and PSA
 * plans and run them concurrently, first each on its own clpsa context wrapping one shared
 * cl_context, then all on one shared clpsa context whose program list starts empty (so their
 * plan creations compile and insert programs at the same time). Each thread's outputs and
 * level maps must equal, bit for bit, what the same work gives when run sequentially, and the
 * shared context's statistics and per-thread last_error must stay coherent. ci/test.sh also
 * runs this suite under ThreadSanitizer. */
#include <clpsa/clpsa.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4
#define RUNS 2
#define HEADS 2
#define DIM 32
#define SEQ_BASE 60 /* thread i uses SEQ_BASE + 7 i tokens: other shapes, other programs */

static cl_context cl_ctx;
static cl_device_id device;
static _Atomic int failures;

static void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "test_threads: FAIL: ");
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    ++failures;
}

static void quiet_log(void *user, clpsa_log_level level, const char *message) {
    (void)user;
    if (level <= CLPSA_LOG_WARN)
        fprintf(stderr, "clpsa: %s\n", message);
}

/* One thread's work and what it produced. */
typedef struct work {
    int index, seq;
    clpsa_context *ctx; /* the context it uses: its own or the shared one */
    float *q, *k, *v;   /* host inputs, fresh per thread */
    float *dense_out[RUNS], *psa_out[RUNS];
    int8_t *levels;
    size_t count, cells;
} work;

static clpsa_plan_desc desc_of(const work *w, bool psa) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = psa ? CLPSA_METHOD_PSA : CLPSA_METHOD_DENSE;
    d.batch = 1;
    d.heads_q = HEADS;
    d.seq_q = w->seq;
    d.head_dim = DIM;
    d.causal = w->index % 2;
    if (psa) {
        d.block_q = 32;
        d.block_k = 32;
        d.seed = (uint64_t)w->index;
    }
    return d;
}

static bool check(const work *w, clpsa_status st, const char *what) {
    if (st == CLPSA_OK)
        return true;
    fail("thread %d: %s: %s: %s", w->index, what, clpsa_status_name(st),
         clpsa_context_last_error(w->ctx));
    return false;
}

/* Creates both plans on w->ctx, runs each RUNS times on its own queue, reads the results. */
static void *do_work(void *arg) {
    work *w = arg;
    cl_int err = CL_SUCCESS;
    cl_command_queue queue = clCreateCommandQueue(cl_ctx, device, 0, &err);
    const size_t bytes = w->count * sizeof(float);
    cl_mem bq = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, w->q, &err);
    cl_mem bk = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, w->k, &err);
    cl_mem bv = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, w->v, &err);
    cl_mem bo = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (!queue || !bq || !bk || !bv || !bo) {
        fail("thread %d: OpenCL setup failed", w->index);
        return NULL;
    }
    clpsa_plan *plans[2] = {NULL, NULL};
    for (int m = 0; m < 2; ++m) {
        const clpsa_plan_desc d = desc_of(w, m == 1);
        if (!check(w, clpsa_plan_create(w->ctx, &d, &plans[m]), "clpsa_plan_create"))
            goto done;
    }
    /* A rejected call on the shared context: its detail is this thread's alone. */
    if (clpsa_plan_read_levels(plans[0], w->levels) != CLPSA_ERROR_INVALID_VALUE)
        fail("thread %d: reading levels of a dense plan did not fail", w->index);
    else if (!strstr(clpsa_context_last_error(w->ctx), "CLPSA_METHOD_DENSE"))
        fail("thread %d: last_error is \"%s\", not this thread's dense-plan failure", w->index,
             clpsa_context_last_error(w->ctx));
    for (int r = 0; r < RUNS; ++r)
        for (int m = 0; m < 2; ++m) {
            if (!check(w, clpsa_plan_run(plans[m], queue, bq, bk, bv, bo, 0, NULL, NULL),
                       "clpsa_plan_run"))
                goto done;
            float *dst = m ? w->psa_out[r] : w->dense_out[r];
            if (clEnqueueReadBuffer(queue, bo, CL_TRUE, 0, bytes, dst, 0, NULL, NULL) != CL_SUCCESS)
                fail("thread %d: reading the output failed", w->index);
            clpsa_cache_stats stats;
            clpsa_context_cache_stats(w->ctx, &stats);
        }
    check(w, clpsa_plan_read_levels(plans[1], w->levels), "clpsa_plan_read_levels");
done:
    clpsa_plan_destroy(plans[0]);
    clpsa_plan_destroy(plans[1]);
    clReleaseMemObject(bq);
    clReleaseMemObject(bk);
    clReleaseMemObject(bv);
    clReleaseMemObject(bo);
    clReleaseCommandQueue(queue);
    return NULL;
}

static clpsa_context *new_context(void) {
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl_ctx;
    cd.device = device;
    cd.log = quiet_log;
    cd.disable_disk_cache = 1; /* every context starts with an empty program list */
    clpsa_context *ctx = NULL;
    if (clpsa_context_create(&cd, &ctx) != CLPSA_OK) {
        fail("clpsa_context_create: %s", clpsa_context_last_error(NULL));
        exit(1);
    }
    return ctx;
}

static void work_init(work *w, int index) {
    memset(w, 0, sizeof *w);
    w->index = index;
    w->seq = SEQ_BASE + 7 * index;
    w->count = (size_t)HEADS * w->seq * DIM;
    w->cells = (size_t)HEADS * ((w->seq + 31) / 32) * ((w->seq + 31) / 32);
    float **inputs[3] = {&w->q, &w->k, &w->v};
    uint64_t x = 0x2545F4914F6CDD1Dull * (uint64_t)(index + 1);
    for (int t = 0; t < 3; ++t) {
        *inputs[t] = malloc(w->count * sizeof(float));
        if (!*inputs[t])
            exit(1);
        for (size_t i = 0; i < w->count; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (*inputs[t])[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
    }
    for (int r = 0; r < RUNS; ++r) {
        w->dense_out[r] = calloc(w->count, sizeof(float));
        w->psa_out[r] = calloc(w->count, sizeof(float));
        if (!w->dense_out[r] || !w->psa_out[r])
            exit(1);
    }
    w->levels = calloc(w->cells, 1);
    if (!w->levels)
        exit(1);
}

static void work_free(work *w) {
    free(w->q);
    free(w->k);
    free(w->v);
    for (int r = 0; r < RUNS; ++r) {
        free(w->dense_out[r]);
        free(w->psa_out[r]);
    }
    free(w->levels);
}

/* got against the sequential result, bit for bit, every run. */
static void compare(const work *want, const work *got, const char *how) {
    for (int r = 0; r < RUNS; ++r) {
        if (memcmp(want->dense_out[0], got->dense_out[r], want->count * sizeof(float)) != 0)
            fail("%s: thread %d dense run %d differs from the sequential run", how, got->index, r);
        if (memcmp(want->psa_out[0], got->psa_out[r], want->count * sizeof(float)) != 0)
            fail("%s: thread %d PSA run %d differs from the sequential run", how, got->index, r);
    }
    if (memcmp(want->levels, got->levels, want->cells) != 0)
        fail("%s: thread %d level map differs from the sequential run", how, got->index);
}

static void run_concurrently(work *works, const char *how) {
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; ++i)
        if (pthread_create(&threads[i], NULL, do_work, &works[i]) != 0) {
            fail("%s: pthread_create failed", how);
            exit(1);
        }
    for (int i = 0; i < THREADS; ++i)
        pthread_join(threads[i], NULL);
}

int main(void) {
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.log = quiet_log;
    cd.disable_disk_cache = 1;
    clpsa_context *host = NULL;
    if (clpsa_context_create(&cd, &host) != CLPSA_OK) {
        fprintf(stderr, "test_threads: no device: %s\n", clpsa_context_last_error(NULL));
        return 1;
    }
    cl_ctx = clpsa_context_cl_context(host);
    device = clpsa_context_device(host);
    clRetainContext(cl_ctx);

    /* Sequential: each thread's work on one context, one after the other. */
    work sequential[THREADS], own[THREADS], shared[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        work_init(&sequential[i], i);
        work_init(&own[i], i);
        work_init(&shared[i], i);
        sequential[i].ctx = host;
        do_work(&sequential[i]);
    }
    /* Concurrent, a context per thread on the one cl_context. */
    for (int i = 0; i < THREADS; ++i)
        own[i].ctx = new_context();
    run_concurrently(own, "own contexts");
    for (int i = 0; i < THREADS; ++i) {
        compare(&sequential[i], &own[i], "own contexts");
        clpsa_context_destroy(own[i].ctx);
    }
    /* Concurrent, one context shared by every thread, its program list empty at the start. */
    clpsa_context *one = new_context();
    for (int i = 0; i < THREADS; ++i)
        shared[i].ctx = one;
    run_concurrently(shared, "one shared context");
    for (int i = 0; i < THREADS; ++i)
        compare(&sequential[i], &shared[i], "one shared context");
    clpsa_cache_stats stats;
    clpsa_context_cache_stats(one, &stats);
    if (stats.builds == 0)
        fail("the shared context built no program");
    printf("test_threads: %d threads, own contexts and one shared context (%llu programs "
           "built, %llu found in memory): %s\n",
           THREADS, (unsigned long long)stats.builds, (unsigned long long)stats.memory_hits,
           failures ? "FAILED" : "results equal to the sequential runs");
    clpsa_context_destroy(one);
    for (int i = 0; i < THREADS; ++i) {
        work_free(&sequential[i]);
        work_free(&own[i]);
        work_free(&shared[i]);
    }
    clpsa_context_destroy(host);
    clReleaseContext(cl_ctx);
    return failures ? 1 : 0;
}
