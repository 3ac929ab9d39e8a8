/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel variants: a kernel family (dense, attend) has several implementations, described as
 * data. The plan asks for "the attend kernel of this plan"; the selector returns the first
 * variant that fits the plan and the device (or the one family.VARIANT names), builds it, and
 * falls back to the next variant with a log line when a build fails on some driver. */
#ifndef CLPSA_KERNEL_VARIANT_H
#define CLPSA_KERNEL_VARIANT_H

#include "plan_internal.h"

typedef enum clpsa__kernel_family {
    CLPSA__FAMILY_DENSE,
    CLPSA__FAMILY_ATTEND,
    CLPSA__FAMILY_ESTIMATE, /* the sampled estimate (the antidiagonal one has one kernel) */
    CLPSA__FAMILY_BUDGET,   /* budget mode's measurement on sampled rows */
    CLPSA__FAMILY_DECODE,   /* dense attention of few query rows, split over the keys */
    CLPSA__KERNEL_FAMILIES
} clpsa__kernel_family;

/* What a variant decided for one plan: build options and launch shape. */
typedef struct clpsa__kernel_config {
    char options[384]; /* -D definitions of its tunables, appended to the family's options */
    int rows;          /* query rows (estimate: query blocks) per work-group */
    int items;         /* work-items per work-group */
} clpsa__kernel_config;

#define CLPSA__VARIANT_MAX_PARAMS 7 /* tunables of one variant, with the terminator */

typedef struct clpsa__kernel_variant {
    clpsa__kernel_family family;
    int id;               /* the value of family.VARIANT that asks for it */
    const char *name;     /* "portable", "nvidia-mma": logged and reported */
    const char *files[5]; /* program sources in build order, NULL-terminated */
    const char *kernel;   /* the kernel function; every variant of a family has the same
                             arguments */
    /* Its tunables, CLPSA__PARAM_COUNT after the last (always: an unset entry would read as
     * parameter 0). */
    clpsa__param_id params[CLPSA__VARIANT_MAX_PARAMS];
    /* Whether the device can run the variant at all, from device facts alone; why not. */
    bool (*device_fits)(const clpsa__device_info *info, char *why, size_t size);
    /* Whether it covers this plan (storage types, head dim, strides, local memory). */
    bool (*plan_fits)(const clpsa_plan *plan, char *why, size_t size);
    /* Looks up its tunables for the plan (recorded in parameter_source). `attempt` counts
     * earlier builds whose kernel allowed too few work-items; a variant that can shrink
     * returns a smaller group, one that cannot returns CLPSA_ERROR_UNSUPPORTED. */
    clpsa_status (*configure)(clpsa_plan *plan, int attempt, clpsa__kernel_config *out);
} clpsa__kernel_variant;

/* The family's variants in preference order. */
const clpsa__kernel_variant *const *clpsa__kernel_variants(clpsa__kernel_family family,
                                                           size_t *count);

/* Chooses and builds the family's kernel for the plan with `options` (the family's shape
 * definitions). On success *kernel is the plan's, *variant and *config say what was built. */
clpsa_status clpsa__kernel_variant_build(clpsa_plan *plan, clpsa__kernel_family family,
                                         const char *options, cl_kernel *kernel,
                                         const clpsa__kernel_variant **variant,
                                         clpsa__kernel_config *config);

/* The name of the variant that parameter `id` belongs to when no variant using it can run on
 * this device (so it can never matter here); NULL otherwise. */
const char *clpsa__param_idle_variant(const clpsa__device_info *info, clpsa__param_id id);

/* One line per family: its variants and whether this device can run each. */
void clpsa__kernel_variants_describe(const clpsa__device_info *info, char *out, size_t size);

/* The variants of each vendor (variant_portable.c, variant_nvidia.c). */
extern const clpsa__kernel_variant clpsa__portable_dense, clpsa__portable_attend;
extern const clpsa__kernel_variant clpsa__portable_estimate, clpsa__portable_estimate_staged;
extern const clpsa__kernel_variant clpsa__portable_budget, clpsa__portable_cpu_budget;
extern const clpsa__kernel_variant clpsa__portable_cpu_dense, clpsa__portable_cpu_attend;
extern const clpsa__kernel_variant clpsa__portable_cpu_estimate;
extern const clpsa__kernel_variant clpsa__portable_simt_dense, clpsa__portable_simt_attend;
extern const clpsa__kernel_variant clpsa__nvidia_mma_dense, clpsa__nvidia_mma_attend;
extern const clpsa__kernel_variant clpsa__nvidia_wgmma_dense, clpsa__nvidia_wgmma_attend;
extern const clpsa__kernel_variant clpsa__nvidia_mma_estimate, clpsa__nvidia_mma_budget;
extern const clpsa__kernel_variant clpsa__nvidia_wgmma_estimate, clpsa__nvidia_wgmma_budget;
extern const clpsa__kernel_variant clpsa__portable_decode, clpsa__portable_cpu_decode;

#endif
