/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: what it prints. The human form reads top-down as an argument: the device and
 * problem, dense attention as the reference (timed and spot-checked), then per token order
 * PSA's density, speed and error next to the binary baseline's error at the same budget. The
 * JSON form is one object with the same facts, per-order results in an array. */
#include "json_writer.h"
#include "run_internal.h"

#include <math.h>
#include <string.h>

static const char *const method_names[3] = {"psa", "dense", "binary"};
static const int level_values[5] = {0, 1, 2, 4, 8};

static double ratio(double a, double b) {
    return b > 0.0 ? a / b : NAN;
}

/* ---- JSON ---- */

static void json_timing(clpsa__json *j, const run_timing *t, bool stages) {
    clpsa__json_number(j, "time_ms", t->total_ms);
    if (!stages)
        return;
    clpsa__json_number(j, "pool_ms", t->pool_ms);
    clpsa__json_number(j, "estimate_ms", t->estimate_ms);
    clpsa__json_number(j, "assign_ms", t->assign_ms);
    clpsa__json_number(j, "attend_ms", t->attend_ms);
}

static void json_order(clpsa__json *j, const run_report *r, const run_order_result *x) {
    clpsa__json_begin_object(j, NULL);
    clpsa__json_string(j, "order", clpsa__run_order_name(x->order));
    clpsa__json_number(j, "density", x->stats.density);
    clpsa__json_number(j, "sparsity", 1.0 - x->stats.density);
    clpsa__json_begin_object(j, "histogram");
    for (int l = 0; l < 5; ++l) {
        char key[4];
        snprintf(key, sizeof key, "%d", level_values[l]);
        clpsa__json_int(j, key, (long long)x->stats.histogram[l]);
    }
    clpsa__json_end_object(j);
    clpsa__json_begin_object(j, "psa");
    json_timing(j, &x->psa, true);
    clpsa__json_number(j, "rel_l2", x->psa_rel_l2);
    clpsa__json_end_object(j);
    clpsa__json_number(j, "speedup_vs_dense", ratio(r->dense.total_ms, x->psa.total_ms));
    clpsa__json_begin_object(j, "binary");
    clpsa__json_number(j, "density", x->binary_density);
    json_timing(j, &x->binary, true);
    clpsa__json_number(j, "rel_l2", x->binary_rel_l2);
    clpsa__json_end_object(j);
    clpsa__json_number(j, "binary_error_ratio", ratio(x->binary_rel_l2, x->psa_rel_l2));
    clpsa__json_end_object(j);
}

static void json_ints(clpsa__json *j, const char *key, const int *values, int count) {
    clpsa__json_begin_array(j, key);
    for (int i = 0; i < count; ++i)
        clpsa__json_int(j, NULL, values[i]);
    clpsa__json_end_array(j);
}

static void json_floats(clpsa__json *j, const char *key, const float *values, int count) {
    clpsa__json_begin_array(j, key);
    for (int i = 0; i < count; ++i)
        clpsa__json_number(j, NULL, values[i]);
    clpsa__json_end_array(j);
}

static void print_json(const run_options *o, const run_problem *p, const run_report *r) {
    const clpsa_plan_desc *d = &r->psa;
    clpsa__json j;
    clpsa__json_init(&j, stdout);
    clpsa__json_begin_object(&j, NULL);
    clpsa__json_string(&j, "device", r->device);
    clpsa__json_string(&j, "device_reason", r->device_reason);
    clpsa__json_string(&j, "parameter_source", r->parameter_source);
    clpsa__json_string(&j, "dense_parameter_source", r->dense_parameter_source);
    clpsa__json_string(&j, "method", method_names[o->method]);
    clpsa__json_string(&j, "input", p->workload ? "workload" : "files");
    if (p->grid[0])
        json_ints(&j, "grid", p->grid, 3);
    else
        clpsa__json_null(&j, "grid");
    clpsa__json_int(&j, "text_tokens", p->text_tokens);
    clpsa__json_string(&j, "layout", p->bnhd ? "bnhd" : "bhnd");
    const int shape[6] = {p->batch, p->heads_q, p->heads_kv, p->seq_q, p->seq_k, p->dim};
    json_ints(&j, "shape", shape, 6);
    clpsa__json_string(&j, "dtype", clpsa_dtype_name(p->dtype));
    clpsa__json_bool(&j, "causal", r->causal);
    clpsa__json_number(&j, "scale", r->scale);
    clpsa__json_int(&j, "reps", o->reps);

    clpsa__json_string(&j, "preset", o->preset);
    const int block[2] = {r->grid.block_q, r->grid.block_k};
    json_ints(&j, "block", block, 2);
    const int blocks[2] = {r->grid.blocks_q, r->grid.blocks_k};
    json_ints(&j, "blocks", blocks, 2);
    json_floats(&j, "thresholds", d->thresholds, 4);
    clpsa__json_string(&j, "mode", clpsa__run_mode_name(d->mode));
    if (d->mode == CLPSA_MODE_BUDGET)
        clpsa__json_number(&j, "target_density", d->density);
    else
        clpsa__json_null(&j, "target_density");
    if (d->align_tile > 0)
        clpsa__json_int(&j, "align_tile", d->align_tile);
    else
        clpsa__json_null(&j, "align_tile");
    if (d->min_full >= 0.0f)
        clpsa__json_number(&j, "min_full", d->min_full);
    else
        clpsa__json_null(&j, "min_full");
    if (d->similarity_cap)
        json_floats(&j, "similarity_cap", d->similarity_thresholds, 3);
    else
        clpsa__json_null(&j, "similarity_cap");
    const bool sampled = d->estimator != CLPSA_ESTIMATOR_ANTIDIAGONAL;
    clpsa__json_string(&j, "estimator", sampled ? "sampled" : "antidiagonal");
    const int sample[2] = {d->sample_q, d->sample_k};
    if (sampled)
        json_ints(&j, "sample", sample, 2);
    else
        clpsa__json_null(&j, "sample");
    clpsa__json_int(&j, "seed", (long long)d->seed);
    clpsa__json_string(&j, "levels_source", r->levels_source);

    clpsa__json_begin_object(&j, "dense");
    json_timing(&j, &r->dense, false);
    clpsa__json_number(&j, "tflops", r->dense_tflops);
    if (r->checked)
        clpsa__json_number(&j, "max_abs_err", r->max_abs_err);
    else
        clpsa__json_null(&j, "max_abs_err");
    clpsa__json_string(&j, "check", !r->checked ? NULL : r->check_ok ? "ok" : "failed");
    clpsa__json_end_object(&j);

    clpsa__json_begin_array(&j, "orders");
    for (int i = 0; i < r->order_count; ++i)
        json_order(&j, r, &r->orders[i]);
    clpsa__json_end_array(&j);

    clpsa__json_begin_object(&j, "files");
    clpsa__json_string(&j, "out", o->out);
    clpsa__json_string(&j, "levels_out", o->levels_out);
    clpsa__json_string(&j, "scores_out", o->scores_out);
    clpsa__json_string(&j, "perm_out", o->perm_out);
    clpsa__json_string(&j, "png", o->png);
    clpsa__json_end_object(&j);
    clpsa__json_end_object(&j);
}

/* ---- Text ---- */

static void print_problem(const run_options *o, const run_problem *p, const run_report *r) {
    if (p->workload)
        printf("problem   built-in video workload: %d x %d x %d grid = %d tokens%s\n", p->grid[0],
               p->grid[1], p->grid[2], p->grid[0] * p->grid[1] * p->grid[2],
               p->text_tokens ? " + text tokens" : "");
    else
        printf("problem   Q %s, K %s, V %s%s\n", o->q, o->k, o->v,
               p->grid[0] ? " (video grid given)" : "");
    printf("shape     B=%d Hq=%d Hkv=%d Nq=%d Nk=%d D=%d, %s %s, %s\n", p->batch, p->heads_q,
           p->heads_kv, p->seq_q, p->seq_k, p->dim, clpsa_dtype_name(p->dtype),
           p->bnhd ? "[B, N, H, D]" : "[B, H, N, D]", r->causal ? "causal" : "not causal");
    if (p->grid[0] && !p->workload)
        printf("grid      %d x %d x %d + %d text tokens\n", p->grid[0], p->grid[1], p->grid[2],
               p->text_tokens);
    else if (p->text_tokens)
        printf("text      %d tokens at the end; their key blocks and their query blocks' "
               "visible blocks at level 1\n",
               p->text_tokens);
}

static void print_options(const run_options *o, const run_report *r) {
    const clpsa_plan_desc *d = &r->psa;
    if (d->mode == CLPSA_MODE_BUDGET) {
        printf("psa       bm=%d bn=%d -> %d x %d blocks; budget mode, target density %g, "
               "measured on %d sampled rows a block (seed %llu)\n          level map %s\n",
               r->grid.block_q, r->grid.block_k, r->grid.blocks_q, r->grid.blocks_k,
               (double)d->density, d->sample_q, (unsigned long long)d->seed, r->levels_source);
        return;
    }
    printf("psa       bm=%d bn=%d -> %d x %d blocks; tau %g/%g/%g/%g, %s mode", r->grid.block_q,
           r->grid.block_k, r->grid.blocks_q, r->grid.blocks_k, (double)d->thresholds[0],
           (double)d->thresholds[1], (double)d->thresholds[2], (double)d->thresholds[3],
           clpsa__run_mode_name(d->mode));
    if (o->preset)
        printf(" (preset %s)", o->preset);
    printf("\n          align tile ");
    if (d->align_tile > 0)
        printf("%d", d->align_tile);
    else
        printf("off");
    printf(", min full ");
    if (d->min_full >= 0.0f)
        printf("%g", (double)d->min_full);
    else
        printf("off");
    if (d->similarity_cap)
        printf(", similarity cap %g/%g/%g", (double)d->similarity_thresholds[0],
               (double)d->similarity_thresholds[1], (double)d->similarity_thresholds[2]);
    if (d->estimator == CLPSA_ESTIMATOR_ANTIDIAGONAL)
        printf(", antidiagonal estimate (stride %d)", d->antidiagonal_stride);
    else
        printf(", sampled estimate (%d rows, %d keys a block, seed %llu)", d->sample_q, d->sample_k,
               (unsigned long long)d->seed);
    printf("\n          level map %s\n", r->levels_source);
}

static void print_order(const run_report *r, const run_order_result *x) {
    const uint64_t *h = x->stats.histogram;
    printf("\n%s order\n", clpsa__run_order_name(x->order));
    printf("  density   %.4f (sparsity %.4f); blocks at level 0: %llu, 1: %llu, 2: %llu, 4: "
           "%llu, 8: %llu\n",
           x->stats.density, 1.0 - x->stats.density, (unsigned long long)h[0],
           (unsigned long long)h[1], (unsigned long long)h[2], (unsigned long long)h[3],
           (unsigned long long)h[4]);
    const run_timing *t = &x->psa;
    printf("  time      PSA %.3f ms (pool %.3f, estimate %.3f, assign %.3f, attend %.3f); "
           "dense %.3f ms: %.2fx\n",
           t->total_ms, t->pool_ms, t->estimate_ms, t->assign_ms, t->attend_ms, r->dense.total_ms,
           ratio(r->dense.total_ms, t->total_ms));
    printf("            binary %.3f ms\n", x->binary.total_ms);
    printf("  error     rel L2 vs dense: PSA %.4g; binary at density %.4f: %.4g (%.2fx PSA's)\n",
           x->psa_rel_l2, x->binary_density, x->binary_rel_l2,
           ratio(x->binary_rel_l2, x->psa_rel_l2));
}

static void print_text(const run_options *o, const run_problem *p, const run_report *r) {
    printf("device    %s (%s)\n", r->device, r->device_reason);
    printf("params    PSA: %s\n", r->parameter_source);
    printf("          dense: %s\n", r->dense_parameter_source);
    print_problem(o, p, r);
    print_options(o, r);
    printf("dense     %.3f ms (median of %d run%s), %.4f TFLOP/s", r->dense.total_ms, o->reps,
           o->reps == 1 ? "" : "s", r->dense_tflops);
    if (r->checked)
        printf("; check %s: max abs error %.3g over %d rows (tolerance %.0e)",
               r->check_ok ? "ok" : "FAILED", r->max_abs_err, CLPSA__RUN_CHECK_ROWS,
               clpsa__run_check_tolerance(p->dtype));
    printf("\n");
    for (int i = 0; i < r->order_count; ++i)
        print_order(r, &r->orders[i]);
    if (r->order_count == 2) {
        const run_order_result *a = &r->orders[0], *b = &r->orders[1];
        printf("\n%s vs %s at the same thresholds: density %.4f -> %.4f, PSA error %.4g -> "
               "%.4g, PSA time %.3f -> %.3f ms\n",
               clpsa__run_order_name(b->order), clpsa__run_order_name(a->order), a->stats.density,
               b->stats.density, a->psa_rel_l2, b->psa_rel_l2, a->psa.total_ms, b->psa.total_ms);
    }
    const char *const files[5][2] = {{"output", o->out},
                                     {"level map", o->levels_out},
                                     {"scores", o->scores_out},
                                     {"permutation", o->perm_out},
                                     {"picture", o->png}};
    for (int f = 0; f < 5; ++f) {
        if (!files[f][1])
            continue;
        if (f == 0)
            printf("wrote     output (%s) %s\n", method_names[o->method], files[f][1]);
        else if (f == 4 && p->batch > 1)
            printf("wrote     picture %s (batch 0 of %d)\n", files[f][1], p->batch);
        else
            printf("wrote     %s %s\n", files[f][0], files[f][1]);
    }
}

void clpsa__run_report_print(const run_options *o, const run_problem *p, const run_report *r) {
    if (o->json)
        print_json(o, p, r);
    else
        print_text(o, p, r);
}
