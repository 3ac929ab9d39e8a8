/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-device kernel parameters: tile and work-group sizes that change speed, never results.
 *
 * Each kernel family (dense, attend, estimate, assign) has a few tunables. At plan creation
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
 */
#ifndef CLPSA_CLPSA_TUNING_H
#define CLPSA_CLPSA_TUNING_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Replaces the context's overrides (NULL or "" clears them). Rejected text leaves the
 * previous overrides in place. */
CLPSA_API clpsa_status clpsa_context_set_params(clpsa_context *ctx, const char *overrides);

/* The normalised device key: "vendor/architecture/device name", e.g.
 * "nvidia/sm_90/NVIDIA H100 80GB HBM3" or "pocl/skylake-avx512/pthread-skylake-avx512-...". */
CLPSA_API const char *clpsa_context_device_key(const clpsa_context *ctx);

/* Normalises device facts into vendor ("nvidia", "amd", "intel", "pocl" or the lower-case
 * vendor name) and architecture ("sm_90", "gfx90a", the PoCL CPU's LLVM name, or ""). */
CLPSA_API void clpsa_normalize_device(unsigned vendor_id, const char *vendor_name,
                                      const char *platform_name, const char *device_name,
                                      int nv_compute_major, int nv_compute_minor, char *vendor,
                                      size_t vendor_size, char *arch, size_t arch_size);

/* One line per parameter, "family.NAME=value (source)", as the next plan with default
 * algorithm options would get them (before per-plan constraints). */
CLPSA_API clpsa_status clpsa_context_describe_params(clpsa_context *ctx, char *out, size_t size);

/* One line per kernel family with variants (dense, attend, estimate): each variant, the value
 * of family.VARIANT that selects it, and whether this device can run it (and why not). A plan
 * takes the first variant that fits it, unless family.VARIANT names one. */
CLPSA_API clpsa_status clpsa_context_describe_variants(clpsa_context *ctx, char *out, size_t size);

/* The built-in table, row by row: its device match ("vendor", "vendor/arch" or
 * "vendor/arch/device name") and its values as override text ("family.NAME=value,..."). */
CLPSA_API size_t clpsa_builtin_params_count(void);
CLPSA_API clpsa_status clpsa_builtin_params_row(size_t index, char *match, size_t match_size,
                                                char *params, size_t params_size);

/* ---- Tuning ---- */
typedef void (*clpsa_tune_progress_fn)(void *user, const char *family, int done, int total,
                                       double best_ms);

typedef struct clpsa_tune_desc {
    int batch, heads, seq, head_dim; /* the shape tuned for; 0: 1, 2, 2048, 64 */
    clpsa_dtype dtype;               /* 0: fp32 */
    double budget_seconds;           /* whole search; 0: 60 */
    const char *kernels;             /* comma-separated families; NULL: all four */
    int repetitions;                 /* timed runs per candidate (min taken); 0: 5 */
    int dry_run;                     /* non-zero: do not write the cache */
    clpsa_tune_progress_fn progress; /* may be NULL */
    void *progress_user;
} clpsa_tune_desc;

#define CLPSA_TUNE_MAX_FAMILIES 4

typedef struct clpsa_tune_family_result {
    char family[16];
    double default_ms;   /* the defaults' time (min of repetitions) */
    double best_ms;      /* the winner's */
    int tried, rejected; /* candidates timed; candidates discarded (wrong result / failed) */
    int exhaustive;      /* the whole space was searched */
    char best[128];      /* "family.NAME=value,..." of the winner */
} clpsa_tune_family_result;

typedef struct clpsa_tune_result {
    int families;
    clpsa_tune_family_result family[CLPSA_TUNE_MAX_FAMILIES];
    char cache_path[4096]; /* where the winners were written ("" for a dry run) */
} clpsa_tune_result;

CLPSA_API void clpsa_tune_desc_init(clpsa_tune_desc *desc);
/* Searches each family's space on the context's device: the defaults first as the reference,
 * then candidates (all of them when the space is small, a random sample otherwise, within the
 * budget), each verified against the reference (results equal within rounding) and timed
 * (min of repetitions after a warm-up). Writes the winners to the on-disk tuned cache. */
CLPSA_API clpsa_status clpsa_tune(clpsa_context *ctx, const clpsa_tune_desc *desc,
                                  clpsa_tune_result *out);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_TUNING_H */
