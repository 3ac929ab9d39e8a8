/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel parameters: the space of each tunable, and the values a context looks up for its
 * device (override > tuned cache > built-in table > generic default). */
#ifndef CLPSA_PARAMS_H
#define CLPSA_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum clpsa__param_id {
    CLPSA__P_DENSE_BLOCK_M,
    CLPSA__P_DENSE_TILE_N,
    CLPSA__P_ATTEND_ROWS,
    CLPSA__P_ATTEND_TILE_N,
    CLPSA__P_ESTIMATE_WG,
    CLPSA__P_ASSIGN_WG,
    CLPSA__P_ESTIMATE_VARIANT,
    CLPSA__P_DENSE_VARIANT, /* 0 (unset): the first variant that fits (kernel_variant.c) */
    CLPSA__P_ATTEND_VARIANT,
    CLPSA__P_DENSE_NV_WARPS,
    CLPSA__P_DENSE_NV_TILE_N,
    CLPSA__P_ATTEND_NV_WARPS,
    CLPSA__P_ATTEND_NV_TILE_N,
    CLPSA__P_ESTIMATE_NV_WARPS,
    CLPSA__P_ESTIMATE_NV_TILE_N,
    CLPSA__P_DENSE_NV_STAGES,
    CLPSA__P_ATTEND_NV_STAGES,
    CLPSA__P_DENSE_CPU_ROWS,
    CLPSA__P_DENSE_CPU_TILE_N,
    CLPSA__P_ATTEND_CPU_ROWS,
    CLPSA__P_ATTEND_CPU_TILE_N,
    CLPSA__P_DENSE_SIMT_ROWS,
    CLPSA__P_DENSE_SIMT_TILE_N,
    CLPSA__P_ATTEND_SIMT_ROWS,
    CLPSA__P_ATTEND_SIMT_TILE_N,
    CLPSA__P_DENSE_SIMT_DSPLIT,
    CLPSA__P_ATTEND_SIMT_DSPLIT,
    CLPSA__P_BUDGET_WG,
    CLPSA__P_BUDGET_VARIANT,
    CLPSA__P_DECODE_VARIANT,
    CLPSA__P_DECODE_CU_GROUPS,
    CLPSA__P_DECODE_WG,
    CLPSA__P_DECODE_TILE_N,
    CLPSA__P_BUDGET_CPU_ROWS,
    CLPSA__P_DENSE_SIMT_QSTAGE,
    CLPSA__P_ATTEND_SIMT_QSTAGE,
    CLPSA__P_BUDGET_NV_WARPS,
    CLPSA__P_DENSE_SIMT_RPW,
    CLPSA__P_ATTEND_SIMT_RPW,
    CLPSA__P_DENSE_SIMT_UNROLL,
    CLPSA__P_ATTEND_SIMT_UNROLL,
    CLPSA__PARAM_COUNT
} clpsa__param_id;

#define CLPSA__MAX_CHOICES 8

typedef struct clpsa__param_def {
    const char *family; /* "dense", "attend", "estimate", "assign", "budget", "decode" */
    const char *name;   /* the kernel's macro, e.g. "TILE_N" */
    int choices[CLPSA__MAX_CHOICES];
    int choice_count;
    int default_cpu, default_gpu;
} clpsa__param_def;

extern const clpsa__param_def clpsa__param_defs[CLPSA__PARAM_COUNT];

typedef enum clpsa__param_source {
    CLPSA__SOURCE_GENERIC = 0,
    CLPSA__SOURCE_TABLE_VENDOR,
    CLPSA__SOURCE_TABLE_ARCH,
    CLPSA__SOURCE_TABLE_DEVICE,
    CLPSA__SOURCE_TUNED_CACHE,
    CLPSA__SOURCE_OVERRIDE,
} clpsa__param_source;

const char *clpsa__param_source_name(clpsa__param_source source);

/* A full set of values with where each came from; value 0 = unset. */
typedef struct clpsa__param_set {
    int value[CLPSA__PARAM_COUNT];
    clpsa__param_source source[CLPSA__PARAM_COUNT];
} clpsa__param_set;

/* One row of the generated built-in table; values of 0 are not set by the row. */
typedef struct clpsa__param_row {
    const char *vendor; /* normalised vendor */
    const char *arch;   /* NULL: a vendor-wide row */
    const char *device; /* NULL: an architecture-wide row */
    int value[CLPSA__PARAM_COUNT];
} clpsa__param_row;

extern const clpsa__param_row clpsa__param_table[];
extern const size_t clpsa__param_table_size;

bool clpsa__param_allowed(clpsa__param_id id, int value);
/* Finds "family.NAME" (case-sensitive); returns CLPSA__PARAM_COUNT if unknown. */
clpsa__param_id clpsa__param_find(const char *family, size_t family_length, const char *name,
                                  size_t name_length);
/* Parses an override text into set (value 0 = not given); on error writes why. */
bool clpsa__params_parse(const char *text, int *values, char *why, size_t why_size);
/* Formats "family.NAME=value,..." of the given ids (value 0 skipped). */
void clpsa__params_format(const int *values, char *out, size_t size);

#endif
