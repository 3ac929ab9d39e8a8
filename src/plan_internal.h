/* SPDX-License-Identifier: Apache-2.0 */
/* The plan object, shared by the files that create, run and read back plans. */
#ifndef CLPSA_PLAN_INTERNAL_H
#define CLPSA_PLAN_INTERNAL_H

#include "internal.h"

/* Budget mode's default sampled rows per query block: bm / this (bench/NOTES.md, "Budget mode
 * (issue 12)", chose it). */
#define CLPSA__BUDGET_SAMPLE_DIVISOR 16

/* PSA options with every default and preset resolved, in the form the kernels take. */
typedef struct clpsa__psa_options {
    int block_q, block_k;
    float thresholds[4];
    clpsa_mode mode;
    int align_tile;       /* 0: no alignment */
    int min_full_blocks;  /* min(nk, floor(min_full * nk) + 1); 0 when off */
    int quantile_ends[4]; /* min(nk, floor(nk * tau_f)) */
    int text_blocks;      /* ceil(text_tokens / bn) */
    int text_row_first;   /* seq_q - text_tokens: query rows from here on are text; seq_q
                             without text (may be negative when text_tokens > seq_q) */
    int similarity_cap;
    float similarity_thresholds[3];
    clpsa_estimator estimator;
    int sample_q, sample_k, stride;
    uint64_t seed;
    int binary_keep;  /* ceil(binary_density * nk) */
    double density;   /* budget mode: the target density, else 0 */
    int budget_units; /* budget mode: the row budget density * nk in eighths of a block */
    int grid[3];      /* frames, height, width; all 0 without a grid */
    clpsa_ordering ordering;
    int tile[3];
    int permuted; /* a non-raster ordering: kernels gather through perm */
} clpsa__psa_options;

typedef enum clpsa__level_source {
    CLPSA__ESTIMATE = 0, /* pool, estimate, assign, attend */
    CLPSA__SUPPLIED_SCORES = 1,
    CLPSA__SUPPLIED_LEVELS = 2,
} clpsa__level_source;

enum {
    CLPSA__STAGE_POOL,
    CLPSA__STAGE_ESTIMATE,
    CLPSA__STAGE_ASSIGN,
    CLPSA__STAGE_ATTEND,
    CLPSA__STAGES
};

struct clpsa_plan {
    clpsa_context *ctx;
    clpsa_plan_desc desc; /* every default resolved */
    clpsa__tensor q, k, v, out;

    /* dense */
    cl_kernel dense;
    int dense_rows, dense_items; /* query rows and work-items per work-group */
    const struct clpsa__kernel_variant *dense_variant;

    /* decode (dense plans of few query rows, plan_decode.c): split-K over the key cache */
    cl_kernel decode_partial, decode_combine;
    const struct clpsa__kernel_variant *decode_variant; /* NULL: the dense kernel runs */
    int decode_rows, decode_row_groups; /* query rows per work-group, groups per kv head */
    int decode_wg, decode_combine_wg;   /* work-items per group of the two kernels */
    int decode_tile, decode_max_splits; /* splits are whole tiles of keys */
    int decode_cu_groups;               /* work-groups per compute unit splitting aims for */
    cl_mem decode_acc, decode_ml;       /* partials [B * Hq * Nq][max splits][D] and [..][2] */
    cl_event decode_last;               /* the last run's combine: the next run waits for it */
    cl_event decode_first;              /* the last run's split kernel (its start, for the tuner) */

    /* PSA */
    clpsa__psa_options psa;
    int blocks_q, blocks_k, np2, np4, np8;
    size_t rows; /* B * Hq * nq */
    cl_kernel pool, similarity, estimate, assign, work_list, attend;
    int estimate_wg; /* work-items per work-group */
    int estimate_blocks_per_group, estimate_rows, estimate_heads_per_launch;
    const struct clpsa__kernel_variant *estimate_variant; /* NULL: the antidiagonal kernel */
    int assign_wg, sort_n;
    int attend_rows, attend_items;
    const struct clpsa__kernel_variant *attend_variant;
    /* budget mode: the measurement (a kernel family) and the allocation */
    cl_kernel budget_measure, budget_allocate;
    int budget_wg, upgrade_n;    /* the measurement uses estimate_scratch and its launches */
    int budget_blocks_per_group; /* query blocks of one measurement work-group */
    const struct clpsa__kernel_variant *budget_variant;
    cl_mem budget_loss; /* rows x nk x 3: pooling loss at levels 2, 4, 8 */
    cl_mem k_pyramid, v_pyramid, similarity_stats, row_offsets, key_offsets, estimate_scratch;
    cl_mem scores, levels, counts, list;
    cl_mem perm; /* position -> row of the caller's tensors; NULL when not permuted */
    clpsa__level_source source;

    char parameter_source[1024];

    /* The last run, for read-back and stage times. The next run, and every transfer on the
     * plan's buffers, waits for its last command, whatever queue it was on. */
    cl_command_queue last_queue; /* retained */
    clpsa__level_source last_run_source;
    bool inputs_replaced_since_run; /* set_scores/set_levels wrote the buffers after it */
    cl_event stage_first[CLPSA__STAGES], stage_last[CLPSA__STAGES];
    /* After a run that failed part-way: its last enqueued command (or, when it enqueued
     * nothing, the run before it). Its commands still execute on the plan's buffers, so the
     * next run and the transfers wait for this event; read-back has nothing to read. */
    cl_event failed_last;
};

clpsa_status clpsa__psa_resolve(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                clpsa_plan_desc *resolved, clpsa__psa_options *out);
/* Every rule of clpsa_plan_create that needs no device or buffer: fills the resolved
 * description, the PSA options and the four tensors (q, k, v, out). */
clpsa_status clpsa__plan_desc_check(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                    clpsa_plan_desc *d, clpsa__psa_options *psa,
                                    clpsa__tensor tensors[4]);
/* Completes the options that depend on nk (call after the block grid is known). */
void clpsa__psa_finish(const clpsa_plan_desc *desc, int blocks_k, clpsa__psa_options *psa);

/* The sampled estimate's offsets (docs/algorithm.md §5): s of n, for stream start x0. */
void clpsa__draw_offsets(uint64_t x0, int n, int s, int *out);

clpsa_status clpsa__plan_build_psa(clpsa_plan *plan);

/* Query rows up to which a dense plan runs the decode kernels (plan_decode.c). */
#define CLPSA__DECODE_MAX_QUERY_ROWS 16
/* Whether the dense plan takes the decode kernels: few query rows and no dense.VARIANT
 * override (which asks for the dense kernel itself). */
bool clpsa__plan_wants_decode(const clpsa_plan *plan);
clpsa_status clpsa__plan_build_decode(clpsa_plan *plan);
clpsa_status clpsa__plan_run_decode(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                    cl_mem v, cl_mem out, cl_uint num_events,
                                    const cl_event *wait_list, cl_event *event);
void clpsa__plan_release_decode(clpsa_plan *plan);
clpsa_status clpsa__plan_run_psa(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                 cl_mem v, cl_mem out, cl_uint num_events,
                                 const cl_event *wait_list, cl_event *event);
void clpsa__plan_release_psa(clpsa_plan *plan);
void clpsa__plan_forget_events(clpsa_plan *plan);

/* The value of a kernel parameter for this plan (plan_params.c), recorded in
 * parameter_source. */
clpsa_status clpsa__plan_param(clpsa_plan *plan, clpsa__param_id id, int *value, bool *overridden);
clpsa_status clpsa__plan_check_kernel_group(clpsa_plan *plan, cl_kernel kernel, clpsa__param_id id,
                                            int work_items);

/* Sets kernel arguments in order; returns the first OpenCL error. */
cl_int clpsa__set_args(cl_kernel kernel, int count, ...);
#define CLPSA__ARG(x) sizeof(x), (const void *)&(x)

#endif
