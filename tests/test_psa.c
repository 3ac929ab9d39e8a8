/* SPDX-License-Identifier: Apache-2.0 */
/* PSA through the public API against the double-precision reference (tests/ref/ref_psa.h):
 * attention over supplied level maps at every level and block size, the sampled and
 * antidiagonal estimates, level assignment in every mode, presets, read-back, statistics, the
 * binary baseline and bad input. The reference's own building blocks are checked first against
 * hand-computed values and independent formulations, so a device failure is not a reference
 * bug in disguise.
 *
 * Sizes are small and the block sizes of the device cases are few, because every (bm, bn, D,
 * sampling) combination compiles its own kernels and PoCL on a 2-core CI machine is slow at
 * that. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include "ref/ref_attention.h"
#include "ref/ref_psa.h"
#include "support/test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clpsa_context *ctx;

/* The attend variant (attend.VARIANT) the level-map cases run with, and the override text
 * that asked for it (each_attend_variant); 0 and "": whatever the plan chooses. */
static int attend_variant;
static char attend_params[160];
/* Set for the runs beyond the plan's own choice and the portable kernel (other tiles, opt-in
 * variants): they cover fewer (bm, bn, D, dtype) programs, since PoCL compiles each. */
static bool attend_subset;

static int group_setup(void **state) {
    (void)state;
    ctx = ts_context_create();
    return ctx ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    ctx = NULL;
    return 0;
}

/* Tests that set parameter overrides may stop at a failed check before clearing them; this
 * keeps a failure from turning every later test into one. */
static int clear_params(void **state) {
    (void)state;
    return clpsa_context_set_params(ctx, NULL) == CLPSA_OK ? 0 : -1;
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

/* ---- Resolving a desc the way docs/algorithm.md and the header say, independently of the library
 * ---- */

static int any_nonzero(const float *values, int count) {
    for (int i = 0; i < count; ++i)
        if (values[i] != 0.0f)
            return 1;
    return 0;
}

typedef struct resolved {
    ref_psa_params params;
    clpsa_estimator estimator;
    int sample_q, sample_k, stride;
} resolved;

static resolved resolve(const clpsa_plan_desc *d) {
    resolved r;
    ref_psa_params *p = &r.params;
    ref_psa_params_default(p);
    const ref_psa_preset *preset = NULL;
    if (d->preset) {
        preset = ref_psa_find_preset(d->preset);
        if (!preset)
            ts_fail("test bug: unknown preset %s", d->preset);
        ref_psa_params_from_preset(preset, p);
    }
    if (d->block_q)
        p->block_q = d->block_q;
    if (d->block_k)
        p->block_k = d->block_k;
    if (any_nonzero(d->thresholds, 4))
        for (int l = 0; l < 4; ++l)
            p->thresholds[l] = d->thresholds[l];
    if (d->mode)
        p->mode = d->mode;
    p->align_tile = d->align_tile == CLPSA_OFF ? 0 : d->align_tile ? d->align_tile : 32;
    p->min_full = d->min_full == (float)CLPSA_OFF ? -1.0 : d->min_full ? d->min_full : 0.06f;
    p->text_tokens = d->text_tokens;
    p->causal = d->causal || (preset && preset->causal);
    if (d->similarity_cap)
        p->similarity_cap = d->similarity_cap != CLPSA_OFF;
    if (any_nonzero(d->similarity_thresholds, 3))
        for (int l = 0; l < 3; ++l)
            p->similarity_thresholds[l] = d->similarity_thresholds[l];
    p->binary = d->method == CLPSA_METHOD_BINARY;
    p->binary_density = d->binary_density;
    r.estimator = d->estimator ? d->estimator
                  : preset     ? preset->estimator
                               : CLPSA_ESTIMATOR_SAMPLED;
    r.sample_q = d->sample_q ? d->sample_q : p->block_q / 4;
    r.sample_k = d->sample_k ? d->sample_k : p->block_k / 4;
    r.stride = d->antidiagonal_stride ? d->antidiagonal_stride : 8;
    return r;
}

/* ---- One problem on the device and in the reference ---- */

typedef void (*k_shaper)(float *k, ts_dims dims, clpsa_strides strides, int block_k);

typedef struct psa_case {
    clpsa_plan_desc desc; /* as given to clpsa_plan_create */
    resolved res;
    ts_layout layout;
    ts_dims qd, kd, od;
    float *q, *k, *v; /* strided host tensors holding values rounded to the storage type */
    ts_buffer bq, bk, bv, bo;
    clpsa_plan *plan;
    clpsa_block_grid grid;
    ref_attention_problem prob;
    size_t out_count;              /* B * Hq * Nq * D */
    float *out;                    /* contiguous [B, Hq, Nq, D] result of the last run */
    int row_pad;                   /* unused elements after every D-vector of every tensor */
    unsigned char *out_is_element; /* row_pad > 0: which output buffer elements are tensor */
} psa_case;

static clpsa_plan_desc base_desc(int batch, int heads_q, int heads_kv, int seq_q, int seq_k,
                                 int head_dim) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_PSA;
    d.batch = batch;
    d.heads_q = heads_q;
    d.heads_kv = heads_kv;
    d.seq_q = seq_q;
    d.seq_k = seq_k;
    d.head_dim = head_dim;
    return d;
}

static void fill_tensor(ts_rng *rng, float **dst, ts_dims dims, clpsa_strides strides,
                        clpsa_dtype dtype) {
    const size_t extent = ts_extent(dims, strides);
    *dst = xmalloc(extent * sizeof(float));
    ts_fill_tensor_normal(rng, *dst, dims, strides, 1.0f);
    ts_round_to_dtype(dtype, *dst, extent);
}

/* Creates host data, device buffers and the plan. The desc's strides are set from layout, with
 * row_pad unused (NaN-filled) elements after every D-vector: a kernel that reads padding
 * turns the output NaN, one that writes padding is caught by case_run. */
static void case_init_padded(psa_case *c, const clpsa_plan_desc *desc, ts_layout layout,
                             int row_pad, k_shaper shape_k) {
    memset(c, 0, sizeof *c);
    c->desc = *desc;
    c->layout = layout;
    c->row_pad = row_pad;
    clpsa_plan_desc *d = &c->desc;
    const clpsa_dtype dtype = d->dtype ? d->dtype : CLPSA_DTYPE_FP32;
    const clpsa_dtype out_dtype = d->out_dtype ? d->out_dtype : dtype;
    const int heads_kv = d->heads_kv ? d->heads_kv : d->heads_q;
    const int seq_k = d->seq_k ? d->seq_k : d->seq_q;
    c->qd = (ts_dims){d->batch, d->heads_q, d->seq_q, d->head_dim};
    c->kd = (ts_dims){d->batch, heads_kv, seq_k, d->head_dim};
    c->od = c->qd;
    d->q_strides = ts_strides(layout, c->qd, row_pad);
    d->k_strides = ts_strides(layout, c->kd, row_pad);
    d->v_strides = ts_strides(layout, c->kd, row_pad);
    d->out_strides = ts_strides(layout, c->od, row_pad);
    c->res = resolve(d);

    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    fill_tensor(&rng, &c->q, c->qd, d->q_strides, dtype);
    fill_tensor(&rng, &c->k, c->kd, d->k_strides, dtype);
    fill_tensor(&rng, &c->v, c->kd, d->v_strides, dtype);
    if (shape_k) {
        shape_k(c->k, c->kd, d->k_strides, c->res.params.block_k);
        ts_round_to_dtype(dtype, c->k, ts_extent(c->kd, d->k_strides));
    }

    ts_buffer_create(&c->bq, ctx, "q", dtype, ts_extent(c->qd, d->q_strides));
    ts_buffer_create(&c->bk, ctx, "k", dtype, ts_extent(c->kd, d->k_strides));
    ts_buffer_create(&c->bv, ctx, "v", dtype, ts_extent(c->kd, d->v_strides));
    ts_buffer_create(&c->bo, ctx, "out", out_dtype, ts_extent(c->od, d->out_strides));
    ts_buffer_upload(&c->bq, c->q);
    ts_buffer_upload(&c->bk, c->k);
    ts_buffer_upload(&c->bv, c->v);

    /* A case the variant under test does not take runs with the plan's own choice. */
    const bool taken = ts_variant_takes(attend_variant, d);
    if (!taken)
        ts_check(ctx, clpsa_context_set_params(ctx, ""));
    ts_check(ctx, clpsa_plan_create(ctx, d, &c->plan));
    if (!taken)
        ts_check(ctx, clpsa_context_set_params(ctx, attend_params));
    if (d->method != CLPSA_METHOD_DENSE)
        ts_check(ctx, clpsa_plan_block_grid(c->plan, &c->grid));
    char ran[32];
    snprintf(ran, sizeof ran, "attend.VARIANT=%d ", attend_variant);
    if (taken && attend_variant && d->method != CLPSA_METHOD_DENSE &&
        !strstr(clpsa_plan_parameter_source(c->plan), ran))
        ts_fail("asked for %s, the plan reports %s", attend_params,
                clpsa_plan_parameter_source(c->plan));

    ref_attention_problem *p = &c->prob;
    p->batch = d->batch;
    p->heads_q = d->heads_q;
    p->heads_kv = heads_kv;
    p->seq_q = d->seq_q;
    p->seq_k = seq_k;
    p->head_dim = d->head_dim;
    p->q_strides = d->q_strides;
    p->k_strides = d->k_strides;
    p->v_strides = d->v_strides;
    p->scale = d->scale != 0.0f ? (double)d->scale : 1.0 / sqrt((double)d->head_dim);
    p->causal = c->res.params.causal;

    c->out_count = (size_t)d->batch * d->heads_q * d->seq_q * d->head_dim;
    c->out = xmalloc(c->out_count * sizeof(float));
    if (row_pad > 0) {
        c->out_is_element = xmalloc(c->bo.elements);
        memset(c->out_is_element, 0, c->bo.elements);
        for (int64_t b = 0; b < c->od.batch; ++b)
            for (int64_t h = 0; h < c->od.heads; ++h)
                for (int64_t n = 0; n < c->od.seq; ++n)
                    memset(c->out_is_element + ts_offset(d->out_strides, b, h, n, 0), 1,
                           (size_t)c->od.dim);
    }
}

static void case_init(psa_case *c, const clpsa_plan_desc *desc, ts_layout layout,
                      k_shaper shape_k) {
    case_init_padded(c, desc, layout, 0, shape_k);
}

static void case_free(psa_case *c) {
    clpsa_plan_destroy(c->plan);
    ts_buffer_release(&c->bq);
    ts_buffer_release(&c->bk);
    ts_buffer_release(&c->bv);
    ts_buffer_release(&c->bo);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->out);
    free(c->out_is_element);
    memset(c, 0, sizeof *c);
}

/* Poisons the output, runs the plan to completion and gathers the output. */
static void case_run(psa_case *c) {
    ts_buffer_poison(&c->bo);
    cl_event done = NULL;
    ts_check(ctx, clpsa_plan_run(c->plan, NULL, c->bq.mem, c->bk.mem, c->bv.mem, c->bo.mem, 0, NULL,
                                 &done));
    ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents(run)");
    clReleaseEvent(done);
    float *raw = xmalloc(c->bo.elements * sizeof(float));
    ts_buffer_download(&c->bo, raw);
    ts_gather(raw, c->od, c->desc.out_strides, c->out);
    for (size_t i = 0; c->out_is_element && i < c->bo.elements; ++i)
        if (!c->out_is_element[i] && !isnan(raw[i]))
            ts_fail("output element %zu is padding between rows but was written (%g)", i,
                    (double)raw[i]);
    free(raw);
    ts_buffer_check_canary(&c->bo);
    ts_buffer_check_unchanged(&c->bq);
    ts_buffer_check_unchanged(&c->bk);
    ts_buffer_check_unchanged(&c->bv);
}

static void case_read_levels(psa_case *c, int8_t *levels) {
    ts_check(ctx, clpsa_plan_read_levels(c->plan, levels));
}

static void case_read_scores(psa_case *c, float *scores) {
    ts_check(ctx, clpsa_plan_read_scores(c->plan, scores));
}

static double *to_double(const float *x, size_t count) {
    double *y = xmalloc(count * sizeof *y);
    for (size_t i = 0; i < count; ++i)
        y[i] = x[i];
    return y;
}

static const char *dtype_label(clpsa_dtype dtype) {
    const char *name = clpsa_dtype_name(dtype ? dtype : CLPSA_DTYPE_FP32);
    return name ? name : "?";
}

/* Output tolerances. fp32: only the order of fp32 sums differs from the double reference.
 * fp16/bf16: the reference rounds each pooled K/V mean to the storage type exactly once, as
 * the device stores its pyramid, so what remains is fp32 accumulation plus the output's own
 * rounding (half an ulp: 2^-11 for fp16, 2^-8 for bf16, relative); a device whose pooled value
 * lands one storage ulp away (fp32 mean vs double mean at a rounding tie) moves a logit by
 * less than that again. */
static ts_tolerance output_tolerance(clpsa_dtype out_dtype) {
    switch (out_dtype) {
    case CLPSA_DTYPE_FP16:
        return (ts_tolerance){2e-3, 2e-3, 1e-3};
    case CLPSA_DTYPE_BF16:
        return (ts_tolerance){1.6e-2, 1.6e-2, 8e-3};
    default:
        return (ts_tolerance){2e-5, 1e-4, 1e-5};
    }
}

static void check_output_against_levels(psa_case *c, const int8_t *levels, const char *what) {
    double *ref = xmalloc(c->out_count * sizeof *ref);
    const clpsa_dtype dtype = c->desc.dtype ? c->desc.dtype : CLPSA_DTYPE_FP32;
    if (ref_psa_attention(&c->prob, c->res.params.block_q, c->res.params.block_k, levels, c->q,
                          c->k, c->v, dtype, ref) != 0)
        ts_fail("ref_psa_attention failed");
    const clpsa_dtype out_dtype = c->desc.out_dtype ? c->desc.out_dtype : dtype;
    ts_assert_close(
        what, c->out, ref, c->od,
        ts_tolerance_for_variant(output_tolerance(out_dtype), c->plan, "attend", dtype));
    free(ref);
}

static void random_levels(ts_rng *rng, int8_t *levels, size_t rows, int nk) {
    static const int8_t choices[5] = {0, 1, 2, 4, 8};
    for (size_t r = 0; r < rows; ++r) {
        int8_t *row = levels + r * (size_t)nk;
        const int kind = (int)(ts_rng_next(rng) % 8);
        for (int j = 0; j < nk; ++j) {
            if (kind == 0)
                row[j] = 0; /* a row that sees nothing */
            else if (kind == 1)
                row[j] = 8; /* everything at the coarsest level */
            else
                row[j] = choices[ts_rng_next(rng) % 5];
        }
    }
}

/* ========================================================================================
 * The reference itself
 * ======================================================================================== */

static void test_ref_splitmix64_and_offset_draw(void **state) {
    (void)state;
    ts_case_begin("ref_splitmix64_and_offset_draw");
    /* The published splitmix64 vectors (Vigna's reference generator): seed 0 and 1234567. */
    uint64_t x = 0;
    assert_true(ref_psa_splitmix64(&x) == 0xE220A8397B1DCDAFull);
    assert_true(x == 0x9E3779B97F4A7C15ull); /* the state moved first, then was mixed */
    assert_true(ref_psa_splitmix64(&x) == 0x6E789E6AA1B965F4ull);
    assert_true(ref_psa_splitmix64(&x) == 0x06C45D188009454Full);
    x = 1234567;
    assert_true(ref_psa_splitmix64(&x) == 6457827717110365317ull);
    assert_true(ref_psa_splitmix64(&x) == 3203168211198807973ull);
    assert_true(ref_psa_splitmix64(&x) == 9817491932198370423ull);

    /* By hand, x0 = 0, n = 8, s = 3: 0x...cdaf % 8 = 7 -> swap a0, a7: [7,1,2,3,4,5,6,0];
     * 0x...65f4 % 7 = 1 -> j = 2: [7,2,1,...]; 0x...454f % 6 = 1 -> j = 3: [7,2,3,1,...]. */
    assert_int_equal(0xE220A8397B1DCDAFull % 8, 7);
    assert_int_equal(0x6E789E6AA1B965F4ull % 7, 1);
    assert_int_equal(0x06C45D188009454Full % 6, 1);
    int out[256];
    assert_int_equal(ref_psa_draw_offsets(0, 8, 3, out), 0);
    assert_int_equal(out[0], 7);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 3);
    /* s = n is a full permutation. */
    assert_int_equal(ref_psa_draw_offsets(7, 5, 5, out), 0);
    const int perm[5] = {2, 1, 0, 4, 3};
    for (int i = 0; i < 5; ++i)
        assert_int_equal(out[i], perm[i]);
    /* The state wraps modulo 2^64. */
    assert_int_equal(ref_psa_draw_offsets(UINT64_MAX, 16, 16, out), 0);
    const int wrapped[16] = {0, 10, 9, 1, 3, 5, 11, 2, 12, 8, 6, 13, 15, 14, 7, 4};
    for (int i = 0; i < 16; ++i)
        assert_int_equal(out[i], wrapped[i]);
    /* Streams: rows seed + 2 (b Hq + h), keys one more. */
    assert_true(ref_psa_row_stream(42, 3, 1, 2) == 52);
    assert_true(ref_psa_key_stream(42, 3, 1, 2) == 53);
    assert_true(ref_psa_row_stream(UINT64_MAX, 1, 0, 1) == 1);
    assert_int_equal(ref_psa_draw_offsets(52, 128, 32, out), 0);
    const int first[8] = {74, 25, 62, 38, 84, 23, 69, 4};
    for (int i = 0; i < 8; ++i)
        assert_int_equal(out[i], first[i]);
    /* Distinct and in range for many (n, s). */
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    for (int trial = 0; trial < 200; ++trial) {
        const int n = 1 + (int)(ts_rng_next(&rng) % 256);
        const int s = 1 + (int)(ts_rng_next(&rng) % (uint64_t)n);
        assert_int_equal(ref_psa_draw_offsets(ts_rng_next(&rng), n, s, out), 0);
        char seen[256] = {0};
        for (int i = 0; i < s; ++i) {
            assert_in_range(out[i], 0, n - 1);
            assert_int_equal(seen[out[i]], 0);
            seen[out[i]] = 1;
        }
    }
    assert_int_equal(ref_psa_draw_offsets(0, 4, 5, out), -1);
    assert_int_equal(ref_psa_draw_offsets(0, 4, 0, out), -1);
}

/* A small strided problem on the host only. */
typedef struct host_problem {
    ref_attention_problem p;
    ts_dims qd, kd;
    float *q, *k, *v;
} host_problem;

static void host_problem_init(host_problem *h, int batch, int heads_q, int heads_kv, int seq_q,
                              int seq_k, int dim, ts_layout layout, int causal) {
    memset(h, 0, sizeof *h);
    h->qd = (ts_dims){batch, heads_q, seq_q, dim};
    h->kd = (ts_dims){batch, heads_kv, seq_k, dim};
    ref_attention_problem *p = &h->p;
    p->batch = batch;
    p->heads_q = heads_q;
    p->heads_kv = heads_kv;
    p->seq_q = seq_q;
    p->seq_k = seq_k;
    p->head_dim = dim;
    p->q_strides = ts_strides(layout, h->qd, 0);
    p->k_strides = ts_strides(layout, h->kd, 0);
    p->v_strides = ts_strides(layout, h->kd, 0);
    p->scale = 1.0 / sqrt((double)dim);
    p->causal = causal;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    fill_tensor(&rng, &h->q, h->qd, p->q_strides, CLPSA_DTYPE_FP32);
    fill_tensor(&rng, &h->k, h->kd, p->k_strides, CLPSA_DTYPE_FP32);
    fill_tensor(&rng, &h->v, h->kd, p->v_strides, CLPSA_DTYPE_FP32);
}

static void host_problem_free(host_problem *h) {
    free(h->q);
    free(h->k);
    free(h->v);
}

static double max_abs_diff(const double *a, const double *b, size_t count) {
    double worst = 0.0;
    for (size_t i = 0; i < count; ++i) {
        const double d = fabs(a[i] - b[i]);
        worst = d > worst || isnan(d) ? d : worst;
    }
    return worst;
}

static void test_ref_pyramid_and_levels(void **state) {
    (void)state;
    ts_case_begin("ref_pyramid_and_levels");
    /* Ragged on purpose: Nk = 45 leaves partial groups at levels 2, 4 and 8. */
    const int bm = 16, bn = 16;
    for (int variant = 0; variant < 4; ++variant) {
        const int causal = variant & 1;
        const ts_layout layout = variant & 2 ? TS_BNHD : TS_BHND;
        host_problem h;
        host_problem_init(&h, 2, 4, 2, 37, 45, 8, layout, causal);
        const ref_attention_problem *p = &h.p;
        const int nq = ceil_div(37, bm), nk = ceil_div(45, bn);
        const size_t cells = (size_t)2 * 4 * nq * nk, count = (size_t)2 * 4 * 37 * 8;
        int8_t *levels = xmalloc(cells);
        double *dense = xmalloc(count * sizeof *dense);
        double *pooled = xmalloc(count * sizeof *pooled);

        /* Pool counts and means at the ragged end. */
        assert_int_equal(ref_psa_pool_count(45, 8, 5), 5);
        assert_int_equal(ref_psa_pool_count(45, 4, 11), 1);
        assert_int_equal(ref_psa_pool_count(45, 2, 22), 1);
        assert_int_equal(ref_psa_pool_count(45, 2, 23), 0);
        ref_psa_pyramid pyr;
        assert_int_equal(ref_psa_pyramid_build(p, h.k, h.v, CLPSA_DTYPE_DEFAULT, &pyr), 0);
        assert_int_equal(pyr.npool[1], 23);
        assert_int_equal(pyr.npool[2], 12);
        assert_int_equal(pyr.npool[3], 6);
        for (int d = 0; d < 8; ++d) {
            double sum = 0.0;
            for (int c = 40; c < 45; ++c)
                sum += h.k[ref_offset(&p->k_strides, 1, 1, c) + d];
            assert_true(fabs(ref_psa_pyramid_k(&pyr, 8, 1, 1, 5)[d] - sum / 5) < 1e-12);
            assert_true(ref_psa_pyramid_v(&pyr, 2, 1, 1, 22)[d] ==
                        (double)h.v[ref_offset(&p->v_strides, 1, 1, 44) + d]);
        }
        ref_psa_pyramid_free(&pyr);

        /* All level 1 is dense attention. */
        memset(levels, 1, cells);
        assert_int_equal(ref_attention_dense(p, h.q, h.k, h.v, dense), 0);
        assert_int_equal(
            ref_psa_attention(p, bm, bn, levels, h.q, h.k, h.v, CLPSA_DTYPE_DEFAULT, pooled), 0);
        if (max_abs_diff(dense, pooled, count) > 1e-12)
            ts_fail("all-level-1 reference differs from dense by %g (variant %d)",
                    max_abs_diff(dense, pooled, count), variant);

        /* All level f (non-causal) is dense attention over keys and values replaced by their
         * group's mean, each repeated once per real member: the ln(cnt) bias at work. */
        if (!causal) {
            for (int f = 2; f <= 8; f *= 2) {
                const size_t extent = ts_extent(h.kd, p->k_strides);
                float *km = xmalloc(extent * sizeof(float));
                float *vm = xmalloc(extent * sizeof(float));
                memcpy(km, h.k, extent * sizeof(float));
                memcpy(vm, h.v, extent * sizeof(float));
                for (int b = 0; b < 2; ++b)
                    for (int kvh = 0; kvh < 2; ++kvh)
                        for (int c = 0; c < 45; ++c)
                            for (int d = 0; d < 8; ++d) {
                                const int first = c / f * f;
                                const int last = first + f < 45 ? first + f : 45;
                                double ks = 0.0, vs = 0.0;
                                for (int x = first; x < last; ++x) {
                                    ks += h.k[ref_offset(&p->k_strides, b, kvh, x) + d];
                                    vs += h.v[ref_offset(&p->v_strides, b, kvh, x) + d];
                                }
                                km[ref_offset(&p->k_strides, b, kvh, c) + d] =
                                    (float)(ks / (last - first));
                                vm[ref_offset(&p->v_strides, b, kvh, c) + d] =
                                    (float)(vs / (last - first));
                            }
                memset(levels, f, cells);
                assert_int_equal(ref_attention_dense(p, h.q, km, vm, dense), 0);
                assert_int_equal(
                    ref_psa_attention(p, bm, bn, levels, h.q, h.k, h.v, CLPSA_DTYPE_FP32, pooled),
                    0);
                if (max_abs_diff(dense, pooled, count) > 1e-9)
                    ts_fail("all-level-%d reference differs from repeated means by %g", f,
                            max_abs_diff(dense, pooled, count));
                free(km);
                free(vm);
            }
        }
        /* All level 0 is zeros; a value that is not a level is refused. */
        memset(levels, 0, cells);
        assert_int_equal(
            ref_psa_attention(p, bm, bn, levels, h.q, h.k, h.v, CLPSA_DTYPE_DEFAULT, pooled), 0);
        for (size_t i = 0; i < count; ++i)
            assert_true(pooled[i] == 0.0);
        levels[3] = 3;
        assert_int_equal(
            ref_psa_attention(p, bm, bn, levels, h.q, h.k, h.v, CLPSA_DTYPE_DEFAULT, pooled), -1);
        free(levels);
        free(dense);
        free(pooled);
        host_problem_free(&h);
    }
}

/* The sampled estimate with every row and key sampled, rebuilt from dense logits. */
static void test_ref_sampled_exact_from_logits(void **state) {
    (void)state;
    ts_case_begin("ref_sampled_exact_from_logits");
    const int bm = 16, bn = 16, seq_q = 40, seq_k = 53;
    host_problem h;
    host_problem_init(&h, 1, 2, 1, seq_q, seq_k, 8, TS_BNHD, 0);
    const int nq = ceil_div(seq_q, bm), nk = ceil_div(seq_k, bn);
    double *s = xmalloc((size_t)2 * nq * nk * sizeof *s);
    assert_int_equal(ref_psa_estimate_sampled(&h.p, bm, bn, bm, bn, 99, h.q, h.k, s), 0);
    for (int hq = 0; hq < 2; ++hq)
        for (int i = 0; i < nq; ++i) {
            double p_row[8] = {0}, total = 0.0;
            for (int t = i * bm; t < (i + 1) * bm && t < seq_q; ++t) {
                double m[8], row_max = -INFINITY;
                for (int j = 0; j < nk; ++j) {
                    m[j] = -INFINITY;
                    for (int c = j * bn; c < (j + 1) * bn && c < seq_k; ++c) {
                        const double z =
                            h.p.scale * ref_dot(h.q + ref_offset(&h.p.q_strides, 0, hq, t),
                                                h.k + ref_offset(&h.p.k_strides, 0, 0, c), 8);
                        m[j] = z > m[j] ? z : m[j];
                    }
                    row_max = m[j] > row_max ? m[j] : row_max;
                }
                for (int j = 0; j < nk; ++j)
                    p_row[j] = fmax(p_row[j], exp(m[j] - row_max));
            }
            for (int j = 0; j < nk; ++j)
                total += p_row[j];
            for (int j = 0; j < nk; ++j) {
                const double want = p_row[j] / total;
                const double got = s[((size_t)hq * nq + i) * nk + j];
                if (fabs(got - want) > 1e-12)
                    ts_fail("exact sampled S[h=%d][%d][%d] = %.17g, from logits %.17g", hq, i, j,
                            got, want);
            }
        }
    free(s);
    host_problem_free(&h);
}

/* The antidiagonal estimate at stride 1 is the dense attention mass per block pair. */
static void test_ref_antidiagonal_stride1_is_attention_mass(void **state) {
    (void)state;
    ts_case_begin("ref_antidiagonal_stride1_is_attention_mass");
    const int bm = 16, bn = 16;
    for (int variant = 0; variant < 3; ++variant) {
        const int causal = variant > 0;
        const int seq_q = variant == 2 ? 50 : 37, seq_k = variant == 2 ? 29 : 61;
        host_problem h;
        host_problem_init(&h, 1, 2, 2, seq_q, seq_k, 8, TS_BHND, causal);
        const int nq = ceil_div(seq_q, bm), nk = ceil_div(seq_k, bn);
        double *s = xmalloc((size_t)2 * nq * nk * sizeof *s);
        assert_int_equal(ref_psa_estimate_antidiagonal(&h.p, bm, bn, 1, h.q, h.k, s), 0);
        double *z = xmalloc((size_t)seq_k * sizeof *z);
        for (int hq = 0; hq < 2; ++hq)
            for (int i = 0; i < nq; ++i) {
                double mass[8] = {0}, total = 0.0;
                for (int t = i * bm; t < (i + 1) * bm && t < seq_q; ++t) {
                    const int visible = ref_visible_keys(&h.p, t);
                    double max = -INFINITY, sum = 0.0;
                    for (int c = 0; c < visible; ++c) {
                        z[c] = h.p.scale * ref_dot(h.q + ref_offset(&h.p.q_strides, 0, hq, t),
                                                   h.k + ref_offset(&h.p.k_strides, 0, hq, c), 8);
                        max = z[c] > max ? z[c] : max;
                    }
                    for (int c = 0; c < visible; ++c)
                        sum += exp(z[c] - max);
                    for (int c = 0; c < visible; ++c)
                        mass[c / bn] += exp(z[c] - max) / sum;
                }
                for (int j = 0; j < nk; ++j)
                    total += mass[j];
                for (int j = 0; j < nk; ++j) {
                    const double want = total > 0.0 ? mass[j] / total : 0.0;
                    const double got = s[((size_t)hq * nq + i) * nk + j];
                    if (fabs(got - want) > 1e-12)
                        ts_fail("stride-1 S[h=%d][%d][%d] = %.17g, attention mass %.17g "
                                "(variant %d)",
                                hq, i, j, got, want, variant);
                }
            }
        free(z);
        free(s);
        host_problem_free(&h);
    }
}

static void expect_row(const int *got, const int *want, int nk, const char *what) {
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

/* Hand-worked rows of docs/algorithm.md §6. */
static void test_ref_assignment_by_hand(void **state) {
    (void)state;
    ts_case_begin("ref_assignment_by_hand");
    ref_psa_params p;
    int got[16];
    double energy[16];
    const double taus[4] = {0.5, 0.6, 0.7, 0.8};

    /* threshold, no alignment: sorted 1,3,2,0 with E = .4 .7 .9 1. tau1: c=1 -> end 2 -> blocks
     * 1, 3; tau2: c=1 -> nothing; tau4: c=2 -> end 3 -> block 2; tau8: nothing; 0: block 0. */
    const double s4[4] = {0.1, 0.4, 0.2, 0.3};
    ref_psa_params_default(&p);
    memcpy(p.thresholds, taus, sizeof taus);
    p.align_tile = 0;
    p.min_full = -1.0;
    assert_int_equal(ref_psa_assign_row_rule(s4, 4, &p, got, energy, NULL), 0);
    expect_row(got, (const int[]){0, 1, 4, 1}, 4, "threshold, 4 blocks");
    assert_true(fabs(energy[1] - 0.7) < 1e-15);
    p.min_full = 0.06f; /* floor(0.24) + 1 = 1 block: no change */
    assert_int_equal(ref_psa_assign_row_rule(s4, 4, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){0, 1, 4, 1}, 4, "threshold, min_full 0.06");
    p.min_full = 0.5; /* floor(2) + 1 = 3 blocks at level 1 */
    assert_int_equal(ref_psa_assign_row_rule(s4, 4, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){0, 1, 1, 1}, 4, "threshold, min_full 0.5");
    p.min_full = 0.0; /* 0 still keeps floor(0) + 1 = 1 block; only "none" keeps none */
    p.thresholds[0] = 0.0;
    assert_int_equal(ref_psa_assign_row_rule(s4, 4, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){0, 1, 4, 2}, 4, "threshold, tau1 0, min_full 0");

    /* Ten blocks, S descending with the index: E = 10/55, 19/55, 27/55, 34/55, 40/55, 45/55,
     * 49/55, 52/55, 54/55, 1. */
    double s10[10];
    for (int j = 0; j < 10; ++j)
        s10[j] = (10.0 - j) / 55.0;
    ref_psa_params_default(&p);
    memcpy(p.thresholds, taus, sizeof taus);
    p.min_full = -1.0;
    p.block_k = 32; /* align_tile 32: align(2) = 2, align(4) = 4, align(8) = 8 */
    /* tau1: c=3 -> [0,4) level 1; tau2: c=3 -> end 4 -> nothing; tau4: c=4 -> end 5 -> round
     * up to 4 -> [4,8) level 4; tau8: c=5 -> end 6 < prev -> nothing; rest 0. */
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 1, 1, 1, 4, 4, 4, 4, 0, 0}, 10, "threshold, aligned");
    /* tau8 = 0.95: c=8 -> end 9 -> [4, 12) clipped to nk = 10 = nk -> floor back to 4. */
    const double taus95[4] = {0.5, 0.5, 0.5, 0.95};
    memcpy(p.thresholds, taus95, sizeof taus95);
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, 10, "threshold, align at end");
    /* bn 128: align(8) = 2 -> [4, 10) fits exactly. */
    p.block_k = 128;
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 1, 1, 1, 8, 8, 8, 8, 8, 8}, 10, "threshold, bn 128");
    /* bn 16 < align_tile: align(2) = 4 (the release divides by zero here). */
    assert_int_equal(ref_psa_align(2, 32, 16), 4);
    assert_int_equal(ref_psa_align(8, 32, 16), 16);
    assert_int_equal(ref_psa_align(2, 32, 128), 1);
    assert_int_equal(ref_psa_align(1, 32, 16), 1);
    assert_int_equal(ref_psa_align(8, 0, 16), 1);

    /* quantile (0.1, 0.15, 0.15, 0.35): ends 1, 1, 1, 3 -> block 0 level 1, blocks 1-2 level
     * 8; aligned at bn 32 (align(8) = 8): [1, 9) level 8. No min_full, no +1. */
    const double tq[4] = {0.1, 0.15, 0.15, 0.35};
    memcpy(p.thresholds, tq, sizeof tq);
    p.mode = CLPSA_MODE_QUANTILE;
    p.min_full = 0.5;
    p.align_tile = 0;
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 8, 8, 0, 0, 0, 0, 0, 0, 0}, 10, "quantile");
    p.align_tile = 32;
    p.block_k = 32;
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 8, 8, 8, 8, 8, 8, 8, 8, 0}, 10, "quantile, aligned");

    /* energy: E <= .5 -> 1 (three), .618 -> 4, .727 -> 8, the rest 0. */
    memcpy(p.thresholds, taus, sizeof taus);
    p.mode = CLPSA_MODE_ENERGY;
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, energy, NULL), 0);
    expect_row(got, (const int[]){1, 1, 1, 4, 8, 0, 0, 0, 0, 0}, 10, "energy");
    assert_true(ref_psa_energy_near_threshold(energy, 10, taus, 1e-5) == 0);
    const double near_taus[4] = {0.5, 0.6, 34.0 / 55.0 + 5e-6, 0.8};
    assert_true(ref_psa_energy_near_threshold(energy, 10, near_taus, 1e-5) == 1);

    /* Ties go to the lower index; binary keeps ceil(0.25 * 10) = 3. */
    const double flat[4] = {0.25, 0.25, 0.25, 0.25};
    int order[4];
    ref_psa_sort_row(flat, 4, order);
    expect_row(order, (const int[]){0, 1, 2, 3}, 4, "tie order");
    const double tie2[5] = {0.1, 0.3, 0.1, 0.3, 0.2};
    int order5[5];
    ref_psa_sort_row(tie2, 5, order5);
    expect_row(order5, (const int[]){1, 3, 4, 0, 2}, 5, "tie order 2");
    ref_psa_params_default(&p);
    p.binary = 1;
    p.binary_density = 0.25;
    assert_int_equal(ref_psa_assign_row_rule(s10, 10, &p, got, NULL, NULL), 0);
    expect_row(got, (const int[]){1, 1, 1, 0, 0, 0, 0, 0, 0, 0}, 10, "binary");

    /* A zero row (antidiagonal block that sees nothing) has E = 1 everywhere. */
    const double zeros[4] = {0, 0, 0, 0};
    ref_psa_params_default(&p);
    p.mode = CLPSA_MODE_ENERGY;
    assert_int_equal(ref_psa_assign_row_rule(zeros, 4, &p, got, energy, NULL), 0);
    expect_row(got, (const int[]){0, 0, 0, 0}, 4, "energy, zero row");
    assert_true(energy[0] == 1.0);

    /* Diagonal blocks. */
    assert_int_equal(ref_psa_diagonal_block(0, 16, 16, 40, 64), 2);
    assert_int_equal(ref_psa_diagonal_block(2, 16, 16, 40, 64), 3);
    assert_int_equal(ref_psa_diagonal_block(0, 16, 16, 64, 40), -1);
    assert_int_equal(ref_psa_diagonal_block(1, 16, 16, 64, 40), 0);
    assert_int_equal(ref_psa_diagonal_block(3, 16, 32, 64, 40), 1);

    /* Text query blocks: those holding one of the last text_tokens rows. */
    assert_false(ref_psa_text_query_block(1, 16, 40, 5));
    assert_true(ref_psa_text_query_block(2, 16, 40, 5));
    assert_true(ref_psa_text_query_block(1, 16, 40, 9)); /* row 31 is text */
    assert_false(ref_psa_text_query_block(1, 16, 40, 8));
    assert_false(ref_psa_text_query_block(2, 16, 40, 0));
    assert_true(ref_psa_text_query_block(0, 16, 40, 64)); /* more text than rows */
    /* Future blocks: first key after the last key the block's last row sees. */
    assert_false(ref_psa_future_block(0, 2, 16, 16, 40, 64, 1)); /* last key 39 */
    assert_true(ref_psa_future_block(0, 3, 16, 16, 40, 64, 1));
    assert_false(ref_psa_future_block(0, 3, 16, 16, 40, 64, 0));
    assert_true(ref_psa_future_block(0, 0, 16, 16, 64, 40, 1)); /* sees nothing */
    assert_false(ref_psa_future_block(1, 0, 16, 16, 64, 40, 1));
    assert_true(ref_psa_future_block(1, 1, 16, 16, 64, 40, 1));
    /* The rules together: the future wins over a text key block, a text query block forces
     * every visible key block. */
    int forced[4];
    ref_psa_forced_row(0, 16, 16, 40, 64, 5, 1, forced);
    expect_row(forced, (const int[]){REF_PSA_FORCED, REF_PSA_FREE, REF_PSA_FORCED, REF_PSA_FUTURE},
               4, "forced row 0");
    ref_psa_forced_row(1, 16, 16, 40, 64, 5, 1, forced);
    expect_row(forced, (const int[]){REF_PSA_FORCED, REF_PSA_FREE, REF_PSA_FREE, REF_PSA_FORCED}, 4,
               "forced row 1");
    ref_psa_forced_row(2, 16, 16, 40, 64, 5, 1, forced);
    expect_row(forced,
               (const int[]){REF_PSA_FORCED, REF_PSA_FORCED, REF_PSA_FORCED, REF_PSA_FORCED}, 4,
               "forced text row");
    ref_psa_forced_row(0, 16, 16, 40, 64, 5, 0, forced); /* not causal: text only */
    expect_row(forced, (const int[]){REF_PSA_FREE, REF_PSA_FREE, REF_PSA_FREE, REF_PSA_FORCED}, 4,
               "forced row 0, not causal");
    ref_psa_forced_row(1, 16, 16, 64, 40, 0, 1, forced); /* Nq > Nk: last key 7 */
    expect_row(forced, (const int[]){REF_PSA_FORCED, REF_PSA_FUTURE, REF_PSA_FUTURE}, 3,
               "forced row, Nq > Nk");
}

/* Key shaper for the similarity cap: block j's tokens repeat in runs of 1, 2, 4 or 8 (j % 4),
 * so sim_2, sim_4, sim_8 are exactly 1 where runs cover the pair and random (about 0) where
 * not: caps L = 1, 2, 4, 8. */
static void shape_k_runs(float *k, ts_dims dims, clpsa_strides s, int block_k) {
    for (int64_t b = 0; b < dims.batch; ++b)
        for (int64_t h = 0; h < dims.heads; ++h)
            for (int64_t n = 0; n < dims.seq; ++n) {
                const int run = 1 << ((n / block_k) % 4);
                const int64_t source = n / run * run;
                if (source != n)
                    memcpy(k + ts_offset(s, b, h, n, 0), k + ts_offset(s, b, h, source, 0),
                           (size_t)dims.dim * sizeof(float));
            }
}

static void test_ref_similarity_cap(void **state) {
    (void)state;
    ts_case_begin("ref_similarity_cap");
    const int bn = 16, seq_k = 16 * 4 + 13; /* the ragged block is a run-1 block */
    host_problem h;
    host_problem_init(&h, 1, 2, 1, 20, seq_k, 16, TS_BHND, 0);
    shape_k_runs(h.k, h.kd, h.p.k_strides, bn);
    const int nk = ceil_div(seq_k, bn);
    double sims[5 * 3];
    assert_int_equal(ref_psa_block_similarity(&h.p, bn, h.k, sims), 0);
    const double t[3] = {0.7, 0.65, 0.6};
    const int caps[5] = {1, 2, 4, 8, 1};
    for (int j = 0; j < nk; ++j) {
        assert_int_equal(ref_psa_similarity_cap(sims + j * 3, t), caps[j]);
        assert_false(ref_psa_similarity_near(sims + j * 3, t, 1e-5));
    }
    assert_true(fabs(sims[3 * 3 + 2] - 1.0) < 1e-12);
    /* A block with fewer than f real tokens has no group: sim = -inf. */
    host_problem h2;
    host_problem_init(&h2, 1, 1, 1, 4, 16 + 3, 16, TS_BHND, 0);
    assert_int_equal(ref_psa_block_similarity(&h2.p, bn, h2.k, sims), 0);
    assert_true(isfinite(sims[3 + 0]));
    assert_true(sims[3 + 1] == -INFINITY && sims[3 + 2] == -INFINITY);

    /* The whole assignment caps after forcing: causal forced block 0 (level 1) stays 1; a
     * level-8 block of run length 2 becomes 2. Scores put everything at level 8 (energy with
     * tau8 = 1 and the others 0). */
    ref_psa_params p;
    ref_psa_params_default(&p);
    p.block_q = 16;
    p.block_k = bn;
    p.mode = CLPSA_MODE_ENERGY;
    const double taus[4] = {0.0, 0.0, 0.0, 1.0};
    memcpy(p.thresholds, taus, sizeof taus);
    p.similarity_cap = 1;
    memcpy(p.similarity_thresholds, t, sizeof t);
    const int nq = ceil_div(20, 16);
    double *scores = xmalloc((size_t)2 * nq * nk * sizeof *scores);
    for (int x = 0; x < 2 * nq * nk; ++x)
        scores[x] = 1.0 / nk + 1e-3 * (x % nk); /* E never near 0 or 1 before the end */
    int8_t levels[2 * 2 * 5];
    int near[4];
    assert_int_equal(ref_psa_assign(&h.p, &p, scores, h.k, levels, near), 0);
    /* Every E is above 0 + 1e-6 and at most 1, so the rule puts every block at level 8 and
     * the cap alone decides. */
    for (int row = 0; row < 2 * nq; ++row)
        for (int j = 0; j < nk; ++j)
            assert_int_equal(levels[row * nk + j], caps[j]);
    p.causal = 1;
    p.text_tokens = 1;
    assert_int_equal(ref_psa_assign(&h.p, &p, scores, h.k, levels, near), 0);
    for (int row = 0; row < 2 * nq; ++row) {
        assert_int_equal(levels[row * nk + 0], 1); /* forced, cap 1 */
        assert_int_equal(levels[row * nk + 4], 1); /* text block, cap 1 */
        /* cap 8, except in query block 1, which holds the text row: level 1 throughout */
        assert_int_equal(levels[row * nk + 3], row % nq == 1 ? 1 : 8);
    }
    /* Above, the 20 queries are the last rows of 77 keys, so nothing is in their future. A
     * square causal problem (77 queries over 77 keys): query block i sees key blocks 0..i,
     * and the later ones get level 0 though the rule or the text key block 4 would give them
     * a level. */
    host_problem hs;
    host_problem_init(&hs, 1, 2, 1, seq_k, seq_k, 16, TS_BHND, 1);
    shape_k_runs(hs.k, hs.kd, hs.p.k_strides, bn);
    const int nqs = ceil_div(seq_k, 16);
    double *square = xmalloc((size_t)2 * nqs * nk * sizeof *square);
    for (int x = 0; x < 2 * nqs * nk; ++x)
        square[x] = 1.0 / nk + 1e-3 * (x % nk);
    int8_t *sq_levels = xmalloc((size_t)2 * nqs * nk);
    int *sq_near = xmalloc((size_t)2 * nqs * sizeof *sq_near);
    assert_int_equal(ref_psa_assign(&hs.p, &p, square, hs.k, sq_levels, sq_near), 0);
    for (int row = 0; row < 2 * nqs; ++row) {
        const int i = row % nqs;
        for (int j = 0; j < nk; ++j) {
            /* future: 0; visible: the rule's 8 under the cap, forced blocks 1 (key block 0,
             * the diagonal i, the text block 4, every block of the text query block 4) */
            const int want = j > i ? 0 : (j == 0 || j == i || j == 4 || i == 4) ? 1 : caps[j];
            if (sq_levels[row * nk + j] != want)
                fail_msg("causal square: row %d block %d level %d, want %d", row, j,
                         sq_levels[row * nk + j], want);
        }
    }
    free(square);
    free(sq_levels);
    free(sq_near);
    host_problem_free(&hs);
    free(scores);
    host_problem_free(&h);
    host_problem_free(&h2);
}

static void test_ref_presets_and_stats(void **state) {
    (void)state;
    ts_case_begin("ref_presets_and_stats");
    assert_int_equal(ref_psa_preset_count(), 5);
    const ref_psa_preset *u = ref_psa_find_preset("understanding");
    assert_non_null(u);
    assert_int_equal(u->mode, CLPSA_MODE_ENERGY);
    assert_int_equal(u->causal, 1);
    assert_int_equal(u->estimator, CLPSA_ESTIMATOR_ANTIDIAGONAL);
    assert_true(u->similarity_thresholds[0] == 0.75f);
    const ref_psa_preset *w = ref_psa_find_preset("wan22-5b");
    assert_non_null(w);
    assert_int_equal(w->block_k, 32);
    assert_null(ref_psa_find_preset("wan21"));
    ref_psa_params p;
    ref_psa_params_from_preset(ref_psa_find_preset("cogvideox"), &p);
    assert_int_equal(p.mode, CLPSA_MODE_QUANTILE);
    assert_true(p.thresholds[3] == (double)0.35f);
    assert_int_equal(p.block_k, 128);

    const int8_t m[2 * 4] = {1, 2, 0, 8, 4, 4, 0, 0};
    double density = 0.0;
    uint64_t hist[5];
    assert_int_equal(ref_psa_level_stats(m, 2, 4, &density, hist), 0);
    /* row 0: (1 + 1/2 + 1/8) / 4 = 0.40625; row 1: (1/4 + 1/4) / 4 = 0.125 */
    assert_true(fabs(density - (0.40625 + 0.125) / 2) < 1e-15);
    assert_int_equal(hist[0], 3);
    assert_int_equal(hist[1], 1);
    assert_int_equal(hist[2], 1);
    assert_int_equal(hist[3], 2);
    assert_int_equal(hist[4], 1);
    const int8_t bad[2] = {1, 3};
    assert_int_equal(ref_psa_level_stats(bad, 1, 2, &density, hist), -1);
}

/* ========================================================================================
 * Attention over supplied level maps
 * ======================================================================================== */

typedef struct level_config {
    int bm, bn, batch, heads_q, heads_kv, seq_q, seq_k, dim;
    ts_layout layout;
    int causal;
    int row_pad; /* elements of padding after each D-vector (0: contiguous) */
} level_config;

static void run_level_config(const level_config *cfg, clpsa_dtype dtype, clpsa_dtype out_dtype,
                             int maps) {
    char name[320];
    snprintf(name, sizeof name,
             "levels bm=%d bn=%d B=%d Hq=%d Hkv=%d Nq=%d Nk=%d D=%d %s pad=%d%s %s %s", cfg->bm,
             cfg->bn, cfg->batch, cfg->heads_q, cfg->heads_kv, cfg->seq_q, cfg->seq_k, cfg->dim,
             ts_layout_name(cfg->layout), cfg->row_pad, cfg->causal ? " causal" : "",
             dtype_label(dtype), attend_params);
    ts_case_begin(name);
    clpsa_plan_desc d =
        base_desc(cfg->batch, cfg->heads_q, cfg->heads_kv, cfg->seq_q, cfg->seq_k, cfg->dim);
    d.block_q = cfg->bm;
    d.block_k = cfg->bn;
    d.causal = cfg->causal;
    d.dtype = dtype;
    d.out_dtype = out_dtype;
    psa_case c;
    case_init_padded(&c, &d, cfg->layout, cfg->row_pad, NULL);
    assert_int_equal(c.grid.blocks_q, ceil_div(cfg->seq_q, cfg->bm));
    assert_int_equal(c.grid.blocks_k, ceil_div(cfg->seq_k, cfg->bn));
    assert_int_equal(c.grid.count,
                     (size_t)cfg->batch * cfg->heads_q * c.grid.blocks_q * c.grid.blocks_k);
    int8_t *levels = xmalloc(c.grid.count);
    int8_t *back = xmalloc(c.grid.count);
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed() ^ 0x1E7E15ull);
    for (int map = 0; map < maps; ++map) {
        random_levels(&rng, levels, c.grid.count / c.grid.blocks_k, c.grid.blocks_k);
        ts_check(ctx, clpsa_plan_set_levels(c.plan, levels));
        case_run(&c);
        case_read_levels(&c, back);
        if (memcmp(back, levels, c.grid.count) != 0)
            ts_fail("read_levels does not return the supplied level map (map %d)", map);
        char what[400];
        snprintf(what, sizeof what, "%s, random map %d", name, map);
        check_output_against_levels(&c, levels, what);
    }
    free(levels);
    free(back);
    case_free(&c);
}

/* Runs `body` once per attend variant the device can run (the plan's own choice first), for
 * the CPU variant again with its smallest tile, for the SIMT variant again with 8 rows per
 * work-item (64-key tiles; 4 rows where the head dimension is not a multiple of 64) and with
 * 32-key tiles staged in parts of 32 head dimensions (its prefetching staging), and for the
 * matrix-unit variants again with two stages. */
static void each_attend_variant(void (*body)(void), bool tile_configs) {
    int variants[8];
    const int count = ts_variants_available(ctx, "attend", variants, 8);
    bool portable = false;
    for (int i = 0; i < count; ++i)
        portable = portable || variants[i] == 1;
    if (!portable)
        ts_fail("the portable variant (attend.VARIANT=1) must always be available");
    for (int i = 0; i < count; ++i) {
        /* The CPU variant's one-vector register block and smallest tile (its other tiles, and
         * the SIMT variant's, share the tile step with the dense suite's). */
        const bool tiled = variants[i] == 3 && tile_configs;
        /* The SIMT variant's 8-row register tiles and its prefetching staging, each with one of
         * the two unroll depths (the default pass takes the device's). */
        const bool wide = variants[i] == 4 && tile_configs;
        /* The matrix-unit variants' two-stage loops (nvidia-wgmma's is the overlapped one). */
        const bool staged = (variants[i] == 2 || variants[i] == 5) && tile_configs;
        for (int t = 0; t < (wide ? 3 : tiled || staged ? 2 : 1); ++t) {
            attend_subset = t > 0 || (i > 0 && variants[i] != 1);
            attend_variant = variants[i];
            snprintf(attend_params, sizeof attend_params, "attend.VARIANT=%d%s", variants[i],
                     t == 0  ? ""
                     : tiled ? ",attend.CPU_ROWS=16,attend.CPU_TILE_N=16"
                     : wide && t == 1
                         ? ",attend.SIMT_ROWS=32,attend.SIMT_TILE_N=64,attend.SIMT_RPW=8,"
                           "attend.SIMT_UNROLL=4"
                     : wide ? ",attend.SIMT_ROWS=64,attend.SIMT_TILE_N=32,attend.SIMT_DSPLIT=4,"
                              "attend.SIMT_UNROLL=32"
                            : ",attend.NV_STAGES=2");
            ts_check(ctx, clpsa_context_set_params(ctx, attend_params));
            body();
        }
    }
    attend_variant = 0;
    attend_subset = false;
    attend_params[0] = '\0';
    ts_check(ctx, clpsa_context_set_params(ctx, NULL));
}

static void levels_fp32(void) {
    /* Every bn in {16, 32, 64, 128} and bm in {32, 64, 128}; ragged Nq and Nk, Nq != Nk, GQA,
     * both layouts, causal with Nk > Nq and Nk < Nq (rows that see nothing). */
    const level_config configs[] = {
        {32, 16, 1, 4, 2, 77, 101, 32, TS_BHND, 0, 0},
        {64, 32, 1, 2, 1, 150, 131, 64, TS_BNHD, 1, 8},
        {128, 64, 2, 2, 2, 200, 333, 32, TS_BHND, 1, 0},
        {32, 128, 1, 3, 1, 45, 300, 32, TS_BNHD, 0, 0},
        {64, 16, 1, 2, 2, 100, 70, 32, TS_BNHD, 1, 4},
        {128, 128, 1, 4, 1, 129, 257, 32, TS_BHND, 0, 0},
        {32, 64, 1, 2, 1, 33, 200, 32, TS_BHND, 1, 0},
        /* wider heads: D = 96 (not a power of two) and 128 */
        {32, 16, 1, 2, 2, 40, 75, 96, TS_BHND, 0, 8},
        {64, 32, 1, 2, 1, 70, 90, 128, TS_BNHD, 1, 0},
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; ++i)
        if (!attend_subset || (0x18Eu >> i & 1u)) /* 1, 2, 3, 7, 8: every bm, bn and D */
            run_level_config(&configs[i], CLPSA_DTYPE_FP32, CLPSA_DTYPE_DEFAULT, 2);
}

static void test_levels_fp32(void **state) {
    (void)state;
    each_attend_variant(levels_fp32, true);
}

static void levels_fp16_bf16(void) {
    const level_config a = {64, 32, 1, 2, 1, 90, 150, 32, TS_BNHD, 1, 8};
    const level_config b = {32, 16, 1, 2, 2, 70, 61, 32, TS_BHND, 0, 0};
    run_level_config(&a, CLPSA_DTYPE_FP16, CLPSA_DTYPE_DEFAULT, 2);
    if (!attend_subset)
        run_level_config(&a, CLPSA_DTYPE_BF16, CLPSA_DTYPE_FP32, 1);
    run_level_config(&b, CLPSA_DTYPE_BF16, CLPSA_DTYPE_DEFAULT, 2);
    if (!attend_subset)
        run_level_config(&b, CLPSA_DTYPE_FP16, CLPSA_DTYPE_FP32, 1);
}

static void test_levels_fp16_bf16(void **state) {
    (void)state;
    each_attend_variant(levels_fp16_bf16, false);
}

static void level1_equals_dense_and_level0_is_zero(void) {
    for (int causal = 0; causal < 2; ++causal) {
        char name[320];
        snprintf(name, sizeof name, "level1 dense%s %s", causal ? " causal" : "", attend_params);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 4, 2, 99, 140, 32);
        d.block_q = 64;
        d.block_k = 32;
        d.causal = causal;
        psa_case c;
        case_init(&c, &d, causal ? TS_BNHD : TS_BHND, NULL);
        int8_t *levels = xmalloc(c.grid.count);
        memset(levels, 1, c.grid.count);
        ts_check(ctx, clpsa_plan_set_levels(c.plan, levels));
        case_run(&c);
        double *dense = xmalloc(c.out_count * sizeof *dense);
        assert_int_equal(ref_attention_dense(&c.prob, c.q, c.k, c.v, dense), 0);
        const clpsa_dtype storage = c.desc.dtype ? c.desc.dtype : CLPSA_DTYPE_FP32;
        ts_assert_close("all level 1 vs reference dense", c.out, dense, c.od,
                        ts_tolerance_for_variant(output_tolerance(CLPSA_DTYPE_FP32), c.plan,
                                                 "attend", storage));

        /* The device's own dense method on the same buffers. */
        clpsa_plan_desc dd = c.desc;
        dd.method = CLPSA_METHOD_DENSE;
        clpsa_plan *dense_plan = NULL;
        ts_check(ctx, clpsa_plan_create(ctx, &dd, &dense_plan));
        float *psa_out = xmalloc(c.out_count * sizeof(float));
        memcpy(psa_out, c.out, c.out_count * sizeof(float));
        clpsa_plan *psa_plan = c.plan;
        c.plan = dense_plan;
        case_run(&c);
        c.plan = psa_plan;
        double *device_dense = to_double(c.out, c.out_count);
        /* Both sides may round probabilities (matrix-unit variants): twice the widening. */
        ts_tolerance both = ts_tolerance_for_variant(output_tolerance(CLPSA_DTYPE_FP32), psa_plan,
                                                     "attend", storage);
        both = ts_tolerance_for_variant(both, dense_plan, "dense", storage);
        ts_assert_close("all level 1 vs CLPSA_METHOD_DENSE", psa_out, device_dense, c.od, both);
        clpsa_plan_destroy(dense_plan);

        /* All 0: exact zeros everywhere (the poison is gone, nothing is NaN). */
        memset(levels, 0, c.grid.count);
        ts_check(ctx, clpsa_plan_set_levels(c.plan, levels));
        case_run(&c);
        for (size_t i = 0; i < c.out_count; ++i)
            if (c.out[i] != 0.0f)
                ts_fail("all-0 map: out[%zu] = %g, expected 0", i, (double)c.out[i]);
        free(psa_out);
        free(device_dense);
        free(dense);
        free(levels);
        case_free(&c);
    }
}

/* One block at level 8 and the rest 0 is attention to that block's group means, each repeated
 * once per real member (written out here without the pyramid or the ln(cnt) bias). */
static void test_level1_equals_dense_and_level0_is_zero(void **state) {
    (void)state;
    each_attend_variant(level1_equals_dense_and_level0_is_zero, false);
}

static void single_level8_block(void) {
    char name[320];
    snprintf(name, sizeof name, "single level-8 block %s", attend_params);
    ts_case_begin(name);
    const int bm = 32, bn = 32, seq_q = 70, seq_k = 101; /* last block: 5 tokens */
    clpsa_plan_desc d = base_desc(1, 2, 1, seq_q, seq_k, 32);
    d.block_q = bm;
    d.block_k = bn;
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    const int nq = c.grid.blocks_q, nk = c.grid.blocks_k;
    int8_t *levels = xmalloc(c.grid.count);
    memset(levels, 0, c.grid.count);
    int chosen[2][8];
    for (int h = 0; h < 2; ++h)
        for (int i = 0; i < nq; ++i) {
            chosen[h][i] = (i + 3 * h) % nk; /* covers the ragged last block */
            levels[((size_t)h * nq + i) * nk + chosen[h][i]] = 8;
        }
    ts_check(ctx, clpsa_plan_set_levels(c.plan, levels));
    case_run(&c);
    double *ref = xmalloc(c.out_count * sizeof *ref);
    const int dim = 32;
    double logits[32], kmean[32][32], vmean[32][32];
    for (int h = 0; h < 2; ++h)
        for (int t = 0; t < seq_q; ++t) {
            const int j = chosen[h][t / bm];
            const int first = j * bn, end = first + bn < seq_k ? first + bn : seq_k;
            for (int x = first; x < end; ++x) {
                const int g0 = x / 8 * 8, g1 = g0 + 8 < seq_k ? g0 + 8 : seq_k;
                for (int dd = 0; dd < dim; ++dd) {
                    double ks = 0.0, vs = 0.0;
                    for (int y = g0; y < g1; ++y) {
                        ks += c.k[ref_offset(&c.prob.k_strides, 0, 0, y) + dd];
                        vs += c.v[ref_offset(&c.prob.v_strides, 0, 0, y) + dd];
                    }
                    kmean[x - first][dd] = (float)(ks / (g1 - g0)); /* the device stores fp32 */
                    vmean[x - first][dd] = (float)(vs / (g1 - g0));
                }
                double dot = 0.0;
                for (int dd = 0; dd < dim; ++dd)
                    dot += (double)c.q[ref_offset(&c.prob.q_strides, 0, h, t) + dd] *
                           kmean[x - first][dd];
                logits[x - first] = c.prob.scale * dot;
            }
            double max = -INFINITY, sum = 0.0;
            for (int x = 0; x < end - first; ++x)
                max = logits[x] > max ? logits[x] : max;
            double *o = ref + ((size_t)h * seq_q + t) * dim;
            for (int dd = 0; dd < dim; ++dd)
                o[dd] = 0.0;
            for (int x = 0; x < end - first; ++x) {
                const double w = exp(logits[x] - max);
                sum += w;
                for (int dd = 0; dd < dim; ++dd)
                    o[dd] += w * vmean[x][dd];
            }
            for (int dd = 0; dd < dim; ++dd)
                o[dd] /= sum;
        }
    ts_assert_close("one level-8 block vs repeated means", c.out, ref, c.od,
                    output_tolerance(CLPSA_DTYPE_FP32));
    free(ref);
    free(levels);
    case_free(&c);
}

static void test_single_level8_block(void **state) {
    (void)state;
    each_attend_variant(single_level8_block, false);
}

/* ========================================================================================
 * Estimates
 * ======================================================================================== */

static void compare_scores(const float *got, const double *ref, size_t rows, int nk, double rtol,
                           double atol, const char *what) {
    for (size_t r = 0; r < rows; ++r) {
        double sum = 0.0;
        for (int j = 0; j < nk; ++j) {
            const size_t x = r * (size_t)nk + (size_t)j;
            sum += got[x];
            if (!isfinite(got[x]) || fabs(got[x] - ref[x]) > atol + rtol * fabs(ref[x]))
                ts_fail("%s: S[row %zu][%d] = %.9g, reference %.9g (rel %.3g)", what, r, j,
                        (double)got[x], ref[x], fabs(got[x] - ref[x]) / fabs(ref[x]));
        }
        double ref_sum = 0.0;
        for (int j = 0; j < nk; ++j)
            ref_sum += ref[r * (size_t)nk + (size_t)j];
        if (fabs(sum - ref_sum) > 1e-5)
            ts_fail("%s: row %zu sums to %.9g, reference %.9g", what, r, sum, ref_sum);
    }
}

typedef struct estimate_config {
    int bm, bn, seq_q, seq_k, heads_q, heads_kv;
    int sample_q, sample_k; /* 0: defaults */
    ts_layout layout;
    int row_pad;
} estimate_config;

/* Runs the plan with nothing supplied and returns the device S (caller frees). */
static float *estimate_on_device(psa_case *c) {
    ts_check(ctx, clpsa_plan_set_levels(c->plan, NULL));
    ts_check(ctx, clpsa_plan_set_scores(c->plan, NULL));
    case_run(c);
    float *s = xmalloc(c->grid.count * sizeof(float));
    case_read_scores(c, s);
    return s;
}

static void test_sampled_estimate(void **state) {
    (void)state;
    const estimate_config configs[] = {
        {64, 32, 150, 211, 2, 1, 0, 0, TS_BHND, 0},   /* default s = bm/4, bn/4, ragged */
        {64, 32, 128, 256, 2, 2, 64, 32, TS_BNHD, 8}, /* s = block size: exact, padded */
        {64, 32, 97, 45, 4, 2, 64, 32, TS_BHND, 0},   /* exact, ragged, Nk < Nq */
        {32, 16, 77, 130, 2, 1, 5, 3, TS_BNHD, 4},    /* odd sample counts, padded */
    };
    const uint64_t seeds[3] = {0, 12345, UINT64_MAX - 1};
    /* The portable kernels of the sampled estimate (estimate.VARIANT 1 and 2, and 4 where the
     * device runs it) must give these scores; the seed loop alternates them. */
    int available[8], portable[3] = {1, 2, 0};
    const int count = ts_variants_available(ctx, "estimate", available, 8);
    size_t kinds = 2;
    for (int i = 0; i < count; ++i)
        if (available[i] == 4)
            portable[kinds++] = 4;
    for (size_t n = 0; n < sizeof configs / sizeof configs[0]; ++n) {
        const estimate_config *e = &configs[n];
        for (int si = 0; si < 3; ++si) {
            const int variant = portable[(n + (size_t)si) % kinds];
            char params[32];
            snprintf(params, sizeof params, "estimate.VARIANT=%d", variant);
            ts_check(ctx, clpsa_context_set_params(ctx, params));
            char name[160];
            snprintf(name, sizeof name,
                     "sampled bm=%d bn=%d Nq=%d Nk=%d sq=%d sk=%d seed=%llu variant=%d", e->bm,
                     e->bn, e->seq_q, e->seq_k, e->sample_q, e->sample_k,
                     (unsigned long long)seeds[si], variant);
            ts_case_begin(name);
            clpsa_plan_desc d = base_desc(1, e->heads_q, e->heads_kv, e->seq_q, e->seq_k, 32);
            d.block_q = e->bm;
            d.block_k = e->bn;
            d.sample_q = e->sample_q;
            d.sample_k = e->sample_k;
            d.seed = seeds[si];
            psa_case c;
            case_init_padded(&c, &d, e->layout, e->row_pad, NULL);
            char ran[32];
            snprintf(ran, sizeof ran, "estimate.VARIANT=%d ", variant);
            if (!strstr(clpsa_plan_parameter_source(c.plan), ran))
                ts_fail("asked for %s, the plan reports %s", params,
                        clpsa_plan_parameter_source(c.plan));
            float *s = estimate_on_device(&c);
            double *ref = xmalloc(c.grid.count * sizeof *ref);
            assert_int_equal(ref_psa_estimate_sampled(&c.prob, e->bm, e->bn, c.res.sample_q,
                                                      c.res.sample_k, seeds[si], c.q, c.k, ref),
                             0);
            compare_scores(s, ref, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-5, 1e-9,
                           name);
            /* The same seed again gives the same S, bit for bit. */
            float *again = estimate_on_device(&c);
            if (memcmp(again, s, c.grid.count * sizeof(float)) != 0)
                ts_fail("%s: a second run with the same seed gives a different S", name);
            free(again);
            free(ref);
            free(s);
            case_free(&c);
        }
    }
}

/* The matrix-unit kernels of the sampled estimate (estimate.VARIANT 3 nvidia-mma, 5
 * nvidia-wgmma, where the device runs them) on 16-bit storage, D 64 and 128, query blocks of 1,
 * 2, 4 and 8 warps (sample_q 5, 16, 32, 64, 128), sample_k 8 to 64, and nvidia-wgmma also with
 * each number of warps per work-group it takes and both tile widths. Elsewhere (PoCL) the test
 * has nothing to run and says so. */
static void test_sampled_estimate_matrix_units(void **state) {
    (void)state;
    typedef struct {
        int dim;
        clpsa_dtype dtype;
        estimate_config e;
    } unit_config;
    const unit_config configs[] = {
        {128, CLPSA_DTYPE_BF16, {128, 64, 300, 500, 2, 1, 32, 16, TS_BHND, 0}},
        {64, CLPSA_DTYPE_FP16, {64, 32, 97, 211, 2, 2, 16, 8, TS_BNHD, 8}},
        {128, CLPSA_DTYPE_FP16, {128, 128, 257, 1000, 1, 1, 64, 32, TS_BHND, 0}},
        {64, CLPSA_DTYPE_BF16, {64, 64, 150, 130, 3, 1, 5, 64, TS_BNHD, 0}},
        {128, CLPSA_DTYPE_BF16, {128, 64, 131, 67, 1, 1, 128, 8, TS_BHND, 8}},
        /* three warps a block (two m-tiles each): 96 or 192 work-items a group */
        {64, CLPSA_DTYPE_BF16, {128, 64, 300, 700, 2, 1, 96, 16, TS_BHND, 0}},
    };
    int available[8];
    const int count = ts_variants_available(ctx, "estimate", available, 8);
    const char *settings[8];
    int setting_ids[8], settings_count = 0;
    for (int i = 0; i < count; ++i) {
        if (available[i] == 3) {
            setting_ids[settings_count] = 3;
            settings[settings_count++] = "estimate.VARIANT=3";
        }
        if (available[i] == 5) {
            static const char *const wgmma[] = {"estimate.VARIANT=5",
                                                "estimate.VARIANT=5,estimate.NV_WARPS=4",
                                                "estimate.VARIANT=5,estimate.NV_TILE_N=32"};
            for (size_t w = 0; w < sizeof wgmma / sizeof wgmma[0]; ++w) {
                setting_ids[settings_count] = 5;
                settings[settings_count++] = wgmma[w];
            }
        }
    }
    if (settings_count == 0) {
        fprintf(stderr, "test_psa: no matrix-unit estimate variant runs here; nothing to check\n");
        skip();
    }
    for (size_t n = 0; n < sizeof configs / sizeof configs[0]; ++n) {
        const estimate_config *e = &configs[n].e;
        for (int v = 0; v < settings_count; ++v) {
            /* 4 warps hold no query block of 8 warps: that override is not a case */
            if ((e->sample_q + 15) / 16 > 4 && strstr(settings[v], "NV_WARPS=4"))
                continue;
            ts_check(ctx, clpsa_context_set_params(ctx, settings[v]));
            char name[200];
            snprintf(name, sizeof name, "sampled %s D=%d bm=%d bn=%d Nq=%d Nk=%d sq=%d sk=%d %s",
                     clpsa_dtype_name(configs[n].dtype), configs[n].dim, e->bm, e->bn, e->seq_q,
                     e->seq_k, e->sample_q, e->sample_k, settings[v]);
            ts_case_begin(name);
            clpsa_plan_desc d =
                base_desc(1, e->heads_q, e->heads_kv, e->seq_q, e->seq_k, configs[n].dim);
            d.dtype = configs[n].dtype;
            d.block_q = e->bm;
            d.block_k = e->bn;
            d.sample_q = e->sample_q;
            d.sample_k = e->sample_k;
            d.seed = 4242 + n;
            psa_case c;
            case_init_padded(&c, &d, e->layout, e->row_pad, NULL);
            const char *want = setting_ids[v] == 3 ? "nvidia-mma" : "nvidia-wgmma";
            const char *ran = clpsa_plan_kernel_variant(c.plan, "estimate");
            if (!ran || strcmp(ran, want) != 0)
                ts_fail("asked for %s, the plan runs %s (%s)", settings[v], ran ? ran : "none",
                        clpsa_plan_parameter_source(c.plan));
            float *s = estimate_on_device(&c);
            double *ref = xmalloc(c.grid.count * sizeof *ref);
            assert_int_equal(ref_psa_estimate_sampled(&c.prob, e->bm, e->bn, c.res.sample_q,
                                                      c.res.sample_k, d.seed, c.q, c.k, ref),
                             0);
            /* The products of 16-bit values are exact in fp32; only the order of the fp32
             * sums differs from the reference, a few ulp of each logit before exp2. */
            compare_scores(s, ref, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-4, 1e-7,
                           name);
            free(ref);
            free(s);
            case_free(&c);
        }
    }
    /* An override nvidia-wgmma cannot take (2 warps: half a warpgroup) falls back to the next
     * variant that fits, which still gives the reference's scores (checked above). */
    for (int i = 0; i < count; ++i) {
        if (available[i] != 5)
            continue;
        ts_check(ctx, clpsa_context_set_params(ctx, "estimate.VARIANT=5,estimate.NV_WARPS=2"));
        ts_case_begin("sampled nvidia-wgmma with estimate.NV_WARPS=2");
        clpsa_plan_desc d = base_desc(1, 2, 1, 300, 500, 128);
        d.dtype = CLPSA_DTYPE_BF16;
        psa_case c;
        case_init(&c, &d, TS_BHND, NULL);
        const char *ran = clpsa_plan_kernel_variant(c.plan, "estimate");
        if (!ran || strcmp(ran, "nvidia-wgmma") == 0)
            ts_fail("estimate.NV_WARPS=2 ran %s; nvidia-wgmma takes multiples of 4",
                    ran ? ran : "nothing");
        case_free(&c);
    }
}

/* What one run of a scratch-limit case gave back. */
typedef struct limit_run {
    float *scores, *out;
    int8_t *levels;
} limit_run;

/* Creates the plan of d under CLPSA_SCRATCH_LIMIT = limit (NULL: unset), runs it on the case's
 * inputs (the same for every limit: the seed follows the case name) and keeps what it gave. */
static limit_run run_under_scratch_limit(const clpsa_plan_desc *d, const char *limit) {
    if (limit)
        setenv("CLPSA_SCRATCH_LIMIT", limit, 1);
    psa_case c;
    case_init(&c, d, TS_BHND, NULL);
    unsetenv("CLPSA_SCRATCH_LIMIT");
    case_run(&c);
    limit_run r = {xmalloc(c.grid.count * sizeof(float)), xmalloc(c.out_count * sizeof(float)),
                   xmalloc(c.grid.count)};
    case_read_scores(&c, r.scores);
    case_read_levels(&c, r.levels);
    memcpy(r.out, c.out, c.out_count * sizeof(float));
    case_free(&c);
    return r;
}

static void limit_run_free(limit_run *r) {
    free(r->scores);
    free(r->out);
    free(r->levels);
}

/* The heads per launch the library logs for a plan of d under CLPSA_SCRATCH_LIMIT = limit
 * (NULL: unset), on a context of its own whose log this reads. */
static void keep_launch_line(void *user, clpsa_log_level level, const char *message) {
    (void)level;
    if (strstr(message, "heads per launch"))
        snprintf((char *)user, 256, "%s", message);
}

static int heads_per_launch(const clpsa_plan_desc *d, const char *limit) {
    char line[256] = "";
    clpsa_context *own = ts_context_create_logged(keep_launch_line, line, CLPSA_LOG_INFO);
    if (!own)
        ts_fail("no context of its own for the heads-per-launch check");
    if (limit)
        setenv("CLPSA_SCRATCH_LIMIT", limit, 1);
    clpsa_plan *plan = NULL;
    const clpsa_status status = clpsa_plan_create(own, d, &plan);
    unsetenv("CLPSA_SCRATCH_LIMIT");
    ts_check(own, status);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(own);
    int heads = 0;
    const char *at = strstr(line, "bytes, ");
    if (!at || sscanf(at, "bytes, %d of", &heads) != 1)
        ts_fail("no heads-per-launch line in the log under CLPSA_SCRATCH_LIMIT=%s (got \"%s\")",
                limit ? limit : "(unset)", line);
    return heads;
}

/* CLPSA_SCRATCH_LIMIT below the scratch of all heads makes the estimate (budget mode: the
 * measurement) run over the heads in several launches: one head each, two, and three with a
 * ragged last launch of one. Scores, level maps and output must be the same bits as one launch
 * over every head gives, for each estimate and measurement variant here. Then the values the
 * variable refuses, each at plan creation with its sentence. */
static void test_scratch_limit(void **state) {
    (void)state;
    /* 4 query heads of 5 query blocks x 5 key blocks x 8 sampled rows: a head's scratch is
     * 5 x 5 x 8 floats (the estimate's row maxima) or 5 times that (the measurement's). bf16,
     * D 64, bn 64 and s_q 8: a plan every estimate and measurement variant takes. */
    clpsa_plan_desc d = base_desc(1, 4, 2, 300, 300, 64);
    d.dtype = CLPSA_DTYPE_BF16;
    d.block_q = 64;
    d.block_k = 64;
    d.sample_q = 8;
    for (int mode = 0; mode < 2; ++mode) {
        const char *family = mode == 0 ? "estimate" : "budget";
        d.mode = mode == 0 ? CLPSA_MODE_THRESHOLD : CLPSA_MODE_BUDGET;
        const int per_head = 5 * 5 * 8 * (int)sizeof(float) * (mode == 0 ? 1 : 5);
        /* 1, 2 and 3 heads per launch (the last launch of 3 + 1 ragged), and all four */
        char limits[4][24];
        snprintf(limits[0], sizeof limits[0], "%d", per_head);
        snprintf(limits[1], sizeof limits[1], "%d", 2 * per_head + per_head / 2);
        snprintf(limits[2], sizeof limits[2], "%dK", (3 * per_head + 1023) / 1024);
        snprintf(limits[3], sizeof limits[3], "1G");
        /* The limits take effect: the plan says how many heads each launch covers. */
        const char *const whole_limits[] = {NULL, "", "1024G"};
        for (int l = 0; l < 4; ++l)
            if (heads_per_launch(&d, limits[l]) != l + 1)
                ts_fail("%s: CLPSA_SCRATCH_LIMIT=%s should give %d heads per launch", family,
                        limits[l], l + 1);
        for (int l = 0; l < 3; ++l)
            if (heads_per_launch(&d, whole_limits[l]) != 4)
                ts_fail("%s: CLPSA_SCRATCH_LIMIT=%s should cover all 4 heads in one launch", family,
                        whole_limits[l] ? whole_limits[l] : "(unset)");
        int variants[8];
        const int count = ts_variants_available(ctx, family, variants, 8);
        for (int v = 0; v < count; ++v) {
            char params[48], name[96];
            snprintf(params, sizeof params, "%s.VARIANT=%d", family, variants[v]);
            snprintf(name, sizeof name, "scratch limit %s", params);
            ts_case_begin(name);
            ts_check(ctx, clpsa_context_set_params(ctx, params));
            limit_run whole = run_under_scratch_limit(&d, NULL);
            for (int l = 0; l < 4; ++l) {
                limit_run split = run_under_scratch_limit(&d, limits[l]);
                const size_t cells = (size_t)4 * 5 * 5, outputs = (size_t)4 * 300 * 64;
                if (memcmp(split.scores, whole.scores, cells * sizeof(float)) != 0 ||
                    memcmp(split.levels, whole.levels, cells) != 0 ||
                    memcmp(split.out, whole.out, outputs * sizeof(float)) != 0)
                    ts_fail("%s: CLPSA_SCRATCH_LIMIT=%s changed the scores, levels or output",
                            params, limits[l]);
                limit_run_free(&split);
            }
            limit_run_free(&whole);
        }
    }
    ts_check(ctx, clpsa_context_set_params(ctx, ""));

    const char *const refused[] = {"0",
                                   "abc",
                                   "-1",
                                   "12Q",
                                   "1.5M",
                                   "M",
                                   "1k",
                                   " 1",
                                   "1 ",
                                   "1025G",
                                   "2048G",
                                   "1099511627777",
                                   "99999999999999999999"};
    d.mode = CLPSA_MODE_THRESHOLD;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; ++i) {
        setenv("CLPSA_SCRATCH_LIMIT", refused[i], 1);
        clpsa_plan *plan = (clpsa_plan *)&d; /* must be set to NULL on failure */
        const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
        unsetenv("CLPSA_SCRATCH_LIMIT");
        const char *why = clpsa_context_last_error(ctx);
        if (status != CLPSA_ERROR_INVALID_VALUE || plan != NULL ||
            !strstr(why, "CLPSA_SCRATCH_LIMIT") || !strstr(why, refused[i]))
            ts_fail("CLPSA_SCRATCH_LIMIT=%s: got %s (%s), plan %p", refused[i],
                    clpsa_status_name(status), why, (void *)plan);
        clpsa_plan_destroy(plan);
    }
}

static void test_sampled_seeds_differ(void **state) {
    (void)state;
    ts_case_begin("sampled seeds differ");
    float *s[2];
    for (int x = 0; x < 2; ++x) {
        clpsa_plan_desc d = base_desc(1, 2, 1, 150, 211, 32);
        d.block_q = 64;
        d.block_k = 32;
        d.seed = x ? 777 : 778;
        psa_case c;
        case_init(&c, &d, TS_BHND, NULL); /* same case name: same data for both */
        s[x] = estimate_on_device(&c);
        if (x == 1 && memcmp(s[0], s[1], c.grid.count * sizeof(float)) == 0)
            ts_fail("seeds 777 and 778 give the same S");
        case_free(&c);
    }
    free(s[0]);
    free(s[1]);
}

static void test_antidiagonal_estimate(void **state) {
    (void)state;
    const struct {
        int bm, bn, stride, seq_q, seq_k, causal;
    } configs[] = {
        /* Nk - Nq a multiple of s in the first two: the causal bound b*s <= a*s + (Nk - Nq)
         * is met with equality, which separates <= from <. */
        {64, 32, 8, 150, 214, 1}, {64, 32, 8, 200, 200, 1},  {64, 32, 8, 150, 211, 0},
        {32, 16, 4, 100, 70, 1},  {64, 64, 16, 129, 300, 1},
    };
    for (size_t n = 0; n < sizeof configs / sizeof configs[0]; ++n) {
        char name[160];
        snprintf(name, sizeof name, "antidiagonal bm=%d bn=%d s=%d Nq=%d Nk=%d%s", configs[n].bm,
                 configs[n].bn, configs[n].stride, configs[n].seq_q, configs[n].seq_k,
                 configs[n].causal ? " causal" : "");
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 2, 1, configs[n].seq_q, configs[n].seq_k, 32);
        d.block_q = configs[n].bm;
        d.block_k = configs[n].bn;
        d.estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
        d.antidiagonal_stride = configs[n].stride;
        d.causal = configs[n].causal;
        psa_case c;
        case_init_padded(&c, &d, n % 2 ? TS_BNHD : TS_BHND, n == 2 ? 8 : 0, NULL);
        float *s = estimate_on_device(&c);
        double *ref = xmalloc(c.grid.count * sizeof *ref);
        assert_int_equal(ref_psa_estimate_antidiagonal(&c.prob, d.block_q, d.block_k,
                                                       configs[n].stride, c.q, c.k, ref),
                         0);
        /* Sums of fp32 softmax weights; observed within 1e-6 relative on PoCL. */
        compare_scores(s, ref, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-5, 1e-9, name);
        free(ref);
        free(s);
        case_free(&c);
    }
}

/* ========================================================================================
 * Level assignment on the device's own S
 * ======================================================================================== */

/* Compares the device's M with the reference assignment of the device's S; rows where an E or
 * a similarity is within 1e-5 of a threshold are skipped (docs/algorithm.md allows them to differ).
 * Returns the number of rows compared. Also checks the output against the device's M and the
 * statistics. */
static size_t check_assignment(psa_case *c, const float *device_s, const char *what) {
    const size_t rows = c->grid.count / c->grid.blocks_k;
    const int nk = c->grid.blocks_k;
    int8_t *m = xmalloc(c->grid.count);
    int8_t *ref = xmalloc(c->grid.count);
    int *near = xmalloc(rows * sizeof *near);
    case_read_levels(c, m);
    double *s = to_double(device_s, c->grid.count);
    if (ref_psa_assign(&c->prob, &c->res.params, s, c->k, ref, near) != 0)
        ts_fail("ref_psa_assign failed");
    size_t compared = 0;
    for (size_t r = 0; r < rows; ++r) {
        if (near[r])
            continue;
        ++compared;
        for (int j = 0; j < nk; ++j)
            if (m[r * nk + j] != ref[r * nk + j]) {
                char g[600] = "", w[600] = "";
                for (int x = 0; x < nk && strlen(g) < 580; ++x) {
                    snprintf(g + strlen(g), sizeof g - strlen(g), "%d ", m[r * nk + x]);
                    snprintf(w + strlen(w), sizeof w - strlen(w), "%d ", ref[r * nk + x]);
                }
                ts_fail("%s: row %zu (b*Hq+h = %zu, i = %zu) key block %d: level %d, reference "
                        "%d\n  device    [%s]\n  reference [%s]",
                        what, r, r / c->grid.blocks_q, r % c->grid.blocks_q, j, m[r * nk + j],
                        ref[r * nk + j], g, w);
            }
    }
    check_output_against_levels(c, m, what);

    /* Statistics: read_stats = clpsa_level_stats_compute(M) = reference. */
    clpsa_level_stats device_stats, host_stats;
    ts_check(ctx, clpsa_plan_read_stats(c->plan, &device_stats));
    ts_check(ctx, clpsa_level_stats_compute(m, rows, nk, &host_stats));
    double density = 0.0;
    uint64_t hist[5];
    assert_int_equal(ref_psa_level_stats(m, rows, nk, &density, hist), 0);
    for (int l = 0; l < 5; ++l) {
        assert_true(device_stats.histogram[l] == hist[l]);
        assert_true(host_stats.histogram[l] == hist[l]);
    }
    if (fabs(device_stats.density - density) > 1e-12 || fabs(host_stats.density - density) > 1e-12)
        ts_fail("%s: density %.17g (read_stats), %.17g (level_stats_compute), reference %.17g",
                what, device_stats.density, host_stats.density, density);
    free(s);
    free(near);
    free(ref);
    free(m);
    return compared;
}

typedef void (*desc_tweak)(clpsa_plan_desc *d);

typedef struct assign_config {
    const char *name;
    int seq_q, seq_k;
    desc_tweak tweak;
    k_shaper shape_k;
} assign_config;

static void tweak_default(clpsa_plan_desc *d) {
    (void)d;
}
static void tweak_no_align_text(clpsa_plan_desc *d) {
    d->align_tile = CLPSA_OFF;
    d->min_full = (float)CLPSA_OFF;
    d->text_tokens = 50;
}
static void tweak_min_full(clpsa_plan_desc *d) {
    d->min_full = 0.3f;
    d->align_tile = 16;
    const float t[4] = {0.2f, 0.45f, 0.6f, 0.9f};
    memcpy(d->thresholds, t, sizeof t);
}
static void tweak_causal(clpsa_plan_desc *d) {
    d->causal = 1;
    d->text_tokens = 7;
}
static void tweak_quantile(clpsa_plan_desc *d) {
    d->mode = CLPSA_MODE_QUANTILE;
    const float t[4] = {0.1f, 0.25f, 0.4f, 0.7f};
    memcpy(d->thresholds, t, sizeof t);
}
static void tweak_quantile_no_align(clpsa_plan_desc *d) {
    tweak_quantile(d);
    d->align_tile = CLPSA_OFF;
}
static void tweak_energy(clpsa_plan_desc *d) {
    d->mode = CLPSA_MODE_ENERGY;
    d->causal = 1;
    d->text_tokens = 40;
    const float t[4] = {0.3f, 0.5f, 0.7f, 0.85f};
    memcpy(d->thresholds, t, sizeof t);
}
static void tweak_cap(clpsa_plan_desc *d) {
    d->similarity_cap = 1;
    const float t[4] = {0.2f, 0.3f, 0.4f, 0.95f}; /* many blocks at 4 and 8 before the cap */
    memcpy(d->thresholds, t, sizeof t);
}
static void tweak_cap_energy_causal(clpsa_plan_desc *d) {
    tweak_cap(d);
    d->mode = CLPSA_MODE_ENERGY;
    d->causal = 1;
    const float s[3] = {0.5f, 0.5f, 0.5f};
    memcpy(d->similarity_thresholds, s, sizeof s);
}

static void test_assignment_modes(void **state) {
    (void)state;
    /* One bm/bn/D for all, so the kernels compile once; bn = 16 < align_tile makes every
     * alignment non-trivial (align(2) = 4, align(4) = 8, align(8) = 16). */
    const assign_config configs[] = {
        {"threshold default", 200, 16 * 37 + 5, tweak_default, NULL},
        {"threshold no-align min_full-off text", 200, 16 * 37 + 5, tweak_no_align_text, NULL},
        {"threshold min_full 0.3 align 16", 200, 16 * 37 + 5, tweak_min_full, NULL},
        {"threshold causal Nk>Nq", 150, 16 * 37 + 5, tweak_causal, NULL},
        {"threshold causal Nq>Nk", 300, 190, tweak_causal, NULL},
        {"quantile aligned", 200, 16 * 37 + 5, tweak_quantile, NULL},
        {"quantile unaligned", 200, 16 * 37 + 5, tweak_quantile_no_align, NULL},
        {"energy causal text", 200, 16 * 37 + 5, tweak_energy, NULL},
        {"similarity cap", 200, 16 * 37 + 5, tweak_cap, shape_k_runs},
        {"similarity cap energy causal", 200, 16 * 37 + 5, tweak_cap_energy_causal, shape_k_runs},
    };
    for (size_t n = 0; n < sizeof configs / sizeof configs[0]; ++n) {
        char name[160];
        snprintf(name, sizeof name, "assign %s Nq=%d Nk=%d", configs[n].name, configs[n].seq_q,
                 configs[n].seq_k);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 4, 2, configs[n].seq_q, configs[n].seq_k, 32);
        d.block_q = 64;
        d.block_k = 16;
        d.seed = 5;
        configs[n].tweak(&d);
        psa_case c;
        case_init_padded(&c, &d, n % 2 ? TS_BNHD : TS_BHND, n % 3 == 1 ? 8 : 0, configs[n].shape_k);
        float *s = estimate_on_device(&c);
        const size_t rows = c.grid.count / c.grid.blocks_k;
        const size_t compared = check_assignment(&c, s, name);
        if (compared * 2 < rows)
            ts_fail("%s: only %zu of %zu rows were away from every threshold", name, compared,
                    rows);
        if (configs[n].shape_k) {
            /* The cap must have mattered: some block below level 8 that the rule put higher. */
            int8_t *m = xmalloc(c.grid.count);
            case_read_levels(&c, m);
            uint64_t hist[5];
            double density;
            assert_int_equal(ref_psa_level_stats(m, rows, c.grid.blocks_k, &density, hist), 0);
            if (hist[4] == 0 || hist[3] == 0 || hist[2] == 0)
                ts_fail("%s: histogram 0:%llu 1:%llu 2:%llu 4:%llu 8:%llu does not exercise "
                        "the cap",
                        name, (unsigned long long)hist[0], (unsigned long long)hist[1],
                        (unsigned long long)hist[2], (unsigned long long)hist[3],
                        (unsigned long long)hist[4]);
            free(m);
        }
        free(s);
        case_free(&c);
    }
}

/* ========================================================================================
 * The causal understanding path end to end, in every attend variant
 * ======================================================================================== */

typedef struct causal_config {
    int bm, bn, stride, seq_q, seq_k, text_tokens;
    ts_layout layout;
} causal_config;

/* Antidiagonal estimate (stride 4 or 8), energy mode, text blocks and the causal forced blocks,
 * then attention over the map: S against the reference estimate, M against the reference
 * assignment of the device's S (rows near a threshold skipped), the output against the
 * reference attention over the device's M. Every bn, ragged Nq != Nk both ways (Nq > Nk has
 * rows that see nothing), text spanning one and two key blocks (in the future of the first query
 * blocks), text query blocks beside video ones, GQA. */
static void causal_pipeline(void) {
    const causal_config configs[] = {
        {64, 16, 8, 150, 16 * 37 + 5, 40, TS_BHND},
        {32, 32, 4, 200, 130, 7, TS_BNHD},
        {128, 64, 8, 300, 333, 70, TS_BHND},
        {64, 128, 4, 129, 926, 60, TS_BNHD},
    };
    for (size_t n = 0; n < sizeof configs / sizeof configs[0]; ++n) {
        const causal_config *cfg = &configs[n];
        /* The variants after the plan's own run two of the four (every bn still seen once by
         * the first variant): PoCL compiles each program. */
        if (attend_subset && n % 2 == 1)
            continue;
        char name[320];
        snprintf(name, sizeof name, "causal pipeline bm=%d bn=%d s=%d Nq=%d Nk=%d text=%d %s %s",
                 cfg->bm, cfg->bn, cfg->stride, cfg->seq_q, cfg->seq_k, cfg->text_tokens,
                 ts_layout_name(cfg->layout), attend_params);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 4, 2, cfg->seq_q, cfg->seq_k, 32);
        d.block_q = cfg->bm;
        d.block_k = cfg->bn;
        d.causal = 1;
        d.estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
        d.antidiagonal_stride = cfg->stride;
        d.mode = CLPSA_MODE_ENERGY;
        d.text_tokens = cfg->text_tokens;
        const float tau[4] = {0.5f, 0.7f, 0.8f, 0.9f};
        memcpy(d.thresholds, tau, sizeof tau);
        psa_case c;
        case_init_padded(&c, &d, cfg->layout, n == 1 ? 8 : 0, NULL);
        float *s = estimate_on_device(&c);
        double *ref = xmalloc(c.grid.count * sizeof *ref);
        assert_int_equal(
            ref_psa_estimate_antidiagonal(&c.prob, cfg->bm, cfg->bn, cfg->stride, c.q, c.k, ref),
            0);
        const size_t rows = c.grid.count / c.grid.blocks_k;
        compare_scores(s, ref, rows, c.grid.blocks_k, 1e-5, 1e-9, name);
        const size_t compared = check_assignment(&c, s, name);
        if (compared * 2 < rows)
            ts_fail("%s: only %zu of %zu rows were away from every threshold", name, compared,
                    rows);
        /* The forced blocks are there (text key blocks, key block 0, the diagonal, every
         * visible block of a query block holding text), the future is at level 0, and the
         * map is not all level 1 (the run tests more than dense attention). Computed here
         * from the shape, not by the reference's helper. */
        int8_t *m = xmalloc(c.grid.count);
        case_read_levels(&c, m);
        const int nk = c.grid.blocks_k, text_blocks = ceil_div(cfg->text_tokens, cfg->bn);
        size_t skipped = 0, text_visible = 0, future = 0;
        for (size_t r = 0; r < rows; ++r) {
            const int i = (int)(r % (size_t)c.grid.blocks_q);
            const int last_row =
                (i + 1) * cfg->bm < cfg->seq_q ? (i + 1) * cfg->bm - 1 : cfg->seq_q - 1;
            const int diagonal_key = last_row + cfg->seq_k - cfg->seq_q;
            const bool text_row = last_row >= cfg->seq_q - cfg->text_tokens;
            for (int j = 0; j < nk; ++j) {
                const int level = m[r * nk + j];
                if (j * cfg->bn > diagonal_key) {
                    if (level != 0)
                        ts_fail("%s: row %zu key block %d is in the future but has level %d", name,
                                r, j, level);
                    ++future;
                    continue;
                }
                const bool forced_key =
                    j >= nk - text_blocks || j == 0 ||
                    j == (diagonal_key < cfg->seq_k ? diagonal_key : cfg->seq_k - 1) / cfg->bn;
                if ((text_row || forced_key) && level != 1)
                    ts_fail("%s: row %zu key block %d is forced but has level %d", name, r, j,
                            level);
                text_visible += text_row && !forced_key; /* forced by the text row alone */
                skipped += level != 1;
            }
        }
        if (text_visible == 0 || future == 0)
            ts_fail("%s: %zu visible blocks of text rows, %zu future blocks: the case checks "
                    "less than it says",
                    name, text_visible, future);
        if (skipped == 0)
            ts_fail("%s: every visible key block at level 1", name);
        free(m);
        free(ref);
        free(s);
        case_free(&c);
    }
}

static void test_causal_pipeline(void **state) {
    (void)state;
    each_attend_variant(causal_pipeline, false);
}

static void test_presets(void **state) {
    (void)state;
    for (int n = 0; n < ref_psa_preset_count(); ++n) {
        const ref_psa_preset *preset = ref_psa_preset_at(n);
        char name[96];
        snprintf(name, sizeof name, "preset %s", preset->name);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 2, 1, 300, preset->block_k * 11 + 17, 32);
        d.preset = preset->name;
        psa_case c;
        case_init(&c, &d, TS_BHND, preset->similarity_cap ? shape_k_runs : NULL);
        clpsa_plan_desc got;
        ts_check(ctx, clpsa_plan_get_desc(c.plan, &got));
        assert_int_equal(got.block_q, preset->block_q);
        assert_int_equal(got.block_k, preset->block_k);
        for (int l = 0; l < 4; ++l)
            assert_true(got.thresholds[l] == preset->thresholds[l]);
        assert_int_equal(got.mode, preset->mode);
        assert_int_equal(got.causal != 0, preset->causal);
        assert_int_equal(got.similarity_cap != 0, preset->similarity_cap);
        if (preset->similarity_cap)
            for (int l = 0; l < 3; ++l)
                assert_true(got.similarity_thresholds[l] == preset->similarity_thresholds[l]);
        assert_int_equal(got.estimator, preset->estimator);
        float *s = estimate_on_device(&c);
        assert_int_equal(c.res.estimator, preset->estimator);
        if (c.res.estimator == CLPSA_ESTIMATOR_ANTIDIAGONAL) {
            double *ref = xmalloc(c.grid.count * sizeof *ref);
            assert_int_equal(ref_psa_estimate_antidiagonal(&c.prob, preset->block_q,
                                                           preset->block_k, c.res.stride, c.q, c.k,
                                                           ref),
                             0);
            compare_scores(s, ref, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-5, 1e-9,
                           name);
            free(ref);
        }
        check_assignment(&c, s, name);
        free(s);
        case_free(&c);
    }
}

/* Nothing but the shape set: the defaults of docs/algorithm.md and the header, resolved
 * independently by resolve() above, drive the whole pipeline. */
static void test_defaults(void **state) {
    (void)state;
    ts_case_begin("defaults");
    clpsa_plan_desc d = base_desc(1, 2, 2, 200, 333, 32);
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    clpsa_plan_desc got;
    ts_check(ctx, clpsa_plan_get_desc(c.plan, &got));
    assert_int_equal(got.block_q, 128);
    assert_int_equal(got.block_k, 64);
    assert_int_equal(got.mode, CLPSA_MODE_THRESHOLD);
    const float taus[4] = {0.5f, 0.6f, 0.7f, 0.8f};
    for (int l = 0; l < 4; ++l)
        assert_true(got.thresholds[l] == taus[l]);
    assert_int_equal(got.align_tile, 32);
    assert_true(got.min_full == 0.06f);
    assert_int_equal(got.similarity_cap, 0);
    assert_int_equal(got.estimator, CLPSA_ESTIMATOR_SAMPLED);
    assert_int_equal(got.sample_q, 32);
    assert_int_equal(got.sample_k, 16);
    assert_int_equal(c.res.sample_q, 32);
    float *s = estimate_on_device(&c);
    double *ref = xmalloc(c.grid.count * sizeof *ref);
    assert_int_equal(ref_psa_estimate_sampled(&c.prob, 128, 64, 32, 16, 0, c.q, c.k, ref), 0);
    compare_scores(s, ref, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-5, 1e-9, "defaults");
    check_assignment(&c, s, "defaults");
    free(ref);
    free(s);
    case_free(&c);
}

/* Explicit fields override the preset. */
static void test_preset_overrides(void **state) {
    (void)state;
    ts_case_begin("preset overrides");
    clpsa_plan_desc d = base_desc(1, 2, 1, 100, 300, 32);
    d.preset = "wan21-1.3b";
    d.block_q = 64;
    d.block_k = 16;
    d.mode = CLPSA_MODE_ENERGY;
    d.similarity_cap = CLPSA_OFF;
    const float t[4] = {0.3f, 0.4f, 0.5f, 0.6f};
    memcpy(d.thresholds, t, sizeof t);
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    clpsa_plan_desc got;
    ts_check(ctx, clpsa_plan_get_desc(c.plan, &got));
    assert_int_equal(got.block_q, 64);
    assert_int_equal(got.block_k, 16);
    assert_int_equal(got.mode, CLPSA_MODE_ENERGY);
    assert_int_equal(got.similarity_cap, 0);
    assert_true(got.thresholds[3] == 0.6f);
    float *s = estimate_on_device(&c);
    check_assignment(&c, s, "preset overrides");
    free(s);
    case_free(&c);
}

/* ========================================================================================
 * Supplied S, binary baseline
 * ======================================================================================== */

static void test_supplied_scores(void **state) {
    (void)state;
    const desc_tweak tweaks[3] = {tweak_default, tweak_quantile, tweak_energy};
    for (int n = 0; n < 3; ++n) {
        char name[64];
        snprintf(name, sizeof name, "supplied scores %d", n);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 4, 2, 200, 16 * 37 + 5, 32);
        d.block_q = 64;
        d.block_k = 16;
        tweaks[n](&d);
        psa_case c;
        case_init(&c, &d, TS_BHND, NULL);
        const size_t rows = c.grid.count / c.grid.blocks_k;
        float *s = xmalloc(c.grid.count * sizeof(float));
        ts_rng rng;
        ts_rng_init(&rng, ts_case_seed() ^ 0x5C0E5ull);
        /* Unnormalised rows with a heavy head (E uses the row sum), some exact ties and zeros. */
        for (size_t x = 0; x < c.grid.count; ++x) {
            const double u = ts_rng_uniform(&rng);
            s[x] = x % 7 == 3 ? 0.0f : x % 11 == 5 ? 0.25f : (float)(u * u * u * 3.0);
        }
        ts_check(ctx, clpsa_plan_set_scores(c.plan, s));
        case_run(&c);
        float *back = xmalloc(c.grid.count * sizeof(float));
        case_read_scores(&c, back);
        if (memcmp(back, s, c.grid.count * sizeof(float)) != 0)
            ts_fail("read_scores does not return the supplied S");
        const size_t compared = check_assignment(&c, s, name);
        if (compared * 2 < rows)
            ts_fail("%s: only %zu of %zu rows compared", name, compared, rows);
        /* A second run keeps using the supplied S. */
        case_run(&c);
        check_assignment(&c, s, name);
        free(back);
        free(s);
        case_free(&c);
    }
}

/* Counts from fractions use the decimal the caller wrote: min_full = 0.06 at nk = 50 keeps
 * floor(0.06 * 50) + 1 = 4 blocks at level 1, although 0.06f * 50 is 2.99999993 in float
 * (docs/algorithm.md's min_full rule; the release computes it in double). Likewise quantile's
 * floor(nk * tau) with tau = 0.35f at nk = 20 gives 7, not 6. */
static void test_counts_from_decimal_fractions(void **state) {
    (void)state;
    ts_case_begin("counts from decimal fractions");
    clpsa_plan_desc d = base_desc(1, 1, 1, 16, 16 * 50, 32);
    d.block_q = 16;
    d.block_k = 16;
    d.min_full = 0.06f;
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    assert_int_equal(c.grid.blocks_k, 50);
    /* One dominant block: E[0] is about 1, above every threshold, so only min_full keeps more
     * than the crossing block at level 1. */
    float *s = xmalloc(c.grid.count * sizeof(float));
    for (size_t x = 0; x < c.grid.count; ++x)
        s[x] = x == 0 ? 1.0f : 1e-7f;
    ts_check(ctx, clpsa_plan_set_scores(c.plan, s));
    case_run(&c);
    int8_t *m = xmalloc(c.grid.count);
    ts_check(ctx, clpsa_plan_read_levels(c.plan, m));
    int full = 0;
    for (size_t x = 0; x < c.grid.count; ++x)
        full += m[x] == 1;
    assert_int_equal(full, 4);
    case_free(&c);

    clpsa_plan_desc q = base_desc(1, 1, 1, 16, 16 * 20, 32);
    q.block_q = 16;
    q.block_k = 16;
    q.mode = CLPSA_MODE_QUANTILE;
    q.align_tile = CLPSA_OFF;
    const float tau[4] = {0.35f, 0.35f, 0.35f, 0.35f};
    memcpy(q.thresholds, tau, sizeof tau);
    case_init(&c, &q, TS_BHND, NULL);
    assert_int_equal(c.grid.blocks_k, 20);
    for (size_t x = 0; x < c.grid.count; ++x)
        s[x] = (float)(x + 1);
    ts_check(ctx, clpsa_plan_set_scores(c.plan, s));
    case_run(&c);
    ts_check(ctx, clpsa_plan_read_levels(c.plan, m));
    full = 0;
    for (size_t x = 0; x < c.grid.count; ++x)
        full += m[x] == 1;
    assert_int_equal(full, 7);
    free(m);
    free(s);
    case_free(&c);
}

static void test_binary(void **state) {
    (void)state;
    const float densities[3] = {0.3f, 0.05f, 1.0f};
    for (int n = 0; n < 3; ++n) {
        char name[64];
        snprintf(name, sizeof name, "binary density %g", (double)densities[n]);
        ts_case_begin(name);
        clpsa_plan_desc d = base_desc(1, 2, 1, 200, 16 * 37 + 5, 32);
        d.method = CLPSA_METHOD_BINARY;
        d.binary_density = densities[n];
        d.block_q = 64;
        d.block_k = 16;
        d.causal = n == 0;    /* nothing is forced in binary mode, even causal */
        d.text_tokens = 20;   /* nor text blocks */
        d.similarity_cap = 1; /* nor capped */
        psa_case c;
        case_init(&c, &d, TS_BHND, shape_k_runs);
        float *s = estimate_on_device(&c);
        double *ref_s = xmalloc(c.grid.count * sizeof *ref_s);
        assert_int_equal(ref_psa_estimate_sampled(&c.prob, 64, 16, 16, 4, 0, c.q, c.k, ref_s), 0);
        compare_scores(s, ref_s, c.grid.count / c.grid.blocks_k, c.grid.blocks_k, 1e-5, 1e-9, name);
        check_assignment(&c, s, name);
        int8_t *m = xmalloc(c.grid.count);
        case_read_levels(&c, m);
        /* ceil(density * nk) blocks per row, causal: of those the row can see (the sampled
         * estimate is unmasked, so S would rank future blocks too). */
        const int keep = (int)ceil((double)densities[n] * c.grid.blocks_k);
        for (size_t r = 0; r < c.grid.count / c.grid.blocks_k; ++r) {
            const int i = (int)(r % (size_t)c.grid.blocks_q);
            const int last_key =
                (i + 1) * 64 < 200 ? (i + 1) * 64 - 1 + 16 * 37 + 5 - 200 : 16 * 37 + 5 - 1;
            int ones = 0, visible = 0;
            for (int j = 0; j < c.grid.blocks_k; ++j) {
                const int level = m[r * c.grid.blocks_k + j];
                assert_true(level == 0 || level == 1);
                const bool future = d.causal && j * 16 > last_key;
                if (future && level != 0)
                    ts_fail("%s: row %zu block %d is in the future but kept", name, r, j);
                visible += !future;
                ones += level;
            }
            assert_int_equal(ones, keep < visible ? keep : visible);
        }
        free(m);
        free(ref_s);
        free(s);
        case_free(&c);
    }
}

/* ========================================================================================
 * Bad input
 * ======================================================================================== */

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

static void test_bad_levels_and_scores(void **state) {
    (void)state;
    ts_case_begin("bad levels and scores");
    clpsa_plan_desc d = base_desc(1, 2, 1, 70, 100, 32);
    d.block_q = 32;
    d.block_k = 16;
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    const size_t count = c.grid.count;
    const int nk = c.grid.blocks_k;
    int8_t *good = xmalloc(count);
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    random_levels(&rng, good, count / nk, nk);
    ts_check(ctx, clpsa_plan_set_levels(c.plan, good));
    case_run(&c);
    float *first = xmalloc(c.out_count * sizeof(float));
    memcpy(first, c.out, c.out_count * sizeof(float));

    int8_t *bad = xmalloc(count);
    const int8_t bad_values[4] = {3, -1, 16, 5};
    for (int v = 0; v < 4; ++v) {
        memcpy(bad, good, count);
        const size_t at = (count * (size_t)(v + 1)) / 5;
        bad[at] = bad_values[v];
        char index[48], value[16];
        snprintf(index, sizeof index, "levels[%zu]", at);
        snprintf(value, sizeof value, "= %d", bad_values[v]);
        expect_error(clpsa_plan_set_levels(c.plan, bad), CLPSA_ERROR_INVALID_VALUE, index, value);
    }
    /* The rejected maps left the plan as it was: same M, same output. */
    case_run(&c);
    int8_t *back = xmalloc(count);
    case_read_levels(&c, back);
    assert_memory_equal(back, good, count);
    assert_memory_equal(c.out, first, c.out_count * sizeof(float));

    float *s = xmalloc(count * sizeof(float));
    for (size_t x = 0; x < count; ++x)
        s[x] = 1.0f / nk;
    struct {
        size_t at;
        float value;
    } bad_scores[3] = {{5, NAN}, {count - 1, -0.5f}, {17, INFINITY}};
    for (int v = 0; v < 3; ++v) {
        const float keep = s[bad_scores[v].at];
        s[bad_scores[v].at] = bad_scores[v].value;
        char index[48];
        snprintf(index, sizeof index, "scores[%zu]", bad_scores[v].at);
        expect_error(clpsa_plan_set_scores(c.plan, s), CLPSA_ERROR_INVALID_VALUE, index, NULL);
        s[bad_scores[v].at] = keep;
    }
    const size_t zero_row = 2;
    for (int j = 0; j < nk; ++j)
        s[zero_row * nk + j] = 0.0f;
    expect_error(clpsa_plan_set_scores(c.plan, s), CLPSA_ERROR_INVALID_VALUE, "row 2", NULL);
    /* Still on the good level map. */
    case_run(&c);
    case_read_levels(&c, back);
    assert_memory_equal(back, good, count);

    free(s);
    free(back);
    free(bad);
    free(first);
    free(good);
    case_free(&c);
}

static void test_bad_psa_options(void **state) {
    (void)state;
    ts_case_begin("bad psa options");
    struct bad_option {
        const char *needle;
        clpsa_status status;
        clpsa_plan_desc d;
    } cases[16];
    int n = 0;
    clpsa_plan_desc base = base_desc(1, 2, 1, 100, 100, 32);
    base.block_q = 64;
    base.block_k = 32;
#define BAD(needle_, status_, ...)                                                                 \
    do {                                                                                           \
        cases[n].needle = needle_;                                                                 \
        cases[n].status = status_;                                                                 \
        cases[n].d = base;                                                                         \
        clpsa_plan_desc *d = &cases[n].d;                                                          \
        __VA_ARGS__;                                                                               \
        ++n;                                                                                       \
    } while (0)
    BAD("thresholds[2]", CLPSA_ERROR_INVALID_VALUE, {
        const float t[4] = {0.5f, 0.6f, 0.55f, 0.8f};
        memcpy(d->thresholds, t, sizeof t);
    });
    BAD("thresholds[3]", CLPSA_ERROR_INVALID_VALUE, {
        const float t[4] = {0.5f, 0.6f, 0.7f, 1.5f};
        memcpy(d->thresholds, t, sizeof t);
    });
    BAD("thresholds[0]", CLPSA_ERROR_INVALID_VALUE, {
        const float t[4] = {-0.1f, 0.6f, 0.7f, 0.8f};
        memcpy(d->thresholds, t, sizeof t);
    });
    BAD("block_q", CLPSA_ERROR_INVALID_VALUE, d->block_q = 8);
    BAD("block_q", CLPSA_ERROR_INVALID_VALUE, d->block_q = 512);
    BAD("block_k", CLPSA_ERROR_INVALID_VALUE, d->block_k = 300);
    BAD("block_k", CLPSA_ERROR_INVALID_VALUE, d->block_k = 20); /* not a multiple of 8 */
    BAD("preset", CLPSA_ERROR_INVALID_VALUE, d->preset = "wan99");
    BAD("sample_q", CLPSA_ERROR_INVALID_VALUE, d->sample_q = 65);
    BAD("sample_k", CLPSA_ERROR_INVALID_VALUE, d->sample_k = 33);
    BAD("binary_density", CLPSA_ERROR_INVALID_VALUE, {
        d->method = CLPSA_METHOD_BINARY;
        d->binary_density = 0.0f;
    });
    BAD("binary_density", CLPSA_ERROR_INVALID_VALUE, {
        d->method = CLPSA_METHOD_BINARY;
        d->binary_density = 1.5f;
    });
    BAD("antidiagonal_stride", CLPSA_ERROR_INVALID_VALUE, {
        d->estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL;
        d->antidiagonal_stride = 3;
    });
    BAD("mode", CLPSA_ERROR_INVALID_VALUE, d->mode = (clpsa_mode)9);
    BAD("similarity_thresholds[1]", CLPSA_ERROR_INVALID_VALUE, {
        d->similarity_cap = 1;
        const float t[3] = {0.5f, 1.5f, 0.5f};
        memcpy(d->similarity_thresholds, t, sizeof t);
    });
#undef BAD
    for (int i = 0; i < n; ++i) {
        clpsa_plan *plan = (clpsa_plan *)0x1;
        const clpsa_status status = clpsa_plan_create(ctx, &cases[i].d, &plan);
        if (status == CLPSA_OK)
            clpsa_plan_destroy(plan);
        else if (plan != NULL)
            ts_fail("case %d (%s): a rejected plan_create left *out = %p", i, cases[i].needle,
                    (void *)plan);
        expect_error(status, cases[i].status, cases[i].needle, NULL);
    }
}

/* A rejected run writes nothing: the poisoned output and its canary stay as they were. */
static void test_rejected_run_writes_nothing(void **state) {
    (void)state;
    ts_case_begin("rejected run writes nothing");
    clpsa_plan_desc d = base_desc(1, 2, 1, 70, 100, 32);
    d.block_q = 32;
    d.block_k = 16;
    psa_case c;
    case_init(&c, &d, TS_BHND, NULL);
    cl_mem small = NULL;
    ts_check(ctx, clpsa_context_alloc(ctx, 64, &small));
    ts_buffer_poison(&c.bo);
    clpsa_status status =
        clpsa_plan_run(c.plan, NULL, small, c.bk.mem, c.bv.mem, c.bo.mem, 0, NULL, NULL);
    expect_error(status, CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer q ", "64 bytes");
    status = clpsa_plan_run(c.plan, NULL, c.bq.mem, c.bk.mem, c.bv.mem, NULL, 0, NULL, NULL);
    if (status == CLPSA_OK)
        ts_fail("run with a NULL output was accepted");
    const cl_event bogus = NULL;
    status = clpsa_plan_run(c.plan, NULL, c.bq.mem, c.bk.mem, c.bv.mem, c.bo.mem, 1, NULL, NULL);
    expect_error(status, CLPSA_ERROR_NULL_ARGUMENT, "wait_list", NULL);
    status = clpsa_plan_run(c.plan, NULL, c.bq.mem, c.bk.mem, c.bv.mem, c.bo.mem, 0, &bogus, NULL);
    if (status == CLPSA_OK)
        ts_fail("run with a wait list but num_events = 0 was accepted");
    clFinish(clpsa_context_queue(ctx));
    ts_buffer_check_unchanged(&c.bo);
    ts_buffer_check_canary(&c.bo);
    /* Reading back before any run is refused, not garbage. */
    int8_t *m = xmalloc(c.grid.count);
    if (clpsa_plan_read_levels(c.plan, m) == CLPSA_OK)
        ts_fail("read_levels before any run succeeded");
    free(m);
    clReleaseMemObject(small);
    case_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_splitmix64_and_offset_draw),
        cmocka_unit_test(test_ref_pyramid_and_levels),
        cmocka_unit_test(test_ref_sampled_exact_from_logits),
        cmocka_unit_test(test_ref_antidiagonal_stride1_is_attention_mass),
        cmocka_unit_test(test_ref_assignment_by_hand),
        cmocka_unit_test(test_ref_similarity_cap),
        cmocka_unit_test_teardown(test_ref_presets_and_stats, clear_params),
        cmocka_unit_test(test_levels_fp32),
        cmocka_unit_test(test_levels_fp16_bf16),
        cmocka_unit_test(test_level1_equals_dense_and_level0_is_zero),
        cmocka_unit_test(test_single_level8_block),
        cmocka_unit_test_teardown(test_sampled_estimate, clear_params),
        cmocka_unit_test_teardown(test_sampled_estimate_matrix_units, clear_params),
        cmocka_unit_test_teardown(test_scratch_limit, clear_params),
        cmocka_unit_test(test_sampled_seeds_differ),
        cmocka_unit_test(test_antidiagonal_estimate),
        cmocka_unit_test(test_assignment_modes),
        cmocka_unit_test(test_causal_pipeline),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_preset_overrides),
        cmocka_unit_test(test_supplied_scores),
        cmocka_unit_test(test_counts_from_decimal_fractions),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_bad_levels_and_scores),
        cmocka_unit_test(test_bad_psa_options),
        cmocka_unit_test(test_rejected_run_writes_nothing),
    };
    ts_apply_test_filter();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
