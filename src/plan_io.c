/* SPDX-License-Identifier: Apache-2.0 */
/* What a caller may supply to a PSA plan (S or M) and read back from its last run. */
#include "plan_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static clpsa_status require_sparse(clpsa_plan *plan, const char *what) {
    if (plan->desc.method == CLPSA_METHOD_DENSE)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                           "%s: the plan's method is CLPSA_METHOD_DENSE, which has no level "
                           "map or scores",
                           what);
    return CLPSA_OK;
}

/* A queue for blocking transfers: the last run's, else the context's, else a temporary one
 * (released by the caller when *temporary is set). */
static clpsa_status io_queue(clpsa_plan *plan, cl_command_queue *queue, bool *temporary) {
    *temporary = false;
    *queue = plan->last_queue ? plan->last_queue : plan->ctx->queue;
    if (*queue)
        return CLPSA_OK;
    cl_int err = CL_SUCCESS;
    *queue = clCreateCommandQueue(plan->ctx->cl_ctx, plan->ctx->device, 0, &err);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(plan->ctx, err, "clCreateCommandQueue(transfer)");
    *temporary = true;
    return CLPSA_OK;
}

static clpsa_status transfer(clpsa_plan *plan, cl_mem buffer, bool write, size_t bytes,
                             void *host) {
    cl_command_queue queue = NULL;
    bool temporary = false;
    clpsa_status status = io_queue(plan, &queue, &temporary);
    if (status != CLPSA_OK)
        return status;
    /* After a run that failed part-way its commands may still be running, on any queue. */
    const cl_uint waits = plan->failed_last ? 1 : 0;
    const cl_event *wait = waits ? &plan->failed_last : NULL;
    const cl_int err =
        write ? clEnqueueWriteBuffer(queue, buffer, CL_TRUE, 0, bytes, host, waits, wait, NULL)
              : clEnqueueReadBuffer(queue, buffer, CL_TRUE, 0, bytes, host, waits, wait, NULL);
    if (temporary)
        clReleaseCommandQueue(queue);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(plan->ctx, err,
                              write ? "clEnqueueWriteBuffer" : "clEnqueueReadBuffer");
    return CLPSA_OK;
}

static size_t cell_count(const clpsa_plan *plan) {
    return plan->rows * (size_t)plan->blocks_k;
}

clpsa_status clpsa_plan_block_grid(const clpsa_plan *plan, clpsa_block_grid *out) {
    if (!plan || !out)
        return plan ? clpsa__fail(plan->ctx, CLPSA_ERROR_NULL_ARGUMENT,
                                  "clpsa_plan_block_grid: out is NULL")
                    : CLPSA_ERROR_NULL_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (plan->desc.method == CLPSA_METHOD_DENSE)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                           "clpsa_plan_block_grid: the plan's method is CLPSA_METHOD_DENSE, "
                           "which has no blocks");
    out->block_q = plan->psa.block_q;
    out->block_k = plan->psa.block_k;
    out->blocks_q = plan->blocks_q;
    out->blocks_k = plan->blocks_k;
    out->count = cell_count(plan);
    return CLPSA_OK;
}

clpsa_status clpsa_plan_set_scores(clpsa_plan *plan, const float *scores) {
    if (!plan)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa__clear_error(plan->ctx);
    clpsa_status status = require_sparse(plan, "clpsa_plan_set_scores");
    if (status != CLPSA_OK)
        return status;
    if (!scores) {
        plan->source = CLPSA__ESTIMATE;
        return CLPSA_OK;
    }
    if (plan->psa.mode == CLPSA_MODE_BUDGET)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                           "clpsa_plan_set_scores on a plan with mode = CLPSA_MODE_BUDGET: budget "
                           "mode measures each block's mass and pooling loss itself and cannot "
                           "use supplied scores (supply a level map, or use another mode)");
    const size_t nk = (size_t)plan->blocks_k;
    for (size_t row = 0; row < plan->rows; ++row) {
        double sum = 0.0;
        for (size_t j = 0; j < nk; ++j) {
            const float s = scores[row * nk + j];
            if (!isfinite(s) || s < 0.0f)
                return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                                   "scores[%zu] (row %zu, key block %zu) = %g: scores must be "
                                   "finite and non-negative",
                                   row * nk + j, row, j, (double)s);
            sum += s;
        }
        if (!(sum > 0.0))
            return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                               "scores row %zu sums to 0: every row needs a positive sum", row);
    }
    status = transfer(plan, plan->scores, true, cell_count(plan) * sizeof(float), (void *)scores);
    /* The copy replaced the scores the last run used (even a failed one may have begun), so
     * read-back waits for the next run, as after clpsa_plan_set_levels. */
    plan->inputs_replaced_since_run = true;
    if (status == CLPSA_OK)
        plan->source = CLPSA__SUPPLIED_SCORES;
    return status;
}

clpsa_status clpsa_plan_set_levels(clpsa_plan *plan, const int8_t *levels) {
    if (!plan)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa__clear_error(plan->ctx);
    clpsa_status status = require_sparse(plan, "clpsa_plan_set_levels");
    if (status != CLPSA_OK)
        return status;
    if (!levels) {
        plan->source = CLPSA__ESTIMATE;
        return CLPSA_OK;
    }
    const size_t count = cell_count(plan);
    for (size_t x = 0; x < count; ++x) {
        const int f = levels[x];
        if (f != 0 && f != 1 && f != 2 && f != 4 && f != 8)
            return clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                               "levels[%zu] (row %zu, key block %zu) = %d: levels must be 0, 1, "
                               "2, 4 or 8",
                               x, x / plan->blocks_k, x % plan->blocks_k, f);
    }
    status = transfer(plan, plan->levels, true, count, (void *)levels);
    plan->inputs_replaced_since_run = true; /* even a failed write may have begun */
    if (status == CLPSA_OK)
        plan->source = CLPSA__SUPPLIED_LEVELS;
    return status;
}

static clpsa_status require_run(clpsa_plan *plan, const char *what) {
    clpsa_status status = require_sparse(plan, what);
    if (status == CLPSA_OK && !plan->stage_last[CLPSA__STAGE_ATTEND])
        status = clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                             plan->failed_last
                                 ? "%s: the plan's last run failed (nothing to read back); run "
                                   "it again first"
                                 : "%s: the plan has not run yet (nothing to read back)",
                             what);
    if (status == CLPSA_OK && plan->inputs_replaced_since_run)
        status = clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                             "%s: scores or levels were supplied after the last run, replacing "
                             "what it used; run the plan again first",
                             what);
    return status;
}

clpsa_status clpsa_plan_read_levels(clpsa_plan *plan, int8_t *levels) {
    if (!plan || !levels)
        return plan ? clpsa__fail(plan->ctx, CLPSA_ERROR_NULL_ARGUMENT,
                                  "clpsa_plan_read_levels: levels is NULL")
                    : CLPSA_ERROR_NULL_ARGUMENT;
    clpsa_status status = require_run(plan, "clpsa_plan_read_levels");
    return status == CLPSA_OK ? transfer(plan, plan->levels, false, cell_count(plan), levels)
                              : status;
}

clpsa_status clpsa_plan_read_scores(clpsa_plan *plan, float *scores) {
    if (!plan || !scores)
        return plan ? clpsa__fail(plan->ctx, CLPSA_ERROR_NULL_ARGUMENT,
                                  "clpsa_plan_read_scores: scores is NULL")
                    : CLPSA_ERROR_NULL_ARGUMENT;
    clpsa_status status = require_run(plan, "clpsa_plan_read_scores");
    if (status == CLPSA_OK && plan->last_run_source == CLPSA__SUPPLIED_LEVELS)
        status = clpsa__fail(plan->ctx, CLPSA_ERROR_INVALID_VALUE,
                             "clpsa_plan_read_scores: the last run used a supplied level map "
                             "and computed no scores");
    return status == CLPSA_OK
               ? transfer(plan, plan->scores, false, cell_count(plan) * sizeof(float), scores)
               : status;
}

clpsa_status clpsa_level_stats_compute(const int8_t *levels, size_t rows, int blocks_k,
                                       clpsa_level_stats *out) {
    if (!levels || !out)
        return CLPSA_ERROR_NULL_ARGUMENT;
    memset(out, 0, sizeof *out);
    if (rows == 0 || blocks_k <= 0)
        return CLPSA_ERROR_INVALID_SHAPE;
    double density_sum = 0.0;
    for (size_t row = 0; row < rows; ++row) {
        double row_density = 0.0;
        for (int j = 0; j < blocks_k; ++j) {
            const int f = levels[row * (size_t)blocks_k + (size_t)j];
            switch (f) {
            case 0:
                out->histogram[0]++;
                break;
            case 1:
            case 2:
            case 4:
            case 8:
                out->histogram[f == 1 ? 1 : f == 2 ? 2 : f == 4 ? 3 : 4]++;
                row_density += 1.0 / f;
                break;
            default:
                return CLPSA_ERROR_INVALID_VALUE;
            }
        }
        density_sum += row_density / blocks_k;
    }
    out->density = density_sum / (double)rows;
    return CLPSA_OK;
}

clpsa_status clpsa_plan_read_stats(clpsa_plan *plan, clpsa_level_stats *out) {
    if (!plan || !out)
        return plan ? clpsa__fail(plan->ctx, CLPSA_ERROR_NULL_ARGUMENT,
                                  "clpsa_plan_read_stats: out is NULL")
                    : CLPSA_ERROR_NULL_ARGUMENT;
    /* The plan's state first: a dense plan has no cells to allocate for. */
    clpsa_status status = require_run(plan, "clpsa_plan_read_stats");
    if (status != CLPSA_OK)
        return status;
    int8_t *levels = malloc(cell_count(plan));
    if (!levels)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_plan_read_stats");
    status = clpsa_plan_read_levels(plan, levels);
    if (status == CLPSA_OK)
        status = clpsa_level_stats_compute(levels, plan->rows, plan->blocks_k, out);
    free(levels);
    return status;
}

static double elapsed_ms(cl_event first, cl_event last) {
    cl_ulong start = 0, end = 0;
    if (!first || !last ||
        clGetEventProfilingInfo(first, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) !=
            CL_SUCCESS ||
        clGetEventProfilingInfo(last, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) !=
            CL_SUCCESS ||
        end < start)
        return 0.0;
    return (double)(end - start) * 1e-6;
}

clpsa_status clpsa_plan_read_stage_times(clpsa_plan *plan, clpsa_stage_times *out) {
    if (!plan || !out)
        return plan ? clpsa__fail(plan->ctx, CLPSA_ERROR_NULL_ARGUMENT,
                                  "clpsa_plan_read_stage_times: out is NULL")
                    : CLPSA_ERROR_NULL_ARGUMENT;
    memset(out, 0, sizeof *out);
    clpsa_status status = require_run(plan, "clpsa_plan_read_stage_times");
    if (status != CLPSA_OK)
        return status;
    cl_event last = plan->stage_last[CLPSA__STAGE_ATTEND];
    const cl_int err = clWaitForEvents(1, &last);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(plan->ctx, err, "clWaitForEvents");
    double *slots[CLPSA__STAGES] = {&out->pool_ms, &out->estimate_ms, &out->assign_ms,
                                    &out->attend_ms};
    cl_event first = NULL;
    for (int s = 0; s < CLPSA__STAGES; ++s) {
        *slots[s] = elapsed_ms(plan->stage_first[s], plan->stage_last[s]);
        if (!first)
            first = plan->stage_first[s];
    }
    out->total_ms = elapsed_ms(first, last);
    return CLPSA_OK;
}
