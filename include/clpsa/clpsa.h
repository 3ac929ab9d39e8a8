/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa.h
 * @brief clpsa: Pyramid Sparse Attention with OpenCL kernels compiled at run time.
 *
 * What the library computes is described in docs/algorithm.md; section marks such as §6 below
 * refer to it. How to build, install and link it is in docs/api.md.
 *
 * @par Conventions
 * - Opaque handles with create/destroy pairs; destroy(NULL) is a no-op.
 * - Every fallible call returns a #clpsa_status; results come through the last pointer
 *   argument. On failure an output handle is set to NULL and nothing is enqueued.
 * - Option structs are filled with defaults by their *_init function; a zero field means
 *   "default", so the structs can grow without breaking callers that use the init functions.
 * - clpsa_context_last_error() holds the detail of the last failure on a context: the value,
 *   the rule it broke, the raw OpenCL error and the build log where there is one. Failures
 *   with no context to hold them, such as a failed clpsa_context_create(), are recorded for
 *   the calling thread and read with clpsa_context_last_error(NULL).
 * - The library never prints to stdout; log lines go to a callback (default: stderr, level
 *   from CLPSA_LOG = error|warn|info|debug|trace, default warn).
 *
 * @par Ownership and lifetimes
 * The library owns what it creates and returns as handles (contexts, plans) until their
 * destroy function. OpenCL objects the caller passes in stay the caller's: buffers, queues
 * and events given to a call are never released by clpsa. A wrapped cl_context and queue
 * (clpsa_context_desc) are retained by clpsa_context_create() and released by
 * clpsa_context_destroy(), so the caller may drop its own references at any time. A plan
 * belongs to the context it was created on and must be destroyed before it. Strings returned
 * by the library belong to it; each function says how long they stay valid.
 *
 * @par Threads
 * Functions that take no context or plan may be called from any thread at any time. A context
 * may serve several threads at once: what its plans share (the program cache and its
 * statistics, the parameter overrides) is locked, and clpsa_context_last_error() gives each
 * thread its own last failure. A plan is used by one thread at a time (its runs, read-backs
 * and supply calls); different plans, of one context or of several, may be used by different
 * threads at once. "Context's thread" below means that rule. Destroy a plan or a context
 * only when no other thread uses it. clpsa_context_set_params() and clpsa_tune() change what
 * later plan creations on every thread get. The log callback runs on the thread of the call
 * that logs, so on several threads at once when they share a context.
 *
 * @par ABI policy
 * Until version 1.0 the ABI may change between minor versions (the shared library's SONAME
 * follows); the numeric values of #clpsa_status, #clpsa_dtype and the other enumerations are
 * pinned and never reused. Only functions marked CLPSA_API are exported.
 */
#ifndef CLPSA_CLPSA_H
#define CLPSA_CLPSA_H

/** The OpenCL API version is the caller's choice: a CL_TARGET_OPENCL_VERSION defined before
 * this header (or before an earlier CL/cl.h) is kept, so clpsa.h may be included before or
 * after CL/cl.h. Otherwise 300 is set, the default of the Khronos headers themselves, so
 * including clpsa.h first hides no OpenCL 2.x/3.0 declaration and silences their "not defined"
 * message. clpsa's API uses only OpenCL 1.2 types. */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#ifndef CLPSA_API
#if defined(__GNUC__) || defined(__clang__)
/** Marks the functions the shared library exports; everything else in it is hidden. */
#define CLPSA_API __attribute__((visibility("default")))
#else
#define CLPSA_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Major version of these headers. */
#define CLPSA_VERSION_MAJOR 0
/** Minor version of these headers. */
#define CLPSA_VERSION_MINOR 1
/** Patch version of these headers. */
#define CLPSA_VERSION_PATCH 0
/** The headers' version as one number, MAJOR * 10000 + MINOR * 100 + PATCH. */
#define CLPSA_VERSION_NUMBER                                                                       \
    (CLPSA_VERSION_MAJOR * 10000 + CLPSA_VERSION_MINOR * 100 + CLPSA_VERSION_PATCH)

/**
 * @brief "MAJOR.MINOR.PATCH" of the library actually linked (compare with the macros to detect
 * a header/library mismatch).
 *
 * The string is static. Any thread; does not block; cannot fail.
 */
CLPSA_API const char *clpsa_version(void);
/** @brief #CLPSA_VERSION_NUMBER of the library actually linked. Any thread; cannot fail. */
CLPSA_API int clpsa_version_number(void);

/**
 * @brief The status codes, defined once: X(name, value, sentence).
 *
 * Expanded into #clpsa_status and into the tables of clpsa_status_name() and
 * clpsa_status_string().
 */
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

/** @brief Result of every fallible call; the sentence of each value is in #CLPSA_STATUS_LIST. */
typedef enum clpsa_status {
/** Turns one entry of CLPSA_STATUS_LIST into an enumerator (defined only inside the enum). */
#define CLPSA_X_ENUM(name, value, sentence) name = value,
    CLPSA_STATUS_LIST(CLPSA_X_ENUM)
#undef CLPSA_X_ENUM
} clpsa_status;

/**
 * @brief The status's name, e.g. "CLPSA_ERROR_INVALID_SHAPE"; "CLPSA_UNKNOWN_STATUS" for a value
 * not in the list. The string is static. Any thread; cannot fail.
 */
CLPSA_API const char *clpsa_status_name(clpsa_status status);
/**
 * @brief The status's sentence, e.g. "a tensor size is zero, negative or inconsistent";
 * "unknown status" for a value not in the list. The string is static. Any thread.
 */
CLPSA_API const char *clpsa_status_string(clpsa_status status);

/**
 * @brief The name of an OpenCL error code: "CL_OUT_OF_RESOURCES" for -5, and so on; "unknown
 * OpenCL error" for codes it does not know.
 *
 * For reporting raw OpenCL errors the way last_error quotes them. The string is static. Any
 * thread; cannot fail.
 */
CLPSA_API const char *clpsa_opencl_error_name(cl_int error);

/** @brief Storage types of tensors. */
typedef enum clpsa_dtype {
    CLPSA_DTYPE_DEFAULT = 0, /**< fp32 for inputs; the input type for the output */
    CLPSA_DTYPE_FP32 = 1,    /**< IEEE binary32 */
    CLPSA_DTYPE_FP16 = 2,    /**< IEEE binary16, stored as 16-bit words */
    CLPSA_DTYPE_BF16 = 3,    /**< bfloat16, stored as 16-bit words */
} clpsa_dtype;

/** @brief Bytes per element (4 or 2); 0 for an unknown type. Any thread; cannot fail. */
CLPSA_API size_t clpsa_dtype_size(clpsa_dtype dtype);
/** @brief "fp32", "fp16", "bf16" (static strings); NULL for an unknown type. Any thread. */
CLPSA_API const char *clpsa_dtype_name(clpsa_dtype dtype);
/**
 * @brief Converts count floats at src into dtype elements at dst (host memory, caller's), with
 * round-to-nearest-even, the rounding the kernels use.
 *
 * Any thread; blocks only for the conversion itself.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when src or dst is NULL (and count > 0);
 *         CLPSA_ERROR_INVALID_VALUE for an unknown dtype.
 */
CLPSA_API clpsa_status clpsa_convert_from_float(clpsa_dtype dtype, const float *src, void *dst,
                                                size_t count);
/**
 * @brief Converts count dtype elements at src into floats at dst (exact for every type).
 *
 * Any thread; blocks only for the conversion itself.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when src or dst is NULL (and count > 0);
 *         CLPSA_ERROR_INVALID_VALUE for an unknown dtype.
 */
CLPSA_API clpsa_status clpsa_convert_to_float(clpsa_dtype dtype, const void *src, float *dst,
                                              size_t count);

/** @brief Severity of a log line, and the threshold of what is logged. */
typedef enum clpsa_log_level {
    CLPSA_LOG_OFF = 0,   /**< nothing (as a threshold) */
    CLPSA_LOG_ERROR = 1, /**< a call failed */
    CLPSA_LOG_WARN = 2,  /**< something was ignored or fell back (a stale cache file, ...) */
    CLPSA_LOG_INFO = 3,  /**< device choice, kernel compilations, parameter sources */
    CLPSA_LOG_DEBUG = 4, /**< every failure's detail, cache decisions */
    CLPSA_LOG_TRACE = 5, /**< everything */
} clpsa_log_level;

/**
 * @brief Receives log lines: user is clpsa_context_desc.log_user, message a NUL-terminated line
 * without newline, valid only during the call. Called on the thread of the logging call; it
 * must not call back into the same context.
 */
typedef void (*clpsa_log_fn)(void *user, clpsa_log_level level, const char *message);

/* ---- Context ---- */
/** @brief One device with its OpenCL context, logger and caches. Opaque. */
typedef struct clpsa_context clpsa_context;

/** @brief What clpsa_context_create() wraps or picks; fill with clpsa_context_desc_init(). */
typedef struct clpsa_context_desc {
    /** Either cl_context, device and queue all NULL (clpsa picks a device, creates its own
     * context and an in-order queue with profiling), or cl_context and device set: clpsa wraps
     * them, retaining the context (and the queue, if given) until clpsa_context_destroy(). */
    cl_context cl_context;
    cl_device_id device; /**< the device to use; one of cl_context's devices when wrapping */
    /** Optional when wrapping: the queue runs use when clpsa_plan_run() is given none. */
    cl_command_queue queue;
    /** Device choice when clpsa picks: an index (as listed by `clpsa devices`) or a substring of
     * the platform or device name. NULL: $CLPSA_DEVICE, else the first GPU, else the first
     * device. Read during clpsa_context_create() only. */
    const char *device_spec;
    clpsa_log_fn log;          /**< NULL: lines go to stderr */
    void *log_user;            /**< passed to log */
    clpsa_log_level log_level; /**< 0 (OFF is not reachable here): $CLPSA_LOG, else WARN */
    /** On-disk cache of compiled kernels and tuned parameters. NULL: $CLPSA_CACHE_DIR, else
     * $XDG_CACHE_HOME/clpsa, else ~/.cache/clpsa. Copied at creation. */
    const char *cache_dir;
    int disable_disk_cache; /**< non-zero: keep compiled programs in memory only */
} clpsa_context_desc;

/** @brief Sets every field of desc to its default (all zero). NULL is ignored. Any thread. */
CLPSA_API void clpsa_context_desc_init(clpsa_context_desc *desc);
/**
 * @brief Creates a context from desc (NULL: all defaults) and returns it in *out.
 *
 * Wrapping: the caller's cl_context and queue are retained (clRetainContext,
 * clRetainCommandQueue) and released by clpsa_context_destroy(); the caller keeps its own
 * references and may release them at any time. When clpsa picks the device it owns the context
 * and queue it creates. desc and its strings are not used after the call.
 *
 * Any thread (a new context is not shared yet). Blocks while it queries the device and, when it
 * picks one, while it creates the OpenCL context and queue.
 *
 * On failure *out is NULL, and the detail is readable on the calling thread with
 * clpsa_context_last_error(NULL) until the thread's next failure without a context.
 * @return CLPSA_OK;
 *   CLPSA_ERROR_NULL_ARGUMENT when out is NULL, when only one of cl_context and device is
 *   set, or when a queue is given without them;
 *   CLPSA_ERROR_WRONG_CONTEXT when device is not a device of cl_context or queue belongs to
 *   another context;
 *   CLPSA_ERROR_DEVICE_NOT_FOUND when device_spec (or $CLPSA_DEVICE) matches no device, or
 *   there is no OpenCL device at all;
 *   CLPSA_ERROR_OUT_OF_MEMORY when the host or the driver runs out of memory;
 *   CLPSA_ERROR_OPENCL when an OpenCL query or creation fails otherwise.
 */
CLPSA_API clpsa_status clpsa_context_create(const clpsa_context_desc *desc, clpsa_context **out);
/**
 * @brief Destroys a context: releases its compiled programs and its references to the OpenCL
 * context and queue (wrapped or its own). NULL is a no-op.
 *
 * Plans of the context must have been destroyed first. Context's thread. Does not wait for
 * enqueued work: commands already enqueued keep their own references in the driver.
 */
CLPSA_API void clpsa_context_destroy(clpsa_context *ctx);

/**
 * @brief Detail of the calling thread's last failure on ctx ("" if none), or with ctx NULL,
 * of its last failure that had no context (above all a failed clpsa_context_create()).
 *
 * Threads sharing ctx each read their own record. The string belongs to the library and stays
 * valid until the thread's next call on ctx (with NULL: until the thread's next context
 * creation or context-less failure). Any thread. Cannot fail.
 */
CLPSA_API const char *clpsa_context_last_error(const clpsa_context *ctx);
/** @brief The context's cl_context (the wrapped one, or its own); NULL for NULL. Not retained
 * for the caller: valid while ctx lives. Any thread. */
CLPSA_API cl_context clpsa_context_cl_context(const clpsa_context *ctx);
/** @brief The context's device; NULL for NULL. Valid while ctx lives. Any thread. */
CLPSA_API cl_device_id clpsa_context_device(const clpsa_context *ctx);
/** @brief The queue given at creation or created by clpsa (NULL when wrapping without a queue,
 * or for NULL). Not retained for the caller: valid while ctx lives. Any thread. */
CLPSA_API cl_command_queue clpsa_context_queue(const clpsa_context *ctx);
/** @brief Human-readable "platform / device (driver)" of the context's device ("" for NULL).
 * Valid while ctx lives. Any thread. */
CLPSA_API const char *clpsa_context_device_name(const clpsa_context *ctx);
/** @brief Why this device was chosen: "wrapped by caller", "CLPSA_DEVICE=...", "first GPU", ...
 * ("" for NULL). Valid while ctx lives. Any thread. */
CLPSA_API const char *clpsa_context_device_reason(const clpsa_context *ctx);

/**
 * @brief Allocates a read-write device buffer of bytes in the context and returns it in *out.
 *
 * The size is checked against the device's limits first, so an impossible request fails with
 * the sizes in last_error instead of a driver error later. The buffer is the caller's: release
 * it with clReleaseMemObject(). Context's thread; does not block on the device.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when ctx or out is NULL;
 *         CLPSA_ERROR_INVALID_VALUE when bytes is 0; CLPSA_ERROR_OUT_OF_MEMORY when bytes
 *         exceeds the device's largest allocation or global memory, or the driver runs out;
 *         CLPSA_ERROR_OPENCL when clCreateBuffer fails otherwise.
 */
CLPSA_API clpsa_status clpsa_context_alloc(clpsa_context *ctx, size_t bytes, cl_mem *out);

/** @brief Counters of the program cache (for tests and diagnostics). */
typedef struct clpsa_cache_stats {
    uint64_t memory_hits;  /**< program found in the in-memory cache */
    uint64_t disk_hits;    /**< binary loaded from the on-disk cache */
    uint64_t disk_rejects; /**< on-disk file ignored: corrupt, truncated, stale or mismatched */
    uint64_t builds;       /**< programs compiled from source */
} clpsa_cache_stats;
/** @brief Copies the context's cache counters into *out (all zero for a NULL ctx; a NULL out is
 * ignored). Context's thread; cannot fail. */
CLPSA_API void clpsa_context_cache_stats(const clpsa_context *ctx, clpsa_cache_stats *out);
/** @brief The directory of the on-disk program cache ("" when disabled, or for NULL). Valid
 * while ctx lives. Any thread. */
CLPSA_API const char *clpsa_context_cache_dir(const clpsa_context *ctx);

/* ---- Plans ---- */
/** @brief Element strides of a 4-D tensor [batch, head, seq, dim]. dim must be 1. All zero
 * means contiguous [B, H, N, D]. */
typedef struct clpsa_strides {
    int64_t batch; /**< elements between consecutive batch entries */
    int64_t head;  /**< elements between consecutive heads */
    int64_t seq;   /**< elements between consecutive tokens */
    int64_t dim;   /**< must be 1: the head dimension is contiguous */
} clpsa_strides;

/** @brief Contiguous [B, H, N, D] strides for a tensor of heads, seq tokens, dim. Any thread. */
CLPSA_API clpsa_strides clpsa_strides_bhnd(int64_t heads, int64_t seq, int64_t dim);
/** @brief Contiguous [B, N, H, D] strides (the layout a fused QKV projection writes). Any
 * thread. */
CLPSA_API clpsa_strides clpsa_strides_bnhd(int64_t heads, int64_t seq, int64_t dim);

/** @brief What a plan computes. */
typedef enum clpsa_method {
    CLPSA_METHOD_PSA = 1,    /**< Pyramid Sparse Attention (docs/algorithm.md): the default */
    CLPSA_METHOD_DENSE = 2,  /**< exact attention (flash-style tiled online softmax); plans of
                                at most 16 query rows (decode) split the keys over work-groups
                                and merge the partial softmax states, unless dense.VARIANT is
                                overridden (clpsa_tuning.h) */
    CLPSA_METHOD_BINARY = 3, /**< block-sparse baseline: top ceil(binary_density * nk) blocks of
                                each row by S at level 1, the rest skipped; causal: among the
                                blocks the row can see (§8) */
} clpsa_method;

/** @brief Level assignment modes (§6). */
typedef enum clpsa_mode {
    CLPSA_MODE_THRESHOLD = 1, /**< cumulative-score thresholds; the default, as the public
                                 release */
    CLPSA_MODE_QUANTILE = 2,  /**< fixed shares of the sorted blocks */
    CLPSA_MODE_ENERGY = 3,    /**< each block by its cumulative score (the paper's rule) */
    CLPSA_MODE_BUDGET = 4,    /**< a target density (clpsa_plan_desc.density): every row spends
                                 density * nk block-units where a measurement on sampled rows
                                 says pooling loses the least attention mass (§6) */
} clpsa_mode;

/** @brief Block importance estimates (§5). */
typedef enum clpsa_estimator {
    CLPSA_ESTIMATOR_SAMPLED = 1,      /**< generation path: sampled rows and keys (default) */
    CLPSA_ESTIMATOR_ANTIDIAGONAL = 2, /**< understanding path: strided antidiagonal sums */
} clpsa_estimator;

/** Sentinel for options whose 0 means "default" but that may also be switched off. */
#define CLPSA_OFF (-1)

/** @brief Token orderings of a video grid (frames x height x width, tokens given in raster
 * order: frame, row, column), applied inside the kernels so PSA's blocks hold space-time
 * neighbours. Text tokens, if any, follow the video tokens and stay at the end. */
typedef enum clpsa_ordering {
    CLPSA_ORDER_RASTER = 1,  /**< identity */
    CLPSA_ORDER_HILBERT = 2, /**< generalised 3-D Hilbert curve, any T x H x W */
    CLPSA_ORDER_TILES = 3,   /**< tt x th x tw cubes in raster order of cubes, raster inside */
} clpsa_ordering;

/**
 * @brief Writes perm[i] = the token (raster index) at position i of the reordered sequence, for
 * frames * height * width video tokens followed by text_tokens text tokens (which map to
 * themselves).
 *
 * tile is {tt, th, tw} for #CLPSA_ORDER_TILES (ignored otherwise; NULL or all zero: 2, 4, 4).
 * perm is the caller's, frames * height * width + text_tokens entries, untouched on failure.
 * Any thread; host only.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when perm is NULL;
 *         CLPSA_ERROR_INVALID_SHAPE for a grid size below 1, negative text_tokens, or more
 *         than INT32_MAX tokens;
 *         CLPSA_ERROR_INVALID_VALUE for an unknown ordering or a tile size below 1.
 */
CLPSA_API clpsa_status clpsa_ordering_permutation(clpsa_ordering ordering, int frames, int height,
                                                  int width, const int *tile, int text_tokens,
                                                  int32_t *perm);

/** @brief Shapes and options of a plan; fill with clpsa_plan_desc_init(), then set fields. */
typedef struct clpsa_plan_desc {
    clpsa_method method;       /**< 0: PSA */
    int batch;                 /**< B >= 1 */
    int heads_q;               /**< Hq >= 1, a multiple of heads_kv */
    int heads_kv;              /**< Hkv >= 1; 0: heads_q */
    int seq_q;                 /**< Nq >= 1 */
    int seq_k;                 /**< Nk >= 1; 0: seq_q (with kv_capacity: the first runs'
                                  length, clpsa_plan_set_kv_length() changes it) */
    int head_dim;              /**< D: a multiple of 8 from 8 to 256 (32, 64, 96, 128, 256...) */
    clpsa_dtype dtype;         /**< storage of Q, K, V; 0: fp32 */
    clpsa_dtype out_dtype;     /**< storage of the output; 0: dtype */
    clpsa_strides q_strides;   /**< element strides of Q; all 0: contiguous [B,H,N,D] */
    clpsa_strides k_strides;   /**< of K */
    clpsa_strides v_strides;   /**< of V */
    clpsa_strides out_strides; /**< of the output */
    float scale;               /**< 0: 1/sqrt(D) */
    int causal;                /**< non-zero: bottom-right aligned causal mask (§4) */

    /* PSA options (ignored by CLPSA_METHOD_DENSE). A preset is applied first; every field set
     * explicitly (non-zero) then overrides it. */
    const char *preset;  /**< NULL or a name of §7, e.g. "wan21-1.3b"; read at creation only */
    int block_q;         /**< bm, 16..256; 0: 128 (or the preset's) */
    int block_k;         /**< bn, 16..256 and a multiple of 8; 0: 64 (or the preset's) */
    float thresholds[4]; /**< tau1, tau2, tau4, tau8, non-decreasing in [0, 1];
                            all 0: 0.5/0.6/0.7/0.8 (or the preset's) */
    clpsa_mode mode;     /**< 0: threshold (or the preset's) */
    int align_tile;      /**< 0: 32; CLPSA_OFF: no alignment (§6) */
    float min_full;      /**< fraction of blocks kept at level 1 at least (threshold
                            mode); 0: 0.06; CLPSA_OFF: none */
    int text_tokens;     /**< text tokens at the end of the sequence: the key blocks holding
                            them, and every key block the query blocks holding the last
                            text_tokens query rows can see, are forced to level 1 (§6; not
                            in CLPSA_METHOD_BINARY) */
    int similarity_cap;  /**< non-zero: cap levels by block self-similarity (§6) */
    float similarity_thresholds[3]; /**< t2, t4, t8; all 0: 0.7/0.65/0.6 (or the preset's) */
    clpsa_estimator estimator;      /**< 0: sampled (antidiagonal for the understanding preset) */
    int sample_q;                   /**< sampled rows; 0: bm/4 (budget: bm/16); = bm: exact */
    int sample_k;                   /**< sampled keys per key block; 0: bn/4; = bn: exact */
    int antidiagonal_stride;        /**< 0: 8; bm and bn must be multiples of it */
    uint64_t seed;                  /**< offsets of the sampled estimate (§5) */
    float binary_density;           /**< CLPSA_METHOD_BINARY: fraction of blocks kept, (0, 1] */

    /* Video token ordering (PSA and BINARY; dense attention does not depend on it). With a
     * grid, seq_q = seq_k = frames * height * width + text_tokens. */
    int grid[3];             /**< frames, height, width; all 0: no grid */
    clpsa_ordering ordering; /**< 0: raster */
    int tile[3];             /**< tt, th, tw for CLPSA_ORDER_TILES; all 0: 2, 4, 4 */

    /* Head sharding (clpsa_multi.h, clpsa_mpi.h): the plan's heads are query heads
     * [shard_head_first, shard_head_first + heads_q) of a model with shard_heads_q query heads.
     * Only the sampled estimate's offsets depend on it (§5): a shard draws the offsets the whole
     * model's plan draws for the same heads, so sharded results equal unsharded ones. */
    int shard_head_first; /**< >= 0; 0 with shard_heads_q 0: not a shard */
    int shard_heads_q;    /**< >= shard_head_first + heads_q; 0: heads_q (not a shard) */

    /* Budget mode (§6): the target density, the share of dense compute every row may spend
     * (level f costs 1/f of a block). Only with CLPSA_MODE_BUDGET, which needs the sampled
     * estimator's row offsets (sample_q; 0: bm/16) and takes no similarity cap, alignment or
     * min_full. */
    float density; /**< CLPSA_MODE_BUDGET: in [1/(8 nk), 1]; 0: 0.15 */
    /* Key/value cache (decode; CLPSA_METHOD_DENSE only). The K and V buffers hold kv_capacity
     * tokens (their default strides and clpsa_plan_buffer_sizes() follow it); a run reads the
     * first seq_k of them. clpsa_plan_set_kv_length() changes seq_k between runs, up to the
     * capacity, without rebuilding anything: the caller appends to its cache in place. */
    int kv_capacity; /**< >= seq_k; 0: seq_k (the key length is fixed) */
} clpsa_plan_desc;

/** @brief One attention shape with its options, kernels and scratch buffers. Opaque. */
typedef struct clpsa_plan clpsa_plan;

/** @brief Sets every field of desc to its default (zero, method PSA). NULL is ignored. Any
 * thread. */
CLPSA_API void clpsa_plan_desc_init(clpsa_plan_desc *desc);
/**
 * @brief Validates desc, compiles (or loads from the memory and disk caches) the kernels,
 * allocates the plan's scratch buffers and returns the plan in *out.
 *
 * The plan belongs to ctx and must be destroyed before it; desc is not used after the call.
 * Context's thread. Blocks while kernels compile (seconds on a cold cache, on CPU devices) and
 * while it uploads small tables; enqueues nothing on the caller's queues.
 * @return CLPSA_OK (on failure *out is NULL and last_error names the field and the rule);
 *   CLPSA_ERROR_NULL_ARGUMENT when ctx, desc or out is NULL;
 *   CLPSA_ERROR_INVALID_SHAPE for sizes below 1, heads_q not a multiple of heads_kv, a
 *   grid that does not match seq_q / seq_k, a head shard outside shard_heads_q, or a
 *   kv_capacity below seq_k;
 *   CLPSA_ERROR_INVALID_VALUE for an option outside its range (method, dtype, preset name,
 *   thresholds, block sizes, samples, densities, ordering, tile);
 *   CLPSA_ERROR_INVALID_STRIDES for negative, overlapping or non-unit-dim strides;
 *   CLPSA_ERROR_UNSUPPORTED for a head_dim or combination the kernels do not support (a
 *   kv_capacity other than seq_k on a PSA or binary plan), or kernel parameters the device
 *   cannot run;
 *   CLPSA_ERROR_BUILD_FAILED when a kernel does not compile (the build log is in last_error);
 *   CLPSA_ERROR_IO when $CLPSA_KERNEL_DIR is set and a kernel file cannot be read;
 *   CLPSA_ERROR_OUT_OF_MEMORY when host or device memory runs out;
 *   CLPSA_ERROR_OPENCL when another OpenCL call fails.
 */
CLPSA_API clpsa_status clpsa_plan_create(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                         clpsa_plan **out);
/**
 * @brief Destroys a plan and releases its kernels, buffers and events. NULL is a no-op.
 *
 * Context's thread. Does not wait: commands already enqueued keep their buffers alive in the
 * driver, but the caller must not read back from the plan after destroying it.
 */
CLPSA_API void clpsa_plan_destroy(clpsa_plan *plan);
/**
 * @brief Copies the plan's description into *out with every default resolved (block sizes,
 * thresholds, mode, strides, scale, ...). out->preset is the pointer given at creation: the
 * plan does not copy the string, so it is valid only while the caller's string is.
 *
 * Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or out is NULL.
 */
CLPSA_API clpsa_status clpsa_plan_get_desc(const clpsa_plan *plan, clpsa_plan_desc *out);

/**
 * @brief Enqueues the attention out = attention(q, k, v) on queue (NULL: the context's queue)
 * after the wait list, and returns the event of its last command in *event when event is not
 * NULL.
 *
 * Never blocks, never allocates device memory. Buffers are checked against the plan (context,
 * size, no aliasing of the output with an input) before anything is enqueued; on failure
 * the output is not touched: a rejected argument enqueues nothing, and a command the driver
 * refuses may leave the plan's earlier stages enqueued (on its own scratch buffers only).
 * q, k, v, out, queue and the wait list stay the caller's; the returned event is the
 * caller's to release. The buffers must stay valid until the run completes. A later run,
 * read-back or supply call on the same plan orders itself after this run, or after what a
 * failed run left enqueued, on any queue. Context's thread.
 *
 * NaN and infinity in q, k, v propagate as IEEE arithmetic says, as in PyTorch's
 * scaled_dot_product_attention (docs/api.md, "NaN and infinity"): a NaN in a query row, or in
 * the key of a token the row attends, makes that output row NaN; a NaN or infinite value of
 * an attended token makes that column NaN or infinite; a +inf logit makes the row NaN
 * (inf - inf), a -inf logit weighs 0. Tokens a row does not attend (causal mask, level 0,
 * past the sequence) never reach it. A row that attends nothing, or whose every logit is -inf,
 * is zeros. In the sparse methods a non-finite logit met by the estimate makes that row of
 * S NaN and gives that query block level 1 for every key block (dense for that block only).
 * Nothing else is validated or rewritten: the run's cost does not depend on the values.
 * @return CLPSA_OK;
 *   CLPSA_ERROR_NULL_ARGUMENT when plan or a buffer is NULL, when there is no queue (none
 *   given and none in the context), or num_events > 0 with a NULL wait_list;
 *   CLPSA_ERROR_INVALID_VALUE when out is also an input, a handle is not a valid buffer,
 *   or wait_list is set with num_events = 0;
 *   CLPSA_ERROR_WRONG_CONTEXT when a buffer or the queue belongs to another cl_context;
 *   CLPSA_ERROR_BUFFER_TOO_SMALL when a buffer is smaller than its tensor
 *   (clpsa_plan_buffer_sizes());
 *   CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when the driver refuses a command.
 */
CLPSA_API clpsa_status clpsa_plan_run(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                      cl_mem v, cl_mem out, cl_uint num_events,
                                      const cl_event *wait_list, cl_event *event);

/**
 * @brief Sets the key length seq_k (Nk) that later runs read from the K/V cache: keys
 * [0, seq_k) of buffers that hold kv_capacity tokens. For decoding: append the new tokens' keys
 * and values to the cache in place, set the new length, run.
 *
 * Nothing is rebuilt or reallocated: the length is a run-time argument of the kernels, read when
 * clpsa_plan_run() enqueues (runs already enqueued keep the length they were enqueued with).
 * Causal plans see the query rows as the last seq_q positions of the seq_k tokens (§4); rows
 * left of the first key (seq_k < seq_q) see nothing and are zeros. clpsa_plan_get_desc() and
 * clpsa_plan_flops() report the current length. Dense plans only (a sparse plan's block grid
 * depends on Nk). A rejected length leaves the plan as it was. Context's thread; does not
 * block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan is NULL;
 *         CLPSA_ERROR_INVALID_SHAPE when seq_k is below 1 or above the plan's kv_capacity;
 *         CLPSA_ERROR_UNSUPPORTED for a PSA or binary plan.
 */
CLPSA_API clpsa_status clpsa_plan_set_kv_length(clpsa_plan *plan, int seq_k);

/** @brief Minimum buffer sizes in bytes for the plan's tensors (their strides and dtypes). */
typedef struct clpsa_buffer_sizes {
    size_t q;   /**< bytes of Q */
    size_t k;   /**< bytes of K (kv_capacity tokens) */
    size_t v;   /**< bytes of V (kv_capacity tokens) */
    size_t out; /**< bytes of the output */
} clpsa_buffer_sizes;
/**
 * @brief The smallest buffers clpsa_plan_run() accepts for this plan, in *out.
 *
 * Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or out is NULL.
 */
CLPSA_API clpsa_status clpsa_plan_buffer_sizes(const clpsa_plan *plan, clpsa_buffer_sizes *out);

/**
 * @brief Where the plan's kernel parameters (tile sizes, work-group sizes) came from, and what
 * they are, e.g. "attend.ATT_M=32 (built-in table (architecture)), ...". "" for NULL.
 *
 * Valid while the plan lives. Context's thread.
 */
CLPSA_API const char *clpsa_plan_parameter_source(const clpsa_plan *plan);

/**
 * @brief The kernel variant that runs a family ("dense", "attend", "estimate", "budget": budget
 * mode's measurement, "decode") of this plan: e.g. "portable", "portable-staged", "nvidia-mma";
 * NULL when the plan has no such kernel (the dense family of a PSA plan or of a dense plan that
 * decodes, the decode family of a dense plan of more than 16 query rows, the estimate of an
 * antidiagonal one), for an unknown family, or for NULL arguments.
 *
 * Matrix-unit variants ("nvidia-mma") round attention probabilities to the 16-bit storage type
 * before P.V, as flash attention on tensor cores does: their outputs carry that rounding
 * besides the output type's. The string is static. Context's thread; cannot fail.
 */
CLPSA_API const char *clpsa_plan_kernel_variant(const clpsa_plan *plan, const char *family);

/**
 * @brief Floating-point operations of dense attention on the plan's shapes: 4·B·Hq·Nq·Nk·D
 * without a mask, the visible pairs only when causal; 0 for NULL.
 *
 * For PSA and binary plans this is the dense equivalent: the work a run does is this times the
 * density (clpsa_plan_read_stats()). Context's thread; cannot fail.
 */
CLPSA_API double clpsa_plan_flops(const clpsa_plan *plan);

/* ---- PSA: supplied inputs and read-back (not for CLPSA_METHOD_DENSE) ----
 * Level maps M are int8 [B, Hq, nq, nk] with values in {0, 1, 2, 4, 8}; scores S are float
 * [B, Hq, nq, nk], finite, non-negative, each row with a positive sum; nq = ceil(Nq / bm),
 * nk = ceil(Nk / bn). */
/** @brief The block grid of a sparse plan: block sizes, block counts, cells of M and S. */
typedef struct clpsa_block_grid {
    int block_q;  /**< bm */
    int block_k;  /**< bn */
    int blocks_q; /**< nq = ceil(Nq / bm) */
    int blocks_k; /**< nk = ceil(Nk / bn) */
    size_t count; /**< B * Hq * nq * nk: entries of a level map or score array */
} clpsa_block_grid;
/**
 * @brief The plan's block grid, in *out (zeroed on failure).
 *
 * Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or out is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for a dense plan (it has no blocks).
 */
CLPSA_API clpsa_status clpsa_plan_block_grid(const clpsa_plan *plan, clpsa_block_grid *out);

/**
 * @brief Later runs use these scores S instead of estimating them (§8); NULL returns to
 * estimating.
 *
 * The host array (count entries of clpsa_plan_block_grid()) is checked and copied before the
 * call returns: the caller keeps it. Blocks until the copy to the device finished (after the
 * plan's last run). A rejected array leaves the plan as it was. Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for a dense plan, a budget-mode plan (it measures its
 *         own scores; NULL is accepted), or a value that is negative, not finite, or a row
 *         without a positive sum (last_error names the entry);
 *         CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when the copy fails.
 */
CLPSA_API clpsa_status clpsa_plan_set_scores(clpsa_plan *plan, const float *scores);
/**
 * @brief Later runs use this level map M, skipping estimate and assignment; NULL returns to
 * estimating.
 *
 * Same copying, blocking and threading as clpsa_plan_set_scores().
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for a dense plan or a level outside {0, 1, 2, 4, 8};
 *         CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when the copy fails.
 */
CLPSA_API clpsa_status clpsa_plan_set_levels(clpsa_plan *plan, const int8_t *levels);

/**
 * @brief Reads the level map the last run used into levels (count int8 of
 * clpsa_plan_block_grid(), the caller's).
 *
 * Blocks until the last run finished and the copy is done. Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or levels is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for a dense plan, before the plan's first run, after a
 *         run that failed once it had enqueued commands, or when scores or levels were
 *         supplied after it (run again first);
 *         CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when the read fails.
 */
CLPSA_API clpsa_status clpsa_plan_read_levels(clpsa_plan *plan, int8_t *levels);
/**
 * @brief Reads the block scores S the last run used (estimated or supplied) into scores (count
 * floats, the caller's).
 *
 * Blocks like clpsa_plan_read_levels(). Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or scores is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for a dense plan, before the first run, after a run that
 *         failed once it had enqueued commands, when scores or levels were supplied after
 *         it, or when the last run used a supplied level map (no scores were computed);
 *         CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when the read fails.
 */
CLPSA_API clpsa_status clpsa_plan_read_scores(clpsa_plan *plan, float *scores);

/** @brief Density and level histogram of a level map (§8). */
typedef struct clpsa_level_stats {
    double density;        /**< mean over rows of sum_j (1/f_j) / nk (§8); a computed causal
                              map holds level 0 on key blocks wholly in a row's future (never
                              visited), so they do not count; a supplied map counts as
                              given */
    uint64_t histogram[5]; /**< blocks at level 0, 1, 2, 4, 8 */
} clpsa_level_stats;
/**
 * @brief Density and histogram of the level map the last run used, in *out.
 *
 * Blocks like clpsa_plan_read_levels(), whose statuses it returns, and also
 * CLPSA_ERROR_OUT_OF_MEMORY when the host copy cannot be allocated. Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT; CLPSA_ERROR_INVALID_VALUE;
 *         CLPSA_ERROR_OUT_OF_MEMORY; CLPSA_ERROR_OPENCL.
 */
CLPSA_API clpsa_status clpsa_plan_read_stats(clpsa_plan *plan, clpsa_level_stats *out);
/**
 * @brief The same statistics of a host level map of rows x blocks_k entries, in *out.
 *
 * Any thread; host only.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when levels or out is NULL;
 *         CLPSA_ERROR_INVALID_SHAPE when rows is 0 or blocks_k below 1;
 *         CLPSA_ERROR_INVALID_VALUE for a level outside {0, 1, 2, 4, 8}.
 */
CLPSA_API clpsa_status clpsa_level_stats_compute(const int8_t *levels, size_t rows, int blocks_k,
                                                 clpsa_level_stats *out);

/** @brief Per-stage device time (ms) of the last run. */
typedef struct clpsa_stage_times {
    double pool_ms;     /**< the key/value pyramid (§3) */
    double estimate_ms; /**< the block scores (§5); 0 when supplied */
    double assign_ms;   /**< the level map and work list (§6); 0 when supplied */
    double attend_ms;   /**< the attention itself (§4) */
    double total_ms;    /**< first command's start to last command's end */
} clpsa_stage_times;
/**
 * @brief Stage times of the last run from its profiling events, in *out (zeroed on failure);
 * zeros when the queue it ran on had no profiling.
 *
 * Blocks until the last run finished. Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when plan or out is NULL;
 *         CLPSA_ERROR_INVALID_VALUE as clpsa_plan_read_levels();
 *         CLPSA_ERROR_OUT_OF_MEMORY, CLPSA_ERROR_OPENCL when waiting for the run fails.
 */
CLPSA_API clpsa_status clpsa_plan_read_stage_times(clpsa_plan *plan, clpsa_stage_times *out);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_H */
