/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of `clpsa run`: its options, the problem it runs (inputs from files or the
 * embedded video workload), the measurements it reports, and the helpers between them. */
#ifndef CLPSA_TOOLS_RUN_INTERNAL_H
#define CLPSA_TOOLS_RUN_INTERNAL_H

#include "tool_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLPSA__RUN_COMMAND "run"
#define CLPSA__RUN_DEFAULT_REPS 5
/* Dense rows checked against a double-precision computation on the built-in workload. */
#define CLPSA__RUN_CHECK_ROWS 16
/* Longest order list: the built-in workload compares raster and hilbert. */
#define CLPSA__RUN_MAX_ORDERS 2
/* Text tokens after the causal built-in workload's video (2048 tokens): a prompt of 256. */
#define CLPSA__RUN_WORKLOAD_TEXT 256

/* What --out holds; the report always covers all three. */
typedef enum run_method {
    RUN_METHOD_PSA = 0,
    RUN_METHOD_DENSE = 1,
    RUN_METHOD_BINARY = 2,
} run_method;

typedef struct run_options {
    const char *device, *q, *k, *v, *out;
    const char *scores_in, *levels_in, *scores_out, *levels_out, *png, *perm_out;
    bool bnhd, causal, json;
    clpsa_dtype dtype; /* DEFAULT: from the inputs */
    double scale;      /* 0: the library's default */
    int reps;
    run_method method;

    /* PSA options, already in clpsa_plan_desc's encoding (0: default, CLPSA_OFF: off). */
    const char *preset;
    bool tau_given;
    float tau[4];
    clpsa_mode mode;
    int block_q, block_k, align_tile;
    float min_full;
    int text_tokens;
    bool text_given; /* --text-tokens (else the causal workload has CLPSA__RUN_WORKLOAD_TEXT) */
    bool sim_cap;
    float sim_thresholds[3];
    int sample_q, sample_k;
    uint64_t seed;
    float density; /* --density: budget mode's target (0: not given) */

    /* Video ordering. order 0: not given (the workload then compares raster and hilbert). */
    bool grid_given;
    int grid[3];
    clpsa_ordering order;
    int tile[3];
} run_options;

/* Parses argv (argv[0] is "run"); *help is set for --help. Returns an exit code. */
int clpsa__run_parse_options(int argc, char **argv, run_options *o, bool *help);
void clpsa__run_usage(FILE *out);
/* "raster", "hilbert", "tiles"; "threshold", "quantile", "energy". */
const char *clpsa__run_order_name(clpsa_ordering order);
const char *clpsa__run_mode_name(clpsa_mode mode);

/* The inputs on the host, in their file layout, as the device stores them (rounded). */
typedef struct run_problem {
    int batch, heads_q, heads_kv, seq_q, seq_k, dim;
    bool bnhd, workload;
    int grid[3]; /* all 0: no grid (files without --grid) */
    int text_tokens;
    clpsa_dtype dtype;
    float *host[3];           /* Q, K, V */
    size_t count[3];          /* elements of each */
    clpsa_strides strides[4]; /* Q, K, V, output */
} run_problem;

/* Reads --q/--k/--v or generates the embedded workload (with --grid and --text-tokens). */
int clpsa__run_problem_load(const run_options *o, run_problem *p);
void clpsa__run_problem_free(run_problem *p);
size_t clpsa__run_out_count(const run_problem *p);

/* Largest |out - reference| over CLPSA__RUN_CHECK_ROWS rows of dense attention computed in
 * double (NaN if an output is not finite, -1 when out of memory). */
double clpsa__run_check_rows(const run_problem *p, float scale, bool causal, const float *out);
/* Tolerance of that check for the storage type. */
double clpsa__run_check_tolerance(clpsa_dtype dtype);
/* ||a - ref|| / ||ref|| in double; NaN when an element of a is not finite. */
double clpsa__run_rel_l2(const float *a, const float *ref, size_t count);

/* ---- Measurements ---- */
typedef struct run_timing {
    double total_ms, pool_ms, estimate_ms, assign_ms, attend_ms; /* medians over the reps */
} run_timing;

typedef struct run_order_result {
    clpsa_ordering order;
    clpsa_level_stats stats; /* of PSA's level map */
    run_timing psa, binary;
    double binary_density; /* the density the binary baseline kept (>= PSA's: whole blocks) */
    double psa_rel_l2, binary_rel_l2;
} run_order_result;

typedef struct run_report {
    const char *device, *device_reason;
    char parameter_source[512];       /* of the PSA plans */
    char dense_parameter_source[512]; /* of the dense plan */
    char levels_source[1100];         /* "estimated", "assigned from scores in F", "read from F" */
    float scale;
    bool causal;           /* --causal, or a preset's */
    clpsa_block_grid grid; /* bm, bn, nq, nk */
    clpsa_plan_desc psa;   /* the PSA plan's resolved description (first order) */
    run_timing dense;
    double dense_tflops;
    bool checked, check_ok;
    double max_abs_err;
    int order_count;
    run_order_result orders[CLPSA__RUN_MAX_ORDERS];
} run_report;

void clpsa__run_report_print(const run_options *o, const run_problem *p, const run_report *r);

/* ---- Block maps and other files ---- */
/* Reads a level map (int8) or scores (float32) file of shape [B, Hq, nq, nk]; checks the type,
 * the shape (naming the wrong dimension) and, for levels, every value. *data is malloc'ed. */
int clpsa__run_read_levels(const char *path, const run_problem *p, const clpsa_block_grid *g,
                           int8_t **data);
int clpsa__run_read_scores(const char *path, const run_problem *p, const clpsa_block_grid *g,
                           float **data);
/* Writes a [B, Hq, nq, nk] map (int8 levels or float32 scores) atomically. */
int clpsa__run_write_map(const char *path, const run_problem *p, const clpsa_block_grid *g,
                         bool scores, const void *data);
/* Writes the output in the inputs' layout as float32. */
int clpsa__run_write_output(const char *path, const run_problem *p, const float *out);
/* Writes the token permutation of `order` (tile: the plan's resolved cube) as int32 [N]. */
int clpsa__run_write_permutation(const char *path, const run_problem *p, clpsa_ordering order,
                                 const int tile[3]);

#endif /* CLPSA_TOOLS_RUN_INTERNAL_H */
