/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded video-like workload, PSA's central claim on it, and token orderings inside the
 * pipeline (gather on load, scatter on store). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_workload.h>

#include "support/test_support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clpsa_context *ctx;

static int group_setup(void **state) {
    (void)state;
    ctx = ts_context_create();
    return ctx ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    clpsa_context_destroy(ctx);
    return 0;
}

typedef struct problem {
    clpsa_video_workload_desc workload;
    size_t tokens, count;
    float *q, *k, *v;
} problem;

static void problem_make(problem *p, int frames, int height, int width, int text_tokens) {
    clpsa_video_workload_desc_init(&p->workload);
    p->workload.frames = frames;
    p->workload.height = height;
    p->workload.width = width;
    p->workload.seed = ts_case_seed();
    const size_t video = (size_t)frames * height * width;
    p->tokens = video + (size_t)text_tokens;
    const int heads = p->workload.heads_q, dim = p->workload.head_dim;
    p->count = p->tokens * heads * dim;
    p->q = malloc(p->count * sizeof(float));
    p->k = malloc(p->count * sizeof(float));
    p->v = malloc(p->count * sizeof(float));
    float *vq = malloc(video * heads * dim * sizeof(float));
    float *vk = malloc(video * heads * dim * sizeof(float));
    float *vv = malloc(video * heads * dim * sizeof(float));
    ts_check(ctx, clpsa_video_workload_generate(&p->workload, vq, vk, vv));
    /* Text tokens (random) follow the video tokens of each head. */
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed() ^ 0x7e57);
    for (int h = 0; h < heads; ++h) {
        const size_t video_part = video * dim, head = (size_t)h * p->tokens * dim;
        memcpy(p->q + head, vq + (size_t)h * video_part, video_part * sizeof(float));
        memcpy(p->k + head, vk + (size_t)h * video_part, video_part * sizeof(float));
        memcpy(p->v + head, vv + (size_t)h * video_part, video_part * sizeof(float));
        const size_t text_part = (size_t)text_tokens * dim;
        ts_fill_normal(&rng, p->q + head + video_part, text_part, 0.0f, 1.0f);
        ts_fill_normal(&rng, p->k + head + video_part, text_part, 0.0f, 1.0f);
        ts_fill_normal(&rng, p->v + head + video_part, text_part, 0.0f, 1.0f);
    }
    free(vq);
    free(vk);
    free(vv);
}

static void problem_free(problem *p) {
    free(p->q);
    free(p->k);
    free(p->v);
}

static clpsa_plan_desc base_desc(const problem *p) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1;
    d.heads_q = p->workload.heads_q;
    d.heads_kv = p->workload.heads_kv;
    d.seq_q = (int)p->tokens;
    d.head_dim = p->workload.head_dim;
    return d;
}

/* Runs the plan on the problem; returns the output (caller frees) and the density. */
static float *run(const problem *p, const clpsa_plan_desc *d, double *density, int8_t **levels) {
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, d, &plan));
    ts_buffer q, k, v, out;
    ts_buffer_create(&q, ctx, "q", CLPSA_DTYPE_FP32, p->count);
    ts_buffer_create(&k, ctx, "k", CLPSA_DTYPE_FP32, p->count);
    ts_buffer_create(&v, ctx, "v", CLPSA_DTYPE_FP32, p->count);
    ts_buffer_create(&out, ctx, "out", CLPSA_DTYPE_FP32, p->count);
    ts_buffer_upload(&q, p->q);
    ts_buffer_upload(&k, p->k);
    ts_buffer_upload(&v, p->v);
    ts_buffer_poison(&out);
    ts_check(ctx, clpsa_plan_run(plan, NULL, q.mem, k.mem, v.mem, out.mem, 0, NULL, NULL));
    float *result = malloc(p->count * sizeof(float));
    ts_buffer_download(&out, result);
    ts_buffer_check_canary(&out);
    ts_buffer_check_unchanged(&q);
    ts_buffer_check_unchanged(&k);
    ts_buffer_check_unchanged(&v);
    if (density) {
        clpsa_level_stats stats;
        ts_check(ctx, clpsa_plan_read_stats(plan, &stats));
        *density = stats.density;
    }
    if (levels) {
        clpsa_block_grid grid;
        ts_check(ctx, clpsa_plan_block_grid(plan, &grid));
        *levels = malloc(grid.count);
        ts_check(ctx, clpsa_plan_read_levels(plan, *levels));
    }
    for (size_t i = 0; i < p->count; ++i)
        if (!isfinite(result[i]))
            ts_fail("output element %zu is %g", i, (double)result[i]);
    ts_buffer_release(&q);
    ts_buffer_release(&k);
    ts_buffer_release(&v);
    ts_buffer_release(&out);
    clpsa_plan_destroy(plan);
    return result;
}

static double rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; ++i) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / den);
}

static void test_workload_is_deterministic_and_checked(void **state) {
    (void)state;
    ts_case_begin("workload_deterministic");
    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w);
    w.frames = 2, w.height = 3, w.width = 5, w.head_dim = 32, w.seed = 7;
    const size_t n = 2 * 3 * 5 * 2 * 32;
    float *a[3], *b[3];
    for (int t = 0; t < 3; ++t) {
        a[t] = malloc(n * sizeof(float));
        b[t] = malloc(n * sizeof(float));
    }
    assert_int_equal(clpsa_video_workload_generate(&w, a[0], a[1], a[2]), CLPSA_OK);
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]), CLPSA_OK);
    for (int t = 0; t < 3; ++t)
        assert_memory_equal(a[t], b[t], n * sizeof(float));
    w.seed = 8;
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]), CLPSA_OK);
    assert_true(memcmp(a[0], b[0], n * sizeof(float)) != 0);
    /* Neighbouring keys are similar (what pooling relies on); far ones much less so. */
    double near = 0.0, far = 0.0;
    for (int d = 0; d < 32; ++d) {
        near += (double)a[1][d] * a[1][32 + d];
        far += (double)a[1][d] * a[1][(29) * 32 + d];
    }
    assert_true(near > far);
    /* Head sizes below the 8 smooth value modes (heap overflow once). */
    w.head_dim = 4;
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]), CLPSA_OK);
    w.head_dim = 31;
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]),
                     CLPSA_ERROR_INVALID_SHAPE);
    w.head_dim = 32;
    w.heads_q = 3;
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]),
                     CLPSA_ERROR_INVALID_SHAPE);
    assert_int_equal(clpsa_video_workload_generate(&w, NULL, b[1], b[2]),
                     CLPSA_ERROR_NULL_ARGUMENT);
    w.heads_q = 2;
    w.text_tokens = -1;
    assert_int_equal(clpsa_video_workload_generate(&w, b[0], b[1], b[2]),
                     CLPSA_ERROR_INVALID_SHAPE);
    for (int t = 0; t < 3; ++t) {
        free(a[t]);
        free(b[t]);
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    assert_non_null(p);
    return p;
}

/* Softmax of one query over keys [0, count) of its head: exp(entropy), the number of keys it
 * effectively reads. */
static double effective_keys(const float *q_row, const float *k_head, int count, int dim) {
    double *x = xmalloc((size_t)count * sizeof *x);
    double top = -INFINITY;
    for (int c = 0; c < count; ++c) {
        double dot = 0.0;
        for (int d = 0; d < dim; ++d)
            dot += (double)q_row[d] * k_head[(size_t)c * dim + d];
        x[c] = dot / sqrt((double)dim);
        top = fmax(top, x[c]);
    }
    double sum = 0.0;
    for (int c = 0; c < count; ++c)
        sum += exp(x[c] - top);
    double entropy = 0.0;
    for (int c = 0; c < count; ++c) {
        const double p = exp(x[c] - top) / sum;
        entropy -= p > 0.0 ? p * log(p) : 0.0;
    }
    free(x);
    return exp(entropy);
}

/* Softmax of one query over keys [0, count): the mass on keys [from, count). */
static double mass_from(const float *q_row, const float *k_head, int count, int from, int dim) {
    double top = -INFINITY, all = 0.0, part = 0.0;
    for (int pass = 0; pass < 2; ++pass)
        for (int c = 0; c < count; ++c) {
            double dot = 0.0;
            for (int d = 0; d < dim; ++d)
                dot += (double)q_row[d] * k_head[(size_t)c * dim + d];
            const double x = dot / sqrt((double)dim);
            if (pass == 0) {
                top = fmax(top, x);
            } else {
                all += exp(x - top);
                part += c >= from ? exp(x - top) : 0.0;
            }
        }
    return part / all;
}

/* Text tokens follow the video without changing it; their queries read far more of the video
 * than video queries do, and they read the text before them too. */
static void test_workload_text_tokens(void **state) {
    (void)state;
    ts_case_begin("workload_text_tokens");
    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w);
    w.frames = 8, w.height = 16, w.width = 16, w.head_dim = 32, w.heads_q = 4, w.heads_kv = 2;
    w.seed = ts_case_seed();
    const int video = 8 * 16 * 16, text = 37, n = video + text, dim = 32;
    const int heads[3] = {4, 2, 2};
    float *plain[3], *with[3];
    for (int t = 0; t < 3; ++t) {
        plain[t] = xmalloc((size_t)heads[t] * video * dim * sizeof(float));
        with[t] = xmalloc((size_t)heads[t] * n * dim * sizeof(float));
    }
    assert_int_equal(clpsa_video_workload_generate(&w, plain[0], plain[1], plain[2]), CLPSA_OK);
    w.text_tokens = text;
    assert_int_equal(clpsa_video_workload_generate(&w, with[0], with[1], with[2]), CLPSA_OK);
    for (int t = 0; t < 3; ++t)
        for (int h = 0; h < heads[t]; ++h)
            if (memcmp(plain[t] + (size_t)h * video * dim, with[t] + (size_t)h * n * dim,
                       (size_t)video * dim * sizeof(float)) != 0)
                ts_fail("tensor %d head %d: the video tokens changed with text_tokens", t, h);
    for (int h = 0; h < 4; ++h) {
        const float *q_head = with[0] + (size_t)h * n * dim;
        const float *k_head = with[1] + (size_t)(h / 2) * n * dim;
        double video_reads = 0.0, text_reads = 0.0, text_on_text = 0.0;
        for (int r = 0; r < text; ++r) {
            const float *q_row = q_head + (size_t)(video + r) * dim;
            text_reads += effective_keys(q_row, k_head, video, dim) / text;
            /* The text before it, itself included, among everything it sees (causal). */
            text_on_text += mass_from(q_row, k_head, video + r + 1, video, dim) / text;
        }
        for (int r = 0; r < video; r += 7)
            video_reads +=
                effective_keys(q_head + (size_t)r * dim, k_head, video, dim) / ((video + 6) / 7);
        if (getenv("CLPSA_TEST_VERBOSE"))
            printf("head %d: video queries read %.1f keys, text queries %.1f, %.3f of their mass "
                   "on the text\n",
                   h, video_reads, text_reads, text_on_text);
        if (!(text_reads > 2.0 * video_reads) || !(text_reads > 16.0))
            ts_fail("head %d: text queries read %.1f video keys on average, video queries "
                    "%.1f: text should read broadly",
                    h, text_reads, video_reads);
        if (!(text_on_text > 0.02) || !(text_on_text < 0.95))
            ts_fail("head %d: text queries put %.3f of their mass on the text before them", h,
                    text_on_text);
    }
    for (int t = 0; t < 3; ++t) {
        free(plain[t]);
        free(with[t]);
    }
}

/* docs/algorithm.md §8: at the same budget, PSA's error against dense is below the binary
 * block-sparse baseline's. The thresholds put the embedded workload near density 0.15. */
static void test_psa_beats_binary_at_equal_density(void **state) {
    (void)state;
    ts_case_begin("central_claim");
    problem p;
    problem_make(&p, 8, 16, 16, 0);
    clpsa_plan_desc d = base_desc(&p);
    d.method = CLPSA_METHOD_DENSE;
    float *dense = run(&p, &d, NULL, NULL);
    const clpsa_ordering orders[2] = {CLPSA_ORDER_RASTER, CLPSA_ORDER_HILBERT};
    for (int o = 0; o < 2; ++o) {
        d = base_desc(&p);
        d.grid[0] = 8, d.grid[1] = 16, d.grid[2] = 16;
        d.ordering = orders[o];
        const float tau[4] = {0.4f, 0.5f, 0.6f, 0.8f};
        memcpy(d.thresholds, tau, sizeof tau);
        double psa_density = 0.0, binary_density = 0.0;
        float *psa = run(&p, &d, &psa_density, NULL);
        d.method = CLPSA_METHOD_BINARY;
        d.binary_density = (float)psa_density;
        float *binary = run(&p, &d, &binary_density, NULL);
        const double psa_error = rel_l2(psa, dense, p.count);
        const double binary_error = rel_l2(binary, dense, p.count);
        print_message("order %d: density psa %.3f binary %.3f, error psa %.4f binary %.4f\n",
                      (int)orders[o], psa_density, binary_density, psa_error, binary_error);
        if (psa_density < 0.10 || psa_density > 0.20)
            ts_fail("order %d: density %.3f is not near 0.15", (int)orders[o], psa_density);
        /* Binary rounds ceil(density * nk) per row, so it never gets less budget. */
        assert_true(binary_density >= psa_density - 1e-9);
        if (!(psa_error < binary_error))
            ts_fail("order %d: PSA error %.4f is not below binary's %.4f", (int)orders[o],
                    psa_error, binary_error);
        free(psa);
        free(binary);
    }
    free(dense);
    problem_free(&p);
}

/* Output with an ordering = output of the same run on pre-permuted inputs, un-permuted; and
 * the level maps agree. */
static void check_ordering_equivalence(clpsa_ordering ordering, int frames, int height, int width,
                                       int text_tokens, const int *tile) {
    problem p;
    problem_make(&p, frames, height, width, text_tokens);
    clpsa_plan_desc d = base_desc(&p);
    d.block_q = 32;
    d.block_k = 16;
    d.text_tokens = text_tokens;
    d.grid[0] = frames, d.grid[1] = height, d.grid[2] = width;
    d.ordering = ordering;
    if (tile)
        memcpy(d.tile, tile, sizeof d.tile);
    int8_t *levels_ordered = NULL;
    float *ordered = run(&p, &d, NULL, &levels_ordered);

    int32_t *perm = malloc(p.tokens * sizeof *perm);
    ts_check(ctx, clpsa_ordering_permutation(ordering, frames, height, width, tile ? tile : d.tile,
                                             text_tokens, perm));
    for (int i = 0; i < text_tokens; ++i)
        assert_int_equal(perm[p.tokens - text_tokens + i], (int32_t)(p.tokens - text_tokens + i));
    problem permuted = p;
    const int heads = p.workload.heads_q, dim = p.workload.head_dim;
    permuted.q = malloc(p.count * sizeof(float));
    permuted.k = malloc(p.count * sizeof(float));
    permuted.v = malloc(p.count * sizeof(float));
    for (int h = 0; h < heads; ++h)
        for (size_t i = 0; i < p.tokens; ++i) {
            const size_t to = ((size_t)h * p.tokens + i) * dim;
            const size_t from = ((size_t)h * p.tokens + (size_t)perm[i]) * dim;
            memcpy(permuted.q + to, p.q + from, dim * sizeof(float));
            memcpy(permuted.k + to, p.k + from, dim * sizeof(float));
            memcpy(permuted.v + to, p.v + from, dim * sizeof(float));
        }
    clpsa_plan_desc plain = d;
    memset(plain.grid, 0, sizeof plain.grid);
    plain.ordering = 0;
    int8_t *levels_plain = NULL;
    float *result = run(&permuted, &plain, NULL, &levels_plain);
    for (int h = 0; h < heads; ++h)
        for (size_t i = 0; i < p.tokens; ++i) {
            const float *a = ordered + ((size_t)h * p.tokens + (size_t)perm[i]) * dim;
            const float *b = result + ((size_t)h * p.tokens + i) * dim;
            for (int e = 0; e < dim; ++e)
                if (a[e] != b[e])
                    ts_fail("ordering %d: head %d position %zu (token %d) dim %d: %g vs %g on "
                            "pre-permuted inputs",
                            (int)ordering, h, i, perm[i], e, (double)a[e], (double)b[e]);
        }
    clpsa_block_grid grid;
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &plain, &plan));
    ts_check(ctx, clpsa_plan_block_grid(plan, &grid));
    clpsa_plan_destroy(plan);
    assert_memory_equal(levels_ordered, levels_plain, grid.count);
    free(levels_ordered);
    free(levels_plain);
    free(ordered);
    free(result);
    free(perm);
    problem_free(&permuted);
    problem_free(&p);
}

static void test_hilbert_equals_prepermuted(void **state) {
    (void)state;
    ts_case_begin("hilbert_equivalence");
    check_ordering_equivalence(CLPSA_ORDER_HILBERT, 3, 5, 7, 0, NULL);
    check_ordering_equivalence(CLPSA_ORDER_HILBERT, 2, 8, 8, 19, NULL);
}

static void test_tiles_equals_prepermuted(void **state) {
    (void)state;
    ts_case_begin("tiles_equivalence");
    const int tile[3] = {1, 3, 2};
    check_ordering_equivalence(CLPSA_ORDER_TILES, 2, 7, 5, 0, tile);
    check_ordering_equivalence(CLPSA_ORDER_TILES, 4, 4, 4, 9, NULL);
}

static void test_ordering_rejects_bad_options(void **state) {
    (void)state;
    ts_case_begin("ordering_bad_options");
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1, d.heads_q = 1, d.seq_q = 60, d.head_dim = 32;
    clpsa_plan *plan = NULL;
    d.ordering = CLPSA_ORDER_HILBERT; /* no grid */
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "needs a grid"));
    d.grid[0] = 3, d.grid[1] = 4, d.grid[2] = 4; /* 48 tokens, not 60 */
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_SHAPE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "makes 48 tokens"));
    d.text_tokens = 12; /* now 60 */
    d.causal = 1;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "causal"));
    d.causal = 0;
    d.ordering = CLPSA_ORDER_TILES;
    d.tile[0] = 2, d.tile[1] = -1, d.tile[2] = 2;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "tile[1] = -1"));
    d.ordering = (clpsa_ordering)9;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_VALUE);
    d.ordering = CLPSA_ORDER_HILBERT;
    d.grid[1] = 0;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_ERROR_INVALID_SHAPE);
    assert_null(plan);
}

int main(void) {
    ts_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workload_is_deterministic_and_checked),
        cmocka_unit_test(test_workload_text_tokens),
        cmocka_unit_test(test_psa_beats_binary_at_equal_density),
        cmocka_unit_test(test_hilbert_equals_prepermuted),
        cmocka_unit_test(test_tiles_equals_prepermuted),
        cmocka_unit_test(test_ordering_rejects_bad_options),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
