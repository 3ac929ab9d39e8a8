/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa_tuning.h
 * @brief Per-device kernel parameters: tile and work-group sizes that change speed, never
 * results.
 *
 * Each kernel family (dense, attend, estimate, assign, budget,
 * decode) has a few tunables. At plan creation
 * each value is looked up, in this order, and the source is logged:
 *   1. a user override: clpsa_context_set_params() or $CLPSA_PARAMS,
 *      "family.NAME=value[,family.NAME=value...]", e.g. "attend.TILE_N=16,dense.BLOCK_M=64";
 *   2. the on-disk tuned cache written by clpsa_tune() (`clpsa tune`), keyed by device and
 *      driver, in the cache directory of the context;
 *   3. the built-in table (generated from tuner output): exact device, then architecture,
 *      then vendor;
 *   4. a generic default for the device type.
 * An override outside a parameter's allowed values, or one the device cannot run (work-group
 * or local-memory limits), is rejected with CLPSA_ERROR_INVALID_VALUE; a cached or table value
 * the device cannot run for a plan falls back to the next source with a log line.
 *
 * Functions taking a context follow the context's threading rule (clpsa.h); the others may be
 * called from any thread.
 */
#ifndef CLPSA_CLPSA_TUNING_H
#define CLPSA_CLPSA_TUNING_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Replaces the context's parameter overrides with overrides, "family.NAME=value,..."
 * (NULL or "" clears them); plans created afterwards use them.
 *
 * The text is parsed and copied. Rejected text leaves the previous overrides in place.
 * Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when ctx is NULL;
 *         CLPSA_ERROR_INVALID_VALUE for an unknown family or parameter, malformed text, or a
 *         value outside the parameter's allowed values (last_error says which).
 */
CLPSA_API clpsa_status clpsa_context_set_params(clpsa_context *ctx, const char *overrides);

/**
 * @brief The normalised device key: "vendor/architecture/device name", e.g.
 * "nvidia/sm_90/NVIDIA H100 80GB HBM3" or "pocl/skylake-avx512/pthread-skylake-avx512-...";
 * "" for NULL. Valid while ctx lives. Any thread.
 */
CLPSA_API const char *clpsa_context_device_key(const clpsa_context *ctx);

/**
 * @brief Normalises device facts into vendor ("nvidia", "amd", "intel", "pocl" or the lower-case
 * vendor name) and architecture ("sm_90", "gfx90a", the PoCL CPU's LLVM name, or ""), written
 * NUL-terminated (truncated) into the caller's buffers. Any thread; cannot fail.
 */
CLPSA_API void clpsa_normalize_device(unsigned vendor_id, const char *vendor_name,
                                      const char *platform_name, const char *device_name,
                                      int nv_compute_major, int nv_compute_minor, char *vendor,
                                      size_t vendor_size, char *arch, size_t arch_size);

/**
 * @brief Writes one line per parameter, "family.NAME=value (source)", into out (size bytes,
 * truncated), as the next plan with default algorithm options would get them (before per-plan
 * constraints). Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when ctx or out is NULL or size is 0.
 */
CLPSA_API clpsa_status clpsa_context_describe_params(clpsa_context *ctx, char *out, size_t size);

/**
 * @brief Writes one line per kernel family with variants (dense, attend, estimate) into out
 * (size bytes, truncated): each variant, the value of family.VARIANT that selects it, and
 * whether this device can run it (and why not). A plan takes the first variant that fits it,
 * unless family.VARIANT names one. Context's thread; does not block.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when ctx or out is NULL or size is 0.
 */
CLPSA_API clpsa_status clpsa_context_describe_variants(clpsa_context *ctx, char *out, size_t size);

/** @brief Rows in the built-in parameter table. Any thread. */
CLPSA_API size_t clpsa_builtin_params_count(void);
/**
 * @brief Row index of the built-in table: its device match ("vendor", "vendor/arch" or
 * "vendor/arch/device name") into match and its values as override text
 * ("family.NAME=value,...") into params, both NUL-terminated (truncated to their sizes).
 * Any thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when a buffer is NULL or has size 0;
 *         CLPSA_ERROR_INVALID_VALUE when index is not below clpsa_builtin_params_count().
 */
CLPSA_API clpsa_status clpsa_builtin_params_row(size_t index, char *match, size_t match_size,
                                                char *params, size_t params_size);

/* ---- Tuning ---- */
/** @brief Progress of clpsa_tune(): family being searched, candidates done of total, the best
 * time so far. Called on the tuning thread. */
typedef void (*clpsa_tune_progress_fn)(void *user, const char *family, int done, int total,
                                       double best_ms);

/** @brief What clpsa_tune() searches; fill with clpsa_tune_desc_init(). */
typedef struct clpsa_tune_desc {
    int batch;                       /**< the shape tuned for: B; 0: 1 */
    int heads;                       /**< H; 0: 2 */
    int seq;                         /**< N; 0: 2048 */
    int head_dim;                    /**< D; 0: 64 */
    clpsa_dtype dtype;               /**< 0: fp32 */
    double budget_seconds;           /**< whole search; 0: 60 */
    const char *kernels;             /**< comma-separated families; NULL: all five */
    int repetitions;                 /**< timed runs per candidate (min taken); 0: 5 */
    int dry_run;                     /**< non-zero: do not write the cache */
    clpsa_tune_progress_fn progress; /**< may be NULL */
    void *progress_user;             /**< passed to progress */
} clpsa_tune_desc;

/** Kernel families clpsa_tune() reports on at most. */
#define CLPSA_TUNE_MAX_FAMILIES 6

/** @brief The outcome of one family's search. */
typedef struct clpsa_tune_family_result {
    char family[16];   /**< "dense", "attend", "estimate", "assign", "budget" or "decode" */
    double default_ms; /**< the defaults' time (min of repetitions) */
    double best_ms;    /**< the winner's */
    int tried;         /**< candidates timed */
    int rejected;      /**< candidates discarded (wrong result, or failed to build or run) */
    int exhaustive;    /**< the whole space was searched */
    char best[256];    /**< "family.NAME=value,..." of the winner */
} clpsa_tune_family_result;

/** @brief What clpsa_tune() found, per family. */
typedef struct clpsa_tune_result {
    int families;                                             /**< entries of family used */
    clpsa_tune_family_result family[CLPSA_TUNE_MAX_FAMILIES]; /**< one per family searched */
    char cache_path[4096]; /**< where the winners were written ("" for a dry run) */
} clpsa_tune_result;

/** @brief Sets every field of desc to its default (zero). NULL is ignored. Any thread. */
CLPSA_API void clpsa_tune_desc_init(clpsa_tune_desc *desc);
/**
 * @brief Searches each family's space on the context's device: the defaults first as the
 * reference, then candidates (all of them when the space is small, a random sample otherwise,
 * within the budget), each verified against the reference (results equal within rounding) and
 * timed (min of repetitions after a warm-up). Writes the winners to the on-disk tuned cache
 * and the outcome into *out. The decode family is timed on one step of 4 query rows against
 * seq keys (both of its kernels).
 *
 * Blocks for the whole search (up to budget_seconds plus compile time): it creates its own
 * plans and buffers on the context and waits for every run. Context's thread.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when ctx or out is NULL, or ctx has no queue;
 *         CLPSA_ERROR_INVALID_VALUE for an unknown kernel family or a negative budget or
 *         repetitions; what clpsa_plan_create() returns for the reference plan (for example
 *         CLPSA_ERROR_BUILD_FAILED); CLPSA_ERROR_OUT_OF_MEMORY; CLPSA_ERROR_OPENCL;
 *         CLPSA_ERROR_IO when the tuned cache cannot be written.
 */
CLPSA_API clpsa_status clpsa_tune(clpsa_context *ctx, const clpsa_tune_desc *desc,
                                  clpsa_tune_result *out);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_TUNING_H */
