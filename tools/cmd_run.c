/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: the main job. Runs PSA on Q, K, V from files or on the embedded video-like
 * workload and puts it next to dense attention and the binary block-sparse baseline at the same
 * density, on the same device: density and level histogram, time per stage, and output error
 * against dense. On the workload it does so in raster and in hilbert token order, which shows
 * what a locality-preserving order gains at the same thresholds. */
#include "level_png.h"
#include "run_outputs.h"
#include "run_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMMAND CLPSA__RUN_COMMAND
#define MESSAGE 1024

/* ---- Device state shared by every plan of one invocation ---- */

typedef struct device_state {
    clpsa_context *ctx;
    cl_command_queue queue;
    cl_mem buffers[4]; /* Q, K, V, output: every plan reads the same inputs */
} device_state;

static void device_release(device_state *s) {
    for (int i = 0; i < 4; ++i)
        if (s->buffers[i])
            clReleaseMemObject(s->buffers[i]);
    clpsa_context_destroy(s->ctx);
    memset(s, 0, sizeof *s);
}

/* The library names the plan field it refused; a field set from a flag is a wrong command
 * line, reported by the flag's name (exit 2) with the library's rule. */
static int plan_error(const device_state *s, const char *call, clpsa_status status) {
    static const struct {
        const char *field, *flag;
    } fields[] = {
        {"preset", "--preset"},
        {"block_q", "--bm"},
        {"block_k", "--bn"},
        {"thresholds", "--tau"},
        {"mode", "--mode"},
        {"density", "--density"},
        {"align_tile", "--align-tile"},
        {"min_full", "--min-full"},
        {"text_tokens", "--text-tokens"},
        {"similarity_thresholds", "--sim-cap"},
        {"sample_q", "--sample-q"},
        {"sample_k", "--sample-k"},
        {"antidiagonal_stride", "--bm/--bn"},
        {"grid", "--grid"},
        {"ordering", "--order"},
        {"tile", "--tile"},
    };
    const char *detail = clpsa_context_last_error(s->ctx);
    if (status == CLPSA_ERROR_INVALID_VALUE || status == CLPSA_ERROR_INVALID_SHAPE) {
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; ++i) {
            const size_t n = strlen(fields[i].field);
            if (strncmp(detail, fields[i].field, n) == 0 &&
                !(isalnum((unsigned char)detail[n]) || detail[n] == '_'))
                return clpsa__tool_usage_error(COMMAND, "%s: %s", fields[i].flag, detail);
        }
    }
    return clpsa__tool_library_error(COMMAND, call, status, s->ctx);
}

static int upload_inputs(device_state *s, run_problem *p, const clpsa_plan *plan) {
    clpsa_buffer_sizes sizes;
    clpsa_status status = clpsa_plan_buffer_sizes(plan, &sizes);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_buffer_sizes", status, s->ctx);
    const size_t element = clpsa_dtype_size(p->dtype);
    const size_t needed[4] = {sizes.q, sizes.k, sizes.v, sizes.out};
    for (int t = 0; t < 4; ++t) {
        const size_t data_bytes =
            t < 3 ? p->count[t] * element : clpsa__run_out_count(p) * sizeof(float);
        const size_t bytes = needed[t] > data_bytes ? needed[t] : data_bytes;
        status = clpsa_context_alloc(s->ctx, bytes, &s->buffers[t]);
        if (status != CLPSA_OK)
            return clpsa__tool_library_error(COMMAND, "clpsa_context_alloc", status, s->ctx);
        if (t == 3)
            break;
        /* Stored as the device stores it; the host copy is rounded the same way so the check
         * compares against exactly the inputs the kernels saw. */
        void *stored = malloc(data_bytes ? data_bytes : 1);
        if (!stored)
            return clpsa__tool_fail(COMMAND, "out of memory staging an input");
        status = clpsa_convert_from_float(p->dtype, p->host[t], stored, p->count[t]);
        if (status == CLPSA_OK)
            status = clpsa_convert_to_float(p->dtype, stored, p->host[t], p->count[t]);
        if (status != CLPSA_OK) {
            free(stored);
            return clpsa__tool_library_error(COMMAND, "clpsa_convert_from_float", status, NULL);
        }
        const cl_int err = clEnqueueWriteBuffer(s->queue, s->buffers[t], CL_TRUE, 0, data_bytes,
                                                stored, 0, NULL, NULL);
        free(stored);
        if (err != CL_SUCCESS)
            return clpsa__tool_cl_error(COMMAND, "clEnqueueWriteBuffer", err);
    }
    return CLPSA__EXIT_OK;
}

/* NaN first: an output element a kernel never writes cannot pass for a result. */
static int poison_output(device_state *s, const run_problem *p) {
    const float nan_fill = NAN;
    const cl_int err = clEnqueueFillBuffer(s->queue, s->buffers[3], &nan_fill, sizeof nan_fill, 0,
                                           clpsa__run_out_count(p) * sizeof(float), 0, NULL, NULL);
    return err == CL_SUCCESS ? CLPSA__EXIT_OK
                             : clpsa__tool_cl_error(COMMAND, "clEnqueueFillBuffer", err);
}

/* One run, waited for (tool_common.c); a PSA or binary run reports per stage. */
static int timed_run(device_state *s, clpsa_plan *plan, bool staged, run_timing *t) {
    clpsa_stage_times st;
    const int rc = clpsa__tool_timed_run(COMMAND, s->ctx, plan, s->queue, s->buffers, staged, &st);
    *t = (run_timing){st.total_ms, st.pool_ms, st.estimate_ms, st.assign_ms, st.attend_ms};
    return rc;
}

/* A warm-up run (kernel first-use costs), then the median of each figure over the reps; the
 * output is read back into `out`. */
static int measure(device_state *s, const run_problem *p, clpsa_plan *plan, bool staged, int reps,
                   run_timing *median, float *out) {
    int rc = poison_output(s, p);
    run_timing t;
    if (rc == CLPSA__EXIT_OK)
        rc = timed_run(s, plan, staged, &t);
    double *values = malloc((size_t)reps * 5 * sizeof(double));
    if (!values)
        return clpsa__tool_fail(COMMAND, "out of memory");
    for (int r = 0; r < reps && rc == CLPSA__EXIT_OK; ++r) {
        rc = timed_run(s, plan, staged, &t);
        const double figures[5] = {t.total_ms, t.pool_ms, t.estimate_ms, t.assign_ms, t.attend_ms};
        for (int f = 0; f < 5; ++f)
            values[(size_t)f * reps + r] = figures[f];
    }
    if (rc == CLPSA__EXIT_OK) {
        double *slots[5] = {&median->total_ms, &median->pool_ms, &median->estimate_ms,
                            &median->assign_ms, &median->attend_ms};
        for (int f = 0; f < 5; ++f)
            *slots[f] = clpsa__tool_median(values + (size_t)f * reps, (size_t)reps);
    }
    free(values);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    const cl_int err =
        clEnqueueReadBuffer(s->queue, s->buffers[3], CL_TRUE, 0,
                            clpsa__run_out_count(p) * sizeof(float), out, 0, NULL, NULL);
    return err == CL_SUCCESS ? CLPSA__EXIT_OK
                             : clpsa__tool_cl_error(COMMAND, "clEnqueueReadBuffer", err);
}

/* ---- Plans ---- */

static void base_desc(const run_options *o, const run_problem *p, clpsa_plan_desc *d) {
    clpsa_plan_desc_init(d);
    d->method = CLPSA_METHOD_DENSE;
    d->batch = p->batch;
    d->heads_q = p->heads_q;
    d->heads_kv = p->heads_kv;
    d->seq_q = p->seq_q;
    d->seq_k = p->seq_k;
    d->head_dim = p->dim;
    d->dtype = p->dtype;
    d->out_dtype = CLPSA_DTYPE_FP32;
    d->scale = (float)o->scale;
    d->causal = o->causal;
    if (p->bnhd) {
        d->q_strides = p->strides[0];
        d->k_strides = p->strides[1];
        d->v_strides = p->strides[2];
        d->out_strides = p->strides[3];
    }
}

static void psa_desc(const run_options *o, const run_problem *p, clpsa_ordering order,
                     clpsa_plan_desc *d) {
    base_desc(o, p, d);
    d->method = CLPSA_METHOD_PSA;
    d->preset = o->preset;
    d->block_q = o->block_q;
    d->block_k = o->block_k;
    if (o->tau_given) {
        memcpy(d->thresholds, o->tau, sizeof d->thresholds);
    } else if (p->workload && !o->preset) {
        /* The wan21-14b values (docs/algorithm.md §7): near density 0.15 on the workload. */
        static const float workload_tau[4] = {0.4f, 0.5f, 0.6f, 0.8f};
        memcpy(d->thresholds, workload_tau, sizeof d->thresholds);
    }
    d->mode = o->mode;
    d->align_tile = o->align_tile;
    d->min_full = o->min_full;
    d->text_tokens = o->text_tokens;
    if (o->sim_cap) {
        d->similarity_cap = 1;
        memcpy(d->similarity_thresholds, o->sim_thresholds, sizeof d->similarity_thresholds);
    }
    d->sample_q = o->sample_q;
    d->sample_k = o->sample_k;
    d->seed = o->seed;
    d->density = o->density;
    if (p->grid[0]) {
        memcpy(d->grid, p->grid, sizeof d->grid);
        d->ordering = order;
        memcpy(d->tile, o->tile, sizeof d->tile);
    }
}

/* What the runs of every order share, and what the last (primary) order leaves for the files. */
typedef struct run_state {
    const run_options *o;
    run_problem *p;
    device_state dev;
    run_report report;
    float *dense_out, *out, *primary_out; /* primary_out: the method's output for --out */
    int8_t *supplied_levels, *levels;
    float *supplied_scores, *scores;
    bool have_scores;
    clpsa_plan_desc primary_desc;
} run_state;

static void state_free(run_state *st) {
    free(st->dense_out);
    free(st->out);
    free(st->primary_out);
    free(st->supplied_levels);
    free(st->levels);
    free(st->supplied_scores);
    free(st->scores);
    device_release(&st->dev);
}

static int run_dense(run_state *st) {
    clpsa_plan_desc d;
    base_desc(st->o, st->p, &d);
    d.causal = st->report.causal; /* a preset may make PSA causal: compare like with like */
    clpsa_plan *plan = NULL;
    clpsa_status status = clpsa_plan_create(st->dev.ctx, &d, &plan);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_create(dense)", status, st->dev.ctx);
    clpsa_plan_desc resolved;
    clpsa_plan_get_desc(plan, &resolved);
    snprintf(st->report.dense_parameter_source, sizeof st->report.dense_parameter_source, "%s",
             clpsa_plan_parameter_source(plan));
    st->report.scale =
        resolved.scale != 0.0f ? resolved.scale : (float)(1.0 / sqrt((double)st->p->dim));
    int rc = upload_inputs(&st->dev, st->p, plan);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(&st->dev, st->p, plan, false, st->o->reps, &st->report.dense, st->dense_out);
    if (rc == CLPSA__EXIT_OK && st->report.dense.total_ms > 0.0)
        st->report.dense_tflops =
            clpsa_plan_flops(plan) / (st->report.dense.total_ms * 1e-3) * 1e-12;
    clpsa_plan_destroy(plan);
    if (rc == CLPSA__EXIT_OK && st->p->workload) {
        run_report *r = &st->report;
        r->checked = true;
        r->max_abs_err = clpsa__run_check_rows(st->p, r->scale, r->causal, st->dense_out);
        if (r->max_abs_err < 0.0)
            return clpsa__tool_fail(COMMAND, "out of memory checking the output");
        r->check_ok = r->max_abs_err <= clpsa__run_check_tolerance(st->p->dtype); /* NaN: no */
    }
    return rc;
}

/* Reads --levels-in / --scores-in, checked against the plans' block grid. */
static int read_supplied(run_state *st) {
    const run_options *o = st->o;
    char *source = st->report.levels_source;
    const size_t size = sizeof st->report.levels_source;
    int rc = CLPSA__EXIT_OK;
    if (o->levels_in) {
        rc = clpsa__run_read_levels(o->levels_in, st->p, &st->report.grid, &st->supplied_levels);
        snprintf(source, size, "read from %s", o->levels_in);
    } else if (o->scores_in) {
        rc = clpsa__run_read_scores(o->scores_in, st->p, &st->report.grid, &st->supplied_scores);
        snprintf(source, size, "assigned from scores in %s", o->scores_in);
    } else {
        snprintf(source, size, "estimated");
    }
    return rc;
}

static int supply(run_state *st, clpsa_plan *plan, bool levels_too) {
    const char *path = NULL;
    clpsa_status status = CLPSA_OK;
    if (st->supplied_levels && levels_too) {
        path = st->o->levels_in;
        status = clpsa_plan_set_levels(plan, st->supplied_levels);
    } else if (st->supplied_scores) {
        path = st->o->scores_in;
        status = clpsa_plan_set_scores(plan, st->supplied_scores);
    }
    if (status == CLPSA_OK)
        return CLPSA__EXIT_OK;
    return clpsa__tool_fail(COMMAND, "%s: %s (%s)", path, clpsa_context_last_error(st->dev.ctx),
                            clpsa_status_name(status));
}

static int run_binary(run_state *st, const clpsa_plan_desc *psa, run_order_result *r,
                      bool primary) {
    clpsa_plan_desc d = *psa;
    d.method = CLPSA_METHOD_BINARY;
    if (d.mode == CLPSA_MODE_BUDGET) { /* binary keeps blocks by the sampled estimate's S */
        d.mode = 0;
        d.density = 0.0f;
    }
    /* Equal budget: binary keeps ceil(density * nk) blocks a row. A PSA map that skips every
     * block still leaves binary one block a row, the least it can keep. */
    const double density = r->stats.density;
    d.binary_density = density > 1.0 ? 1.0f : density > 1e-6 ? (float)density : 1e-6f;
    clpsa_plan *plan = NULL;
    const clpsa_status status = clpsa_plan_create(st->dev.ctx, &d, &plan);
    if (status != CLPSA_OK)
        return plan_error(&st->dev, "clpsa_plan_create(binary)", status);
    int rc = supply(st, plan, false);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(&st->dev, st->p, plan, true, st->o->reps, &r->binary, st->out);
    clpsa_level_stats stats;
    if (rc == CLPSA__EXIT_OK) {
        const clpsa_status s2 = clpsa_plan_read_stats(plan, &stats);
        if (s2 != CLPSA_OK)
            rc = clpsa__tool_library_error(COMMAND, "clpsa_plan_read_stats", s2, st->dev.ctx);
    }
    clpsa_plan_destroy(plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    r->binary_density = stats.density;
    const size_t count = clpsa__run_out_count(st->p);
    r->binary_rel_l2 = clpsa__run_rel_l2(st->out, st->dense_out, count);
    if (primary && st->o->method == RUN_METHOD_BINARY)
        memcpy(st->primary_out, st->out, count * sizeof(float));
    return CLPSA__EXIT_OK;
}

static int create_psa_plan(run_state *st, clpsa_ordering order, clpsa_plan_desc *d,
                           clpsa_plan **plan) {
    psa_desc(st->o, st->p, order, d);
    const clpsa_status status = clpsa_plan_create(st->dev.ctx, d, plan);
    return status == CLPSA_OK ? CLPSA__EXIT_OK
                              : plan_error(&st->dev, "clpsa_plan_create(psa)", status);
}

/* Runs PSA (and then the binary baseline) in one order; takes ownership of the plan. */
static int run_order(run_state *st, clpsa_plan *plan, const clpsa_plan_desc *d, bool primary) {
    run_order_result *r = &st->report.orders[st->report.order_count++];
    clpsa_plan_desc resolved;
    clpsa_plan_get_desc(plan, &resolved);
    r->order = resolved.ordering;
    if (primary)
        st->primary_desc = resolved;
    snprintf(st->report.parameter_source, sizeof st->report.parameter_source, "%s",
             clpsa_plan_parameter_source(plan));
    clpsa_status status = CLPSA_OK;
    int rc = supply(st, plan, true);
    if (rc == CLPSA__EXIT_OK)
        rc = measure(&st->dev, st->p, plan, true, st->o->reps, &r->psa, st->out);
    if (rc == CLPSA__EXIT_OK) {
        status = clpsa_plan_read_levels(plan, st->levels);
        if (status == CLPSA_OK)
            status = clpsa_level_stats_compute(
                st->levels, st->report.grid.count / (size_t)st->report.grid.blocks_k,
                st->report.grid.blocks_k, &r->stats);
        if (status != CLPSA_OK)
            rc = clpsa__tool_library_error(COMMAND, "clpsa_plan_read_levels", status, st->dev.ctx);
    }
    if (rc == CLPSA__EXIT_OK && primary && !st->supplied_levels) {
        status = clpsa_plan_read_scores(plan, st->scores);
        if (status != CLPSA_OK)
            rc = clpsa__tool_library_error(COMMAND, "clpsa_plan_read_scores", status, st->dev.ctx);
        st->have_scores = status == CLPSA_OK;
    }
    clpsa_plan_destroy(plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    const size_t count = clpsa__run_out_count(st->p);
    r->psa_rel_l2 = clpsa__run_rel_l2(st->out, st->dense_out, count);
    if (primary && st->o->method == RUN_METHOD_PSA)
        memcpy(st->primary_out, st->out, count * sizeof(float));
    return run_binary(st, d, r, primary);
}

/* Every output is written to a temporary first; they replace their destinations together,
 * only when all were written (a failure in the last one leaves none of the others). */
static int write_files(run_state *st) {
    const run_options *o = st->o;
    const run_problem *p = st->p;
    const clpsa_block_grid *g = &st->report.grid;
    run_outputs staged;
    memset(&staged, 0, sizeof staged);
    const char *temp = NULL;
    int rc = CLPSA__EXIT_OK;
    if (o->out && (rc = clpsa__run_outputs_stage(&staged, o->out, &temp)) == CLPSA__EXIT_OK)
        rc = clpsa__run_write_output(temp, p, st->primary_out);
    if (rc == CLPSA__EXIT_OK && o->levels_out &&
        (rc = clpsa__run_outputs_stage(&staged, o->levels_out, &temp)) == CLPSA__EXIT_OK)
        rc = clpsa__run_write_map(temp, p, g, false, st->levels);
    if (rc == CLPSA__EXIT_OK && o->scores_out && st->have_scores &&
        (rc = clpsa__run_outputs_stage(&staged, o->scores_out, &temp)) == CLPSA__EXIT_OK)
        rc = clpsa__run_write_map(temp, p, g, true, st->scores);
    if (rc == CLPSA__EXIT_OK && o->perm_out &&
        (rc = clpsa__run_outputs_stage(&staged, o->perm_out, &temp)) == CLPSA__EXIT_OK)
        rc =
            clpsa__run_write_permutation(temp, p, st->primary_desc.ordering, st->primary_desc.tile);
    if (rc == CLPSA__EXIT_OK && o->png &&
        (rc = clpsa__run_outputs_stage(&staged, o->png, &temp)) == CLPSA__EXIT_OK) {
        char message[MESSAGE];
        /* Batch 0 only: a picture of every batch would mostly repeat the same structure. */
        if (clpsa__level_png_write(temp, st->levels, p->heads_q, g->blocks_q, g->blocks_k, message,
                                   sizeof message) != 0)
            rc = clpsa__tool_fail(COMMAND, "%s", message);
    }
    if (rc == CLPSA__EXIT_OK)
        return clpsa__run_outputs_commit(&staged);
    clpsa__run_outputs_discard(&staged);
    return rc;
}

/* The orders to run: the one asked for; else raster and hilbert on the built-in workload (the
 * comparison this command exists to show; a causal mask, from --causal or a preset, only has
 * meaning in raster order); else raster. */
static int order_list(const run_options *o, const run_problem *p, bool causal,
                      clpsa_ordering *orders) {
    if (o->order) {
        orders[0] = o->order;
        return 1;
    }
    orders[0] = CLPSA_ORDER_RASTER;
    if (!p->workload || causal)
        return 1;
    orders[1] = CLPSA_ORDER_HILBERT;
    return 2;
}

static int run_all(run_state *st) {
    const size_t count = clpsa__run_out_count(st->p);
    st->dense_out = malloc(count * sizeof(float));
    st->out = malloc(count * sizeof(float));
    st->primary_out = malloc(count * sizeof(float));
    if (!st->dense_out || !st->out || !st->primary_out)
        return clpsa__tool_fail(COMMAND, "out of memory for the outputs");

    clpsa_context_desc cdesc;
    clpsa__tool_context_desc_init(&cdesc, st->o->device);
    clpsa_status status = clpsa_context_create(&cdesc, &st->dev.ctx);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_context_create", status, NULL);
    st->dev.queue = clpsa_context_queue(st->dev.ctx);
    st->report.device = clpsa_context_device_name(st->dev.ctx);
    st->report.device_reason = clpsa_context_device_reason(st->dev.ctx);

    /* The first PSA plan comes first: its options are checked before the slow dense runs, and
     * its resolved description says whether a preset made the problem causal. */
    clpsa_ordering orders[CLPSA__RUN_MAX_ORDERS];
    order_list(st->o, st->p, false, orders);
    clpsa_plan_desc d;
    clpsa_plan *plan = NULL;
    int rc = create_psa_plan(st, orders[0], &d, &plan);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    clpsa_plan_get_desc(plan, &st->report.psa);
    /* The name as given: a resolved description's pointers need not outlive its plan. */
    st->report.psa.preset = st->o->preset;
    st->report.causal = st->report.psa.causal != 0;
    const int n = order_list(st->o, st->p, st->report.causal, orders);
    /* The block grid is the same in every order (orders permute tokens, not block sizes), so
     * supplied maps are read and checked once, before anything slow. */
    clpsa_plan_block_grid(plan, &st->report.grid);
    const size_t cells = st->report.grid.count ? st->report.grid.count : 1;
    st->levels = malloc(cells);
    st->scores = malloc(cells * sizeof(float));
    if (!st->levels || !st->scores)
        rc = clpsa__tool_fail(COMMAND, "out of memory for the block maps");
    if (rc == CLPSA__EXIT_OK)
        rc = read_supplied(st);

    if (rc == CLPSA__EXIT_OK)
        rc = run_dense(st);
    if (rc == CLPSA__EXIT_OK && st->o->method == RUN_METHOD_DENSE)
        memcpy(st->primary_out, st->dense_out, count * sizeof(float));
    for (int i = 0; i < n && rc == CLPSA__EXIT_OK; ++i) {
        if (i > 0)
            rc = create_psa_plan(st, orders[i], &d, &plan);
        if (rc == CLPSA__EXIT_OK)
            rc = run_order(st, plan, &d, i == n - 1);
        plan = NULL;
    }
    clpsa_plan_destroy(plan);
    if (rc == CLPSA__EXIT_OK)
        rc = write_files(st);
    return rc;
}

int clpsa__cmd_run(int argc, char **argv) {
    run_options o;
    bool help = false;
    int rc = clpsa__run_parse_options(argc, argv, &o, &help);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    if (help) {
        clpsa__run_usage(stdout);
        return CLPSA__EXIT_OK;
    }
    run_problem p;
    rc = clpsa__run_problem_load(&o, &p);
    if (rc != CLPSA__EXIT_OK) {
        clpsa__run_problem_free(&p);
        return rc;
    }
    run_state st;
    memset(&st, 0, sizeof st);
    st.o = &o;
    st.p = &p;
    rc = run_all(&st);
    if (rc == CLPSA__EXIT_OK) {
        clpsa__run_report_print(&o, &p, &st.report);
        fflush(stdout);
        if (st.report.checked && !st.report.check_ok)
            rc = clpsa__tool_fail(COMMAND, "check FAILED: dense max abs error %g exceeds %g",
                                  st.report.max_abs_err, clpsa__run_check_tolerance(p.dtype));
    }
    state_free(&st);
    clpsa__run_problem_free(&p);
    return rc;
}
