/* SPDX-License-Identifier: Apache-2.0 */
/* NaN and infinity in Q, K and V (docs/api.md, "NaN and infinity"): for every method (dense,
 * PSA with the sampled and the antidiagonal estimate, PSA over a supplied level map, the binary
 * baseline) and every kernel variant the device runs, one non-finite element is planted in a
 * fresh random input and the whole output is compared with the double-precision reference,
 * which follows the same policy: element by element, NaN where the reference is NaN, the same
 * infinity where it is infinite, within tolerance elsewhere. The reference's output must hold
 * both non-finite and finite elements, so a case cannot pass by everything being NaN (or
 * nothing). The sparse methods also check the level map: a row of S the estimate makes NaN is
 * NaN on the device too and gets level 1 everywhere, other rows keep the reference's levels.
 *
 * Batch 1 of every case stays finite: a NaN key of batch 0 that the estimate samples makes all
 * of batch 0 dense and NaN, as dense attention would be. */
#include "ref/ref_attention.h"
#include "ref/ref_psa.h"
#include "support/test_support.h"
#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define BATCH 2
#define HEADS_Q 2
#define HEADS_KV 1
#define SEQ 83 /* prime: ragged against every block and tile */
#define DIM 32
#define BLOCK 32
#define POISON_WORD 0x7FC0DEADu /* ts_buffer_poison's fp32 pattern, never a computed NaN */

static clpsa_context *ctx;

typedef enum nf_method {
    NF_DENSE,
    NF_SAMPLED,      /* PSA, sampled estimate */
    NF_ANTIDIAGONAL, /* PSA, antidiagonal estimate, energy mode, causal */
    NF_LEVELS,       /* PSA over a supplied level map holding every level */
    NF_BINARY,       /* the binary baseline (sampled estimate) */
} nf_method;

typedef enum nf_inject {
    NF_NAN_Q,
    NF_INF_Q,
    NF_NAN_K,
    NF_NEG_INF_K,
    NF_NAN_V,
    NF_INF_V,
    NF_HIDDEN_V, /* causal: NaN in K and V of the last key, which only the last row sees */
    NF_INJECTIONS
} nf_inject;

static const char *const inject_names[NF_INJECTIONS] = {"nan-q", "inf-q", "nan-k",        "-inf-k",
                                                        "nan-v", "inf-v", "hidden-nan-kv"};
static const char *const method_names[] = {"dense", "sampled", "antidiagonal", "levels", "binary"};

typedef struct nf_case {
    char name[160];
    nf_method method;
    nf_inject inject;
    int causal;
    clpsa_dtype dtype; /* storage of Q, K, V; the output is fp32, so NaN payloads stay visible */
    char params[64];   /* clpsa_context_set_params: the variants */
} nf_case;

#define MAX_CASES 160
static nf_case cases[MAX_CASES];
static size_t case_count;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    if (!p)
        ts_fail("out of host memory (%zu bytes)", bytes);
    return p;
}

static size_t index_of(int64_t b, int64_t h, int64_t heads, int64_t n, int64_t d) {
    return (size_t)(((b * heads + h) * SEQ + n) * DIM + d);
}

/* Plants the case's non-finite element(s) in batch 0; positions are fixed so each case is
 * reproducible, inside ragged last blocks and tiles as well as early ones. A key or value
 * goes into two key blocks, so that some row of a sparse map surely attends one of them. */
static void inject(nf_inject what, float *q, float *k, float *v) {
    switch (what) {
    case NF_NAN_Q:
        q[index_of(0, 1, HEADS_Q, 40, 3)] = NAN;
        break;
    case NF_INF_Q:
        q[index_of(0, 0, HEADS_Q, 81, 5)] = INFINITY;
        break;
    case NF_NAN_K:
        k[index_of(0, 0, HEADS_KV, 37, 7)] = NAN;
        k[index_of(0, 0, HEADS_KV, 80, 0)] = NAN;
        break;
    case NF_NEG_INF_K:
        k[index_of(0, 0, HEADS_KV, 70, 1)] = -INFINITY;
        k[index_of(0, 0, HEADS_KV, 3, 30)] = -INFINITY;
        break;
    case NF_NAN_V:
        v[index_of(0, 0, HEADS_KV, 5, 2)] = NAN;
        v[index_of(0, 0, HEADS_KV, 50, 31)] = NAN;
        break;
    case NF_INF_V:
        v[index_of(0, 0, HEADS_KV, 66, 4)] = INFINITY;
        v[index_of(0, 0, HEADS_KV, 10, 8)] = -INFINITY;
        break;
    case NF_HIDDEN_V:
        k[index_of(0, 0, HEADS_KV, SEQ - 1, 6)] = NAN;
        v[index_of(0, 0, HEADS_KV, SEQ - 1, 9)] = NAN;
        break;
    default:
        ts_fail("unknown injection %d", (int)what);
    }
}

/* Every level, rows differing, no row empty: level f of block j in row (bh, i). */
static void fill_levels(int8_t *levels, size_t rows, int nk) {
    static const int8_t pattern[5] = {1, 2, 4, 8, 0};
    for (size_t r = 0; r < rows; ++r)
        for (int j = 0; j < nk; ++j)
            levels[r * (size_t)nk + (size_t)j] = pattern[(r + (size_t)j) % 5];
}

static clpsa_plan_desc desc_of(const nf_case *c) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = c->method == NF_DENSE    ? CLPSA_METHOD_DENSE
               : c->method == NF_BINARY ? CLPSA_METHOD_BINARY
                                        : CLPSA_METHOD_PSA;
    d.batch = BATCH;
    d.heads_q = HEADS_Q;
    d.heads_kv = HEADS_KV;
    d.seq_q = SEQ;
    d.seq_k = SEQ;
    d.head_dim = DIM;
    d.causal = c->causal;
    d.dtype = c->dtype;
    d.out_dtype = CLPSA_DTYPE_FP32;
    if (c->method != NF_DENSE) {
        d.block_q = BLOCK;
        d.block_k = BLOCK;
    }
    if (c->method == NF_ANTIDIAGONAL) {
        d.estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
        d.mode = CLPSA_MODE_ENERGY;
    }
    if (c->method == NF_BINARY)
        d.binary_density = 0.5f;
    return d;
}

static ref_psa_params ref_params_of(const nf_case *c) {
    ref_psa_params p;
    ref_psa_params_default(&p);
    p.block_q = BLOCK;
    p.block_k = BLOCK;
    p.causal = c->causal;
    if (c->method == NF_ANTIDIAGONAL)
        p.mode = CLPSA_MODE_ENERGY;
    if (c->method == NF_BINARY) {
        p.binary = 1;
        p.binary_density = 0.5;
    }
    return p;
}

/* got (float) against ref (double) under the policy: NaN for NaN, the same infinity for an
 * infinity, |got - ref| <= atol + rtol |ref| elsewhere. */
static void compare_output(const nf_case *c, const float *got, const double *ref, size_t count) {
    /* fp16 and bf16 inputs: the pyramid is stored rounded (the reference rounds it too), P and
     * the sums stay fp32. */
    const double atol = c->dtype == CLPSA_DTYPE_FP32 ? 2e-4 : 2e-3;
    const double rtol = c->dtype == CLPSA_DTYPE_FP32 ? 2e-3 : 2e-2;
    size_t nonfinite = 0, finite = 0;
    for (size_t i = 0; i < count; ++i) {
        const double r = ref[i];
        const float g = got[i];
        uint32_t word;
        memcpy(&word, &g, sizeof word);
        if (word == POISON_WORD)
            ts_fail("%s: output element %zu was never written", c->name, i);
        if (isnan(r)) {
            ++nonfinite;
            if (!isnan(g))
                ts_fail("%s: element %zu (row %zu) is %g, the reference is NaN", c->name, i,
                        i / DIM, (double)g);
        } else if (isinf(r)) {
            ++nonfinite;
            if (!isinf(g) || (g > 0) != (r > 0))
                ts_fail("%s: element %zu (row %zu) is %g, the reference is %g", c->name, i, i / DIM,
                        (double)g, r);
        } else {
            ++finite;
            if (!isfinite(g) || fabs((double)g - r) > atol + rtol * fabs(r))
                ts_fail("%s: element %zu (row %zu) is %g, the reference is %.9g", c->name, i,
                        i / DIM, (double)g, r);
        }
    }
    /* A case in which everything (or nothing) is non-finite tests nothing. */
    if (nonfinite == 0 || finite == 0)
        ts_fail("%s: the reference has %zu non-finite and %zu finite elements; the case must "
                "have both",
                c->name, nonfinite, finite);
}

/* The level map the device used against the reference's, and S where the device estimated
 * it: rows of S that are NaN on one side are NaN on the other and level 1 on every block the
 * row can see (0 on those wholly in its causal future). */
static void check_levels(const nf_case *c, clpsa_plan *plan, const ref_attention_problem *prob,
                         const float *q, const float *k, const int8_t *levels,
                         const clpsa_plan_desc *resolved, const clpsa_block_grid *grid) {
    const size_t rows = grid->count / (size_t)grid->blocks_k;
    const int nk = grid->blocks_k;
    float *s = xmalloc(grid->count * sizeof *s);
    double *ref_s = xmalloc(grid->count * sizeof *ref_s);
    int8_t *ref_m = xmalloc(grid->count);
    int *near = xmalloc(rows * sizeof *near);
    ts_check(ctx, clpsa_plan_read_scores(plan, s));
    if (c->method == NF_ANTIDIAGONAL)
        assert_int_equal(ref_psa_estimate_antidiagonal(
                             prob, BLOCK, BLOCK,
                             resolved->antidiagonal_stride ? resolved->antidiagonal_stride : 8, q,
                             k, ref_s),
                         0);
    else
        assert_int_equal(ref_psa_estimate_sampled(prob, BLOCK, BLOCK, resolved->sample_q,
                                                  resolved->sample_k, resolved->seed, q, k, ref_s),
                         0);
    const ref_psa_params params = ref_params_of(c);
    assert_int_equal(ref_psa_assign(prob, &params, ref_s, k, ref_m, near), 0);
    size_t nan_rows = 0;
    for (size_t r = 0; r < rows; ++r) {
        int ref_nan = 0, got_nan = 0;
        for (int j = 0; j < nk; ++j) {
            ref_nan |= isnan(ref_s[r * (size_t)nk + (size_t)j]);
            got_nan |= isnan(s[r * (size_t)nk + (size_t)j]);
        }
        if (ref_nan != got_nan)
            ts_fail("%s: row %zu of S is %sNaN on the device but %sin the reference", c->name, r,
                    got_nan ? "" : "not ", ref_nan ? "NaN " : "finite ");
        nan_rows += (size_t)ref_nan;
        for (int j = 0; j < nk; ++j) {
            const size_t x = r * (size_t)nk + (size_t)j;
            if (ref_nan && !isnan(s[x]))
                ts_fail("%s: S row %zu is NaN in the reference, block %d is %g", c->name, r, j,
                        (double)s[x]);
            if (!ref_nan && fabs((double)s[x] - ref_s[x]) > 1e-5 + 1e-4 * fabs(ref_s[x]))
                ts_fail("%s: S[%zu][%d] = %g, the reference %g", c->name, r, j, (double)s[x],
                        ref_s[x]);
            const int future = ref_psa_future_block((int)(r % (size_t)grid->blocks_q), j, BLOCK,
                                                    BLOCK, prob->seq_q, prob->seq_k, prob->causal);
            if (ref_nan && levels[x] != (future ? 0 : 1))
                ts_fail("%s: row %zu has a NaN S but block %d has level %d, not %d", c->name, r, j,
                        (int)levels[x], future ? 0 : 1);
            if (!near[r] && levels[x] != ref_m[x])
                ts_fail("%s: level of row %zu block %d is %d, the reference %d", c->name, r, j,
                        (int)levels[x], (int)ref_m[x]);
        }
    }
    /* Rows of batch 1 never see a non-finite value. */
    for (size_t r = rows / 2; r < rows; ++r)
        for (int j = 0; j < nk; ++j)
            if (isnan(s[r * (size_t)nk + (size_t)j]))
                ts_fail("%s: S row %zu of the finite batch is NaN", c->name, r);
    (void)nan_rows;
    free(s);
    free(ref_s);
    free(ref_m);
    free(near);
}

static void test_nonfinite_case(void **state) {
    const nf_case *c = *state;
    ts_case_begin(c->name);
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    const size_t q_count = (size_t)BATCH * HEADS_Q * SEQ * DIM;
    const size_t kv_count = (size_t)BATCH * HEADS_KV * SEQ * DIM;
    float *q = xmalloc(q_count * sizeof *q);
    float *k = xmalloc(kv_count * sizeof *k);
    float *v = xmalloc(kv_count * sizeof *v);
    float *got = xmalloc(q_count * sizeof *got);
    double *ref = xmalloc(q_count * sizeof *ref);
    ts_fill_normal(&rng, q, q_count, 0.0f, 1.0f);
    ts_fill_normal(&rng, k, kv_count, 0.0f, 1.0f);
    ts_fill_normal(&rng, v, kv_count, 0.0f, 1.0f);
    /* The reference reads what the device stores; NaN and infinity survive the rounding. */
    ts_round_to_dtype(c->dtype, q, q_count);
    ts_round_to_dtype(c->dtype, k, kv_count);
    ts_round_to_dtype(c->dtype, v, kv_count);
    inject(c->inject, q, k, v);

    ts_check(ctx, clpsa_context_set_params(ctx, c->params[0] ? c->params : NULL));
    const clpsa_plan_desc desc = desc_of(c);
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &desc, &plan));
    /* The variants asked for are the ones that run. */
    char want[64];
    snprintf(want, sizeof want, "%s", c->params);
    for (char *item = strtok(want, ","); item; item = strtok(NULL, ",")) {
        char ran[64];
        snprintf(ran, sizeof ran, "%s ", item);
        if (!strstr(clpsa_plan_parameter_source(plan), ran))
            ts_fail("%s: asked for %s, the plan reports %s", c->name, item,
                    clpsa_plan_parameter_source(plan));
    }
    clpsa_plan_desc resolved;
    ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));
    clpsa_block_grid grid = {0};
    int8_t *levels = NULL;
    if (c->method != NF_DENSE) {
        ts_check(ctx, clpsa_plan_block_grid(plan, &grid));
        levels = xmalloc(grid.count);
        if (c->method == NF_LEVELS) {
            fill_levels(levels, grid.count / (size_t)grid.blocks_k, grid.blocks_k);
            ts_check(ctx, clpsa_plan_set_levels(plan, levels));
        }
    }

    ts_buffer bq, bk, bv, bo;
    ts_buffer_create(&bq, ctx, "q", c->dtype, q_count);
    ts_buffer_create(&bk, ctx, "k", c->dtype, kv_count);
    ts_buffer_create(&bv, ctx, "v", c->dtype, kv_count);
    ts_buffer_create(&bo, ctx, "out", CLPSA_DTYPE_FP32, q_count);
    ts_buffer_upload(&bq, q);
    ts_buffer_upload(&bk, k);
    ts_buffer_upload(&bv, v);
    ts_buffer_poison(&bo);
    cl_event done = NULL;
    ts_check(ctx, clpsa_plan_run(plan, NULL, bq.mem, bk.mem, bv.mem, bo.mem, 0, NULL, &done));
    ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents");
    clReleaseEvent(done);
    ts_buffer_download(&bo, got);
    ts_buffer_check_canary(&bq);
    ts_buffer_check_canary(&bk);
    ts_buffer_check_canary(&bv);
    ts_buffer_check_canary(&bo);
    ts_buffer_check_unchanged(&bq);
    ts_buffer_check_unchanged(&bk);
    ts_buffer_check_unchanged(&bv);

    ref_attention_problem prob = {0};
    prob.batch = BATCH;
    prob.heads_q = HEADS_Q;
    prob.heads_kv = HEADS_KV;
    prob.seq_q = SEQ;
    prob.seq_k = SEQ;
    prob.head_dim = DIM;
    prob.q_strides = clpsa_strides_bhnd(HEADS_Q, SEQ, DIM);
    prob.k_strides = clpsa_strides_bhnd(HEADS_KV, SEQ, DIM);
    prob.v_strides = prob.k_strides;
    prob.scale = resolved.scale;
    prob.causal = c->causal;
    if (c->method == NF_DENSE) {
        assert_int_equal(ref_attention_dense(&prob, q, k, v, ref), 0);
    } else {
        if (c->method != NF_LEVELS) {
            ts_check(ctx, clpsa_plan_read_levels(plan, levels));
            check_levels(c, plan, &prob, q, k, levels, &resolved, &grid);
        }
        /* The output over the map the device used (near-threshold rows may differ). */
        assert_int_equal(ref_psa_attention(&prob, BLOCK, BLOCK, levels, q, k, v, c->dtype, ref), 0);
    }
    compare_output(c, got, ref, q_count);

    ts_buffer_release(&bq);
    ts_buffer_release(&bk);
    ts_buffer_release(&bv);
    ts_buffer_release(&bo);
    clpsa_plan_destroy(plan);
    free(levels);
    free(q);
    free(k);
    free(v);
    free(got);
    free(ref);
}

/* Whether every variant `params` names takes the case's plan: the matrix-unit variants
 * (dense/attend 2 and 5, estimate 3 and 5) take 16-bit storage only, and an override naming a
 * variant that cannot run a plan is rejected (tested in test_params). */
static bool variants_take(const nf_case *c) {
    const clpsa_plan_desc desc = desc_of(c);
    static const char *const keys[] = {"dense.VARIANT=", "attend.VARIANT="};
    for (size_t f = 0; f < sizeof keys / sizeof keys[0]; ++f) {
        const char *at = strstr(c->params, keys[f]);
        if (at && !ts_variant_takes(atoi(at + strlen(keys[f])), &desc))
            return false;
    }
    /* estimate 3 and 5 are the estimate's nvidia-mma and nvidia-wgmma: dense/attend 2's and 5's
     * rules (this suite's sample counts are ones both take) */
    const char *at = strstr(c->params, "estimate.VARIANT=");
    const int estimate = at ? atoi(at + strlen("estimate.VARIANT=")) : 0;
    if ((estimate == 3 && !ts_variant_takes(2, &desc)) ||
        (estimate == 5 && !ts_variant_takes(5, &desc)))
        return false;
    return true;
}

static void add_typed_case(nf_method method, nf_inject what, int causal, const char *params,
                           clpsa_dtype dtype) {
    if (case_count == MAX_CASES) {
        fprintf(stderr, "test_nonfinite: more than %d cases\n", MAX_CASES);
        exit(1);
    }
    nf_case *c = &cases[case_count++];
    c->method = method;
    c->inject = what;
    c->causal = causal;
    c->dtype = dtype;
    snprintf(c->params, sizeof c->params, "%s", params);
    snprintf(c->name, sizeof c->name, "%s %s %s %s%s%s", method_names[method], inject_names[what],
             causal ? "causal" : "full", clpsa_dtype_name(dtype), params[0] ? " " : "", params);
    if (!variants_take(c))
        --case_count; /* the plan's own choice runs this case under another entry */
}

static void add_case(nf_method method, nf_inject what, int causal, const char *params) {
    add_typed_case(method, what, causal, params, CLPSA_DTYPE_FP32);
}

/* Every injection of a method, causal and not, plus the hidden key where a mask hides one. */
static void add_injections(nf_method method, const char *params, bool full, bool causal) {
    for (int what = 0; what < NF_HIDDEN_V; ++what) {
        if (full)
            add_case(method, (nf_inject)what, 0, params);
        if (causal)
            add_case(method, (nf_inject)what, 1, params);
    }
    if (causal)
        add_case(method, NF_HIDDEN_V, 1, params);
}

static void build_cases(void) {
    int dense[8], attend[8], estimate[8];
    const int n_dense = ts_variants_available(ctx, "dense", dense, 8);
    const int n_attend = ts_variants_available(ctx, "attend", attend, 8);
    const int n_estimate = ts_variants_available(ctx, "estimate", estimate, 8);
    if (n_dense < 1 || n_attend < 1 || n_estimate < 1) {
        fprintf(stderr, "test_nonfinite: no dense, attend or estimate variant runs here\n");
        exit(1);
    }
    char params[64];
    for (int i = 0; i < n_dense; ++i) {
        snprintf(params, sizeof params, "dense.VARIANT=%d", dense[i]);
        add_injections(NF_DENSE, params, true, true);
    }
    for (int i = 0; i < n_attend; ++i) {
        /* The estimate variants take turns under the attend variants. */
        snprintf(params, sizeof params, "attend.VARIANT=%d,estimate.VARIANT=%d", attend[i],
                 estimate[i % n_estimate]);
        add_injections(NF_SAMPLED, params, true, true);
        snprintf(params, sizeof params, "attend.VARIANT=%d", attend[i]);
        add_injections(NF_LEVELS, params, true, false);
    }
    for (int i = n_attend; i < n_estimate; ++i) {
        snprintf(params, sizeof params, "estimate.VARIANT=%d", estimate[i]);
        add_injections(NF_SAMPLED, params, true, false);
    }
    add_injections(NF_ANTIDIAGONAL, "", false, true);
    add_injections(NF_BINARY, "", true, false);
    /* fp16 and bf16 storage: their loads (vload_half, the bf16 shift) carry NaN and infinity
     * into fp32 as well, in every variant. */
    const clpsa_dtype halves[2] = {CLPSA_DTYPE_FP16, CLPSA_DTYPE_BF16};
    for (int t = 0; t < 2; ++t) {
        for (int i = 0; i < n_dense; ++i) {
            snprintf(params, sizeof params, "dense.VARIANT=%d", dense[i]);
            add_typed_case(NF_DENSE, NF_NAN_Q, 1, params, halves[t]);
            add_typed_case(NF_DENSE, NF_NAN_K, 0, params, halves[t]);
            add_typed_case(NF_DENSE, NF_INF_V, 1, params, halves[t]);
        }
        for (int i = 0; i < n_attend; ++i) {
            snprintf(params, sizeof params, "attend.VARIANT=%d,estimate.VARIANT=%d", attend[i],
                     estimate[i % n_estimate]);
            add_typed_case(NF_SAMPLED, NF_NAN_K, 0, params, halves[t]);
            add_typed_case(NF_SAMPLED, NF_INF_Q, 1, params, halves[t]);
        }
    }
}

static int group_setup(void **state) {
    (void)state;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    return 0;
}

int main(void) {
    ctx = ts_context_create();
    build_cases();
    struct CMUnitTest *tests = calloc(case_count, sizeof *tests);
    if (!tests)
        return 1;
    for (size_t i = 0; i < case_count; ++i) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_nonfinite_case;
        tests[i].initial_state = &cases[i];
    }
    ts_apply_test_filter();
    const int failed =
        _cmocka_run_group_tests("nonfinite", tests, case_count, group_setup, group_teardown);
    free(tests);
    return failed;
}
