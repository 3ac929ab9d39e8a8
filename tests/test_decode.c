/* SPDX-License-Identifier: Apache-2.0 */
/* Decode: dense plans of a few query rows (Nq = 1..16) over a key/value cache that grows
 * between runs up to the plan's kv_capacity (clpsa_plan_set_kv_length), against the
 * double-precision reference.
 *
 * Each growth case appends keys and values to the device cache in place (only the new rows
 * are written; the rest of the buffer stays NaN-poisoned, so a kernel that reads past seq_k
 * yields NaN), sets the new length and runs. Causal steps must equal the last Nq rows of the
 * full causal computation over the cache (the query rows are the last Nq positions); steps
 * with fewer keys than query rows, and non-causal steps, are compared with attention of the
 * step's rows over its keys. Outputs are poisoned before every run, canaries guard every
 * buffer, inputs must be left alone, and no program may be built or even looked up after
 * the plan's creation. */
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

#define MAX_STEPS 12

typedef struct decode_case {
    const char *name;
    int batch, heads_q, heads_kv, seq_q, capacity, head_dim;
    clpsa_dtype dtype, out_dtype;
    int causal;
    ts_layout q_layout, kv_layout;
    int kv_pad;
    int steps[MAX_STEPS]; /* key lengths of successive runs, 0-terminated */
    const char *params;   /* clpsa_context_set_params text ("" for none) */
    const char *family;   /* the kernel family the plan must run: "decode" or "dense" */
} decode_case;

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ts_fail("out of host memory (%zu bytes)", bytes);
    return p;
}

/* Tolerances of test_dense (output type's rounding plus fp32 accumulation), with the fp32
 * limits doubled: a step sums up to 64k keys, split into partials that are merged at the end,
 * and the error of fp32 sums grows with the number of terms. */
static ts_tolerance tolerance_for(clpsa_dtype out_dtype) {
    switch (out_dtype) {
    case CLPSA_DTYPE_FP16:
        return (ts_tolerance){.atol = 2e-5, .rtol = 0x1p-11, .rel_l2 = 2e-3};
    case CLPSA_DTYPE_BF16:
        return (ts_tolerance){.atol = 2e-5, .rtol = 0x1p-8, .rel_l2 = 1e-2};
    default:
        return (ts_tolerance){.atol = 2e-5, .rtol = 2e-4, .rel_l2 = 2e-5};
    }
}

/* Writes cache rows [from, to) of every (batch, kv head) from the converted host image
 * `stored` (the whole extent in the storage type) to the device buffer, and into the buffer's
 * shadow so ts_buffer_check_unchanged still knows what the cache must hold. Writes whole
 * spans: per (b, h) in [B, H, N, D], per b in [B, N, H, D] (tokens outermost there). */
static void append_rows(ts_buffer *buf, const unsigned char *stored, ts_layout layout, ts_dims dims,
                        clpsa_strides s, int from, int to) {
    const size_t es = clpsa_dtype_size(buf->dtype);
    const int64_t heads = layout == TS_BHND ? dims.heads : 1;
    for (int64_t b = 0; b < dims.batch; ++b)
        for (int64_t h = 0; h < heads; ++h) {
            const int64_t last_h = layout == TS_BHND ? h : dims.heads - 1;
            const int64_t first = ts_offset(s, b, h, from, 0);
            const int64_t end = ts_offset(s, b, last_h, to - 1, dims.dim - 1) + 1;
            const size_t offset = (size_t)first * es, bytes = (size_t)(end - first) * es;
            ts_check_cl(clEnqueueWriteBuffer(clpsa_context_queue(ctx), buf->mem, CL_TRUE, offset,
                                             bytes, stored + offset, 0, NULL, NULL),
                        "clEnqueueWriteBuffer(append)");
            memcpy((unsigned char *)buf->shadow + offset, stored + offset, bytes);
        }
}

/* The step's query rows: rows [n - Nq, n) of the full query when causal (the last Nq positions
 * of the sequence so far), else rows [0, Nq) of it; positions before 0 (n < Nq) take row 0. */
static void step_queries(const decode_case *c, const float *q_full, int n, ts_dims qd,
                         clpsa_strides qs, float *q_step) {
    const int first = c->causal ? n - c->seq_q : 0;
    for (int64_t i = 0; i < (int64_t)ts_extent(qd, qs); ++i)
        q_step[i] = NAN;
    for (int b = 0; b < c->batch; ++b)
        for (int h = 0; h < c->heads_q; ++h)
            for (int t = 0; t < c->seq_q; ++t) {
                const int src = first + t < 0 ? 0 : first + t;
                const float *from =
                    q_full + (((size_t)b * c->heads_q + h) * c->capacity + src) * c->head_dim;
                memcpy(q_step + ts_offset(qs, b, h, t, 0), from, sizeof(float) * c->head_dim);
            }
}

/* Rows [n - Nq, n) of the full causal computation over the sequence of n tokens, from its
 * definition: position p attends to keys [0, p] (no alignment rule involved). Each row is a
 * one-row, one-head problem over its kv head's first p + 1 keys. */
static void full_rows_reference(const decode_case *c, const float *q_full, clpsa_strides full_qs,
                                const float *k, clpsa_strides ks, const float *v, clpsa_strides vs,
                                float scale, int n, double *ref) {
    const int group = c->heads_q / c->heads_kv;
    for (int b = 0; b < c->batch; ++b)
        for (int h = 0; h < c->heads_q; ++h)
            for (int t = 0; t < c->seq_q; ++t) {
                const int p = n - c->seq_q + t;
                const ref_attention_problem one = {
                    1, 1, 1, 1, p + 1, c->head_dim, full_qs, ks, vs, (double)scale, 0};
                const int64_t kv = (int64_t)b * ks.batch + (int64_t)(h / group) * ks.head;
                const int64_t vv = (int64_t)b * vs.batch + (int64_t)(h / group) * vs.head;
                double *row = ref + (((size_t)b * c->heads_q + h) * c->seq_q + t) * c->head_dim;
                if (ref_attention_dense(&one, q_full + ts_offset(full_qs, b, h, p, 0), k + kv,
                                        v + vv, row) != 0)
                    ts_fail("the reference rejected row %d", p);
            }
}

static void run_growth_case(const decode_case *c) {
    ts_case_begin(c->name);
    ts_check(ctx, clpsa_context_set_params(ctx, c->params));
    const ts_dims qd = {c->batch, c->heads_q, c->seq_q, c->head_dim};
    const ts_dims kvd = {c->batch, c->heads_kv, c->capacity, c->head_dim};
    const ts_dims full_qd = {c->batch, c->heads_q, c->capacity, c->head_dim};
    const clpsa_strides qs = ts_strides(c->q_layout, qd, 0);
    const clpsa_strides ks = ts_strides(c->kv_layout, kvd, c->kv_pad);
    const clpsa_strides vs = ts_strides(c->kv_layout, kvd, c->kv_pad ? c->kv_pad + 5 : 0);
    const clpsa_strides full_qs = clpsa_strides_bhnd(c->heads_q, c->capacity, c->head_dim);
    const clpsa_strides os = ts_strides(c->q_layout, qd, 0);

    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.method = CLPSA_METHOD_DENSE;
    desc.batch = c->batch;
    desc.heads_q = c->heads_q;
    desc.heads_kv = c->heads_kv;
    desc.seq_q = c->seq_q;
    desc.seq_k = c->steps[0];
    desc.kv_capacity = c->capacity;
    desc.head_dim = c->head_dim;
    desc.dtype = c->dtype;
    desc.out_dtype = c->out_dtype;
    desc.causal = c->causal;
    desc.q_strides = qs;
    desc.k_strides = ks;
    desc.v_strides = vs;
    desc.out_strides = os;
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &desc, &plan));
    const char *decode = clpsa_plan_kernel_variant(plan, "decode");
    const char *dense = clpsa_plan_kernel_variant(plan, "dense");
    if (!strcmp(c->family, "decode") ? (!decode || dense) : (decode || !dense))
        ts_fail("the plan should run the %s kernel; it reports decode %s, dense %s", c->family,
                decode ? decode : "(none)", dense ? dense : "(none)");
    const char *asked = strstr(c->params, "decode.VARIANT=");
    int asked_id = 0;
    if (asked && sscanf(asked, "decode.VARIANT=%d", &asked_id) == 1) {
        char ran[32];
        snprintf(ran, sizeof ran, "decode.VARIANT=%d ", asked_id);
        if (!strstr(clpsa_plan_parameter_source(plan), ran))
            ts_fail("asked for %s, the plan reports %s", c->params,
                    clpsa_plan_parameter_source(plan));
    }
    clpsa_buffer_sizes sizes;
    ts_check(ctx, clpsa_plan_buffer_sizes(plan, &sizes));
    const size_t in_size = clpsa_dtype_size(c->dtype);
    if (sizes.k != ts_extent(kvd, ks) * in_size || sizes.v != ts_extent(kvd, vs) * in_size)
        ts_fail("K/V buffer sizes %zu, %zu are not the capacity's extents %zu, %zu", sizes.k,
                sizes.v, ts_extent(kvd, ks) * in_size, ts_extent(kvd, vs) * in_size);
    clpsa_plan_desc resolved;
    ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));

    /* Host data: the full query sequence, the whole cache, rounded to the storage type. */
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    const size_t full_q_count = ts_extent(full_qd, full_qs);
    const size_t k_extent = ts_extent(kvd, ks), v_extent = ts_extent(kvd, vs);
    const size_t q_extent = ts_extent(qd, qs), out_extent = ts_extent(qd, os);
    const size_t out_count = (size_t)c->batch * c->heads_q * c->seq_q * c->head_dim;
    float *q_full = checked_malloc(full_q_count * sizeof(float));
    float *k = checked_malloc(k_extent * sizeof(float));
    float *v = checked_malloc(v_extent * sizeof(float));
    ts_fill_tensor_normal(&rng, q_full, full_qd, full_qs, 1.0f);
    ts_fill_tensor_normal(&rng, k, kvd, ks, 1.0f);
    ts_fill_tensor_normal(&rng, v, kvd, vs, 1.0f);
    ts_round_to_dtype(c->dtype, q_full, full_q_count);
    ts_round_to_dtype(c->dtype, k, k_extent);
    ts_round_to_dtype(c->dtype, v, v_extent);
    unsigned char *k_stored = checked_malloc(k_extent * in_size);
    unsigned char *v_stored = checked_malloc(v_extent * in_size);
    clpsa_convert_from_float(c->dtype, k, k_stored, k_extent);
    clpsa_convert_from_float(c->dtype, v, v_stored, v_extent);

    ts_buffer qb, kb, vb, ob;
    ts_buffer_create(&qb, ctx, "q", c->dtype, q_extent);
    ts_buffer_create(&kb, ctx, "k", c->dtype, k_extent);
    ts_buffer_create(&vb, ctx, "v", c->dtype, v_extent);
    ts_buffer_create(&ob, ctx, "out", resolved.out_dtype, out_extent);
    float *q_step = checked_malloc(q_extent * sizeof(float));
    float *got_extent = checked_malloc(out_extent * sizeof(float));
    float *got = checked_malloc(out_count * sizeof(float));
    float *again = checked_malloc(out_extent * sizeof(float));
    double *ref = checked_malloc(out_count * sizeof(double));

    clpsa_cache_stats before;
    clpsa_context_cache_stats(ctx, &before);
    char source[1024];
    snprintf(source, sizeof source, "%s", clpsa_plan_parameter_source(plan));
    const ts_tolerance tol = tolerance_for(resolved.out_dtype);
    int have = 0; /* cache rows written so far */
    for (int s = 0; s < MAX_STEPS && c->steps[s]; ++s) {
        const int n = c->steps[s];
        char what[96];
        snprintf(what, sizeof what, "step %d (seq_k = %d)", s, n);
        if (n > have) {
            append_rows(&kb, k_stored, c->kv_layout, kvd, ks, have, n);
            append_rows(&vb, v_stored, c->kv_layout, kvd, vs, have, n);
            have = n;
        }
        ts_check(ctx, clpsa_plan_set_kv_length(plan, n));
        clpsa_plan_desc now;
        ts_check(ctx, clpsa_plan_get_desc(plan, &now));
        if (now.seq_k != n || now.kv_capacity != c->capacity)
            ts_fail("%s: the plan reports seq_k %d, kv_capacity %d", what, now.seq_k,
                    now.kv_capacity);
        step_queries(c, q_full, n, qd, qs, q_step);
        ts_buffer_upload(&qb, q_step);

        /* Reference: rows of the full causal computation, or the step's rows over its keys. */
        if (c->causal && n >= c->seq_q) {
            full_rows_reference(c, q_full, full_qs, k, ks, v, vs, resolved.scale, n, ref);
        } else {
            const ref_attention_problem p = {c->batch, c->heads_q,     c->heads_kv, c->seq_q,
                                             n,        c->head_dim,    qs,          ks,
                                             vs,       resolved.scale, c->causal};
            if (ref_attention_dense(&p, q_step, k, v, ref) != 0)
                ts_fail("the reference rejected the step");
        }

        for (int r = 0; r < 2; ++r) {
            ts_buffer_poison(&ob);
            cl_event done = NULL;
            ts_check(ctx,
                     clpsa_plan_run(plan, NULL, qb.mem, kb.mem, vb.mem, ob.mem, 0, NULL, &done));
            ts_check_cl(clWaitForEvents(1, &done), "clWaitForEvents");
            clReleaseEvent(done);
            ts_buffer_download(&ob, r == 0 ? got_extent : again);
        }
        ts_buffer_check_canary(&qb);
        ts_buffer_check_canary(&kb);
        ts_buffer_check_canary(&vb);
        ts_buffer_check_canary(&ob);
        ts_buffer_check_unchanged(&qb);
        ts_buffer_check_unchanged(&kb);
        ts_buffer_check_unchanged(&vb);
        if (memcmp(got_extent, again, out_extent * sizeof(float)) != 0)
            ts_fail("%s: a second run differs from the first", what);
        ts_gather(got_extent, qd, os, got);
        ts_assert_close(what, got, ref, qd, tol);
        if (c->causal)
            for (size_t i = 0; i < out_count; ++i) {
                const int t = (int)(i / c->head_dim % c->seq_q);
                if (t + n - c->seq_q < 0 && got[i] != 0.0f)
                    ts_fail("%s: row %d sees no key but holds %g, not 0", what, t, (double)got[i]);
            }
    }
    clpsa_cache_stats after;
    clpsa_context_cache_stats(ctx, &after);
    if (after.builds != before.builds || after.memory_hits != before.memory_hits ||
        after.disk_hits != before.disk_hits)
        ts_fail("programs were looked up or built while the cache grew: builds %llu -> %llu, "
                "memory hits %llu -> %llu, disk hits %llu -> %llu",
                (unsigned long long)before.builds, (unsigned long long)after.builds,
                (unsigned long long)before.memory_hits, (unsigned long long)after.memory_hits,
                (unsigned long long)before.disk_hits, (unsigned long long)after.disk_hits);
    if (strcmp(source, clpsa_plan_parameter_source(plan)) != 0)
        ts_fail("the plan's parameters changed while the cache grew");

    free(q_full);
    free(k);
    free(v);
    free(k_stored);
    free(v_stored);
    free(q_step);
    free(got_extent);
    free(got);
    free(again);
    free(ref);
    ts_buffer_release(&qb);
    ts_buffer_release(&kb);
    ts_buffer_release(&vb);
    ts_buffer_release(&ob);
    clpsa_plan_destroy(plan);
    ts_check(ctx, clpsa_context_set_params(ctx, ""));
}

static void test_growth(void **state) {
    run_growth_case(*state);
}

/* Lengths: 1, around tiles (31, 32, 33, 64, 65), primes, the capacity itself; shapes: GQA,
 * several row groups per kv head (group * Nq > 16), every storage type, both layouts. */
/* clang-format off */
static const decode_case cases[] = {
    /* name, B, Hq, Hkv, Nq, capacity, D, dtype, out dtype, causal, q layout, kv layout, kv pad,
     * key lengths of the runs, parameters, family */
    {"nq1_gqa_d64_fp32_causal_grow_to_1031", 1, 2, 1, 1, 1031, 64, CLPSA_DTYPE_FP32, 0, 1,
     TS_BHND, TS_BHND, 0, {1, 2, 31, 32, 33, 64, 65, 500, 1031}, "", "decode"},
    {"nq1_d64_fp32_plain", 2, 3, 3, 1, 509, 64, CLPSA_DTYPE_FP32, 0, 0, TS_BHND, TS_BHND, 0,
     {1, 7, 509}, "", "decode"},
    {"nq4_gqa4_d128_fp16_causal", 1, 8, 2, 4, 700, 128, CLPSA_DTYPE_FP16, 0, 1, TS_BHND, TS_BHND,
     0, {4, 5, 100, 257, 700}, "", "decode"},
    {"nq16_gqa4_d64_bf16_bnhd_pad", 1, 4, 1, 16, 509, 64, CLPSA_DTYPE_BF16, 0, 0, TS_BNHD,
     TS_BNHD, 3, {1, 16, 17, 300, 509}, "", "decode"},
    {"nq16_d64_fp32_causal_blind_rows", 1, 2, 2, 16, 257, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND,
     TS_BNHD, 0, {1, 5, 15, 16, 17, 40, 257}, "", "decode"},
    {"nq7_d32_fp32_causal_fp16_out", 1, 3, 3, 7, 211, 32, CLPSA_DTYPE_FP32, CLPSA_DTYPE_FP16, 1,
     TS_BNHD, TS_BHND, 0, {7, 8, 97, 211}, "", "decode"},
    {"nq3_b2_d256_bf16_causal_fp32_out", 2, 2, 1, 3, 300, 256, CLPSA_DTYPE_BF16, CLPSA_DTYPE_FP32,
     1, TS_BHND, TS_BHND, 0, {3, 150, 300}, "", "decode"},
    {"nq2_d96_fp16_long", 1, 2, 1, 2, 65536, 96, CLPSA_DTYPE_FP16, 0, 0, TS_BHND, TS_BHND, 0,
     {1000, 4093, 65536}, "", "decode"},
    {"nq1_d64_fp32_causal_long", 1, 1, 1, 1, 16411, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND, TS_BHND,
     0, {16411}, "", "decode"},
    /* Tunables at both ends: one work-group per compute unit (a single split on a small
     * device) with 8-key tiles (in 32-item groups), 32 per compute unit with 64-key tiles (in
     * 256-item groups; more splits wanted than there are tiles at small lengths). */
    {"v1_tunables_small", 1, 4, 2, 5, 333, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND, TS_BHND, 0,
     {5, 64, 333}, "decode.VARIANT=1,decode.CU_GROUPS=1,decode.DEC_WG=32,decode.DEC_TILE_N=8",
     "decode"},
    {"v1_tunables_large", 1, 4, 2, 5, 333, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND, TS_BHND, 0,
     {5, 64, 333}, "decode.VARIANT=1,decode.CU_GROUPS=32,decode.DEC_WG=256,decode.DEC_TILE_N=64",
     "decode"},
    {"v3_tunables_small", 1, 4, 2, 5, 333, 64, CLPSA_DTYPE_FP16, 0, 1, TS_BHND, TS_BHND, 0,
     {5, 64, 333}, "decode.VARIANT=3,decode.CU_GROUPS=1,decode.DEC_TILE_N=8", "decode"},
    {"v3_tunables_large", 1, 4, 2, 5, 333, 64, CLPSA_DTYPE_BF16, 0, 1, TS_BHND, TS_BHND, 0,
     {5, 64, 333}, "decode.VARIANT=3,decode.CU_GROUPS=32,decode.DEC_TILE_N=64", "decode"},
    /* An explicit dense.VARIANT asks for the dense kernel: it grows the same way. */
    {"dense_kernel_grows_too", 1, 4, 2, 3, 300, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND, TS_BNHD, 2,
     {3, 33, 300}, "dense.VARIANT=1", "dense"},
    /* More than 16 query rows: the dense kernel, with a growing cache as well. */
    {"nq17_dense", 1, 2, 1, 17, 200, 64, CLPSA_DTYPE_FP32, 0, 1, TS_BHND, TS_BHND, 0,
     {17, 100, 200}, "", "dense"},
};
/* clang-format on */

/* ---- Rejected lengths and capacities ---- */

static clpsa_plan_desc small_desc(void) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE;
    d.batch = 1;
    d.heads_q = 2;
    d.seq_q = 1;
    d.seq_k = 10;
    d.kv_capacity = 1000;
    d.head_dim = 64;
    return d;
}

static void expect_error(clpsa_status got, clpsa_status want, const char *a, const char *b) {
    if (got != want)
        ts_fail("expected %s, got %s (%s)", clpsa_status_name(want), clpsa_status_name(got),
                clpsa_context_last_error(ctx));
    const char *detail = clpsa_context_last_error(ctx);
    if (!strstr(detail, a) || (b && !strstr(detail, b)))
        ts_fail("last_error \"%s\" does not name \"%s\"%s%s", detail, a, b ? " and " : "",
                b ? b : "");
}

static void test_bad_lengths(void **state) {
    (void)state;
    ts_case_begin("bad_lengths");
    clpsa_plan_desc d = small_desc();
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    const int bad[] = {0, -1, 1001, 1 << 30};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        char value[32];
        snprintf(value, sizeof value, "seq_k = %d", bad[i]);
        expect_error(clpsa_plan_set_kv_length(plan, bad[i]), CLPSA_ERROR_INVALID_SHAPE, value,
                     "kv_capacity = 1000");
        clpsa_plan_desc now;
        ts_check(ctx, clpsa_plan_get_desc(plan, &now));
        if (now.seq_k != 10)
            ts_fail("a rejected length changed seq_k to %d", now.seq_k);
    }
    ts_check(ctx, clpsa_plan_set_kv_length(plan, 1000));
    ts_check(ctx, clpsa_plan_set_kv_length(plan, 1));
    if (clpsa_plan_set_kv_length(NULL, 5) != CLPSA_ERROR_NULL_ARGUMENT)
        ts_fail("a NULL plan is not CLPSA_ERROR_NULL_ARGUMENT");

    /* Buffers must hold the capacity, not just the current length: a cache of seq_k tokens is
     * too small and the output stays untouched. */
    clpsa_buffer_sizes sizes;
    ts_check(ctx, clpsa_plan_buffer_sizes(plan, &sizes));
    if (sizes.k != (size_t)2 * 1000 * 64 * 4)
        ts_fail("K needs %zu bytes, not the capacity's %d", sizes.k, 2 * 1000 * 64 * 4);
    ts_buffer q, k_short, v, out;
    ts_buffer_create(&q, ctx, "q", CLPSA_DTYPE_FP32, sizes.q / 4);
    ts_buffer_create(&k_short, ctx, "k", CLPSA_DTYPE_FP32, (size_t)2 * 10 * 64);
    ts_buffer_create(&v, ctx, "v", CLPSA_DTYPE_FP32, sizes.v / 4);
    ts_buffer_create(&out, ctx, "out", CLPSA_DTYPE_FP32, sizes.out / 4);
    expect_error(clpsa_plan_run(plan, NULL, q.mem, k_short.mem, v.mem, out.mem, 0, NULL, NULL),
                 CLPSA_ERROR_BUFFER_TOO_SMALL, "buffer k", "N=1000");
    ts_buffer_check_unchanged(&out);
    ts_buffer_check_canary(&out);
    ts_buffer_release(&q);
    ts_buffer_release(&k_short);
    ts_buffer_release(&v);
    ts_buffer_release(&out);
    clpsa_plan_destroy(plan);

    /* Capacities at creation. */
    d = small_desc();
    d.kv_capacity = 9;
    plan = NULL;
    expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_SHAPE, "kv_capacity = 9",
                 "seq_k = 10");
    if (plan)
        ts_fail("a rejected plan was returned");
    d.kv_capacity = -5;
    expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_SHAPE, "kv_capacity = -5",
                 NULL);
    d = small_desc();
    d.method = CLPSA_METHOD_PSA;
    d.seq_q = 128;
    expect_error(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_UNSUPPORTED, "kv_capacity = 1000",
                 "CLPSA_METHOD_DENSE");
    /* kv_capacity 0 means seq_k: the length cannot grow. */
    d = small_desc();
    d.kv_capacity = 0;
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    clpsa_plan_desc resolved;
    ts_check(ctx, clpsa_plan_get_desc(plan, &resolved));
    if (resolved.kv_capacity != 10)
        ts_fail("kv_capacity 0 resolved to %d, not seq_k", resolved.kv_capacity);
    expect_error(clpsa_plan_set_kv_length(plan, 11), CLPSA_ERROR_INVALID_SHAPE, "seq_k = 11",
                 "kv_capacity = 10");
    clpsa_plan_destroy(plan);

    /* A sparse plan's key length is fixed. */
    d = small_desc();
    d.method = CLPSA_METHOD_PSA;
    d.seq_q = 128;
    d.seq_k = 128;
    d.kv_capacity = 0;
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    expect_error(clpsa_plan_set_kv_length(plan, 64), CLPSA_ERROR_UNSUPPORTED,
                 "clpsa_plan_set_kv_length", "CLPSA_METHOD_DENSE");
    clpsa_plan_destroy(plan);
}

/* One key: the output is that key's value row, exactly (softmax weight 1, then * 1 / 1). With
 * every fp16 bit pattern in V (2 batches x 128 heads x D = 256) and fp32 output, the kernels'
 * fp16 loads must reproduce each value exactly: subnormals, the largest normals, infinities
 * (NaNs stay NaN; -0 reads back as 0, since 0 + 1 * -0 = +0). Each variant the device runs. */
static void test_fp16_every_value(void **state) {
    (void)state;
    ts_case_begin("fp16_every_value");
    enum { B = 2, H = 128, D = 256, COUNT = B * H * D };
    uint16_t *bits = checked_malloc(COUNT * sizeof(uint16_t));
    for (int i = 0; i < COUNT; ++i)
        bits[i] = (uint16_t)i;
    float *want = checked_malloc(COUNT * sizeof(float));
    ts_check(ctx, clpsa_convert_to_float(CLPSA_DTYPE_FP16, bits, want, COUNT));
    float *zeros = calloc(COUNT, sizeof(float)), *got = checked_malloc(COUNT * sizeof(float));
    if (!zeros)
        ts_fail("out of host memory");
    int variants[4];
    const int count = ts_variants_available(ctx, "decode", variants, 4);
    for (int i = 0; i < count; ++i) {
        char params[32];
        snprintf(params, sizeof params, "decode.VARIANT=%d", variants[i]);
        ts_check(ctx, clpsa_context_set_params(ctx, params));
        clpsa_plan_desc d;
        clpsa_plan_desc_init(&d);
        d.method = CLPSA_METHOD_DENSE;
        d.batch = B, d.heads_q = H, d.seq_q = 1, d.seq_k = 1, d.head_dim = D;
        d.dtype = CLPSA_DTYPE_FP16;
        d.out_dtype = CLPSA_DTYPE_FP32;
        clpsa_plan *plan = NULL;
        ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
        ts_buffer q, k, v, out;
        ts_buffer_create(&q, ctx, "q", CLPSA_DTYPE_FP16, COUNT);
        ts_buffer_create(&k, ctx, "k", CLPSA_DTYPE_FP16, COUNT);
        ts_buffer_create(&v, ctx, "v", CLPSA_DTYPE_FP16, COUNT);
        ts_buffer_create(&out, ctx, "out", CLPSA_DTYPE_FP32, COUNT);
        ts_buffer_upload(&q, zeros);
        ts_buffer_upload(&k, zeros);
        ts_check_cl(clEnqueueWriteBuffer(clpsa_context_queue(ctx), v.mem, CL_TRUE, 0,
                                         COUNT * sizeof(uint16_t), bits, 0, NULL, NULL),
                    "clEnqueueWriteBuffer");
        ts_check(ctx, clpsa_plan_run(plan, NULL, q.mem, k.mem, v.mem, out.mem, 0, NULL, NULL));
        ts_buffer_download(&out, got);
        ts_buffer_check_canary(&out);
        for (int e = 0; e < COUNT; ++e)
            if (isnan(want[e]) ? !isnan(got[e]) : want[e] != got[e])
                ts_fail("decode.VARIANT=%d: fp16 0x%04x is %.9g, the output holds %.9g",
                        variants[i], (unsigned)bits[e], (double)want[e], (double)got[e]);
        ts_buffer_release(&q);
        ts_buffer_release(&k);
        ts_buffer_release(&v);
        ts_buffer_release(&out);
        clpsa_plan_destroy(plan);
    }
    ts_check(ctx, clpsa_context_set_params(ctx, ""));
    free(bits);
    free(want);
    free(zeros);
    free(got);
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    return 0;
}

/* Cases without parameters of their own run once per decode variant the device runs (the
 * dense ones once); the others as given. */
enum { CASES = sizeof cases / sizeof cases[0], MAX_RUNS = 4 * CASES };
static decode_case runs[MAX_RUNS];
static char run_names[MAX_RUNS][96], run_params[MAX_RUNS][48];

int main(void) {
    ctx = ts_context_create();
    if (!ctx)
        return 1;
    int variants[4];
    const int variant_count = ts_variants_available(ctx, "decode", variants, 4);
    if (variant_count < 1) {
        fprintf(stderr, "test_decode: no decode variant runs on this device\n");
        return 1;
    }
    size_t run_count = 0;
    for (size_t i = 0; i < CASES; ++i) {
        const bool per_variant = !cases[i].params[0] && !strcmp(cases[i].family, "decode");
        /* A case that asks for a variant this device cannot run (portable-cpu on a GPU). */
        const char *asked = strstr(cases[i].params, "decode.VARIANT=");
        int asked_id = 0;
        bool runs_here = !asked || sscanf(asked, "decode.VARIANT=%d", &asked_id) != 1;
        for (int v = 0; v < variant_count && !runs_here; ++v)
            runs_here = variants[v] == asked_id;
        if (!runs_here)
            continue;
        for (int v = 0; v < (per_variant ? variant_count : 1); ++v) {
            runs[run_count] = cases[i];
            if (per_variant) {
                snprintf(run_params[run_count], sizeof run_params[0], "decode.VARIANT=%d",
                         variants[v]);
                snprintf(run_names[run_count], sizeof run_names[0], "v%d_%s", variants[v],
                         cases[i].name);
                runs[run_count].params = run_params[run_count];
                runs[run_count].name = run_names[run_count];
            }
            ++run_count;
        }
    }
    static struct CMUnitTest tests[MAX_RUNS + 2];
    size_t count = 0;
    tests[count++] = (struct CMUnitTest){"bad_lengths", test_bad_lengths, NULL, NULL, NULL};
    tests[count++] =
        (struct CMUnitTest){"fp16_every_value", test_fp16_every_value, NULL, NULL, NULL};
    for (size_t i = 0; i < run_count; ++i)
        tests[count++] = (struct CMUnitTest){runs[i].name, test_growth, NULL, NULL, &runs[i]};
    ts_apply_test_filter();
    return _cmocka_run_group_tests("test_decode", tests, count, NULL, group_teardown);
}
