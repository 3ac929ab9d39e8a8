/* SPDX-License-Identifier: Apache-2.0 */
/* The tunables of each kernel family, their allowed values and defaults. The kernels declare
 * the same names as #ifndef macros; the host only ever passes values from these lists. */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const clpsa__param_def clpsa__param_defs[CLPSA__PARAM_COUNT] = {
    /* rows per work-group of the dense kernel (= its work-group size) */
    [CLPSA__P_DENSE_BLOCK_M] = {"dense", "BLOCK_M", {16, 32, 64, 128}, 4, 32, 64},
    /* keys staged in local memory per tile */
    [CLPSA__P_DENSE_TILE_N] = {"dense", "TILE_N", {8, 16, 32, 64}, 4, 32, 16},
    [CLPSA__P_ATTEND_ROWS] = {"attend", "ATT_M", {16, 32, 64, 128}, 4, 32, 64},
    [CLPSA__P_ATTEND_TILE_N] = {"attend", "TILE_N", {8, 16, 32, 64}, 4, 32, 16},
    /* work-items sharing one query block's sampled rows */
    [CLPSA__P_ESTIMATE_WG] = {"estimate", "EST_WG", {16, 32, 64, 128}, 4, 32, 32},
    /* work-items sorting one row of scores */
    [CLPSA__P_ASSIGN_WG] = {"assign", "ASSIGN_WG", {32, 64, 128, 256}, 4, 64, 64},
    /* sampled estimate kernel (src/kernel_variant.c): 1 work-items own sampled rows (no local
     * memory); 2 sampled rows staged in local memory, work-items own key blocks (needs
     * sample_q * D floats of it); 3 nvidia-mma; 4 portable-cpu (one work-item per query block,
     * sampled rows along the vector lanes); 5 nvidia-wgmma; unset, the first that fits */
    [CLPSA__P_ESTIMATE_VARIANT] = {"estimate", "VARIANT", {1, 2, 3, 4, 5}, 5, 0, 0},
    /* which kernel variant runs the family (src/kernel_variant.c: 1 portable, 2 nvidia-mma,
     * 3 portable-cpu, 4 portable-simt, 5 nvidia-wgmma); unset, the first variant in the table
     * that fits the plan and the device */
    [CLPSA__P_DENSE_VARIANT] = {"dense", "VARIANT", {1, 2, 3, 4, 5}, 5, 0, 0},
    [CLPSA__P_ATTEND_VARIANT] = {"attend", "VARIANT", {1, 2, 3, 4, 5}, 5, 0, 0},
    /* nvidia-mma variants: warps per work-group (16 query rows each) and keys per tile */
    [CLPSA__P_DENSE_NV_WARPS] = {"dense", "NV_WARPS", {2, 4, 8}, 3, 4, 4},
    [CLPSA__P_DENSE_NV_TILE_N] = {"dense", "NV_TILE_N", {32, 64}, 2, 64, 64},
    [CLPSA__P_ATTEND_NV_WARPS] = {"attend", "NV_WARPS", {2, 4, 8}, 3, 4, 4},
    [CLPSA__P_ATTEND_NV_TILE_N] = {"attend", "NV_TILE_N", {32, 64}, 2, 64, 64},
    /* the estimate's: warps per work-group (whole query blocks: a warp takes 32 sampled rows
     * where sample_q is over 16 with mma.sync, else 16; more blocks share each staged tile of
     * sampled keys) */
    [CLPSA__P_ESTIMATE_NV_WARPS] = {"estimate", "NV_WARPS", {2, 4, 8}, 3, 8, 8},
    [CLPSA__P_ESTIMATE_NV_TILE_N] = {"estimate", "NV_TILE_N", {32, 64}, 2, 64, 64},
    /* local-memory buffers of keys and of values (the pipeline's depth): 2 loads a tile ahead
     * while one is computed, where local memory holds them (else 1) */
    [CLPSA__P_DENSE_NV_STAGES] = {"dense", "NV_STAGES", {1, 2}, 2, 2, 2},
    [CLPSA__P_ATTEND_NV_STAGES] = {"attend", "NV_STAGES", {1, 2}, 2, 2, 2},
    /* portable-cpu variants: query rows per work-item (the rows of its register tiles) and keys
     * per staged tile */
    [CLPSA__P_DENSE_CPU_ROWS] = {"dense", "CPU_ROWS", {16, 32, 64, 128}, 4, 64, 64},
    [CLPSA__P_DENSE_CPU_TILE_N] = {"dense", "CPU_TILE_N", {16, 32, 64}, 3, 32, 32},
    [CLPSA__P_ATTEND_CPU_ROWS] = {"attend", "CPU_ROWS", {16, 32, 64, 128}, 4, 64, 64},
    [CLPSA__P_ATTEND_CPU_TILE_N] = {"attend", "CPU_TILE_N", {16, 32, 64}, 3, 32, 32},
    /* portable-simt variants: query rows per work-group (two work-items per row) and keys per
     * tile; smaller where local memory is short */
    [CLPSA__P_DENSE_SIMT_ROWS] = {"dense", "SIMT_ROWS", {32, 64}, 2, 64, 64},
    [CLPSA__P_DENSE_SIMT_TILE_N] = {"dense", "SIMT_TILE_N", {32, 64}, 2, 32, 32},
    [CLPSA__P_ATTEND_SIMT_ROWS] = {"attend", "SIMT_ROWS", {32, 64}, 2, 64, 64},
    [CLPSA__P_ATTEND_SIMT_TILE_N] = {"attend", "SIMT_TILE_N", {32, 64}, 2, 32, 32},
    /* portable-simt: parts the head dimension is staged in (2 halves the K/V buffer, only where
     * D % 64 == 0; 4 quarters it, only where D % 128 == 0; more are chosen anyway where the
     * tiles would not fit otherwise) */
    [CLPSA__P_DENSE_SIMT_DSPLIT] = {"dense", "SIMT_DSPLIT", {1, 2, 4}, 3, 1, 1},
    [CLPSA__P_ATTEND_SIMT_DSPLIT] = {"attend", "SIMT_DSPLIT", {1, 2, 4}, 3, 1, 1},
    /* budget mode's measurement (cl/budget.cl): work-items sharing one query block's sampled
     * rows, each owning key blocks */
    [CLPSA__P_BUDGET_WG] = {"budget", "BUDGET_WG", {16, 32, 64, 128}, 4, 32, 64},
    /* its kernel variant (src/kernel_variant.c: 1 portable, 2 portable-cpu: one work-item per
     * group of query blocks, their sampled rows along the vector lanes, 3 nvidia-mma, 4
     * nvidia-wgmma); unset, the first that fits */
    [CLPSA__P_BUDGET_VARIANT] = {"budget", "VARIANT", {1, 2, 3, 4}, 4, 0, 0},
    /* decode kernel (dense plans of at most 16 query rows, src/kernel_variant.c): 1 portable
     * split-K (work-groups share a tile in local memory), 3 portable-cpu (one work-item per
     * split, the head dimension along vectors); unset, the first that fits */
    [CLPSA__P_DECODE_VARIANT] = {"decode", "VARIANT", {1, 3}, 2, 0, 0},
    /* work-groups per compute unit that splitting the key axis aims for (the split count
     * follows the device, the batch and kv heads, and the key length): more fill the device
     * better, each split adds a partial to combine */
    [CLPSA__P_DECODE_CU_GROUPS] = {"decode", "CU_GROUPS", {1, 2, 4, 8, 16, 32}, 6, 8, 4},
    /* work-items per work-group of the portable variant's split and combine kernels */
    [CLPSA__P_DECODE_WG] = {"decode", "DEC_WG", {32, 64, 128, 256}, 4, 64, 128},
    /* keys per tile (portable: staged in local memory, smaller where it is short) */
    [CLPSA__P_DECODE_TILE_N] = {"decode", "DEC_TILE_N", {8, 16, 32, 64}, 4, 32, 32},
    /* budget portable-cpu: sampled rows per work-item, as whole query blocks (at least one) */
    [CLPSA__P_BUDGET_CPU_ROWS] = {"budget", "CPU_ROWS", {8, 16, 32, 64}, 4, 32, 32},
    /* portable-simt: 1 Q^T stays in local memory for the whole walk; 2 Q^T is staged again
     * with every tile, a head-dimension part at a time, sharing its buffer with P^T (more rows
     * and keys fit, Q is read once per tile); 2 is chosen anyway where the rows and keys fit
     * no other way (64 x 64 at D = 128 in 48 KiB) */
    [CLPSA__P_DENSE_SIMT_QSTAGE] = {"dense", "SIMT_QSTAGE", {1, 2}, 2, 1, 1},
    [CLPSA__P_ATTEND_SIMT_QSTAGE] = {"attend", "SIMT_QSTAGE", {1, 2}, 2, 1, 1},
    /* budget nvidia-mma and nvidia-wgmma: warps per work-group (one m16 tile of sampled rows
     * each) sharing each staged key block; nvidia-wgmma takes multiples of 4 */
    [CLPSA__P_BUDGET_NV_WARPS] = {"budget", "NV_WARPS", {2, 4, 8}, 3, 4, 4},
    /* portable-simt: query rows per work-item (8: half the local-memory bytes per FMA in P V,
     * three quarters in Q K^T, more registers; needs 64-key tiles and head-dimension parts of
     * 64, else 4 is used) */
    [CLPSA__P_DENSE_SIMT_RPW] = {"dense", "SIMT_RPW", {4, 8}, 2, 4, 4},
    [CLPSA__P_ATTEND_SIMT_RPW] = {"attend", "SIMT_RPW", {4, 8}, 2, 4, 4},
    /* 32 unrolls the H200's inner loops (32 keys, 32 head dimensions a part) whole: 80.5 -> 76.8
     * ms for dense fp32 there (bench/NOTES.md); PoCL compiles that longer for nothing. */
    [CLPSA__P_DENSE_SIMT_UNROLL] = {"dense", "SIMT_UNROLL", {4, 32}, 2, 4, 32},
    [CLPSA__P_ATTEND_SIMT_UNROLL] = {"attend", "SIMT_UNROLL", {4, 32}, 2, 4, 32},
};

const char *clpsa__param_source_name(clpsa__param_source source) {
    switch (source) {
    case CLPSA__SOURCE_OVERRIDE:
        return "user override";
    case CLPSA__SOURCE_TUNED_CACHE:
        return "tuned cache";
    case CLPSA__SOURCE_TABLE_DEVICE:
        return "built-in table (this device)";
    case CLPSA__SOURCE_TABLE_ARCH:
        return "built-in table (architecture)";
    case CLPSA__SOURCE_TABLE_VENDOR:
        return "built-in table (vendor)";
    case CLPSA__SOURCE_GENERIC:
        break;
    }
    return "generic default";
}

bool clpsa__param_allowed(clpsa__param_id id, int value) {
    const clpsa__param_def *def = &clpsa__param_defs[id];
    for (int i = 0; i < def->choice_count; ++i)
        if (def->choices[i] == value)
            return true;
    return false;
}

clpsa__param_id clpsa__param_find(const char *family, size_t family_length, const char *name,
                                  size_t name_length) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id) {
        const clpsa__param_def *def = &clpsa__param_defs[id];
        if (strlen(def->family) == family_length &&
            strncmp(def->family, family, family_length) == 0 && strlen(def->name) == name_length &&
            strncmp(def->name, name, name_length) == 0)
            return (clpsa__param_id)id;
    }
    return CLPSA__PARAM_COUNT;
}

static void allowed_list(clpsa__param_id id, char *out, size_t size) {
    const clpsa__param_def *def = &clpsa__param_defs[id];
    out[0] = '\0';
    for (int i = 0; i < def->choice_count; ++i) {
        const size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%d", i ? ", " : "", def->choices[i]);
    }
}

static void known_list(char *out, size_t size) {
    out[0] = '\0';
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id) {
        const size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s.%s", id ? ", " : "", clpsa__param_defs[id].family,
                 clpsa__param_defs[id].name);
    }
}

bool clpsa__params_parse(const char *text, int *values, char *why, size_t why_size) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        values[id] = 0;
    const char *at = text;
    while (at && *at) {
        while (*at == ' ' || *at == ',')
            ++at;
        if (!*at)
            break;
        const char *end = at + strcspn(at, ",");
        const char *dot = memchr(at, '.', (size_t)(end - at));
        const char *equals = memchr(at, '=', (size_t)(end - at));
        if (!dot || !equals || equals < dot) {
            snprintf(why, why_size, "\"%.*s\" is not family.NAME=value", (int)(end - at), at);
            return false;
        }
        const clpsa__param_id id =
            clpsa__param_find(at, (size_t)(dot - at), dot + 1, (size_t)(equals - dot - 1));
        if (id == CLPSA__PARAM_COUNT) {
            char known[512];
            known_list(known, sizeof known);
            snprintf(why, why_size, "\"%.*s\" is not a parameter (known: %s)", (int)(equals - at),
                     at, known);
            return false;
        }
        char *number_end = NULL;
        const long value = strtol(equals + 1, &number_end, 10);
        if (number_end != end || equals + 1 == end) {
            snprintf(why, why_size, "%.*s: \"%.*s\" is not an integer", (int)(equals - at), at,
                     (int)(end - equals - 1), equals + 1);
            return false;
        }
        if (value <= 0 || value > 4096 || !clpsa__param_allowed(id, (int)value)) {
            char allowed[96];
            allowed_list(id, allowed, sizeof allowed);
            snprintf(why, why_size, "%.*s = %ld is outside its allowed values (%s)",
                     (int)(equals - at), at, value, allowed);
            return false;
        }
        values[id] = (int)value;
        at = end;
    }
    return true;
}

void clpsa__params_format(const int *values, char *out, size_t size) {
    out[0] = '\0';
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id) {
        if (!values[id])
            continue;
        const size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%s.%s=%d", used ? "," : "",
                 clpsa__param_defs[id].family, clpsa__param_defs[id].name, values[id]);
    }
}
