/* SPDX-License-Identifier: Apache-2.0 */
/* The tuner: searches each kernel family's parameter space on the context's device, checks
 * every candidate's result against the defaults' and keeps the fastest. It drives plans
 * through their public create/run calls with the context's overrides set per candidate;
 * nothing in plans depends on it. */
#include "kernel_variant.h"

#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum family_kind {
    FAMILY_DENSE,
    FAMILY_ATTEND,
    FAMILY_ESTIMATE,
    FAMILY_ASSIGN,
    FAMILY_BUDGET, /* budget mode's measurement, on a budget-mode plan */
    FAMILY_DECODE
} family_kind;

/* A family with kernel variants is searched over each variant the device can run, with that
 * variant's own parameters (family.VARIANT is part of the result); assign has one kernel. */
static const struct {
    const char *name;
    int kernel_family; /* clpsa__kernel_family, or -1 for a family of one kernel */
    clpsa__param_id variant_param;
    clpsa__param_id params[2]; /* of a family of one kernel */
    int count;
} families[CLPSA_TUNE_MAX_FAMILIES] = {
    {"dense", CLPSA__FAMILY_DENSE, CLPSA__P_DENSE_VARIANT, {0, 0}, 0},
    {"attend", CLPSA__FAMILY_ATTEND, CLPSA__P_ATTEND_VARIANT, {0, 0}, 0},
    {"estimate", CLPSA__FAMILY_ESTIMATE, CLPSA__P_ESTIMATE_VARIANT, {0, 0}, 0},
    {"assign", -1, CLPSA__PARAM_COUNT, {CLPSA__P_ASSIGN_WG, CLPSA__P_ASSIGN_WG}, 1},
    {"budget", CLPSA__FAMILY_BUDGET, CLPSA__P_BUDGET_VARIANT, {0, 0}, 0},
    {"decode", CLPSA__FAMILY_DECODE, CLPSA__P_DECODE_VARIANT, {0, 0}, 0},
};

void clpsa_tune_desc_init(clpsa_tune_desc *desc) {
    if (desc)
        memset(desc, 0, sizeof *desc);
}

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The problem every candidate of a family runs on. */
typedef struct bench {
    clpsa_context *ctx;
    clpsa_plan_desc desc;
    cl_mem q, k, v, out;
    size_t out_count;
    int8_t *levels; /* fixed level map for attend */
    float *scores;  /* fixed scores for assign */
    size_t cells;
    int repetitions;
} bench;

/* What a candidate produced: the output, the scores or the level map. */
typedef struct outcome {
    float *values;
    int8_t *levels;
    size_t count;
    double ms;
    int variant; /* the id of the variant the family's plan ran (0: a family of one kernel) */
} outcome;

static void outcome_free(outcome *o) {
    free(o->values);
    free(o->levels);
    memset(o, 0, sizeof *o);
}

static double stage_ms(family_kind kind, const clpsa_stage_times *t) {
    switch (kind) {
    case FAMILY_ATTEND:
        return t->attend_ms;
    case FAMILY_ESTIMATE:
    case FAMILY_BUDGET: /* the measurement runs in the estimate stage */
        return t->estimate_ms;
    case FAMILY_ASSIGN:
        return t->assign_ms;
    case FAMILY_DENSE:
    case FAMILY_DECODE:
        break;
    }
    return t->total_ms;
}

/* Runs the family's plan with the context's current overrides: one warm-up, then the minimum
 * over repetitions. */
static clpsa_status run_candidate(bench *b, family_kind kind, outcome *result) {
    memset(result, 0, sizeof *result);
    clpsa_plan *plan = NULL;
    clpsa_status status = clpsa_plan_create(b->ctx, &b->desc, &plan);
    if (status == CLPSA_OK && kind == FAMILY_ATTEND)
        status = clpsa_plan_set_levels(plan, b->levels);
    if (status == CLPSA_OK && kind == FAMILY_ASSIGN)
        status = clpsa_plan_set_scores(plan, b->scores);
    double best = INFINITY;
    for (int r = -1; status == CLPSA_OK && r < b->repetitions; ++r) {
        cl_event event = NULL;
        status = clpsa_plan_run(plan, NULL, b->q, b->k, b->v, b->out, 0, NULL, &event);
        if (status != CLPSA_OK)
            break;
        const cl_int err = clWaitForEvents(1, &event);
        double ms = 0.0;
        if (kind == FAMILY_DENSE || kind == FAMILY_DECODE) {
            /* Decode runs two kernels: from the first one's start to the run's end. */
            const cl_event first =
                kind == FAMILY_DECODE && plan->decode_first ? plan->decode_first : event;
            cl_ulong start = 0, end = 0;
            clGetEventProfilingInfo(first, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL);
            clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL);
            ms = (double)(end - start) * 1e-6;
        } else {
            clpsa_stage_times times;
            status = clpsa_plan_read_stage_times(plan, &times);
            ms = stage_ms(kind, &times);
        }
        clReleaseEvent(event);
        if (err != CL_SUCCESS)
            status = clpsa__fail_cl(b->ctx, err, "clWaitForEvents");
        if (r >= 0 && ms < best)
            best = ms;
    }
    if (status == CLPSA_OK) {
        result->ms = best;
        const clpsa__kernel_variant *ran = kind == FAMILY_DENSE      ? plan->dense_variant
                                           : kind == FAMILY_ATTEND   ? plan->attend_variant
                                           : kind == FAMILY_ESTIMATE ? plan->estimate_variant
                                           : kind == FAMILY_BUDGET   ? plan->budget_variant
                                           : kind == FAMILY_DECODE   ? plan->decode_variant
                                                                     : NULL;
        result->variant = ran ? ran->id : 0;
        if (kind == FAMILY_ASSIGN) {
            result->count = b->cells;
            result->levels = malloc(b->cells);
            status = result->levels ? clpsa_plan_read_levels(plan, result->levels)
                                    : CLPSA_ERROR_OUT_OF_MEMORY;
        } else if (kind == FAMILY_ESTIMATE || kind == FAMILY_BUDGET) {
            result->count = b->cells;
            result->values = malloc(b->cells * sizeof(float));
            status = result->values ? clpsa_plan_read_scores(plan, result->values)
                                    : CLPSA_ERROR_OUT_OF_MEMORY;
        } else {
            result->count = b->out_count;
            result->values = malloc(b->out_count * sizeof(float));
            status = result->values
                         ? (clEnqueueReadBuffer(clpsa_context_queue(b->ctx), b->out, CL_TRUE, 0,
                                                b->out_count * sizeof(float), result->values, 0,
                                                NULL, NULL) == CL_SUCCESS
                                ? CLPSA_OK
                                : CLPSA_ERROR_OPENCL)
                         : CLPSA_ERROR_OUT_OF_MEMORY;
        }
    }
    clpsa_plan_destroy(plan);
    if (status != CLPSA_OK)
        outcome_free(result);
    return status;
}

/* Same result within rounding: outputs and scores within the relative L2 that rounding allows
 * (fp32 storage: accumulation in another order, 1e-5; 16-bit storage: the matrix-unit
 * variants round probabilities to the storage type, 2^-8 for bf16, 2^-11 for fp16), level
 * maps identical (tuning must never change an assignment). */
static bool agrees(const outcome *reference, const outcome *candidate, clpsa_dtype dtype) {
    if (reference->levels)
        return memcmp(reference->levels, candidate->levels, reference->count) == 0;
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < reference->count; ++i) {
        const double d = (double)candidate->values[i] - reference->values[i];
        if (!isfinite(candidate->values[i]))
            return false;
        num += d * d;
        den += (double)reference->values[i] * reference->values[i];
    }
    const double limit = dtype == CLPSA_DTYPE_BF16   ? 0x1p-8
                         : dtype == CLPSA_DTYPE_FP16 ? 0x1p-11
                                                     : 1e-5;
    return num <= limit * limit * (den > 0.0 ? den : 1.0);
}

static clpsa_status bench_init(bench *b, clpsa_context *ctx, const clpsa_tune_desc *t) {
    memset(b, 0, sizeof *b);
    b->ctx = ctx;
    b->repetitions = t->repetitions ? t->repetitions : 5;
    clpsa_plan_desc_init(&b->desc);
    b->desc.batch = t->batch ? t->batch : 1;
    b->desc.heads_q = t->heads ? t->heads : 2;
    b->desc.seq_q = t->seq ? t->seq : 2048;
    b->desc.head_dim = t->head_dim ? t->head_dim : 64;
    b->desc.dtype = t->dtype ? t->dtype : CLPSA_DTYPE_FP32;
    b->desc.out_dtype = CLPSA_DTYPE_FP32; /* compare candidates without output rounding */
    const size_t count = (size_t)b->desc.batch * b->desc.heads_q * b->desc.seq_q * b->desc.head_dim;
    b->out_count = count;
    const size_t bytes = count * clpsa_dtype_size(b->desc.dtype);
    clpsa_status status = clpsa_context_alloc(ctx, bytes, &b->q);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, bytes, &b->k);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, bytes, &b->v);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, count * sizeof(float), &b->out);
    float *host = malloc(count * sizeof(float));
    void *stored = malloc(bytes);
    if (status == CLPSA_OK && (!host || !stored))
        status = clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "tuning inputs");
    uint64_t x = 0x5eed;
    for (int t3 = 0; status == CLPSA_OK && t3 < 3; ++t3) {
        for (size_t i = 0; i < count; ++i) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            host[i] = (float)((double)(x >> 40) / 16777216.0 * 2.0 - 1.0);
        }
        clpsa_convert_from_float(b->desc.dtype, host, stored, count);
        const cl_mem target = t3 == 0 ? b->q : t3 == 1 ? b->k : b->v;
        if (clEnqueueWriteBuffer(ctx->queue, target, CL_TRUE, 0, bytes, stored, 0, NULL, NULL) !=
            CL_SUCCESS)
            status = clpsa__fail(ctx, CLPSA_ERROR_OPENCL, "writing tuning inputs");
    }
    free(host);
    free(stored);
    if (status != CLPSA_OK)
        return status;
    /* The level map and scores of the problem: levels mixed at density about 0.2. */
    clpsa_plan *probe = NULL;
    status = clpsa_plan_create(ctx, &b->desc, &probe);
    clpsa_block_grid grid;
    if (status == CLPSA_OK)
        status = clpsa_plan_block_grid(probe, &grid);
    clpsa_plan_destroy(probe);
    if (status != CLPSA_OK)
        return status;
    b->cells = grid.count;
    b->levels = malloc(grid.count);
    b->scores = malloc(grid.count * sizeof(float));
    if (!b->levels || !b->scores)
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "tuning level map");
    static const int8_t mix[10] = {1, 0, 2, 0, 4, 0, 8, 0, 0, 1};
    for (size_t c = 0; c < grid.count; ++c) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        b->levels[c] = mix[(x >> 33) % 10];
        b->scores[c] = (float)((x >> 40) % 1000 + 1);
    }
    return CLPSA_OK;
}

static void bench_free(bench *b) {
    cl_mem buffers[4] = {b->q, b->k, b->v, b->out};
    for (int i = 0; i < 4; ++i)
        if (buffers[i])
            clReleaseMemObject(buffers[i]);
    free(b->levels);
    free(b->scores);
}

/* Every candidate of a family, each a full set of values (0: not set by the candidate): per
 * variant the device can run, the mixed-radix product of its parameters' choices. */
typedef struct candidates {
    int (*values)[CLPSA__PARAM_COUNT];
    int count;
} candidates;

static void add_product(candidates *c, int variant_param, int variant_id,
                        const clpsa__param_id *params, int param_count, bool count_only) {
    int size = 1;
    for (int p = 0; p < param_count; ++p)
        size *= clpsa__param_defs[params[p]].choice_count;
    for (int index = 0; index < size; ++index, ++c->count) {
        if (count_only)
            continue;
        int *values = c->values[c->count];
        memset(values, 0, sizeof c->values[0]);
        if (variant_param < CLPSA__PARAM_COUNT)
            values[variant_param] = variant_id;
        int rest = index;
        for (int p = 0; p < param_count; ++p) {
            const clpsa__param_def *def = &clpsa__param_defs[params[p]];
            values[params[p]] = def->choices[rest % def->choice_count];
            rest /= def->choice_count;
        }
    }
}

static void list_candidates(const clpsa_context *ctx, int f, candidates *c, bool count_only) {
    c->count = 0;
    if (families[f].kernel_family < 0) {
        add_product(c, CLPSA__PARAM_COUNT, 0, families[f].params, families[f].count, count_only);
        return;
    }
    size_t n = 0;
    const clpsa__kernel_variant *const *variants =
        clpsa__kernel_variants((clpsa__kernel_family)families[f].kernel_family, &n);
    for (size_t v = 0; v < n; ++v) {
        char why[256];
        if (!variants[v]->device_fits(&ctx->info, why, sizeof why))
            continue;
        int param_count = 0;
        while (param_count < CLPSA__VARIANT_MAX_PARAMS &&
               variants[v]->params[param_count] != CLPSA__PARAM_COUNT)
            ++param_count;
        add_product(c, families[f].variant_param, variants[v]->id, variants[v]->params, param_count,
                    count_only);
    }
}

static clpsa_status make_candidates(clpsa_context *ctx, int f, candidates *c) {
    list_candidates(ctx, f, c, true);
    c->values = calloc((size_t)c->count + 1, sizeof c->values[0]);
    if (!c->values)
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "tuning");
    list_candidates(ctx, f, c, false);
    return CLPSA_OK;
}

/* Query rows of the decode family's problem: one step of a few rows against the keys. */
#define DECODE_TUNE_ROWS 4

static clpsa_status tune_family_on(bench *b, int f, family_kind kind, double budget,
                                   const clpsa_tune_desc *t, clpsa_tune_family_result *r,
                                   int *winners);

static clpsa_status tune_family(bench *b, int f, double budget, const clpsa_tune_desc *t,
                                clpsa_tune_family_result *r, int *winners) {
    const family_kind kind = (family_kind)f;
    snprintf(r->family, sizeof r->family, "%s", families[f].name);
    b->desc.method =
        kind == FAMILY_DENSE || kind == FAMILY_DECODE ? CLPSA_METHOD_DENSE : CLPSA_METHOD_PSA;
    /* The measurement's candidates are compared on what it measures, the block masses (S); a
     * level map could flip at a near-tie of the allocation, which rounding may move. */
    b->desc.mode = kind == FAMILY_BUDGET ? CLPSA_MODE_BUDGET : 0;
    /* Decode: a few query rows against the problem's keys (the first rows of its Q). */
    const int seq_q = b->desc.seq_q;
    const size_t out_count = b->out_count;
    if (kind == FAMILY_DECODE) {
        b->desc.seq_q = DECODE_TUNE_ROWS;
        b->desc.seq_k = seq_q;
        b->out_count = out_count / (size_t)seq_q * DECODE_TUNE_ROWS;
    }
    const clpsa_status tuned = tune_family_on(b, f, kind, budget, t, r, winners);
    b->desc.seq_q = seq_q;
    b->desc.seq_k = 0;
    b->out_count = out_count;
    return tuned;
}

static clpsa_status tune_family_on(bench *b, int f, family_kind kind, double budget,
                                   const clpsa_tune_desc *t, clpsa_tune_family_result *r,
                                   int *winners) {
    clpsa_context *ctx = b->ctx;
    const double start = now_seconds();

    /* The reference: the generic defaults of this device type. */
    const bool cpu = (ctx->info.type & CL_DEVICE_TYPE_CPU) != 0;
    int values[CLPSA__PARAM_COUNT];
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        values[id] = cpu ? clpsa__param_defs[id].default_cpu : clpsa__param_defs[id].default_gpu;
    memcpy(ctx->overrides, values, sizeof values);
    outcome reference;
    clpsa_status status = run_candidate(b, kind, &reference);
    if (status != CLPSA_OK)
        return status;
    r->default_ms = r->best_ms = reference.ms;
    const int reference_variant = reference.variant;
    int best_values[CLPSA__PARAM_COUNT];
    memcpy(best_values, values, sizeof values);

    /* Candidates in a shuffled order, so a budget cut leaves a random sample. */
    candidates space;
    status = make_candidates(ctx, f, &space);
    const int size = space.count;
    int *order = status == CLPSA_OK ? malloc(sizeof(int) * (size_t)(size + 1)) : NULL;
    if (!order) {
        free(space.values);
        outcome_free(&reference);
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "tuning");
    }
    for (int i = 0; i < size; ++i)
        order[i] = i;
    uint64_t x = 0x7u + (uint64_t)f;
    for (int i = size - 1; i > 0; --i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const int j = (int)((x >> 33) % (uint64_t)(i + 1));
        const int swap = order[i];
        order[i] = order[j];
        order[j] = swap;
    }
    /* The fastest accepted candidate of each variant id (index into space), so the cache also
     * holds tuned values for the variants that lost (a later VARIANT override uses them). */
    const clpsa__param_id variant_param = families[f].variant_param;
    enum { MAX_VARIANT_ID = 16 };
    int variant_best[MAX_VARIANT_ID];
    double variant_ms[MAX_VARIANT_ID];
    bool variant_refused[MAX_VARIANT_ID]; /* cannot run this problem: nothing to tune */
    bool excluded = false;                /* some variant cannot */
    for (int v = 0; v < MAX_VARIANT_ID; ++v) {
        variant_best[v] = -1;
        variant_ms[v] = INFINITY;
        variant_refused[v] = false;
    }
    r->exhaustive = 1;
    for (int i = 0; i < size; ++i) {
        /* At least one candidate besides the reference, however small the budget. */
        if (r->tried > 0 && now_seconds() - start > budget) {
            r->exhaustive = 0;
            break;
        }
        const int *candidate = space.values[order[i]];
        for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
            ctx->overrides[id] = candidate[id] ? candidate[id] : values[id];
        outcome got;
        ctx->override_refused = false;
        const clpsa_status s = run_candidate(b, kind, &got);
        const int id = variant_param < CLPSA__PARAM_COUNT ? candidate[variant_param] : 0;
        const bool refused = s != CLPSA_OK && ctx->override_refused;
        if (!refused)
            r->tried++;
        if (refused) {
            /* A variant that cannot run this problem (an fp32 one on the matrix units): not a
             * candidate here, neither tried nor rejected, and none of its values are tuned. */
            if (id >= 0 && id < MAX_VARIANT_ID)
                variant_refused[id] = true;
            excluded = true;
            clpsa__log(ctx, CLPSA_LOG_DEBUG, "tune %s: candidate %d does not apply (%s)",
                       families[f].name, order[i], clpsa_context_last_error(ctx));
            clpsa__clear_error(ctx);
        } else if (s != CLPSA_OK || !agrees(&reference, &got, b->desc.dtype)) {
            r->rejected++;
            clpsa__log(ctx, CLPSA_LOG_INFO, "tune %s: candidate %d rejected (%s)", families[f].name,
                       order[i], s != CLPSA_OK ? clpsa_status_name(s) : "result differs");
            clpsa__clear_error(ctx);
        } else {
            if (id >= 0 && id < MAX_VARIANT_ID && got.ms < variant_ms[id]) {
                variant_ms[id] = got.ms;
                variant_best[id] = order[i];
            }
            if (got.ms < r->best_ms) {
                r->best_ms = got.ms;
                memcpy(best_values, ctx->overrides, sizeof best_values);
            }
        }
        outcome_free(&got);
        if (t->progress)
            t->progress(t->progress_user, families[f].name, i + 1, size, r->best_ms);
    }
    free(order);
    outcome_free(&reference);
    /* The losing variants' own tunables first (their defaults where the budget ran out before
     * any of their candidates), then the winner's own values: the parameters its candidate
     * set. The reference names no variant: when it won, it stands for the variant it ran with
     * the default values. A variant the problem excludes keeps what the cache had. */
    for (int c = 0; c < size; ++c) {
        const int id = variant_param < CLPSA__PARAM_COUNT ? space.values[c][variant_param] : 0;
        if (id >= 0 && id < MAX_VARIANT_ID && variant_refused[id])
            continue;
        const int *from = id >= 0 && id < MAX_VARIANT_ID && variant_best[id] >= 0
                              ? space.values[variant_best[id]]
                              : values;
        for (int p = 0; p < CLPSA__PARAM_COUNT; ++p)
            if (p != (int)variant_param && space.values[c][p])
                winners[p] = from[p];
    }
    if (variant_param < CLPSA__PARAM_COUNT && best_values[variant_param] == 0)
        best_values[variant_param] = reference_variant;
    int family_values[CLPSA__PARAM_COUNT] = {0};
    int winner = -1;
    for (int c = 0; c < size && winner < 0; ++c) {
        bool same = true;
        for (int id = 0; id < CLPSA__PARAM_COUNT && same; ++id)
            same = !space.values[c][id] || space.values[c][id] == best_values[id];
        if (same)
            winner = c;
    }
    /* Where the problem excluded a variant (its storage type, its head dimension), the winner
     * stands for this kind of problem only: the cache keeps its tunables but not its VARIANT,
     * so plans the excluded variant can run still get it (an fp32 run on the H200 would else
     * send bf16 plans past the matrix units). */
    for (int id = 0; id < CLPSA__PARAM_COUNT && winner >= 0; ++id)
        if (space.values[winner][id]) {
            family_values[id] = best_values[id];
            if (!(excluded && id == (int)variant_param))
                winners[id] = best_values[id];
        }
    free(space.values);
    clpsa__params_format(family_values, r->best, sizeof r->best);
    return CLPSA_OK;
}

static bool wanted(const char *list, const char *name) {
    if (!list || !*list)
        return true;
    const size_t length = strlen(name);
    for (const char *at = list; *at;) {
        const size_t item = strcspn(at, ",");
        if (item == length && strncmp(at, name, length) == 0)
            return true;
        at += item + (at[item] == ',');
    }
    return false;
}

static clpsa_status tune_locked(clpsa_context *ctx, const clpsa_tune_desc *desc,
                                clpsa_tune_result *out);

/* Tuning sets the context's overrides candidate by candidate: it holds the context's lock
 * throughout, so plans other threads create meanwhile wait, then see the tuned values, never a
 * candidate's. */
clpsa_status clpsa_tune(clpsa_context *ctx, const clpsa_tune_desc *desc, clpsa_tune_result *out) {
    if (!ctx || !out)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_tune: ctx and out are needed");
    clpsa__lock(ctx);
    const clpsa_status status = tune_locked(ctx, desc, out);
    clpsa__unlock(ctx);
    return status;
}

static clpsa_status tune_locked(clpsa_context *ctx, const clpsa_tune_desc *desc,
                                clpsa_tune_result *out) {
    memset(out, 0, sizeof *out);
    clpsa__clear_error(ctx);
    clpsa_tune_desc defaults;
    if (!desc) {
        clpsa_tune_desc_init(&defaults);
        desc = &defaults;
    }
    if (!ctx->queue)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "clpsa_tune needs a context with a queue (wrap one, or let clpsa "
                           "create the context)");
    if (desc->budget_seconds < 0 || desc->repetitions < 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "clpsa_tune: budget_seconds (%g) and repetitions (%d) must not be "
                           "negative",
                           desc->budget_seconds, desc->repetitions);
    int selected = 0;
    for (int f = 0; f < CLPSA_TUNE_MAX_FAMILIES; ++f)
        selected += wanted(desc->kernels, families[f].name);
    if (selected == 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "kernels = \"%s\" names no kernel family (dense, attend, estimate, "
                           "assign, budget, decode)",
                           desc->kernels);
    int saved_overrides[CLPSA__PARAM_COUNT];
    memcpy(saved_overrides, ctx->overrides, sizeof saved_overrides);
    bench b;
    clpsa_status status = bench_init(&b, ctx, desc);
    const double budget = desc->budget_seconds > 0 ? desc->budget_seconds : 60.0;
    int winners[CLPSA__PARAM_COUNT] = {0};
    for (int f = 0; status == CLPSA_OK && f < CLPSA_TUNE_MAX_FAMILIES; ++f) {
        if (!wanted(desc->kernels, families[f].name))
            continue;
        status = tune_family(&b, f, budget / selected, desc, &out->family[out->families], winners);
        out->families += status == CLPSA_OK;
    }
    memcpy(ctx->overrides, saved_overrides, sizeof saved_overrides);
    bench_free(&b);
    if (status != CLPSA_OK || desc->dry_run)
        return status;
    /* Keep what an earlier tuning of other families wrote. */
    int merged[CLPSA__PARAM_COUNT];
    clpsa__params_cache_load(ctx, merged);
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        if (winners[id])
            merged[id] = winners[id];
    status = clpsa__params_cache_store(ctx, merged);
    if (status != CLPSA_OK)
        return status;
    clpsa__params_cache_path(ctx, out->cache_path, sizeof out->cache_path);
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        if (merged[id]) {
            ctx->params.value[id] = merged[id];
            ctx->params.source[id] = CLPSA__SOURCE_TUNED_CACHE;
        }
    return CLPSA_OK;
}
