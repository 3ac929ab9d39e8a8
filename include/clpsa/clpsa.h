/* SPDX-License-Identifier: Apache-2.0 */
/*
 * clpsa: Pyramid Sparse Attention with OpenCL kernels compiled at run time.
 *
 * Conventions
 * - Opaque handles with create/destroy pairs; destroy(NULL) is a no-op.
 * - Every fallible call returns clpsa_status; results come through the last pointer argument.
 * - Option structs are filled with defaults by their *_init function; a zero field means
 *   "default", so the structs can grow without breaking callers that use the init functions.
 * - clpsa_context_last_error() holds the detail of the last failure on that context: the
 *   value, the rule it broke, the raw OpenCL error and the build log where there is one.
 * - Threads: different contexts may be used from different threads at once; a context and
 *   its plans must be used from one thread at a time (they share the context's last_error
 *   and program cache, which are not locked).
 * - The library never prints to stdout; log lines go to a callback (default: stderr, level
 *   from CLPSA_LOG = error|warn|info|debug|trace, default warn).
 *
 * ABI policy: until version 1.0 the ABI may change between minor versions; the numeric
 * values of clpsa_status, clpsa_dtype and the other enums are pinned and never reused.
 */
#ifndef CLPSA_CLPSA_H
#define CLPSA_CLPSA_H

/* The OpenCL API version is the caller's choice: a CL_TARGET_OPENCL_VERSION defined before
 * this header (or before an earlier CL/cl.h) is kept. Otherwise 300 is set, the default of the
 * Khronos headers themselves, so including clpsa.h first hides no OpenCL 2.x/3.0 declaration
 * and silences their "not defined" message. clpsa's API uses only OpenCL 1.2 types. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

/* Marks the functions the shared library exports; everything else in it is hidden. */
#ifndef CLPSA_API
#if defined(__GNUC__) || defined(__clang__)
#define CLPSA_API __attribute__((visibility("default")))
#else
#define CLPSA_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define CLPSA_VERSION_MAJOR 0
#define CLPSA_VERSION_MINOR 1
#define CLPSA_VERSION_PATCH 0
#define CLPSA_VERSION_NUMBER                                                                       \
    (CLPSA_VERSION_MAJOR * 10000 + CLPSA_VERSION_MINOR * 100 + CLPSA_VERSION_PATCH)

/* "MAJOR.MINOR.PATCH" of the library actually linked. */
CLPSA_API const char *clpsa_version(void);
CLPSA_API int clpsa_version_number(void);

/* ---- Status codes: defined once, here. X(name, value, sentence) ---- */
#define CLPSA_STATUS_LIST(X)                                                                       \
    X(CLPSA_OK, 0, "success")                                                                      \
    X(CLPSA_ERROR_NULL_ARGUMENT, 1, "a required handle, pointer or buffer is NULL")                \
    X(CLPSA_ERROR_INVALID_VALUE, 2, "an option has a value outside its allowed range")             \
    X(CLPSA_ERROR_INVALID_SHAPE, 3, "a tensor size is zero, negative or inconsistent")             \
    X(CLPSA_ERROR_INVALID_STRIDES, 4,                                                              \
      "tensor strides overlap, are negative or make the head dimension non-contiguous")            \
    X(CLPSA_ERROR_UNSUPPORTED, 5, "the combination of options is not supported")                   \
    X(CLPSA_ERROR_BUFFER_TOO_SMALL, 6, "a buffer is smaller than the shape it must hold")          \
    X(CLPSA_ERROR_WRONG_CONTEXT, 7, "a buffer or queue belongs to another OpenCL context")         \
    X(CLPSA_ERROR_BUILD_FAILED, 8, "an OpenCL kernel failed to build")                             \
    X(CLPSA_ERROR_OUT_OF_MEMORY, 9, "the device or host ran out of memory")                        \
    X(CLPSA_ERROR_DEVICE_NOT_FOUND, 10, "no OpenCL device matches the request")                    \
    X(CLPSA_ERROR_OPENCL, 11, "an OpenCL call failed")                                             \
    X(CLPSA_ERROR_IO, 12, "a file could not be read or written")                                   \
    X(CLPSA_ERROR_INVALID_FILE, 13, "a file is malformed or does not match what was expected")

typedef enum clpsa_status {
#define CLPSA_X_ENUM(name, value, sentence) name = value,
    CLPSA_STATUS_LIST(CLPSA_X_ENUM)
#undef CLPSA_X_ENUM
} clpsa_status;

/* "CLPSA_ERROR_INVALID_SHAPE"; "CLPSA_UNKNOWN_STATUS" for values not in the list. */
CLPSA_API const char *clpsa_status_name(clpsa_status status);
/* The status's sentence, e.g. "a tensor size is zero, negative or inconsistent". */
CLPSA_API const char *clpsa_status_string(clpsa_status status);

/* "CL_OUT_OF_RESOURCES" for -5, and so on; "unknown OpenCL error" for codes it does not
 * know. For reporting raw OpenCL errors (last_error quotes them the same way). */
CLPSA_API const char *clpsa_opencl_error_name(cl_int error);

/* ---- Storage types ---- */
typedef enum clpsa_dtype {
    CLPSA_DTYPE_DEFAULT = 0, /* fp32 for inputs; the input type for the output */
    CLPSA_DTYPE_FP32 = 1,
    CLPSA_DTYPE_FP16 = 2, /* IEEE binary16, stored as 16-bit words */
    CLPSA_DTYPE_BF16 = 3, /* bfloat16, stored as 16-bit words */
} clpsa_dtype;

/* Bytes per element (4 or 2); 0 for an unknown type. */
CLPSA_API size_t clpsa_dtype_size(clpsa_dtype dtype);
/* "fp32", "fp16", "bf16"; NULL for an unknown type. */
CLPSA_API const char *clpsa_dtype_name(clpsa_dtype dtype);
/* Host conversions with round-to-nearest-even, the same rounding the kernels use. */
CLPSA_API clpsa_status clpsa_convert_from_float(clpsa_dtype dtype, const float *src, void *dst,
                                                size_t count);
CLPSA_API clpsa_status clpsa_convert_to_float(clpsa_dtype dtype, const void *src, float *dst,
                                              size_t count);

/* ---- Logging ---- */
typedef enum clpsa_log_level {
    CLPSA_LOG_OFF = 0,
    CLPSA_LOG_ERROR = 1,
    CLPSA_LOG_WARN = 2,
    CLPSA_LOG_INFO = 3,
    CLPSA_LOG_DEBUG = 4,
    CLPSA_LOG_TRACE = 5,
} clpsa_log_level;

typedef void (*clpsa_log_fn)(void *user, clpsa_log_level level, const char *message);

/* ---- Context ---- */
typedef struct clpsa_context clpsa_context;

typedef struct clpsa_context_desc {
    /* Either all three NULL (clpsa picks a device, creates its own context and an in-order
     * queue with profiling), or cl_context and device set: clpsa wraps them without taking
     * ownership. queue is optional when wrapping; plans run on the queue given to run. */
    cl_context cl_context;
    cl_device_id device;
    cl_command_queue queue;
    /* Device choice when clpsa picks: index (as listed by `clpsa devices`) or a substring of
     * the platform or device name. NULL: $CLPSA_DEVICE, else the first GPU, else the first
     * device. */
    const char *device_spec;
    clpsa_log_fn log;          /* NULL: stderr */
    void *log_user;            /* passed to log */
    clpsa_log_level log_level; /* 0 (OFF is not reachable here): $CLPSA_LOG, else WARN */
    const char *cache_dir;     /* NULL: $CLPSA_CACHE_DIR, $XDG_CACHE_HOME/clpsa, ~/.cache/clpsa */
    int disable_disk_cache;    /* non-zero: keep compiled programs in memory only */
} clpsa_context_desc;

CLPSA_API void clpsa_context_desc_init(clpsa_context_desc *desc);
CLPSA_API clpsa_status clpsa_context_create(const clpsa_context_desc *desc, clpsa_context **out);
CLPSA_API void clpsa_context_destroy(clpsa_context *ctx);

/* Detail of the last failure on this context ("" if none). Valid until the next call. */
CLPSA_API const char *clpsa_context_last_error(const clpsa_context *ctx);
CLPSA_API cl_context clpsa_context_cl_context(const clpsa_context *ctx);
CLPSA_API cl_device_id clpsa_context_device(const clpsa_context *ctx);
/* The queue given at creation or created by clpsa (NULL when wrapping without a queue). */
CLPSA_API cl_command_queue clpsa_context_queue(const clpsa_context *ctx);
/* Human-readable "platform / device (driver)" of the context's device. */
CLPSA_API const char *clpsa_context_device_name(const clpsa_context *ctx);
/* Why this device was chosen: "wrapped by caller", "CLPSA_DEVICE=...", "first GPU", ... */
CLPSA_API const char *clpsa_context_device_reason(const clpsa_context *ctx);

/* Allocates a device buffer of `bytes`, checked against the device's limits first, so an
 * impossible request returns CLPSA_ERROR_OUT_OF_MEMORY with the sizes in last_error. */
CLPSA_API clpsa_status clpsa_context_alloc(clpsa_context *ctx, size_t bytes, cl_mem *out);

/* Counters of the program cache (for tests and diagnostics). */
typedef struct clpsa_cache_stats {
    uint64_t memory_hits;  /* program found in the in-memory cache */
    uint64_t disk_hits;    /* binary loaded from the on-disk cache */
    uint64_t disk_rejects; /* on-disk file ignored: corrupt, truncated, stale or mismatched */
    uint64_t builds;       /* programs compiled from source */
} clpsa_cache_stats;
CLPSA_API void clpsa_context_cache_stats(const clpsa_context *ctx, clpsa_cache_stats *out);
/* The directory used for the on-disk program cache ("" when disabled). */
CLPSA_API const char *clpsa_context_cache_dir(const clpsa_context *ctx);

/* ---- Plans ---- */
/* Element strides of a 4-D tensor [batch, head, seq, dim]. dim must be 1. All zero means
 * contiguous [B, H, N, D]. */
typedef struct clpsa_strides {
    int64_t batch, head, seq, dim;
} clpsa_strides;

/* Contiguous [B, H, N, D] and [B, N, H, D] strides for a tensor of H heads, N tokens, D. */
CLPSA_API clpsa_strides clpsa_strides_bhnd(int64_t heads, int64_t seq, int64_t dim);
CLPSA_API clpsa_strides clpsa_strides_bnhd(int64_t heads, int64_t seq, int64_t dim);

typedef enum clpsa_method {
    CLPSA_METHOD_PSA = 1,    /* Pyramid Sparse Attention (SPEC.md): the default */
    CLPSA_METHOD_DENSE = 2,  /* exact attention (flash-style tiled online softmax) */
    CLPSA_METHOD_BINARY = 3, /* block-sparse baseline: top ceil(binary_density * nk) blocks of
                                each row by S at level 1, the rest skipped */
} clpsa_method;

/* Level assignment modes (SPEC.md section 6). */
typedef enum clpsa_mode {
    CLPSA_MODE_THRESHOLD = 1, /* the default; matches the public release */
    CLPSA_MODE_QUANTILE = 2,
    CLPSA_MODE_ENERGY = 3,
} clpsa_mode;

/* Block importance estimates (SPEC.md section 5). */
typedef enum clpsa_estimator {
    CLPSA_ESTIMATOR_SAMPLED = 1,      /* generation path: sampled rows and keys (default) */
    CLPSA_ESTIMATOR_ANTIDIAGONAL = 2, /* understanding path: strided antidiagonal sums */
} clpsa_estimator;

/* Sentinel for options whose 0 means "default" but that may also be switched off. */
#define CLPSA_OFF (-1)

/* Token orderings of a video grid (frames x height x width, tokens given in raster order:
 * frame, row, column), applied inside the kernels so PSA's blocks hold space-time
 * neighbours. Text tokens, if any, follow the video tokens and stay at the end. */
typedef enum clpsa_ordering {
    CLPSA_ORDER_RASTER = 1,  /* identity */
    CLPSA_ORDER_HILBERT = 2, /* generalised 3-D Hilbert curve, any T x H x W */
    CLPSA_ORDER_TILES = 3,   /* tt x th x tw cubes in raster order of cubes, raster inside */
} clpsa_ordering;

/* perm[i] = the token (raster index) at position i of the reordered sequence, for
 * frames * height * width video tokens followed by text_tokens text tokens (which map to
 * themselves). tile is {tt, th, tw} for CLPSA_ORDER_TILES (ignored otherwise; may be NULL). */
CLPSA_API clpsa_status clpsa_ordering_permutation(clpsa_ordering ordering, int frames, int height,
                                                  int width, const int *tile, int text_tokens,
                                                  int32_t *perm);

typedef struct clpsa_plan_desc {
    clpsa_method method;     /* 0: PSA */
    int batch;               /* B >= 1 */
    int heads_q;             /* Hq >= 1, a multiple of heads_kv */
    int heads_kv;            /* Hkv >= 1; 0: heads_q */
    int seq_q;               /* Nq >= 1 */
    int seq_k;               /* Nk >= 1; 0: seq_q */
    int head_dim;            /* D: a multiple of 8 from 8 to 256 (32, 64, 96, 128, 256...) */
    clpsa_dtype dtype;       /* storage of Q, K, V; 0: fp32 */
    clpsa_dtype out_dtype;   /* storage of the output; 0: dtype */
    clpsa_strides q_strides; /* element strides; all 0: contiguous [B,H,N,D] */
    clpsa_strides k_strides;
    clpsa_strides v_strides;
    clpsa_strides out_strides;
    float scale; /* 0: 1/sqrt(D) */
    int causal;  /* non-zero: bottom-right aligned causal mask */

    /* ---- PSA options (ignored by CLPSA_METHOD_DENSE). A preset is applied first; every
     * field set explicitly (non-zero) then overrides it. ---- */
    const char *preset;             /* NULL or a name of SPEC.md section 7, e.g. "wan21-1.3b" */
    int block_q;                    /* bm, 16..256; 0: 128 (or the preset's) */
    int block_k;                    /* bn, 16..256 and a multiple of 8; 0: 64 (or the preset's) */
    float thresholds[4];            /* tau1, tau2, tau4, tau8, non-decreasing in [0, 1];
                                       all 0: 0.5/0.6/0.7/0.8 (or the preset's) */
    clpsa_mode mode;                /* 0: threshold (or the preset's) */
    int align_tile;                 /* 0: 32; CLPSA_OFF: no alignment */
    float min_full;                 /* fraction of blocks kept at level 1 at least (threshold
                                       mode); 0: 0.06; CLPSA_OFF: none */
    int text_tokens;                /* tokens at the end of the key sequence forced to level 1 */
    int similarity_cap;             /* non-zero: cap levels by block self-similarity */
    float similarity_thresholds[3]; /* t2, t4, t8; all 0: 0.7/0.65/0.6 (or the preset's) */
    clpsa_estimator estimator;      /* 0: sampled (antidiagonal for the understanding preset) */
    int sample_q;                   /* sampled rows per query block; 0: bm/4; = bm: exact */
    int sample_k;                   /* sampled keys per key block; 0: bn/4; = bn: exact */
    int antidiagonal_stride;        /* 0: 8; bm and bn must be multiples of it */
    uint64_t seed;                  /* offsets of the sampled estimate (SPEC.md section 5) */
    float binary_density;           /* CLPSA_METHOD_BINARY: fraction of blocks kept, (0, 1] */

    /* ---- Video token ordering (PSA and BINARY; dense attention does not depend on it) ----
     * With a grid, seq_q = seq_k = frames * height * width + text_tokens. */
    int grid[3];             /* frames, height, width; all 0: no grid */
    clpsa_ordering ordering; /* 0: raster */
    int tile[3];             /* tt, th, tw for CLPSA_ORDER_TILES; all 0: 2, 4, 4 */
} clpsa_plan_desc;

typedef struct clpsa_plan clpsa_plan;

CLPSA_API void clpsa_plan_desc_init(clpsa_plan_desc *desc);
/* Validates the description, compiles (or loads from the caches) the kernels. */
CLPSA_API clpsa_status clpsa_plan_create(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                         clpsa_plan **out);
CLPSA_API void clpsa_plan_destroy(clpsa_plan *plan);
/* The description with every default resolved. */
CLPSA_API clpsa_status clpsa_plan_get_desc(const clpsa_plan *plan, clpsa_plan_desc *out);

/* Enqueues the attention on `queue` (NULL: the context's queue) after the wait list, and
 * returns the event of its last command in *event when event is not NULL (the caller then
 * releases it). Never blocks, never allocates device memory. Buffers are checked against the
 * plan (context, size) before anything is enqueued; on failure nothing is enqueued and the
 * output is not touched. */
CLPSA_API clpsa_status clpsa_plan_run(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                      cl_mem v, cl_mem out, cl_uint num_events,
                                      const cl_event *wait_list, cl_event *event);

/* Minimum buffer sizes in bytes for the plan's tensors. */
typedef struct clpsa_buffer_sizes {
    size_t q, k, v, out;
} clpsa_buffer_sizes;
CLPSA_API clpsa_status clpsa_plan_buffer_sizes(const clpsa_plan *plan, clpsa_buffer_sizes *out);

/* Where the plan's kernel parameters (tile sizes, work-group sizes) came from, and what they
 * are, e.g. "built-in defaults for CPU devices: attend ATT_M=32 TILE_N=32 ...". */
CLPSA_API const char *clpsa_plan_parameter_source(const clpsa_plan *plan);

/* The kernel variant that runs a family ("dense", "attend", "estimate") of this plan: e.g.
 * "portable", "portable-staged", "nvidia-mma"; NULL when the plan has no such kernel (the
 * dense family of a PSA plan, the estimate of an antidiagonal one). Matrix-unit variants
 * ("nvidia-mma") round attention probabilities to the 16-bit storage type before P.V, as
 * flash attention on tensor cores does: their outputs carry that rounding besides the
 * output type's. */
CLPSA_API const char *clpsa_plan_kernel_variant(const clpsa_plan *plan, const char *family);

/* Floating-point operations of dense attention on the plan's shapes: 4·B·Hq·Nq·Nk·D without
 * a mask, the visible pairs only when causal. For PSA and binary plans this is the dense
 * equivalent: the work a run does is this times the density (clpsa_plan_read_stats). */
CLPSA_API double clpsa_plan_flops(const clpsa_plan *plan);

/* ---- PSA: supplied inputs and read-back (not for CLPSA_METHOD_DENSE) ----
 * Level maps M are int8 [B, Hq, nq, nk] with values in {0, 1, 2, 4, 8}; scores S are float
 * [B, Hq, nq, nk], finite, non-negative, each row with a positive sum; nq = ceil(Nq / bm),
 * nk = ceil(Nk / bn). */
typedef struct clpsa_block_grid {
    int block_q, block_k;   /* bm, bn */
    int blocks_q, blocks_k; /* nq, nk */
    size_t count;           /* B * Hq * nq * nk */
} clpsa_block_grid;
CLPSA_API clpsa_status clpsa_plan_block_grid(const clpsa_plan *plan, clpsa_block_grid *out);

/* Later runs use these scores (skipping the estimate) or this level map (skipping estimate and
 * assignment). The host array is checked and copied (blocking) before the call returns;
 * a rejected array leaves the plan as it was. NULL returns to estimating. */
CLPSA_API clpsa_status clpsa_plan_set_scores(clpsa_plan *plan, const float *scores);
CLPSA_API clpsa_status clpsa_plan_set_levels(clpsa_plan *plan, const int8_t *levels);

/* Read back, blocking, what the last run used. */
CLPSA_API clpsa_status clpsa_plan_read_levels(clpsa_plan *plan, int8_t *levels);
CLPSA_API clpsa_status clpsa_plan_read_scores(clpsa_plan *plan, float *scores);

typedef struct clpsa_level_stats {
    double density;        /* mean over rows of sum_j (1/f_j) / nk (SPEC.md section 8) */
    uint64_t histogram[5]; /* blocks at level 0, 1, 2, 4, 8 */
} clpsa_level_stats;
CLPSA_API clpsa_status clpsa_plan_read_stats(clpsa_plan *plan, clpsa_level_stats *out);
/* The same statistics of a level map on the host. */
CLPSA_API clpsa_status clpsa_level_stats_compute(const int8_t *levels, size_t rows, int blocks_k,
                                                 clpsa_level_stats *out);

/* Per-stage device time (ms) of the last run, from profiling events when the queue has
 * profiling enabled; zeros otherwise. Blocks until the last run finished. */
typedef struct clpsa_stage_times {
    double pool_ms, estimate_ms, assign_ms, attend_ms, total_ms;
} clpsa_stage_times;
CLPSA_API clpsa_status clpsa_plan_read_stage_times(clpsa_plan *plan, clpsa_stage_times *out);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_H */
