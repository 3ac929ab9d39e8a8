/* SPDX-License-Identifier: Apache-2.0 */
/* Budget mode (docs/algorithm.md §6, mode budget) through the public API against the
 * double-precision reference (tests/ref/ref_budget.h): the measured block masses (read back as
 * S) to 1e-5, the level map equal to the reference's allocation except in rows the reference
 * marks as near-ties, the output against the reference attention over the device's map, and
 * the density spent never above the target. Ragged N, GQA, causal with forced blocks, text
 * tokens, a Hilbert ordering, every bn, fp32 and 16-bit storage, budgets from 1/(8 nk) to 1;
 * then the options budget mode rejects, each with its status and message. The reference's
 * allocation is checked first on rows worked out by hand. Every case runs once per
 * measurement variant the device runs (budget.VARIANT), and the CPU variant also with 8 rows
 * per work-item (float8 lanes) and 64 (several row vectors, groups of query blocks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include "ref/ref_attention.h"
#include "ref/ref_budget.h"
#include "ref/ref_psa.h"
#include "support/test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clpsa_context *ctx;

/* fp32 arithmetic on the device against double here: the losses come from a cancellation
 * (1 - kept / mass), good to a few 1e-7; ratios and errors to about 1e-5 relative. */
static const ref_budget_tolerance tie_tolerance = {1e-4, 2e-6};

/* The measurement's settings every device case runs under: clpsa_context_set_params text,
 * the variant's name, and whether it takes every density of the case or only the first two
 * (a lane shape of a variant that the other settings already cover at every density). */
typedef struct budget_setting {
    int id; /* budget.VARIANT */
    char params[64];
    const char *variant;
    bool all_densities;
} budget_setting;
static budget_setting settings[8];
static int setting_count;

static const char *budget_variant_name(int id) {
    return id == 1   ? "portable"
           : id == 2 ? "portable-cpu"
           : id == 3 ? "nvidia-mma"
           : id == 4 ? "nvidia-wgmma"
                     : "?";
}

static int group_setup(void **state) {
    (void)state;
    ctx = ts_context_create();
    if (!ctx)
        return -1;
    int ids[4];
    const int count = ts_variants_available(ctx, "budget", ids, 4);
    for (int v = 0; v < count; ++v) {
        budget_setting *s = &settings[setting_count++];
        s->id = ids[v];
        snprintf(s->params, sizeof s->params, "budget.VARIANT=%d", ids[v]);
        s->variant = budget_variant_name(ids[v]);
        s->all_densities = true;
        for (int rows = 8; ids[v] == 2 && rows <= 64; rows *= 8) {
            s = &settings[setting_count++];
            s->id = 2;
            snprintf(s->params, sizeof s->params, "budget.VARIANT=2,budget.CPU_ROWS=%d", rows);
            s->variant = "portable-cpu";
            s->all_densities = false;
        }
        /* nvidia-wgmma also with two warpgroups per work-group (one by default); four would
         * need 512 work-items, more than its registers allow on an SM */
        if (ids[v] == 4) {
            s = &settings[setting_count++];
            s->id = 4;
            snprintf(s->params, sizeof s->params, "budget.VARIANT=4,budget.NV_WARPS=8");
            s->variant = "nvidia-wgmma";
            s->all_densities = false;
        }
    }
    if (count < 1)
        fprintf(stderr, "test_budget: no budget variant runs on this device\n");
    return count < 1 ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    ctx = NULL;
    return 0;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ts_fail("out of host memory for %zu bytes", bytes);
    return p;
}

static int ceil_div(int a, int b) {
    return (a + b - 1) / b;
}

static void expect_error(clpsa_status got, clpsa_status want, const char *needle,
                         const char *needle2) {
    const char *message = clpsa_context_last_error(ctx);
    if (got != want)
        ts_fail("status %s, expected %s; last_error: %s", clpsa_status_name(got),
                clpsa_status_name(want), message);
    if (needle && !strstr(message, needle))
        ts_fail("last_error \"%s\" does not mention \"%s\"", message, needle);
    if (needle2 && !strstr(message, needle2))
        ts_fail("last_error \"%s\" does not mention \"%s\"", message, needle2);
}

/* ---- The reference's allocation on rows worked out by hand ---- */

static void expect_levels(const int *got, const int *want, int nk, const char *what) {
    for (int j = 0; j < nk; ++j)
        if (got[j] != want[j]) {
            char g[128] = "", w[128] = "";
            for (int x = 0; x < nk; ++x) {
                snprintf(g + strlen(g), sizeof g - strlen(g), "%d ", got[x]);
                snprintf(w + strlen(w), sizeof w - strlen(w), "%d ", want[x]);
            }
            ts_fail("%s: levels [%s], expected [%s]", what, g, w);
        }
}

static void test_ref_allocation_by_hand(void **state) {
    (void)state;
    ts_case_begin("ref allocation by hand");
    const ref_budget_tolerance tol = {0.0, 0.0};
    int levels[4], near = 0;
    /* Pooling loses everything: every level above 1 is dropped from the hull, so the budget
     * buys whole blocks by w, the binary mask. 2 blocks of budget over w = .4 .3 .2 .1. */
    {
        const double w[4] = {0.4, 0.3, 0.2, 0.1};
        const double loss[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, NULL, 2.0, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){1, 1, 0, 0}, 4, "pooling loses everything");
    }
    /* Pooling loses nothing: level 8 costs 1/8 and leaves no error, so every block gets level 8
     * as long as the budget lasts (0.5 blocks = 4 eighths: the first 4 blocks by w). */
    {
        const double w[4] = {0.1, 0.4, 0.2, 0.3};
        const double loss[12] = {0};
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, NULL, 0.5, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){8, 8, 8, 8}, 4, "lossless pooling");
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, NULL, 0.25, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){0, 8, 0, 8}, 4, "lossless pooling, 2 eighths");
    }
    /* One block, w = 1, loss 0.5 / 0.6 / 0.9 at levels 2 / 4 / 8: points (0, 1), (1/8, .9),
     * (1/4, .6), (1/2, .5), (1, 0). (1/8, .9) lies above the chord (0,1)-(1/4,.6) and
     * (1/2, .5) above (1/4,.6)-(1,0): the hull is levels 0, 4, 1, with ratios 1.6 and 0.8. A
     * budget of 1/4 buys level 4; 1 buys level 1 (both steps); 0.9 stops at level 4. */
    {
        const double w[1] = {1.0};
        const double loss[3] = {0.5, 0.6, 0.9};
        assert_int_equal(ref_budget_allocate_row(w, loss, 1, NULL, 0.25, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){4}, 1, "hull step to level 4");
        assert_int_equal(ref_budget_allocate_row(w, loss, 1, NULL, 1.0, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){1}, 1, "hull to level 1");
        assert_int_equal(ref_budget_allocate_row(w, loss, 1, NULL, 0.9, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){4}, 1, "second step does not fit");
        assert_int_equal(ref_budget_allocate_row(w, loss, 1, NULL, 0.2, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){0}, 1, "first step does not fit");
    }
    /* Walk once, skipping what does not fit: block 0 (w .5, loss 1 everywhere) needs a whole
     * block, ratio .5; block 1 (w .3, loss .2 at level 8) offers level 8 at ratio
     * (.3 - .06) * 8 = 1.92, then level 1 at ratio .06 / (7/8). Budget 1: block 1's level 8
     * (1/8), then block 0's level 1 does not fit (7/8 left), then block 1's level 1 does. */
    {
        const double w[2] = {0.5, 0.3};
        const double loss[6] = {1, 1, 1, 0.2, 0.2, 0.2};
        assert_int_equal(ref_budget_allocate_row(w, loss, 2, NULL, 1.0, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){0, 1}, 2, "skip what does not fit");
    }
    /* Forced blocks take their cost first: with block 3 forced and a budget of 1.5, half a
     * block is left for the rest (lossless pooling: four level-8 blocks; three are left). */
    {
        const double w[4] = {0.1, 0.4, 0.2, 0.3};
        const double loss[12] = {0};
        const int forced[4] = {0, 0, 0, 1};
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, forced, 1.5, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){8, 8, 8, 1}, 4, "forced block");
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, forced, 0.5, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){0, 0, 0, 1}, 4, "forced block over the budget");
        /* A future block costs nothing and gets nothing, even with w > 0: block 1 (the
         * largest w) left out, the half block buys the other three at level 8. */
        const int future[4] = {REF_PSA_FREE, REF_PSA_FUTURE, REF_PSA_FREE, REF_PSA_FORCED};
        assert_int_equal(ref_budget_allocate_row(w, loss, 4, future, 1.5, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){8, 0, 8, 1}, 4, "future block");
    }
    /* A tie in ratio goes to the lower block; a near-tie is reported. */
    {
        const double w[2] = {0.5, 0.5};
        const double loss[6] = {1, 1, 1, 1, 1, 1};
        assert_int_equal(ref_budget_allocate_row(w, loss, 2, NULL, 1.0, tol, levels, &near), 0);
        expect_levels(levels, (const int[]){1, 0}, 2, "exact tie");
        const double w2[2] = {0.5, 0.5 + 1e-9};
        const ref_budget_tolerance loose = {1e-6, 0.0};
        assert_int_equal(ref_budget_allocate_row(w2, loss, 2, NULL, 1.0, loose, levels, &near), 0);
        expect_levels(levels, (const int[]){0, 1}, 2, "near tie");
        assert_int_equal(near, 1);
    }
    /* The row budget counts a float density as the decimal it stands for. */
    assert_true(floor(8 * ref_budget_blocks((double)0.7f, 10) + 1e-9) == 56.0);
}

/* With s_q = bm the measurement is exact: w equals the attention mass of each block averaged
 * over the rows, checked against the reference's dense attention probabilities; keys equal
 * within each group of 8 make every pooled level lossless. */
static void test_ref_measure_exact(void **state) {
    (void)state;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin("ref measurement, exact rows"));
    const int seq = 40, dim = 8, bm = 16, bn = 16;
    ts_dims dims = {1, 1, seq, dim};
    const clpsa_strides s = clpsa_strides_bhnd(1, seq, dim);
    float *q = xmalloc(seq * dim * sizeof *q), *k = xmalloc(seq * dim * sizeof *k);
    ts_fill_tensor_normal(&rng, q, dims, s, 1.0f);
    ts_fill_tensor_normal(&rng, k, dims, s, 1.0f);
    for (int c = 0; c < seq; ++c) /* groups of 8 equal keys */
        memcpy(k + c * dim, k + (c / 8) * 8 * dim, dim * sizeof *k);
    ref_attention_problem p = {1, 1, 1, seq, seq, dim, s, s, s, 1.0 / sqrt(dim), 0};
    const int nq = ceil_div(seq, bm), nk = ceil_div(seq, bn);
    double *w = xmalloc((size_t)nq * nk * sizeof *w), *loss = xmalloc((size_t)nq * nk * 3 * 8);
    assert_int_equal(ref_budget_measure(&p, bm, bn, bm, 7, q, k, CLPSA_DTYPE_DEFAULT, w, loss), 0);
    for (int i = 0; i < nq; ++i) {
        double want[3] = {0, 0, 0};
        for (int t = i * bm; t < (i + 1) * bm; ++t) {
            const int row = t < seq ? t : seq - 1;
            double logits[40], m = -INFINITY, total = 0.0;
            for (int c = 0; c < seq; ++c) {
                logits[c] = p.scale * ref_dot(q + row * dim, k + c * dim, dim);
                m = fmax(m, logits[c]);
            }
            for (int c = 0; c < seq; ++c)
                total += exp(logits[c] - m);
            for (int c = 0; c < seq; ++c)
                want[c / bn] += exp(logits[c] - m) / total / bm;
        }
        for (int j = 0; j < nk; ++j) {
            if (fabs(w[i * nk + j] - want[j]) > 1e-12)
                ts_fail("w[%d][%d] = %.15g, expected %.15g", i, j, w[i * nk + j], want[j]);
            for (int l = 0; l < 3; ++l)
                if (fabs(loss[(i * nk + j) * 3 + l]) > 1e-12)
                    ts_fail("loss[%d][%d][%d] = %g with equal keys in every group", i, j, l,
                            loss[(i * nk + j) * 3 + l]);
        }
    }
    free(q);
    free(k);
    free(w);
    free(loss);
}

/* ---- Device against the reference ---- */

typedef struct budget_config {
    const char *name;
    int batch, heads_q, heads_kv, seq_q, seq_k, dim, bm, bn;
    int sample_q; /* 0: default (bm / 16) */
    clpsa_dtype dtype;
    int causal, text_tokens;
    int grid[3]; /* non-zero: Hilbert order over this grid (seq = product + text) */
} budget_config;

/* Gathers rows of a contiguous [B, H, N, D] float tensor into position order. */
static void to_positions(const float *src, float *dst, int64_t bh, int seq, int dim,
                         const int32_t *perm) {
    for (int64_t x = 0; x < bh; ++x)
        for (int t = 0; t < seq; ++t)
            memcpy(dst + (x * seq + t) * dim, src + (x * seq + perm[t]) * dim, dim * sizeof *dst);
}

/* Whether budget.VARIANT=id takes the configuration (docs/api.md, "Kernel variants"); the
 * variants without a rule of their own take every plan. */
static bool variant_takes(int id, const budget_config *cfg, clpsa_dtype dtype, int sample_q) {
    if (id != 3 && id != 4)
        return true;
    /* nvidia-mma: 16-bit storage, D a multiple of 32 up to 128, bn 64 or 128, s_q <= 16;
     * nvidia-wgmma: the same with D 64 or 128 (and both within the device's local memory,
     * which the H200's 48 KiB holds for every case here but bn 128 at D 128) */
    const bool mma = (dtype == CLPSA_DTYPE_FP16 || dtype == CLPSA_DTYPE_BF16) &&
                     cfg->dim % 32 == 0 && cfg->dim <= 128 && (cfg->bn == 64 || cfg->bn == 128) &&
                     sample_q <= 16;
    return id == 3 ? mma : mma && (cfg->dim == 64 || cfg->dim == 128);
}

/* One problem, one set of inputs, several densities: plan, run, compare. Returns the rows
 * compared (not near-ties) over all densities. */
static size_t run_config(const budget_config *cfg, const double *densities, int count) {
    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin(cfg->name));
    const clpsa_dtype dtype = cfg->dtype ? cfg->dtype : CLPSA_DTYPE_FP32;
    const ts_dims qd = {cfg->batch, cfg->heads_q, cfg->seq_q, cfg->dim};
    const ts_dims kd = {cfg->batch, cfg->heads_kv, cfg->seq_k, cfg->dim};
    const clpsa_strides qs = clpsa_strides_bhnd(cfg->heads_q, cfg->seq_q, cfg->dim);
    const clpsa_strides ks = clpsa_strides_bhnd(cfg->heads_kv, cfg->seq_k, cfg->dim);
    const size_t q_count = ts_extent(qd, qs), k_count = ts_extent(kd, ks);
    float *q = xmalloc(q_count * 4), *k = xmalloc(k_count * 4), *v = xmalloc(k_count * 4);
    ts_fill_tensor_normal(&rng, q, qd, qs, 1.0f);
    ts_fill_tensor_normal(&rng, k, kd, ks, 1.0f);
    ts_fill_tensor_normal(&rng, v, kd, ks, 1.0f);
    /* Peaky rows: a few keys aligned with the queries make masses uneven across blocks. */
    for (size_t x = 0; x < q_count; ++x)
        q[x] *= 2.0f;
    ts_round_to_dtype(dtype, q, q_count);
    ts_round_to_dtype(dtype, k, k_count);
    ts_round_to_dtype(dtype, v, k_count);
    ts_buffer bq, bk, bv, bo;
    ts_buffer_create(&bq, ctx, "q", dtype, q_count);
    ts_buffer_create(&bk, ctx, "k", dtype, k_count);
    ts_buffer_create(&bv, ctx, "v", dtype, k_count);
    ts_buffer_create(&bo, ctx, "out", dtype, q_count);
    ts_buffer_upload(&bq, q);
    ts_buffer_upload(&bk, k);
    ts_buffer_upload(&bv, v);

    /* The reference works in position order: with a Hilbert ordering, gather first. */
    const bool ordered = cfg->grid[0] != 0;
    int32_t *perm = NULL;
    float *qp = q, *kp = k, *vp = v;
    if (ordered) {
        perm = xmalloc((size_t)cfg->seq_k * sizeof *perm);
        ts_check(ctx, clpsa_ordering_permutation(CLPSA_ORDER_HILBERT, cfg->grid[0], cfg->grid[1],
                                                 cfg->grid[2], NULL, cfg->text_tokens, perm));
        qp = xmalloc(q_count * 4);
        kp = xmalloc(k_count * 4);
        vp = xmalloc(k_count * 4);
        to_positions(q, qp, (int64_t)cfg->batch * cfg->heads_q, cfg->seq_q, cfg->dim, perm);
        to_positions(k, kp, (int64_t)cfg->batch * cfg->heads_kv, cfg->seq_k, cfg->dim, perm);
        to_positions(v, vp, (int64_t)cfg->batch * cfg->heads_kv, cfg->seq_k, cfg->dim, perm);
    }
    const double scale = 1.0 / sqrt((double)cfg->dim);
    ref_attention_problem p = {
        cfg->batch, cfg->heads_q, cfg->heads_kv, cfg->seq_q, cfg->seq_k, cfg->dim, qs,
        ks,         ks,           scale,         cfg->causal};
    const int nq = ceil_div(cfg->seq_q, cfg->bm), nk = ceil_div(cfg->seq_k, cfg->bn);
    const size_t rows = (size_t)cfg->batch * cfg->heads_q * nq, cells = rows * nk;
    const int sample_q = cfg->sample_q ? cfg->sample_q : (cfg->bm / 16 > 0 ? cfg->bm / 16 : 1);
    const uint64_t seed = ts_rng_next(&rng);
    double *w = xmalloc(cells * sizeof *w), *loss = xmalloc(cells * 3 * sizeof *loss);
    if (ref_budget_measure(&p, cfg->bm, cfg->bn, sample_q, seed, qp, kp, dtype, w, loss) != 0)
        ts_fail("ref_budget_measure failed");

    size_t compared = 0;
    float *s = xmalloc(cells * sizeof *s);
    int8_t *m = xmalloc(cells), *ref_m = xmalloc(cells);
    int *near = xmalloc(rows * sizeof *near);
    float *out = xmalloc(q_count * 4), *out_pos = xmalloc(q_count * 4);
    double *ref_out = xmalloc(q_count * sizeof *ref_out);
    for (int run = 0; run < setting_count * count; ++run) {
        const budget_setting *setting = &settings[run / count];
        const int x = run % count;
        if ((x >= 2 && !setting->all_densities) ||
            !variant_takes(setting->id, cfg, dtype, sample_q))
            continue;
        ts_check(ctx, clpsa_context_set_params(ctx, setting->params));
        /* The matrix units accumulate the 16-bit products in fp32 in their own order. */
        const bool units = setting->id == 3 || setting->id == 4;
        const double s_rel = units ? 1e-4 : 1e-5, s_abs = units ? 1e-6 : 1e-7;
        /* densities below the lowest one the plan takes (small nk) run at the lowest */
        const double lowest = 1.0 / (8.0 * nk);
        const double density = densities[x] > lowest ? densities[x] : lowest;
        clpsa_plan_desc d;
        clpsa_plan_desc_init(&d);
        d.batch = cfg->batch;
        d.heads_q = cfg->heads_q;
        d.heads_kv = cfg->heads_kv;
        d.seq_q = cfg->seq_q;
        d.seq_k = cfg->seq_k;
        d.head_dim = cfg->dim;
        d.dtype = dtype;
        d.block_q = cfg->bm;
        d.block_k = cfg->bn;
        d.causal = cfg->causal;
        d.text_tokens = cfg->text_tokens;
        d.mode = CLPSA_MODE_BUDGET;
        d.density = (float)density;
        d.sample_q = cfg->sample_q;
        d.seed = seed;
        if (ordered) {
            memcpy(d.grid, cfg->grid, sizeof d.grid);
            d.ordering = CLPSA_ORDER_HILBERT;
        }
        clpsa_plan *plan = NULL;
        ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
        clpsa_plan_desc got;
        ts_check(ctx, clpsa_plan_get_desc(plan, &got));
        assert_int_equal(got.sample_q, sample_q);
        assert_true(got.density == (float)density);
        assert_string_equal(clpsa_plan_kernel_variant(plan, "budget"), setting->variant);
        assert_null(clpsa_plan_kernel_variant(plan, "estimate"));

        ts_buffer_poison(&bo);
        cl_event done = NULL;
        ts_check(ctx, clpsa_plan_run(plan, NULL, bq.mem, bk.mem, bv.mem, bo.mem, 0, NULL, &done));
        ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents");
        clReleaseEvent(done);
        ts_buffer_check_canary(&bo);
        ts_buffer_check_unchanged(&bq);
        ts_buffer_check_unchanged(&bk);
        ts_buffer_check_unchanged(&bv);
        ts_check(ctx, clpsa_plan_read_scores(plan, s));
        ts_check(ctx, clpsa_plan_read_levels(plan, m));

        /* S = w to 1e-5; rows sum to 1 (0 where no sampled row sees a key). */
        for (size_t r = 0; r < rows; ++r) {
            double sum = 0.0, ref_sum = 0.0;
            for (int j = 0; j < nk; ++j) {
                const size_t c = r * nk + j;
                sum += s[c];
                ref_sum += w[c];
                if (!(fabs(s[c] - w[c]) <= s_abs + s_rel * w[c]))
                    ts_fail("%s, density %g: S[row %zu][%d] = %.9g, reference w %.9g",
                            setting->params, density, r, j, (double)s[c], w[c]);
            }
            if (fabs(sum - ref_sum) > s_rel || (ref_sum != 0.0 && fabs(ref_sum - 1.0) > 1e-9))
                ts_fail("%s, density %g: S row %zu sums to %.9g, reference %.9g", setting->params,
                        density, r, sum, ref_sum);
        }
        /* M = the reference's allocation of the reference's measurement, except near-ties. */
        if (ref_budget_assign(&p, cfg->bm, cfg->bn, cfg->text_tokens, cfg->causal,
                              (double)d.density, w, loss, tie_tolerance, ref_m, near) != 0)
            ts_fail("ref_budget_assign failed");
        size_t near_rows = 0;
        for (size_t r = 0; r < rows; ++r) {
            if (near[r]) {
                ++near_rows;
                continue;
            }
            ++compared;
            for (int j = 0; j < nk; ++j)
                if (m[r * nk + j] != ref_m[r * nk + j]) {
                    char g[400] = "", e[400] = "";
                    for (int y = 0; y < nk && strlen(g) < 380; ++y) {
                        snprintf(g + strlen(g), sizeof g - strlen(g), "%d ", m[r * nk + y]);
                        snprintf(e + strlen(e), sizeof e - strlen(e), "%d ", ref_m[r * nk + y]);
                    }
                    ts_fail("%s, density %g: row %zu block %d: level %d, reference %d\n"
                            "  device    [%s]\n  reference [%s]",
                            setting->params, density, r, j, m[r * nk + j], ref_m[r * nk + j], g, e);
                }
        }
        if (near_rows * 4 > rows)
            ts_fail("density %g: %zu of %zu rows are near-ties: the comparison says too little",
                    density, near_rows, rows);
        /* Every row spends at most its budget (forced blocks aside); density 1 is dense. */
        clpsa_level_stats stats;
        ts_check(ctx, clpsa_plan_read_stats(plan, &stats));
        if (getenv("CLPSA_TEST_VERBOSE"))
            printf("  %s, density %g: %zu of %zu rows near-ties; spent %.4f, levels 0/1/2/4/8: "
                   "%llu %llu %llu %llu %llu\n",
                   cfg->name, density, near_rows, rows, stats.density,
                   (unsigned long long)stats.histogram[0], (unsigned long long)stats.histogram[1],
                   (unsigned long long)stats.histogram[2], (unsigned long long)stats.histogram[3],
                   (unsigned long long)stats.histogram[4]);
        /* Per row: what the forced blocks cost when that is more than the budget, else at
         * most the budget; nothing in the future. */
        int *forced = xmalloc((size_t)nk * sizeof *forced);
        for (size_t r = 0; r < rows; ++r) {
            ref_psa_forced_row((int)(r % (size_t)nq), cfg->bm, cfg->bn, cfg->seq_q, cfg->seq_k,
                               cfg->text_tokens, cfg->causal, forced);
            double spent = 0.0;
            int forced_count = 0;
            for (int j = 0; j < nk; ++j) {
                const int level = m[r * nk + j];
                if (forced[j] == REF_PSA_FUTURE && level != 0)
                    ts_fail("density %g: row %zu block %d is in the future but has level %d",
                            density, r, j, level);
                if (forced[j] == REF_PSA_FORCED && level != 1)
                    ts_fail("density %g: row %zu block %d is forced but has level %d", density, r,
                            j, level);
                forced_count += forced[j] == REF_PSA_FORCED;
                spent += level ? 1.0 / level : 0.0;
            }
            if (spent > fmax(density * nk * (1 + 1e-6), (double)forced_count) + 1e-9)
                ts_fail("density %g: row %zu spent %.9g blocks (%d forced) of %d", density, r,
                        spent, forced_count, nk);
        }
        free(forced);
        if (density == 1.0 && !cfg->causal && stats.histogram[1] != cells)
            ts_fail("density 1: %llu of %zu blocks at level 1",
                    (unsigned long long)stats.histogram[1], cells);

        /* The output is attention over the device's map. */
        float *raw = xmalloc(bo.elements * sizeof(float));
        ts_buffer_download(&bo, raw);
        ts_gather(raw, qd, qs, out);
        free(raw);
        if (ordered)
            to_positions(out, out_pos, (int64_t)cfg->batch * cfg->heads_q, cfg->seq_q, cfg->dim,
                         perm);
        if (ref_psa_attention(&p, cfg->bm, cfg->bn, m, qp, kp, vp, dtype, ref_out) != 0)
            ts_fail("ref_psa_attention failed");
        const ts_tolerance tol = dtype == CLPSA_DTYPE_FP16   ? (ts_tolerance){2e-3, 2e-3, 1e-3}
                                 : dtype == CLPSA_DTYPE_BF16 ? (ts_tolerance){1.6e-2, 1.6e-2, 8e-3}
                                                             : (ts_tolerance){2e-5, 1e-4, 1e-5};
        char what[160];
        snprintf(what, sizeof what, "%s, %s, density %g", cfg->name, setting->params, density);
        ts_assert_close(what, ordered ? out_pos : out, ref_out, qd,
                        ts_tolerance_for_variant(tol, plan, "attend", dtype));
        clpsa_plan_destroy(plan);
    }
    ts_check(ctx, clpsa_context_set_params(ctx, ""));
    free(s);
    free(m);
    free(ref_m);
    free(near);
    free(out);
    free(out_pos);
    free(ref_out);
    free(w);
    free(loss);
    if (ordered) {
        free(qp);
        free(kp);
        free(vp);
        free(perm);
    }
    free(q);
    free(k);
    free(v);
    ts_buffer_release(&bq);
    ts_buffer_release(&bk);
    ts_buffer_release(&bv);
    ts_buffer_release(&bo);
    return compared;
}

/* 0 stands for the lowest density, 1 / (8 nk). */
static const double all_densities[] = {0, 0.05, 0.15, 0.3, 0.5, 1.0};

static void test_budget_fp32_shapes(void **state) {
    (void)state;
    const budget_config configs[] = {
        /* ragged N (not a multiple of bm or bn), GQA, two batches */
        {"ragged gqa bn64", 2, 4, 2, 301, 301, 64, 128, 64, 0, 0, 0, 0, {0}},
        /* bn 16, 32, 128; bm smaller and larger than bn; Nq != Nk, primes */
        {"bn16", 1, 2, 1, 97, 131, 32, 32, 16, 0, 0, 0, 0, {0}},
        {"bn32 sq8", 1, 2, 2, 256, 211, 64, 64, 32, 8, 0, 0, 0, {0}},
        {"bn128 exact rows", 1, 1, 1, 70, 389, 32, 16, 128, 16, 0, 0, 0, {0}},
        /* bn not a power of two (pooled blocks of 20, 10 and 5 tokens), and the largest bn */
        {"bn40", 1, 2, 1, 150, 203, 32, 32, 40, 0, 0, 0, 0, {0}},
        {"bn256", 1, 1, 1, 64, 700, 32, 32, 256, 0, 0, 0, 0, {0}},
        /* one query row, one key block */
        {"single row", 1, 1, 1, 1, 40, 32, 16, 64, 0, 0, 0, 0, {0}},
    };
    size_t compared = 0;
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; ++c)
        compared += run_config(&configs[c], all_densities, 6);
    assert_true(compared > 0);
}

static void test_budget_causal_text(void **state) {
    (void)state;
    const budget_config configs[] = {
        /* causal, Nk > Nq (a cache of earlier keys), forced block 0 and diagonal */
        {"causal", 1, 2, 1, 200, 331, 64, 64, 32, 0, 0, 1, 0, {0}},
        /* causal with Nk < Nq: the first query rows see no key */
        {"causal short keys", 1, 1, 1, 300, 170, 32, 64, 64, 8, 0, 1, 0, {0}},
        /* text tokens forced to level 1 at the end */
        {"text", 1, 2, 2, 330, 330, 64, 64, 64, 0, 0, 0, 70, {0}},
        /* causal with text: text key blocks in the future of video rows (level 0, no cost),
         * text query blocks forced to level 1 on every visible block; GQA, ragged Nq != Nk */
        {"causal text", 1, 4, 2, 300, 357, 32, 32, 32, 0, 0, 1, 45, {0}},
    };
    const double densities[] = {0, 0.15, 0.3, 0.5, 1.0};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; ++c)
        run_config(&configs[c], densities, 5);
}

/* 16-bit shapes the matrix-unit variant takes (bn 64 or 128, D a multiple of 32): on a device
 * that runs it they test it against the reference, elsewhere the portable kernel again. Two
 * query blocks per m16 tile at s_q = 8, ragged N and a ragged last tile, Nq != Nk both ways,
 * GQA, causal (with Nk < Nq: rows that see nothing), s_q 4 and 16, a Hilbert ordering. */
static void test_budget_matrix_shapes(void **state) {
    (void)state;
    const budget_config configs[] = {
        {"mma ragged gqa", 2, 4, 2, 301, 301, 128, 128, 64, 0, CLPSA_DTYPE_BF16, 0, 0, {0}},
        {"mma nq != nk", 1, 2, 1, 389, 211, 64, 64, 64, 0, CLPSA_DTYPE_FP16, 0, 0, {0}},
        {"mma causal", 1, 2, 1, 200, 331, 64, 128, 64, 0, CLPSA_DTYPE_BF16, 1, 0, {0}},
        {"mma causal short keys", 1, 1, 1, 300, 170, 96, 64, 64, 8, CLPSA_DTYPE_FP16, 1, 0, {0}},
        {"mma bn128 sq16", 1, 1, 1, 700, 641, 32, 256, 128, 16, CLPSA_DTYPE_BF16, 0, 0, {0}},
        {"mma hilbert", 1, 2, 2, 256, 256, 64, 128, 64, 0, CLPSA_DTYPE_BF16, 0, 16, {4, 6, 10}},
        /* bn 128 where nvidia-wgmma takes it too (D 64: n = 128 keys, 112 pooled tokens) */
        {"mma bn128 d64 sq4", 1, 2, 1, 450, 517, 64, 128, 128, 4, CLPSA_DTYPE_FP16, 1, 0, {0}},
    };
    const double densities[] = {0.05, 0.3};
    size_t compared = 0;
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; ++c)
        compared += run_config(&configs[c], densities, 2);
    assert_true(compared > 0);
}

static void test_budget_16bit_and_hilbert(void **state) {
    (void)state;
    const budget_config configs[] = {
        {"bf16", 1, 2, 1, 257, 257, 64, 64, 32, 0, CLPSA_DTYPE_BF16, 0, 0, {0}},
        {"fp16", 1, 1, 1, 190, 190, 64, 64, 64, 0, CLPSA_DTYPE_FP16, 0, 0, {0}},
        /* a 4 x 6 x 10 video in Hilbert order with 16 text tokens */
        {"hilbert", 1, 2, 2, 256, 256, 32, 64, 32, 0, 0, 0, 16, {4, 6, 10}},
    };
    const double densities[] = {0.05, 0.15, 0.5};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; ++c)
        run_config(&configs[c], densities, 3);
}

/* ---- Defaults and rejected options ---- */

static clpsa_plan_desc small_desc(void) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1;
    d.heads_q = 1;
    d.seq_q = 512;
    d.head_dim = 32;
    d.mode = CLPSA_MODE_BUDGET;
    return d;
}

static void test_budget_defaults(void **state) {
    (void)state;
    ts_case_begin("budget defaults");
    clpsa_plan_desc d = small_desc();
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    clpsa_plan_desc got;
    ts_check(ctx, clpsa_plan_get_desc(plan, &got));
    assert_true(got.density == 0.15f);
    assert_int_equal(got.sample_q, 128 / 16);
    assert_int_equal(got.mode, CLPSA_MODE_BUDGET);
    assert_int_equal(got.similarity_cap, 0);
    assert_int_equal(got.align_tile, CLPSA_OFF);
    /* the first variant the device runs that takes fp32 (portable-cpu on a CPU, portable on
     * a GPU: the matrix-unit ones, nvidia-mma and nvidia-wgmma, take 16-bit storage only) */
    const budget_setting *first = &settings[0];
    while ((first->id == 3 || first->id == 4) && first + 1 < settings + setting_count)
        ++first;
    assert_string_equal(clpsa_plan_kernel_variant(plan, "budget"), first->variant);
    /* budget mode measures its own scores */
    float scores[4 * 8];
    for (int x = 0; x < 32; ++x)
        scores[x] = 1.0f;
    expect_error(clpsa_plan_set_scores(plan, scores), CLPSA_ERROR_INVALID_VALUE,
                 "CLPSA_MODE_BUDGET", "supplied scores");
    clpsa_plan_destroy(plan);
    /* a preset's similarity cap gives way to budget mode */
    d.preset = "wan21-1.3b";
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    ts_check(ctx, clpsa_plan_get_desc(plan, &got));
    assert_int_equal(got.similarity_cap, 0);
    assert_int_equal(got.mode, CLPSA_MODE_BUDGET);
    clpsa_plan_destroy(plan);
}

static void test_budget_bad_options(void **state) {
    (void)state;
    ts_case_begin("budget bad options");
    clpsa_plan *plan = NULL;
    /* seq 512 with bn 64: nk = 8, lowest density 1/64 */
    const float bad_densities[] = {1.0f / 65.0f, 1.5f, -0.1f, NAN, INFINITY};
    for (size_t x = 0; x < sizeof bad_densities / sizeof bad_densities[0]; ++x) {
        clpsa_plan_desc d = small_desc();
        d.density = bad_densities[x];
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE,
                     "density = ", "[1/(8 nk), 1]");
        assert_null(plan);
    }
    {
        clpsa_plan_desc d = small_desc();
        d.density = 1.0f / 64.0f; /* exactly the lowest: accepted */
        ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
        clpsa_plan_destroy(plan);
        plan = NULL;
    }
    {
        clpsa_plan_desc d = small_desc();
        d.mode = CLPSA_MODE_THRESHOLD;
        d.density = 0.2f;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE, "density = 0.2",
                     "CLPSA_MODE_BUDGET only");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.method = CLPSA_METHOD_BINARY;
        d.binary_density = 0.2f;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE,
                     "CLPSA_METHOD_BINARY", "binary_density");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.similarity_cap = 1;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE,
                     "similarity_cap = 1", "no similarity cap");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE,
                     "CLPSA_ESTIMATOR_ANTIDIAGONAL", "sample_q");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.align_tile = 32;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE,
                     "align_tile = 32", "no alignment");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.min_full = 0.1f;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE, "min_full = 0.1",
                     "no min_full");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.mode = (clpsa_mode)5;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE, "mode = 5",
                     "_BUDGET");
    }
    {
        clpsa_plan_desc d = small_desc();
        d.sample_q = 129;
        expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE, "sample_q = 129",
                     "[1, 128]");
    }
    assert_null(plan);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_allocation_by_hand),
        cmocka_unit_test(test_ref_measure_exact),
        cmocka_unit_test(test_budget_defaults),
        cmocka_unit_test(test_budget_bad_options),
        cmocka_unit_test(test_budget_fp32_shapes),
        cmocka_unit_test(test_budget_causal_text),
        cmocka_unit_test(test_budget_16bit_and_hilbert),
        cmocka_unit_test(test_budget_matrix_shapes),
    };
    ts_apply_test_filter();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
