/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the files of `clpsa bench`: its options, the inputs of one measured case, the records
 * it reports, and the dense-attention baseline built from CLBlast GEMMs. */
#ifndef CLPSA_TOOLS_BENCH_INTERNAL_H
#define CLPSA_TOOLS_BENCH_INTERNAL_H

#include "tool_common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLPSA__BENCH_COMMAND "bench"
#define CLPSA__BENCH_MAX_SHAPES 16
#define CLPSA__BENCH_MAX_DENSITIES 32
#define CLPSA__BENCH_MAX_DTYPES 3
/* Measured density within this of the target ends the threshold search. */
#define CLPSA__BENCH_DENSITY_TOLERANCE 0.02
/* The threshold family searched: tau_f = min(1, s * base_f), base = the wan21-14b preset's
 * thresholds (docs/algorithm.md §7), s in [CLPSA__BENCH_SCALE_MIN, 1 / base_1]: s = 1 is that
 * preset, s = 1 / base_1 puts every block at level 1. */
#define CLPSA__BENCH_SCALE_MIN 1e-4
extern const float clpsa__bench_tau_base[4];

typedef enum bench_workload {
    BENCH_WORKLOAD_RANDOM = 0,     /* Gaussian Q, K, V */
    BENCH_WORKLOAD_VIDEO = 1,      /* clpsa_video_workload_generate, raster token order */
    BENCH_WORKLOAD_HILBERT = 2,    /* the same tensors, PSA and binary in hilbert token order */
    BENCH_WORKLOAD_VIDEO_TEXT = 3, /* video then text tokens, causal, preset understanding */
    BENCH_WORKLOAD_FILES = 4,      /* --q/--k/--v */
    BENCH_WORKLOAD_COUNT = 5,
} bench_workload;

typedef enum bench_method {
    BENCH_METHOD_PSA = 0,             /* the whole pipeline: pool, estimate, assign, attend */
    BENCH_METHOD_PSA_ATTEND = 1,      /* the attend stage of the same runs */
    BENCH_METHOD_ESTIMATE_ASSIGN = 2, /* the estimate and assign stages of the same runs */
    BENCH_METHOD_DENSE = 3,           /* CLPSA_METHOD_DENSE */
    BENCH_METHOD_BINARY = 4,          /* CLPSA_METHOD_BINARY at PSA's measured density */
    BENCH_METHOD_CLBLAST = 5,         /* S = QK^T, softmax, O = PV with CLBlast GEMMs */
    BENCH_METHOD_PSA_THRESHOLD = 6,   /* density sweeps: the threshold rule at PSA's density */
    BENCH_METHOD_COUNT = 7,
} bench_method;

typedef struct bench_shape {
    int batch, heads_q, heads_kv, seq_q, seq_k, dim;
} bench_shape;

typedef struct bench_options {
    const char *device, *q, *k, *v, *json, *csv;
    bool quick;
    bool workloads[BENCH_WORKLOAD_COUNT];
    int shape_count;
    bench_shape shapes[CLPSA__BENCH_MAX_SHAPES];
    int density_count;
    double densities[CLPSA__BENCH_MAX_DENSITIES];
    int dtype_count;
    clpsa_dtype dtypes[CLPSA__BENCH_MAX_DTYPES];
    bool tau_given; /* fixed thresholds instead of the density sweep */
    float tau[4];
    int reps;
    int block_q, block_k; /* 0: the library's defaults */
    uint64_t seed;
    int grid[3];     /* --grid: the video workloads' frames, height, width; 0: derived */
    bool no_clblast; /* --no-clblast: skip the CLBlast baseline */
    bool causal;     /* --causal: every method causal (video-text always is) */
    int text_tokens; /* --text-tokens: video-text's text tokens (0: CLPSA__BENCH_TEXT_TOKENS) */
} bench_options;

/* Text tokens of the video-text workload by default: a prompt of a few hundred tokens. */
#define CLPSA__BENCH_TEXT_TOKENS 256
/* Workloads that "all" and no --workload run: random, video, video-hilbert. */
bool clpsa__bench_workload_default(bench_workload workload);

/* One measured case: inputs on the host as fp32, already rounded to the storage type. */
typedef struct bench_case {
    bench_workload workload;
    bench_shape shape;
    int grid[3];     /* video workloads: frames, height, width; else 0 */
    int text_tokens; /* video-text: tokens after the grid's (N = T*H*W + text_tokens) */
    clpsa_dtype dtype;
    float *host[3]; /* Q [B, Hq, Nq, D], K and V [B, Hkv, Nk, D], contiguous */
} bench_case;

/* One line of the report. NAN marks a figure that does not apply (written as null). */
typedef struct bench_record {
    bench_workload workload;
    bench_shape shape;
    int grid[3];
    clpsa_dtype dtype;
    double target_density; /* NAN with --tau */
    bench_method method;
    double density; /* measured (1 for the dense methods) */
    double time_ms, tflops;
    double rel_l2; /* against dense; NAN for the dense methods */
    double pool_ms, estimate_ms, assign_ms, attend_ms; /* psa (and its parts), binary */
    bool has_tau;     /* the thresholds the threshold rule ran with (--tau runs; psa_threshold) */
    const char *rule; /* the PSA rule: "budget", "threshold"; NULL for dense and binary */
    float tau[4];
    double clblast_vs_dense; /* dense_clblast: relative L2 against the dense kernel */
} bench_record;

typedef struct bench_results {
    const char *device, *device_reason;
    int block_q, block_k; /* PSA's resolved block sizes (0 until a PSA plan ran) */
    bench_record *records;
    size_t count, capacity;
    double wall_s;
} bench_results;

/* "random", "video", "video-hilbert", "video-text", "npy"; "psa", "psa_attend",
 * "psa_estimate_assign", "dense", "binary", "dense_clblast", "psa_threshold". */
const char *clpsa__bench_workload_name(bench_workload workload);
const char *clpsa__bench_method_name(bench_method method);

/* Parses argv (argv[0] is "bench"); *help is set for --help. Returns an exit code. */
int clpsa__bench_parse_options(int argc, char **argv, bench_options *o, bool *help);
void clpsa__bench_usage(FILE *out);

/* The frames x height x width grid a video workload of n tokens uses, 0 if none fits. */
bool clpsa__bench_video_grid(int n, int grid[3]);
/* The grid of the video workloads at N = n: --grid when given (T*H*W = n), else derived. */
bool clpsa__bench_grid_for(const bench_options *o, int n, int grid[3]);
/* Fills c->host for the workload (files: read, checked, converted to float), rounded to
 * c->dtype as the device will store it. c->shape is set from the files. */
int clpsa__bench_case_load(const bench_options *o, bench_case *c);
void clpsa__bench_case_free(bench_case *c);

/* Writes the report: JSON and CSV to their files ("-": stdout) and, unless one of them went to
 * stdout, a table on stdout. */
int clpsa__bench_write_reports(const bench_options *o, const bench_results *r);

/* ---- Dense attention from CLBlast GEMMs ---- */
typedef struct bench_clblast bench_clblast;

/* Compiles the softmax kernel and allocates the score buffer for rows of seq_k scores, in
 * chunks of query rows that keep the buffer within the device's allocation limit. */
int clpsa__bench_clblast_create(cl_context context, cl_device_id device, const bench_shape *shape,
                                bench_clblast **out);
void clpsa__bench_clblast_destroy(bench_clblast *b);
/* Enqueues out = softmax(scale Q K^T) V for every (batch, head) on `queue`, fp32 [B, H, N, D]
 * buffers, and waits for it; *ms is the wall time between clFinish calls around it. */
int clpsa__bench_clblast_run(bench_clblast *b, cl_command_queue queue, cl_mem q, cl_mem k, cl_mem v,
                             cl_mem out, float scale, double *ms);

/* The OpenCL C source of the row softmax kernel (bench_softmax_cl.c). */
extern const char clpsa__bench_softmax_source[];

#endif /* CLPSA_TOOLS_BENCH_INTERNAL_H */
