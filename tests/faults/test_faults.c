/* SPDX-License-Identifier: Apache-2.0 */
/* Fault injection walks (issue 14): for N = 1, 2, ... the Nth host allocation or fallible
 * OpenCL call made by the library fails (faults/fault_inject.h), across context creation,
 * plan creation and one run, until a walk reaches its end without hitting N. Every step must
 * end cleanly: a status that is CLPSA_OK or an error with a last_error sentence, no crash, the
 * OpenCL objects the library created or retained all released again once the plan and
 * context are destroyed (host memory leaks are LeakSanitizer's, in the sanitizer build), and
 * the output buffer either untouched (still the poison) when the run failed or equal to the
 * fault-free result when every call returned CLPSA_OK (a fault the library recovered from,
 * such as a variant whose build failed, may pick another kernel, so equal within rounding).
 *
 * Walks: a context that picks its own device (creation only); dense and PSA plans on a
 * context wrapping the caller's cl_context, with the program cache in memory only and again
 * with a warm on-disk cache (the binary-loading path). Prints the faults injected per walk. */
#include "faults/fault_inject.h"

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEQ 70
#define HEADS 2
#define DIM 32
#define COUNT ((size_t)HEADS * SEQ * DIM)
#define POISON 0x7FC0DEADu

static int failures;

static void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "test_faults: FAIL: ");
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    ++failures;
}

/* The caller's OpenCL objects every wrapped context shares, and the run's buffers. */
static cl_context cl_ctx;
static cl_device_id device;
static cl_command_queue queue;
static cl_mem buf_q, buf_k, buf_v, buf_out;

static void quiet_log(void *user, clpsa_log_level level, const char *message) {
    (void)user;
    (void)level;
    (void)message;
}

static clpsa_plan_desc plan_desc(bool psa) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = psa ? CLPSA_METHOD_PSA : CLPSA_METHOD_DENSE;
    d.batch = 1;
    d.heads_q = HEADS;
    d.seq_q = SEQ;
    d.head_dim = DIM;
    if (psa) {
        d.block_q = 32;
        d.block_k = 32;
    }
    return d;
}

static void poison_output(void) {
    uint32_t *words = malloc(COUNT * sizeof *words);
    if (!words) {
        fail("out of host memory");
        exit(1);
    }
    for (size_t i = 0; i < COUNT; ++i)
        words[i] = POISON;
    if (clEnqueueWriteBuffer(queue, buf_out, CL_TRUE, 0, COUNT * sizeof *words, words, 0, NULL,
                             NULL) != CL_SUCCESS) {
        fail("poisoning the output failed");
        exit(1);
    }
    free(words);
}

static void read_output(float *host) {
    if (clFinish(queue) != CL_SUCCESS ||
        clEnqueueReadBuffer(queue, buf_out, CL_TRUE, 0, COUNT * sizeof *host, host, 0, NULL,
                            NULL) != CL_SUCCESS) {
        fail("reading the output failed");
        exit(1);
    }
}

/* Where one step of a walk stopped. */
typedef struct step_result {
    clpsa_status context, plan, run; /* CLPSA_OK, or the failure (later steps not tried) */
    bool plan_tried, run_tried;
} step_result;

/* Context (wrapping the caller's objects), plan, run; tracked and, when armed, faulted. */
static step_result run_step(bool psa, const char *cache_dir, long nth, const char *what) {
    step_result r = {CLPSA_OK, CLPSA_OK, CLPSA_OK, false, false};
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl_ctx;
    cd.device = device;
    cd.queue = queue;
    cd.log = quiet_log;
    cd.cache_dir = cache_dir;
    cd.disable_disk_cache = cache_dir == NULL;
    const clpsa_plan_desc pd = plan_desc(psa);
    clpsa_context *ctx = NULL;
    clpsa_plan *plan = NULL;

    fault_track(true);
    fault_arm(nth);
    r.context = clpsa_context_create(&cd, &ctx);
    if (r.context == CLPSA_OK) {
        r.plan_tried = true;
        r.plan = clpsa_plan_create(ctx, &pd, &plan);
        if (r.plan == CLPSA_OK) {
            r.run_tried = true;
            r.run = clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL);
        }
    }
    fault_disarm();

    /* Every failure explains itself. */
    if (r.context != CLPSA_OK) {
        const char *why = clpsa_context_last_error(NULL);
        if (ctx)
            fail("%s: context creation failed (%s) but returned a context", what,
                 clpsa_status_name(r.context));
        if (!why || !*why)
            fail("%s: context creation failed (%s) without a last_error", what,
                 clpsa_status_name(r.context));
    } else if (r.plan != CLPSA_OK || r.run != CLPSA_OK) {
        const char *why = clpsa_context_last_error(ctx);
        if (!why || !*why)
            fail("%s: %s failed (%s) without a last_error", what,
                 r.plan != CLPSA_OK ? "plan creation" : "the run",
                 clpsa_status_name(r.plan != CLPSA_OK ? r.plan : r.run));
        if (r.plan != CLPSA_OK && plan)
            fail("%s: plan creation failed but returned a plan", what);
    }
    if (clFinish(queue) != CL_SUCCESS)
        fail("%s: clFinish after the step failed", what);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    fault_track(false);
    if (fault_live_objects() != 0)
        fail("%s: %ld OpenCL object(s) still held after destroying plan and context", what,
             fault_live_objects());
    return r;
}

static bool all_ok(const step_result *r) {
    return r->context == CLPSA_OK && r->plan == CLPSA_OK && r->run == CLPSA_OK;
}

/* One walk of a plan kind; returns the faults injected. */
static long walk_plan(bool psa, const char *cache_dir) {
    char what[256];
    float baseline[COUNT], got[COUNT];
    poison_output();
    snprintf(what, sizeof what, "%s%s baseline", psa ? "psa" : "dense",
             cache_dir ? " disk-cache" : "");
    step_result r = run_step(psa, cache_dir, 0, what);
    if (!all_ok(&r)) {
        fail("%s: the fault-free step failed", what);
        return 0;
    }
    read_output(baseline);
    long n = 1, errors = 0, recovered = 0;
    for (;; ++n) {
        poison_output();
        snprintf(what, sizeof what, "%s%s fault %ld", psa ? "psa" : "dense",
                 cache_dir ? " disk-cache" : "", n);
        r = run_step(psa, cache_dir, n, what);
        const bool fired = fault_fired();
        snprintf(what + strlen(what), sizeof what - strlen(what), " (%s)", fault_fired_at());
        read_output(got);
        if (all_ok(&r)) {
            for (size_t i = 0; i < COUNT; ++i)
                if (!(fabsf(got[i] - baseline[i]) <= 1e-4f + 1e-3f * fabsf(baseline[i]))) {
                    fail("%s: every call succeeded but output %zu is %g, not %g", what, i,
                         (double)got[i], (double)baseline[i]);
                    break;
                }
            recovered += fired;
        } else {
            ++errors;
            uint32_t word;
            for (size_t i = 0; i < COUNT; ++i) {
                memcpy(&word, &got[i], sizeof word);
                if (word != POISON) {
                    fail("%s: the step failed (%s) but output %zu was written", what,
                         clpsa_status_name(r.context != CLPSA_OK ? r.context
                                           : r.plan != CLPSA_OK  ? r.plan
                                                                 : r.run),
                         i);
                    break;
                }
            }
        }
        if (!fired)
            break;
    }
    printf("test_faults: %s%s: %ld faults injected (every fallible call of context creation, "
           "plan creation and a run), %ld ended in an error status, %ld recovered\n",
           psa ? "psa" : "dense", cache_dir ? " with a warm disk cache" : "", n - 1, errors,
           recovered);
    return n - 1;
}

/* Context creation that picks the device itself (its own cl_context and queue). */
static long walk_own_context(void) {
    long n = 1;
    for (;; ++n) {
        clpsa_context_desc cd;
        clpsa_context_desc_init(&cd);
        cd.log = quiet_log;
        cd.disable_disk_cache = 1;
        clpsa_context *ctx = NULL;
        fault_track(true);
        fault_arm(n);
        const clpsa_status st = clpsa_context_create(&cd, &ctx);
        fault_disarm();
        const bool fired = fault_fired();
        if (st != CLPSA_OK) {
            const char *why = clpsa_context_last_error(NULL);
            if (ctx || !why || !*why)
                fail("own context fault %ld (%s): failed (%s) with a context or no last_error", n,
                     fault_fired_at(), clpsa_status_name(st));
        }
        clpsa_context_destroy(ctx);
        fault_track(false);
        if (fault_live_objects() != 0)
            fail("own context fault %ld (%s): %ld OpenCL object(s) still held", n, fault_fired_at(),
                 fault_live_objects());
        if (!fired)
            break;
    }
    printf("test_faults: own context: %ld faults injected (context creation)\n", n - 1);
    return n - 1;
}

static bool setup(void) {
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.log = quiet_log;
    cd.disable_disk_cache = 1;
    clpsa_context *host = NULL;
    if (clpsa_context_create(&cd, &host) != CLPSA_OK) {
        fprintf(stderr, "test_faults: no device: %s\n", clpsa_context_last_error(NULL));
        return false;
    }
    cl_ctx = clpsa_context_cl_context(host);
    device = clpsa_context_device(host);
    queue = clpsa_context_queue(host);
    clRetainContext(cl_ctx);
    clRetainCommandQueue(queue);
    clpsa_context_destroy(host);
    cl_int err = CL_SUCCESS;
    buf_q = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE, COUNT * sizeof(float), NULL, &err);
    buf_k = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE, COUNT * sizeof(float), NULL, &err);
    buf_v = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE, COUNT * sizeof(float), NULL, &err);
    buf_out = clCreateBuffer(cl_ctx, CL_MEM_READ_WRITE, COUNT * sizeof(float), NULL, &err);
    if (!buf_q || !buf_k || !buf_v || !buf_out)
        return false;
    /* Fresh random inputs (xorshift; the values only need to be finite and varied). */
    float *host_data = malloc(COUNT * sizeof *host_data);
    if (!host_data)
        return false;
    uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    const cl_mem inputs[3] = {buf_q, buf_k, buf_v};
    for (int t = 0; t < 3; ++t) {
        for (size_t i = 0; i < COUNT; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            host_data[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
        if (clEnqueueWriteBuffer(queue, inputs[t], CL_TRUE, 0, COUNT * sizeof *host_data, host_data,
                                 0, NULL, NULL) != CL_SUCCESS)
            return false;
    }
    free(host_data);
    return true;
}

int main(void) {
    if (!setup())
        return 1;
    char cache_dir[] = "/tmp/clpsa-faults-XXXXXX";
    if (!mkdtemp(cache_dir)) {
        fprintf(stderr, "test_faults: mkdtemp failed\n");
        return 1;
    }
    long total = walk_own_context();
    total += walk_plan(false, NULL);
    total += walk_plan(true, NULL);
    total += walk_plan(false, cache_dir);
    total += walk_plan(true, cache_dir);
    printf("test_faults: %ld faults injected in all, %d failure(s)\n", total, failures);
    char command[64];
    snprintf(command, sizeof command, "rm -rf '%s'", cache_dir);
    if (system(command) != 0)
        fprintf(stderr, "test_faults: could not remove %s\n", cache_dir);
    clReleaseMemObject(buf_q);
    clReleaseMemObject(buf_k);
    clReleaseMemObject(buf_v);
    clReleaseMemObject(buf_out);
    clReleaseCommandQueue(queue);
    clReleaseContext(cl_ctx);
    return failures ? 1 : 0;
}
