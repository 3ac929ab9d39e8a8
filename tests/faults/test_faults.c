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
 * Walks: a context that picks its own device (creation only); dense and PSA plans on a context
 * wrapping the caller's cl_context, with the program cache in memory only and again with a
 * warm on-disk cache (the binary-loading path), a budget-mode plan with the warm disk cache
 * (the build from source is the PSA walk's, and takes long); a decode plan (a K/V cache whose
 * length changes between runs); the supply and read-back calls of PSA and budget-mode plans
 * (faults only in those calls and the runs between them, see walk_supply). With the argument
 * `multi` (two devices: POCL_DEVICES="pthread pthread"), multi-device plans instead: one
 * cl_context (slices in place, or copied), and a cl_context per device (host staging).
 * Prints the faults injected per walk. */
#include "faults/fault_inject.h"

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_multi.h>
#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

typedef enum plan_kind { KIND_DENSE, KIND_PSA, KIND_BUDGET } plan_kind;
static const char *const kind_names[] = {"dense", "psa", "budget"};

static clpsa_plan_desc plan_desc(plan_kind kind) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = kind == KIND_DENSE ? CLPSA_METHOD_DENSE : CLPSA_METHOD_PSA;
    d.batch = 1;
    d.heads_q = HEADS;
    d.seq_q = SEQ;
    d.head_dim = DIM;
    if (kind != KIND_DENSE) {
        d.block_q = 32;
        d.block_k = 32;
    }
    if (kind == KIND_BUDGET) {
        d.mode = CLPSA_MODE_BUDGET;
        d.density = 0.5f;
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

static void check_fault_status(const char *what, const char *call, clpsa_status status);

/* Where one step of a walk stopped. */
typedef struct step_result {
    clpsa_status context, plan, run; /* CLPSA_OK, or the failure (later steps not tried) */
    bool plan_tried, run_tried;
} step_result;

/* Context (wrapping the caller's objects), plan, run; tracked and, when armed, faulted. */
static step_result run_step(plan_kind kind, const char *cache_dir, long nth, const char *what) {
    step_result r = {CLPSA_OK, CLPSA_OK, CLPSA_OK, false, false};
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl_ctx;
    cd.device = device;
    cd.queue = queue;
    cd.log = quiet_log;
    cd.cache_dir = cache_dir;
    cd.disable_disk_cache = cache_dir == NULL;
    const clpsa_plan_desc pd = plan_desc(kind);
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
static long walk_plan(plan_kind kind, const char *cache_dir) {
    char what[256];
    float baseline[COUNT], got[COUNT];
    poison_output();
    snprintf(what, sizeof what, "%s%s baseline", kind_names[kind], cache_dir ? " disk-cache" : "");
    step_result r = run_step(kind, cache_dir, 0, what);
    if (!all_ok(&r)) {
        fail("%s: the fault-free step failed", what);
        return 0;
    }
    read_output(baseline);
    long n = 1, errors = 0, recovered = 0;
    for (;; ++n) {
        poison_output();
        snprintf(what, sizeof what, "%s%s fault %ld", kind_names[kind],
                 cache_dir ? " disk-cache" : "", n);
        r = run_step(kind, cache_dir, n, what);
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
            check_fault_status(what,
                               r.context != CLPSA_OK ? "context creation"
                               : r.plan != CLPSA_OK  ? "plan creation"
                                                     : "the run",
                               r.context != CLPSA_OK ? r.context
                               : r.plan != CLPSA_OK  ? r.plan
                                                     : r.run);
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
           kind_names[kind], cache_dir ? " with a warm disk cache" : "", n - 1, errors, recovered);
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
            char what[96];
            snprintf(what, sizeof what, "own context fault %ld", n);
            check_fault_status(what, "context creation", st);
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

/* ---- Helpers of the walks below ---- */

/* Equal within the walks' tolerance, or the same bits (the poison past a tensor's end). */
static bool close_to(float got, float want) {
    uint32_t a, b;
    memcpy(&a, &got, sizeof a);
    memcpy(&b, &want, sizeof b);
    return a == b || fabsf(got - want) <= 1e-4f + 1e-3f * fabsf(want);
}

static bool untouched(const float *x, size_t count) {
    for (size_t i = 0; i < count; ++i) {
        uint32_t word;
        memcpy(&word, &x[i], sizeof word);
        if (word != POISON)
            return false;
    }
    return true;
}

/* Whether every byte of a host result is still the 0x5A the walk filled it with. */
static bool bytes_untouched(const void *p, size_t bytes) {
    const unsigned char *c = p;
    for (size_t i = 0; i < bytes; ++i)
        if (c[i] != 0x5A)
            return false;
    return true;
}

/* Every injected fault is an allocation failing or CL_OUT_OF_RESOURCES, so a call it makes
 * fail must say CLPSA_ERROR_OUT_OF_MEMORY, not blame the caller's arguments; a failed
 * clBuildProgram is CLPSA_ERROR_BUILD_FAILED whatever its code (clpsa.h: "a kernel does not
 * compile", with the driver's error and log in last_error). */
static void check_fault_status(const char *what, const char *call, clpsa_status status) {
    if (status == CLPSA_ERROR_BUILD_FAILED && strcmp(fault_fired_at(), "clBuildProgram") == 0)
        return;
    if (status != CLPSA_ERROR_OUT_OF_MEMORY)
        fail("%s: %s failed with %s after %s ran out of memory (CLPSA_ERROR_OUT_OF_MEMORY due)",
             what, call, clpsa_status_name(status), fault_fired_at());
}

/* A context wrapping the caller's objects, made outside the armed part of a step. */
static clpsa_context *wrap_context(void) {
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl_ctx;
    cd.device = device;
    cd.queue = queue;
    cd.log = quiet_log;
    cd.disable_disk_cache = 1;
    clpsa_context *ctx = NULL;
    return clpsa_context_create(&cd, &ctx) == CLPSA_OK ? ctx : NULL;
}

/* After one call under test: a failure explains itself, and the status is the one due
 * without a fault unless the armed fault hit this very call. `before` is fault_fired() from
 * just before the call. */
static clpsa_status checked(clpsa_context *ctx, const char *what, const char *call, bool before,
                            clpsa_status status, clpsa_status due) {
    const bool hit = !before && fault_fired();
    if (status != CLPSA_OK) {
        const char *why = clpsa_context_last_error(ctx);
        if (!why || !*why)
            fail("%s: %s failed (%s) without a last_error", what, call, clpsa_status_name(status));
    }
    if (status != due && !(hit && status != CLPSA_OK))
        fail("%s: %s returned %s where %s was due", what, call, clpsa_status_name(status),
             clpsa_status_name(due));
    if (hit && status != CLPSA_OK && status != due)
        check_fault_status(what, call, status);
    return status;
}
#define CHECKED(ctx, call, due)                                                                    \
    (before = fault_fired(), checked((ctx), what, #call, before, (call), (due)))

/* Whether the run that just failed failed while checking its queue and buffers (the calls
 * before anything is enqueued), which leaves the plan as it was. */
static bool run_failed_before_enqueueing(void) {
    return strcmp(fault_fired_at(), "clGetCommandQueueInfo") == 0 ||
           strcmp(fault_fired_at(), "clGetMemObjectInfo") == 0;
}

/* One run of the plan under test, its output poisoned first; the output must equal `want`
 * when it succeeded and be untouched when it failed. Returns whether it succeeded. */
static bool run_checked(clpsa_context *ctx, clpsa_plan *plan, const float *want, const char *what,
                        const char *name) {
    float got[COUNT];
    fault_pause();
    poison_output();
    fault_resume();
    const bool before = fault_fired();
    const clpsa_status status =
        checked(ctx, what, name, before,
                clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL), CLPSA_OK);
    fault_pause();
    read_output(got);
    fault_resume();
    if (status == CLPSA_OK) {
        for (size_t i = 0; i < COUNT; ++i)
            if (!close_to(got[i], want[i])) {
                fail("%s: %s succeeded but output %zu is %g, not %g", what, name, i, (double)got[i],
                     (double)want[i]);
                break;
            }
    } else if (!untouched(got, COUNT)) {
        fail("%s: %s failed (%s) but wrote the output", what, name, clpsa_status_name(status));
    }
    return status == CLPSA_OK;
}

/* Ends a step: nothing left on the queue, plan and context destroyed, no handle held. */
static void end_step(clpsa_context *ctx, clpsa_plan *plan, const char *what) {
    if (clFinish(queue) != CL_SUCCESS)
        fail("%s: clFinish after the step failed", what);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    fault_track(false);
    if (fault_live_objects() != 0)
        fail("%s: %ld OpenCL object(s) still held after destroying plan and context", what,
             fault_live_objects());
}

/* ---- Decode: a dense plan over a K/V cache whose length changes between runs ---- */
#define DECODE_ROWS 3
static const int decode_lengths[3] = {40, SEQ, 1};

/* Context, plan (kv_capacity SEQ), then per length: set_kv_length and a run. With nth = 0
 * (no fault) the outputs are recorded in want, else checked against it. */
static void decode_step(long nth, float want[3][COUNT], const char *what) {
    clpsa_plan_desc pd = plan_desc(KIND_DENSE);
    pd.seq_q = DECODE_ROWS;
    pd.seq_k = decode_lengths[0];
    pd.kv_capacity = SEQ;
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl_ctx;
    cd.device = device;
    cd.queue = queue;
    cd.log = quiet_log;
    cd.disable_disk_cache = 1;
    clpsa_context *ctx = NULL;
    clpsa_plan *plan = NULL;
    bool before = false;
    fault_track(true);
    fault_arm(nth);
    clpsa_status status = clpsa_context_create(&cd, &ctx);
    if (status != CLPSA_OK) {
        const char *why = clpsa_context_last_error(NULL);
        if (ctx || !why || !*why)
            fail("%s: context creation failed (%s) with a context or no last_error", what,
                 clpsa_status_name(status));
    }
    if (status == CLPSA_OK) {
        status = CHECKED(ctx, clpsa_plan_create(ctx, &pd, &plan), CLPSA_OK);
        if (status != CLPSA_OK && plan)
            fail("%s: plan creation failed but returned a plan", what);
    }
    for (int r = 0; r < 3 && status == CLPSA_OK; ++r) {
        char name[64];
        snprintf(name, sizeof name, "run with seq_k %d", decode_lengths[r]);
        CHECKED(ctx, clpsa_plan_set_kv_length(plan, decode_lengths[r]), CLPSA_OK);
        if (nth == 0) {
            fault_pause();
            poison_output();
            if (clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) != CLPSA_OK)
                fail("%s: the fault-free %s failed", what, name);
            read_output(want[r]);
            fault_resume();
        } else {
            run_checked(ctx, plan, want[r], what, name);
        }
    }
    fault_disarm();
    end_step(ctx, plan, what);
}

static long walk_decode(void) {
    static float want[3][COUNT];
    decode_step(0, want, "decode baseline");
    long n = 1;
    for (;; ++n) {
        char what[96];
        snprintf(what, sizeof what, "decode fault %ld", n);
        decode_step(n, want, what);
        if (!fault_fired())
            break;
    }
    printf("test_faults: decode: %ld faults injected (context and plan creation, "
           "set_kv_length and runs at 3 key lengths)\n",
           n - 1);
    return n - 1;
}

/* ---- Supplied scores and levels, read-back ---- */
#define CELLS_MAX 64
enum { SRC_EST, SRC_SCORES, SRC_LEVELS };

/* What the fault-free plan gives: the output and level map of a run from its own estimate,
 * from the supplied scores and from the supplied levels, and its estimated scores. */
typedef struct supply_base {
    size_t cells, rows;
    int blocks_k;
    float out[3][COUNT];
    int8_t levels[3][CELLS_MAX];
    float scores[CELLS_MAX];
    float supplied_scores[CELLS_MAX];
    int8_t supplied_levels[CELLS_MAX];
} supply_base;

static bool supply_baseline(plan_kind kind, supply_base *b) {
    clpsa_context *ctx = wrap_context();
    clpsa_plan *plan = NULL;
    const clpsa_plan_desc pd = plan_desc(kind);
    clpsa_block_grid grid;
    bool ok = ctx && clpsa_plan_create(ctx, &pd, &plan) == CLPSA_OK &&
              clpsa_plan_block_grid(plan, &grid) == CLPSA_OK && grid.count <= CELLS_MAX;
    if (ok) {
        b->cells = grid.count;
        b->blocks_k = grid.blocks_k;
        b->rows = grid.count / (size_t)grid.blocks_k;
        static const int8_t pattern[4] = {1, 2, 4, 8};
        for (size_t c = 0; c < b->cells; ++c) {
            b->supplied_scores[c] = (float)(c * 7 % 11 + 1);
            b->supplied_levels[c] = pattern[c % 4];
        }
        poison_output();
        ok = clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) == CLPSA_OK;
        read_output(b->out[SRC_EST]);
        ok = ok && clpsa_plan_read_levels(plan, b->levels[SRC_EST]) == CLPSA_OK &&
             clpsa_plan_read_scores(plan, b->scores) == CLPSA_OK;
    }
    if (ok && kind != KIND_BUDGET) {
        poison_output();
        ok = clpsa_plan_set_scores(plan, b->supplied_scores) == CLPSA_OK &&
             clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) == CLPSA_OK;
        read_output(b->out[SRC_SCORES]);
        ok = ok && clpsa_plan_read_levels(plan, b->levels[SRC_SCORES]) == CLPSA_OK;
    }
    if (ok) {
        poison_output();
        ok = clpsa_plan_set_levels(plan, b->supplied_levels) == CLPSA_OK &&
             clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) == CLPSA_OK;
        read_output(b->out[SRC_LEVELS]);
        memcpy(b->levels[SRC_LEVELS], b->supplied_levels, b->cells);
    }
    clFinish(queue);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    if (!ok)
        fail("%s supply baseline: the fault-free sequence failed", kind_names[kind]);
    return ok;
}

static void check_levels(const char *what, const char *call, clpsa_status status, const int8_t *got,
                         const int8_t *want, size_t cells) {
    if (status == CLPSA_OK ? memcmp(got, want, cells) != 0 : !bytes_untouched(got, cells))
        fail("%s: %s %s", what, call,
             status == CLPSA_OK ? "succeeded with another level map than the run used"
                                : "failed but wrote the caller's array");
}

static void check_scores(const char *what, const char *call, clpsa_status status, const float *got,
                         const float *want, size_t cells) {
    if (status == CLPSA_OK ? memcmp(got, want, cells * sizeof *got) != 0
                           : !bytes_untouched(got, cells * sizeof *got))
        fail("%s: %s %s", what, call,
             status == CLPSA_OK ? "succeeded with other scores than the run used"
                                : "failed but wrote the caller's array");
}

/* A run of the supply walk, checked by run_checked against the output of `source`; returns
 * whether a read-back must then succeed (with the data of *last_ok, the source of the last run
 * that succeeded): after a run that succeeded, or one that failed before enqueueing anything
 * when nothing was copied in since the last one that did. */
static bool after_run(clpsa_context *ctx, clpsa_plan *plan, const supply_base *b, int source,
                      int *last_ok, bool *replaced, const char *what, const char *name) {
    const bool ran = run_checked(ctx, plan, b->out[source], what, name);
    if (ran) {
        *last_ok = source;
        *replaced = false;
        return true;
    }
    return run_failed_before_enqueueing() && !*replaced;
}

/* A run, then read_levels: the map of the last run that succeeded, or a refusal. */
static void readable_check(clpsa_context *ctx, clpsa_plan *plan, const supply_base *b, int source,
                           int *last_ok, bool *replaced, const char *what, const char *name) {
    const bool readable = after_run(ctx, plan, b, source, last_ok, replaced, what, name);
    int8_t levels[CELLS_MAX];
    memset(levels, 0x5A, sizeof levels);
    bool before = false;
    const clpsa_status st = CHECKED(ctx, clpsa_plan_read_levels(plan, levels),
                                    readable ? CLPSA_OK : CLPSA_ERROR_INVALID_VALUE);
    char call[96];
    snprintf(call, sizeof call, "read_levels after %s", name);
    check_levels(what, call, st, levels, b->levels[*last_ok], b->cells);
}

/* The plan is made and run without faults; then, armed, every read-back call, supplied
 * scores (refused by budget mode), a run, supplied levels, a run, back to estimating, a run,
 * with read-backs between. A failed call must leave the plan as it was: every later result
 * is the one its state (what was supplied successfully) gives, and a last fault-free run
 * equals the first. */
static void supply_step(clpsa_context *ctx, plan_kind kind, const supply_base *b, long nth,
                        const char *what) {
    const size_t cells = b->cells;
    int8_t levels[CELLS_MAX];
    float scores[CELLS_MAX];
    clpsa_level_stats stats, want_stats;
    clpsa_stage_times times;
    clpsa_plan *plan = NULL;
    const clpsa_plan_desc pd = plan_desc(kind);
    bool before = false;
    fault_track(true);
    if (clpsa_plan_create(ctx, &pd, &plan) != CLPSA_OK ||
        clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) != CLPSA_OK) {
        fail("%s: the fault-free setup failed", what);
        end_step(NULL, plan, what);
        return;
    }
    clpsa_level_stats_compute(b->levels[SRC_EST], b->rows, b->blocks_k, &want_stats);
    /* What later runs use, and what the last run that succeeded used. A run that fails leaves
     * nothing to read back, unless it failed before enqueueing anything (checking its
     * arguments): then the read-back is still that of the last run that succeeded. */
    int source = SRC_EST, last_ok = SRC_EST;
    bool replaced = false; /* scores or levels copied in since the last run that succeeded */
    fault_arm(nth);

    /* read-back of the fault-free run */
    memset(levels, 0x5A, sizeof levels);
    clpsa_status st = CHECKED(ctx, clpsa_plan_read_levels(plan, levels), CLPSA_OK);
    check_levels(what, "read_levels", st, levels, b->levels[SRC_EST], cells);
    memset(scores, 0x5A, sizeof scores);
    st = CHECKED(ctx, clpsa_plan_read_scores(plan, scores), CLPSA_OK);
    check_scores(what, "read_scores", st, scores, b->scores, cells);
    memset(&stats, 0x5A, sizeof stats);
    st = CHECKED(ctx, clpsa_plan_read_stats(plan, &stats), CLPSA_OK);
    if (st == CLPSA_OK ? stats.density != want_stats.density ||
                             memcmp(stats.histogram, want_stats.histogram, sizeof stats.histogram)
                       : !bytes_untouched(&stats, sizeof stats))
        fail("%s: read_stats %s", what,
             st == CLPSA_OK ? "succeeded with other statistics" : "failed but wrote *out");
    memset(&times, 0x5A, sizeof times);
    st = CHECKED(ctx, clpsa_plan_read_stage_times(plan, &times), CLPSA_OK);
    const double t[5] = {times.pool_ms, times.estimate_ms, times.assign_ms, times.attend_ms,
                         times.total_ms};
    for (int i = 0; i < 5; ++i)
        if (st == CLPSA_OK ? !(t[i] >= 0.0 && t[i] < 1e9) : t[i] != 0.0)
            fail("%s: read_stage_times %s: time %d is %g", what,
                 st == CLPSA_OK ? "succeeded" : "failed (*out must be zeroed)", i, t[i]);

    /* supplied scores, a run, the scores it used */
    st = CHECKED(ctx, clpsa_plan_set_scores(plan, b->supplied_scores),
                 kind == KIND_BUDGET ? CLPSA_ERROR_INVALID_VALUE : CLPSA_OK);
    replaced = kind != KIND_BUDGET; /* even a failed copy may have begun */
    if (st == CLPSA_OK)
        source = SRC_SCORES;
    st = CHECKED(ctx, clpsa_plan_read_scores(plan, scores),
                 replaced ? CLPSA_ERROR_INVALID_VALUE : CLPSA_OK);
    const bool readable = after_run(ctx, plan, b, source, &last_ok, &replaced, what, "run 1");
    memset(scores, 0x5A, sizeof scores);
    st = CHECKED(ctx, clpsa_plan_read_scores(plan, scores),
                 readable ? CLPSA_OK : CLPSA_ERROR_INVALID_VALUE);
    check_scores(what, "read_scores after run 1", st, scores,
                 last_ok == SRC_SCORES ? b->supplied_scores : b->scores, cells);

    /* supplied levels, a run, the map it used */
    st = CHECKED(ctx, clpsa_plan_set_levels(plan, b->supplied_levels), CLPSA_OK);
    replaced = true;
    if (st == CLPSA_OK)
        source = SRC_LEVELS;
    readable_check(ctx, plan, b, source, &last_ok, &replaced, what, "run 2");

    /* back to estimating (nothing is copied) */
    st = CHECKED(ctx, clpsa_plan_set_levels(plan, NULL), CLPSA_OK);
    if (st == CLPSA_OK)
        source = SRC_EST;
    readable_check(ctx, plan, b, source, &last_ok, &replaced, what, "run 3");
    fault_disarm();

    /* the plan is sound after the fault: a fault-free run gives the first run's output */
    float got[COUNT];
    poison_output();
    if (clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) != CLPSA_OK)
        fail("%s: the fault-free run after the sequence failed: %s", what,
             clpsa_context_last_error(ctx));
    read_output(got);
    for (size_t i = 0; i < COUNT; ++i)
        if (!close_to(got[i], b->out[SRC_EST][i])) {
            fail("%s: after the sequence, output %zu is %g, not %g", what, i, (double)got[i],
                 (double)b->out[SRC_EST][i]);
            break;
        }
    end_step(NULL, plan, what);
}

/* One context serves the whole walk (its programs are then built once): each step's plan is
 * created and destroyed inside the step's tracking. */
static long walk_supply(plan_kind kind) {
    static supply_base b;
    if (!supply_baseline(kind, &b))
        return 0;
    clpsa_context *ctx = wrap_context();
    const clpsa_plan_desc pd = plan_desc(kind);
    clpsa_plan *warm = NULL;
    if (!ctx || clpsa_plan_create(ctx, &pd, &warm) != CLPSA_OK) {
        fail("%s supply: no context or plan", kind_names[kind]);
        clpsa_context_destroy(ctx);
        return 0;
    }
    clpsa_plan_destroy(warm); /* its programs stay in the context's cache */
    long n = 1;
    for (;; ++n) {
        char what[96];
        snprintf(what, sizeof what, "%s supply fault %ld", kind_names[kind], n);
        supply_step(ctx, kind, &b, n, what);
        if (!fault_fired())
            break;
    }
    clpsa_context_destroy(ctx);
    printf("test_faults: %s supply and read-back: %ld faults injected (read_levels, "
           "read_scores, read_stats, read_stage_times, set_scores, set_levels and 3 runs)\n",
           kind_names[kind], n - 1);
    return n - 1;
}

/* ---- Ordering after a run that failed part-way ----
 * The commands a failed run enqueued before its failure still execute on the plan's buffers,
 * so the next run, on any queue, must wait for them. Run 1 waits for a user event and fails at
 * its second kernel launch; run 2, on a second queue, must not complete while the user event
 * is pending, and once it is set, gives the fault-free output. */
static void check_order_after_failed_run(plan_kind kind, bool decode) {
    const char *what = decode ? "decode order after a failed run" : "psa order after a failed run";
    clpsa_plan_desc pd = plan_desc(kind);
    if (decode) {
        pd.seq_q = DECODE_ROWS;
        pd.kv_capacity = SEQ;
    }
    clpsa_context *ctx = wrap_context();
    clpsa_plan *plan = NULL;
    float want[COUNT], got[COUNT];
    if (!ctx || clpsa_plan_create(ctx, &pd, &plan) != CLPSA_OK) {
        fail("%s: no context or plan", what);
        clpsa_context_destroy(ctx);
        return;
    }
    if (decode && clpsa_plan_kernel_variant(plan, "decode") == NULL)
        fail("%s: the plan does not take the decode kernels", what);
    poison_output();
    if (clpsa_plan_run(plan, NULL, buf_q, buf_k, buf_v, buf_out, 0, NULL, NULL) != CLPSA_OK)
        fail("%s: the fault-free run failed", what);
    read_output(want);
    poison_output();
    cl_int err = CL_SUCCESS;
    cl_command_queue other = clCreateCommandQueue(cl_ctx, device, 0, &err);
    cl_event gate = clCreateUserEvent(cl_ctx, &err);
    if (!other || !gate) {
        fail("%s: no second queue or user event", what);
        exit(1);
    }
    fault_arm_named("clEnqueueNDRangeKernel", 2);
    const clpsa_status first =
        clpsa_plan_run(plan, queue, buf_q, buf_k, buf_v, buf_out, 1, &gate, NULL);
    fault_disarm();
    if (first == CLPSA_OK || !fault_fired())
        fail("%s: run 1 did not fail at its second kernel launch", what);
    cl_event second = NULL;
    if (clpsa_plan_run(plan, other, buf_q, buf_k, buf_v, buf_out, 0, NULL, &second) != CLPSA_OK)
        fail("%s: run 2 failed: %s", what, clpsa_context_last_error(ctx));
    clFlush(other);
    for (int i = 0; second && i < 30; ++i) {
        cl_int state = CL_QUEUED;
        clGetEventInfo(second, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof state, &state, NULL);
        if (state == CL_COMPLETE) {
            fail("%s: run 2 completed before the commands run 1 left behind could start", what);
            break;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    clSetUserEventStatus(gate, CL_COMPLETE);
    clFinish(other);
    clFinish(queue);
    read_output(got);
    for (size_t i = 0; i < COUNT; ++i)
        if (!close_to(got[i], want[i])) {
            fail("%s: output %zu is %g after run 2, not %g", what, i, (double)got[i],
                 (double)want[i]);
            break;
        }
    if (second)
        clReleaseEvent(second);
    clReleaseEvent(gate);
    clReleaseCommandQueue(other);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    printf("test_faults: %s: checked\n", what);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
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

/* ---- Multi-device plans (argument `multi`) ---- */
typedef struct multi_walk {
    const char *name;
    bool shared; /* both devices in one cl_context, else one cl_context each */
    bool bnhd;   /* whole tensors [B, N, H, D]: slices are copied, not used in place */
    bool timed;  /* timed_weights: creation times each device */
} multi_walk;

static cl_device_id mdevices[2];
static cl_context shared_cl, own_cl[2];

static clpsa_context *wrap_on(cl_context cl, cl_device_id dev) {
    cl_int err = CL_SUCCESS;
    cl_command_queue q = clCreateCommandQueue(cl, dev, 0, &err);
    if (err != CL_SUCCESS)
        return NULL;
    clpsa_context_desc cd;
    clpsa_context_desc_init(&cd);
    cd.cl_context = cl;
    cd.device = dev;
    cd.queue = q;
    cd.log = quiet_log;
    cd.disable_disk_cache = 1;
    clpsa_context *ctx = NULL;
    clpsa_context_create(&cd, &ctx);
    clReleaseCommandQueue(q);
    return ctx;
}

/* The device whose slice holds element i of the whole output (head i of 2 on device i). */
static int element_device(const multi_walk *w, size_t i) {
    return w->bnhd ? (int)(i / DIM % HEADS) : (int)(i / ((size_t)SEQ * DIM));
}

static void multi_step(const multi_walk *w, clpsa_context *ctxs[2], cl_mem bufs[4], float *want,
                       long nth, const char *what) {
    clpsa_multi_device dv[2] = {{ctxs[0], NULL}, {ctxs[1], NULL}};
    clpsa_multi_desc md;
    clpsa_multi_desc_init(&md);
    md.devices = dv;
    md.num_devices = 2;
    md.timed_weights = w->timed;
    clpsa_plan_desc pd = plan_desc(KIND_DENSE);
    if (w->bnhd) {
        pd.q_strides = pd.k_strides = pd.v_strides = pd.out_strides =
            clpsa_strides_bnhd(HEADS, SEQ, DIM);
    }
    cl_command_queue home = clpsa_context_queue(ctxs[0]);
    uint32_t *words = malloc(COUNT * sizeof *words);
    float *got = malloc(COUNT * sizeof *got);
    if (!words || !got)
        exit(1);
    for (size_t i = 0; i < COUNT; ++i)
        words[i] = POISON;
    clEnqueueWriteBuffer(home, bufs[3], CL_TRUE, 0, COUNT * sizeof *words, words, 0, NULL, NULL);

    clpsa_multi_plan *mp = NULL;
    cl_event events[2] = {NULL, NULL};
    clpsa_status created = CLPSA_OK, ran = CLPSA_OK, finished = CLPSA_OK;
    char why[512] = "";
    fault_track(true);
    fault_arm(nth);
    created = clpsa_multi_plan_create(&md, &pd, &mp);
    if (created == CLPSA_OK) {
        ran = clpsa_multi_plan_run(mp, bufs[0], bufs[1], bufs[2], bufs[3], 0, NULL, events);
        if (ran == CLPSA_OK)
            finished = clpsa_multi_plan_finish(mp);
        snprintf(why, sizeof why, "%s", clpsa_multi_plan_last_error(mp));
    } else {
        snprintf(why, sizeof why, "%s", clpsa_context_last_error(NULL));
    }
    fault_disarm();
    const clpsa_status failed = created != CLPSA_OK ? created : ran != CLPSA_OK ? ran : finished;
    const char *call = created != CLPSA_OK ? "clpsa_multi_plan_create"
                       : ran != CLPSA_OK   ? "clpsa_multi_plan_run"
                                           : "clpsa_multi_plan_finish";
    if (failed != CLPSA_OK) {
        if (!why[0])
            fail("%s: %s failed (%s) without a last_error", what, call, clpsa_status_name(failed));
        if (created != CLPSA_OK && mp)
            fail("%s: creation failed but returned a plan", what);
        if (ran != CLPSA_OK && (events[0] || events[1]))
            fail("%s: the run failed but returned events", what);
        if (fault_fired())
            check_fault_status(what, call, failed);
        else
            fail("%s: %s failed (%s) without a fault: %s", what, call, clpsa_status_name(failed),
                 why);
    } else if (!events[0] || !events[1]) {
        fail("%s: the run succeeded without an event per device", what);
    }
    clpsa_multi_plan_destroy(mp);
    for (int i = 0; i < 2; ++i)
        clFinish(clpsa_context_queue(ctxs[i]));
    clEnqueueReadBuffer(home, bufs[3], CL_TRUE, 0, COUNT * sizeof *got, got, 0, NULL, NULL);
    /* A run that failed at device d enqueued nothing of d and the devices after it; the
     * devices before it may have written their slices. */
    int first_untouched = 0; /* a failure that names no device came before any */
    const char *at = ran != CLPSA_OK ? strstr(why, "device ") : NULL;
    if (at && (sscanf(at, "device %d", &first_untouched) != 1 || first_untouched < 0 ||
               first_untouched > 1)) {
        fail("%s: the run's last_error names no device index: %s", what, why);
        first_untouched = 0;
    }
    for (size_t i = 0; i < COUNT; ++i) {
        uint32_t word;
        memcpy(&word, &got[i], sizeof word);
        const bool poison = word == POISON, right = close_to(got[i], want[i]);
        const int dev = element_device(w, i);
        const bool complete = created == CLPSA_OK && ran == CLPSA_OK;
        if (complete                                        ? !right
            : created != CLPSA_OK || dev >= first_untouched ? !poison
                                                            : !poison && !right) {
            fail("%s: output %zu (device %d) is %g after %s %s (expected %s)", what, i, dev,
                 (double)got[i], call, failed == CLPSA_OK ? "succeeded" : "failed",
                 complete ? "the fault-free result" : "untouched, or the fault-free result");
            break;
        }
    }
    for (int i = 0; i < 2; ++i)
        if (events[i])
            clReleaseEvent(events[i]);
    /* Host-staging plans release their user events from a driver callback. */
    for (int i = 0; i < 300 && fault_live_objects() != 0; ++i)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    fault_track(false);
    if (fault_live_objects() != 0)
        fail("%s: %ld OpenCL object(s) still held after destroying the plan", what,
             fault_live_objects());
    free(words);
    free(got);
}

static long walk_multi(const multi_walk *w) {
    cl_context home_cl = w->shared ? shared_cl : own_cl[0];
    clpsa_context *ctxs[2] = {wrap_on(home_cl, mdevices[0]),
                              wrap_on(w->shared ? shared_cl : own_cl[1], mdevices[1])};
    if (!ctxs[0] || !ctxs[1]) {
        fail("%s: no contexts", w->name);
        return 0;
    }
    cl_mem bufs[4];
    cl_int err = CL_SUCCESS;
    float *host = malloc(COUNT * sizeof *host);
    float *want = malloc(COUNT * sizeof *want);
    if (!host || !want)
        exit(1);
    uint64_t x = 0x2545F4914F6CDD1Dull ^ (uint64_t)getpid();
    for (int t = 0; t < 4; ++t) {
        bufs[t] = clCreateBuffer(home_cl, CL_MEM_READ_WRITE, COUNT * sizeof(float), NULL, &err);
        for (size_t i = 0; i < COUNT; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            host[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 4.0 - 2.0);
        }
        if (!bufs[t] || (t < 3 && clEnqueueWriteBuffer(clpsa_context_queue(ctxs[0]), bufs[t],
                                                       CL_TRUE, 0, COUNT * sizeof *host, host, 0,
                                                       NULL, NULL) != CL_SUCCESS))
            exit(1);
    }
    /* Baseline (it also fills both contexts' program caches): one plan over all heads on the
     * home device. */
    clpsa_plan_desc pd = plan_desc(KIND_DENSE);
    if (w->bnhd)
        pd.q_strides = pd.k_strides = pd.v_strides = pd.out_strides =
            clpsa_strides_bnhd(HEADS, SEQ, DIM);
    clpsa_plan *single = NULL;
    if (clpsa_plan_create(ctxs[1], &pd, &single) != CLPSA_OK) /* device 1's programs too */
        exit(1);
    clpsa_plan_destroy(single);
    if (clpsa_plan_create(ctxs[0], &pd, &single) != CLPSA_OK ||
        clpsa_plan_run(single, NULL, bufs[0], bufs[1], bufs[2], bufs[3], 0, NULL, NULL) !=
            CLPSA_OK ||
        clEnqueueReadBuffer(clpsa_context_queue(ctxs[0]), bufs[3], CL_TRUE, 0, COUNT * sizeof *want,
                            want, 0, NULL, NULL) != CL_SUCCESS) {
        fail("%s: the single-device baseline failed", w->name);
        exit(1);
    }
    clpsa_plan_destroy(single);
    char what[128];
    snprintf(what, sizeof what, "%s baseline", w->name);
    multi_step(w, ctxs, bufs, want, 0, what);
    long n = 1;
    for (;; ++n) {
        snprintf(what, sizeof what, "%s fault %ld", w->name, n);
        multi_step(w, ctxs, bufs, want, n, what);
        snprintf(what + strlen(what), sizeof what - strlen(what), " (%s)", fault_fired_at());
        if (!fault_fired())
            break;
    }
    printf("test_faults: multi-device %s: %ld faults injected (clpsa_multi_plan_create, _run, "
           "_finish)\n",
           w->name, n - 1);
    for (int t = 0; t < 4; ++t)
        clReleaseMemObject(bufs[t]);
    clpsa_context_destroy(ctxs[0]);
    clpsa_context_destroy(ctxs[1]);
    free(host);
    free(want);
    return n - 1;
}

static int multi_main(void) {
    cl_platform_id platforms[8];
    cl_uint np = 0;
    if (clGetPlatformIDs(8, platforms, &np) != CL_SUCCESS)
        return 1;
    for (cl_uint p = 0; p < np && !mdevices[1]; ++p) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 2, mdevices, &nd) != CL_SUCCESS ||
            nd < 2)
            mdevices[0] = mdevices[1] = NULL;
    }
    if (!mdevices[1]) {
        fprintf(stderr, "test_faults multi: no OpenCL platform with two devices; with PoCL set "
                        "POCL_DEVICES=\"pthread pthread\"\n");
        return 1;
    }
    cl_int err = CL_SUCCESS;
    shared_cl = clCreateContext(NULL, 2, mdevices, NULL, NULL, &err);
    for (int i = 0; i < 2 && err == CL_SUCCESS; ++i)
        own_cl[i] = clCreateContext(NULL, 1, &mdevices[i], NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return 1;
    static const multi_walk walks[] = {
        {"one cl_context, slices in place", true, false, false},
        {"one cl_context, slices copied, timed weights", true, true, true},
        {"a cl_context per device, host staging", false, false, false},
    };
    const double t0 = now_s();
    long total = 0;
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; ++i)
        total += walk_multi(&walks[i]);
    printf("test_faults: %ld faults injected in all in %.0f s, %d failure(s)\n", total,
           now_s() - t0, failures);
    clReleaseContext(shared_cl);
    clReleaseContext(own_cl[0]);
    clReleaseContext(own_cl[1]);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "multi") == 0)
        return multi_main();
    if (!setup())
        return 1;
    char cache_dir[] = "/tmp/clpsa-faults-XXXXXX";
    if (!mkdtemp(cache_dir)) {
        fprintf(stderr, "test_faults: mkdtemp failed\n");
        return 1;
    }
    const double t0 = now_s();
    long total = 0;
    total += walk_own_context();
    total += walk_plan(KIND_DENSE, NULL);
    total += walk_plan(KIND_PSA, NULL);
    total += walk_plan(KIND_DENSE, cache_dir);
    total += walk_plan(KIND_PSA, cache_dir);
    total += walk_plan(KIND_BUDGET, cache_dir);
    total += walk_decode();
    total += walk_supply(KIND_PSA);
    total += walk_supply(KIND_BUDGET);
    check_order_after_failed_run(KIND_PSA, false);
    check_order_after_failed_run(KIND_DENSE, true);
    printf("test_faults: %ld faults injected in all in %.0f s, %d failure(s)\n", total,
           now_s() - t0, failures);
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
