/* SPDX-License-Identifier: Apache-2.0 */
/* PSA options: presets (docs/algorithm.md §7), defaults, explicit overrides, and their rules. */
#include "plan_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct preset {
    const char *name;
    float thresholds[4];
    clpsa_mode mode;
    int block_q, block_k;
    int similarity_cap;
    float similarity_thresholds[3];
    int causal;
    clpsa_estimator estimator;
} preset;

static const preset presets[] = {
    {"wan21-14b",
     {0.4f, 0.5f, 0.6f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     128,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"wan21-1.3b",
     {0.5f, 0.6f, 0.7f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     128,
     1,
     {0.7f, 0.65f, 0.6f},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"wan22-5b",
     {0.6f, 0.7f, 0.7f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     32,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"cogvideox",
     {0.1f, 0.15f, 0.15f, 0.35f},
     CLPSA_MODE_QUANTILE,
     128,
     128,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"understanding",
     {0.7f, 0.8f, 0.9f, 0.9f},
     CLPSA_MODE_ENERGY,
     128,
     128,
     1,
     {0.75f, 0.7f, 0.7f},
     1,
     CLPSA_ESTIMATOR_ANTIDIAGONAL},
};

/* Defaults without a preset: bm/bn of docs/algorithm.md §2, the wan21-1.3b thresholds. */
static const preset defaults = {
    NULL, {0.5f, 0.6f, 0.7f, 0.8f}, CLPSA_MODE_THRESHOLD, 128, 64, 0, {0.7f, 0.65f, 0.6f},
    0,    CLPSA_ESTIMATOR_SAMPLED};

static bool any_nonzero(const float *values, int count) {
    for (int i = 0; i < count; ++i)
        if (values[i] != 0.0f)
            return true;
    return false;
}

static clpsa_status find_preset(clpsa_context *ctx, const char *name, const preset **out) {
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; ++i)
        if (strcmp(presets[i].name, name) == 0) {
            *out = &presets[i];
            return CLPSA_OK;
        }
    char known[256] = "";
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; ++i) {
        const size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", presets[i].name);
    }
    return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE, "preset = \"%s\" is not known (known: %s)",
                       name, known);
}

static clpsa_status check_range(clpsa_context *ctx, const char *name, int value, int low,
                                int high) {
    if (value < low || value > high)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE, "%s = %d: it must be in [%d, %d]", name,
                           value, low, high);
    return CLPSA_OK;
}

static clpsa_status check_thresholds(clpsa_context *ctx, const float *t) {
    static const char *names[4] = {"tau1", "tau2", "tau4", "tau8"};
    for (int i = 0; i < 4; ++i) {
        if (!(t[i] >= 0.0f && t[i] <= 1.0f))
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "thresholds[%d] (%s) = %g: thresholds must be in [0, 1]", i,
                               names[i], (double)t[i]);
        if (i > 0 && t[i] < t[i - 1])
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "thresholds[%d] (%s) = %g is below thresholds[%d] (%s) = %g: "
                               "thresholds must be non-decreasing",
                               i, names[i], (double)t[i], i - 1, names[i - 1], (double)t[i - 1]);
    }
    return CLPSA_OK;
}

static clpsa_status resolve_ordering(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                     clpsa_plan_desc *resolved, clpsa__psa_options *out) {
    const bool has_grid = desc->grid[0] || desc->grid[1] || desc->grid[2];
    out->ordering = desc->ordering ? desc->ordering : CLPSA_ORDER_RASTER;
    if (out->ordering < CLPSA_ORDER_RASTER || out->ordering > CLPSA_ORDER_TILES)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "ordering = %d: it must be CLPSA_ORDER_RASTER, _HILBERT or _TILES",
                           (int)out->ordering);
    if (!has_grid) {
        if (out->ordering != CLPSA_ORDER_RASTER)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "ordering = %d needs a grid: set grid = {frames, height, width}",
                               (int)out->ordering);
        return CLPSA_OK;
    }
    static const char *axes[3] = {"frames", "height", "width"};
    long long tokens = 1;
    for (int a = 0; a < 3; ++a) {
        if (desc->grid[a] < 1)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                               "grid[%d] (%s) = %d: every grid size must be at least 1", a, axes[a],
                               desc->grid[a]);
        tokens *= desc->grid[a];
        out->grid[a] = desc->grid[a];
    }
    tokens += desc->text_tokens;
    if (tokens != resolved->seq_q || tokens != resolved->seq_k)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                           "grid %d x %d x %d plus text_tokens = %d makes %lld tokens, but "
                           "seq_q = %d and seq_k = %d: both must equal it",
                           desc->grid[0], desc->grid[1], desc->grid[2], desc->text_tokens, tokens,
                           resolved->seq_q, resolved->seq_k);
    const bool tiles_unset = !desc->tile[0] && !desc->tile[1] && !desc->tile[2];
    for (int a = 0; a < 3; ++a) {
        out->tile[a] = tiles_unset ? (a == 0 ? 2 : 4) : desc->tile[a];
        if (out->ordering == CLPSA_ORDER_TILES && out->tile[a] < 1)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "tile[%d] = %d: tile sizes must be at least 1", a, out->tile[a]);
    }
    out->permuted = out->ordering != CLPSA_ORDER_RASTER;
    if (out->permuted && resolved->causal)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "ordering = %d with causal: a causal mask is defined in the tokens' "
                           "own order, which a reordering would break; use CLPSA_ORDER_RASTER",
                           (int)out->ordering);
    return CLPSA_OK;
}

/* Budget mode (§6): its density, and the options it has no use for. A preset's similarity
 * cap or antidiagonal estimator gives way to the mode's own measurement; the same options set
 * explicitly are an error, since they would silently do nothing. */
static clpsa_status resolve_budget(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                   clpsa_plan_desc *resolved, clpsa__psa_options *out) {
    if (out->mode != CLPSA_MODE_BUDGET) {
        if (desc->density != 0.0f)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "density = %g with mode = %d: a target density is for "
                               "CLPSA_MODE_BUDGET only (binary plans take binary_density)",
                               (double)desc->density, (int)out->mode);
        return CLPSA_OK;
    }
    if (resolved->method == CLPSA_METHOD_BINARY)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "mode = CLPSA_MODE_BUDGET with CLPSA_METHOD_BINARY: the binary "
                           "baseline keeps the top blocks by S (binary_density); use "
                           "CLPSA_METHOD_PSA for budget mode");
    if (desc->similarity_cap > 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "similarity_cap = %d with mode = CLPSA_MODE_BUDGET: budget mode "
                           "measures what pooling loses and takes no similarity cap",
                           desc->similarity_cap);
    if (desc->estimator == CLPSA_ESTIMATOR_ANTIDIAGONAL)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "estimator = CLPSA_ESTIMATOR_ANTIDIAGONAL with mode = "
                           "CLPSA_MODE_BUDGET: budget mode measures sampled rows (sample_q) "
                           "and takes no other estimator");
    if (desc->align_tile > 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "align_tile = %d with mode = CLPSA_MODE_BUDGET: budget mode places "
                           "every block on its own and takes no alignment (0 or CLPSA_OFF)",
                           desc->align_tile);
    if (desc->min_full != 0.0f && desc->min_full != (float)CLPSA_OFF)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "min_full = %g with mode = CLPSA_MODE_BUDGET: budget mode spends "
                           "exactly its density and takes no min_full (0 or CLPSA_OFF)",
                           (double)desc->min_full);
    const double density = desc->density != 0.0f ? (double)desc->density : 0.15;
    const int blocks_k = (resolved->seq_k + out->block_k - 1) / out->block_k;
    const double lowest = 1.0 / (8.0 * blocks_k);
    /* The same relative slack as the row budget (clpsa__psa_finish): 1/(8 nk) as a float
     * counts as itself. */
    if (!(density * (1.0 + 1e-6) >= lowest && density <= 1.0))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "density = %g: mode budget needs a density in [1/(8 nk), 1] = "
                           "[%g, 1] (nk = %d key blocks; the cheapest block, level 8, costs "
                           "1/8)",
                           density, lowest, blocks_k);
    out->density = density;
    out->similarity_cap = 0;
    out->estimator = CLPSA_ESTIMATOR_SAMPLED;
    out->align_tile = 0;
    return CLPSA_OK;
}

clpsa_status clpsa__psa_resolve(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                clpsa_plan_desc *resolved, clpsa__psa_options *out) {
    memset(out, 0, sizeof *out);
    const preset *base = &defaults;
    if (desc->preset) {
        clpsa_status status = find_preset(ctx, desc->preset, &base);
        if (status != CLPSA_OK)
            return status;
        if (base->causal)
            resolved->causal = 1;
    }
    out->block_q = desc->block_q ? desc->block_q : base->block_q;
    out->block_k = desc->block_k ? desc->block_k : base->block_k;
    memcpy(out->thresholds, any_nonzero(desc->thresholds, 4) ? desc->thresholds : base->thresholds,
           sizeof out->thresholds);
    out->mode = desc->mode ? desc->mode : base->mode;
    out->similarity_cap = desc->similarity_cap == CLPSA_OFF ? 0
                          : desc->similarity_cap            ? 1
                                                            : base->similarity_cap;
    memcpy(out->similarity_thresholds,
           any_nonzero(desc->similarity_thresholds, 3) ? desc->similarity_thresholds
           : base->similarity_cap                      ? base->similarity_thresholds
                                                       : defaults.similarity_thresholds,
           sizeof out->similarity_thresholds);
    out->estimator = desc->estimator ? desc->estimator : base->estimator;
    out->align_tile = desc->align_tile == CLPSA_OFF ? 0 : desc->align_tile ? desc->align_tile : 32;
    out->seed = desc->seed;

    clpsa_status status = check_range(ctx, "block_q", out->block_q, 16, 256);
    if (status == CLPSA_OK)
        status = check_range(ctx, "block_k", out->block_k, 16, 256);
    if (status != CLPSA_OK)
        return status;
    if (out->block_k % 8 != 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "block_k = %d: it must be a multiple of 8 (level-8 pooling)",
                           out->block_k);
    if (check_thresholds(ctx, out->thresholds) != CLPSA_OK)
        return CLPSA_ERROR_INVALID_VALUE;
    if (out->mode < CLPSA_MODE_THRESHOLD || out->mode > CLPSA_MODE_BUDGET)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "mode = %d: it must be CLPSA_MODE_THRESHOLD, _QUANTILE, _ENERGY or "
                           "_BUDGET",
                           (int)out->mode);
    status = resolve_budget(ctx, desc, resolved, out);
    if (status != CLPSA_OK)
        return status;
    if (desc->align_tile < CLPSA_OFF || out->align_tile > 4096)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "align_tile = %d: it must be in [1, 4096], 0 (default 32) or "
                           "CLPSA_OFF",
                           desc->align_tile);
    if (desc->min_full != (float)CLPSA_OFF && !(desc->min_full >= 0.0f && desc->min_full <= 1.0f))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "min_full = %g: it must be in [0, 1] (0: default 0.06) or CLPSA_OFF",
                           (double)desc->min_full);
    if (desc->text_tokens < 0 || desc->text_tokens > resolved->seq_k)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "text_tokens = %d: it must be in [0, seq_k = %d]", desc->text_tokens,
                           resolved->seq_k);
    for (int i = 0; i < 3; ++i)
        if (!(out->similarity_thresholds[i] >= -1.0f && out->similarity_thresholds[i] <= 1.0f))
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "similarity_thresholds[%d] = %g: cosine thresholds must be in "
                               "[-1, 1]",
                               i, (double)out->similarity_thresholds[i]);
    if (out->estimator != CLPSA_ESTIMATOR_SAMPLED && out->estimator != CLPSA_ESTIMATOR_ANTIDIAGONAL)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "estimator = %d: it must be CLPSA_ESTIMATOR_SAMPLED or "
                           "_ANTIDIAGONAL",
                           (int)out->estimator);
    const int sample_divisor = out->mode == CLPSA_MODE_BUDGET ? CLPSA__BUDGET_SAMPLE_DIVISOR : 4;
    out->sample_q = desc->sample_q
                        ? desc->sample_q
                        : (out->block_q / sample_divisor > 0 ? out->block_q / sample_divisor : 1);
    out->sample_k = desc->sample_k ? desc->sample_k : (out->block_k / 4 > 0 ? out->block_k / 4 : 1);
    status = check_range(ctx, "sample_q", out->sample_q, 1, out->block_q);
    if (status == CLPSA_OK)
        status = check_range(ctx, "sample_k", out->sample_k, 1, out->block_k);
    if (status != CLPSA_OK)
        return status;
    out->stride = desc->antidiagonal_stride ? desc->antidiagonal_stride : 8;
    if (out->stride < 1 || out->block_q % out->stride != 0 || out->block_k % out->stride != 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "antidiagonal_stride = %d: it must be at least 1 and divide block_q "
                           "= %d and block_k = %d",
                           out->stride, out->block_q, out->block_k);
    /* Each work-item of the antidiagonal estimate keeps stride query rows in private memory. */
    if (out->estimator == CLPSA_ESTIMATOR_ANTIDIAGONAL && out->stride * resolved->head_dim > 4096)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "antidiagonal_stride = %d with head_dim = %d: the antidiagonal "
                           "estimate keeps stride x head_dim values per work-item, at most 4096 "
                           "(e.g. stride 16 at D = 256, 32 at D = 128)",
                           out->stride, resolved->head_dim);
    if (resolved->method == CLPSA_METHOD_BINARY &&
        !(desc->binary_density > 0.0f && desc->binary_density <= 1.0f))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "binary_density = %g: CLPSA_METHOD_BINARY needs a density in (0, 1]",
                           (double)desc->binary_density);
    status = resolve_ordering(ctx, desc, resolved, out);
    if (status != CLPSA_OK)
        return status;
    /* Record the resolved values in the plan's description. */
    resolved->block_q = out->block_q;
    resolved->block_k = out->block_k;
    memcpy(resolved->thresholds, out->thresholds, sizeof out->thresholds);
    resolved->mode = out->mode;
    resolved->align_tile = out->align_tile ? out->align_tile : CLPSA_OFF;
    resolved->min_full = out->mode == CLPSA_MODE_BUDGET ? (float)CLPSA_OFF
                         : desc->min_full == 0.0f       ? 0.06f
                                                        : desc->min_full;
    resolved->density = (float)out->density;
    resolved->similarity_cap = out->similarity_cap;
    memcpy(resolved->similarity_thresholds, out->similarity_thresholds,
           sizeof out->similarity_thresholds);
    resolved->estimator = out->estimator;
    resolved->sample_q = out->sample_q;
    resolved->sample_k = out->sample_k;
    resolved->antidiagonal_stride = out->stride;
    resolved->ordering = out->ordering;
    memcpy(resolved->tile, out->tile, sizeof out->tile);
    return CLPSA_OK;
}

/* Counts from fractions (floor(min_full * nk), floor(nk * tau), ceil(density * nk)) are taken
 * with a 1e-6 slack, so a fraction stored as the float nearest a decimal (0.06f is a little
 * below 0.06) counts as the decimal the caller wrote, as the release's double arithmetic does. */
#define CLPSA__COUNT_SLACK 1e-6

void clpsa__psa_finish(const clpsa_plan_desc *desc, int blocks_k, clpsa__psa_options *psa) {
    const double nk = blocks_k;
    if (desc->min_full == (float)CLPSA_OFF) {
        psa->min_full_blocks = 0;
    } else {
        const int floor_blocks = (int)floor((double)desc->min_full * nk + CLPSA__COUNT_SLACK) + 1;
        psa->min_full_blocks = floor_blocks < blocks_k ? floor_blocks : blocks_k;
    }
    for (int l = 0; l < 4; ++l) {
        const int end = (int)floor(nk * (double)psa->thresholds[l] + CLPSA__COUNT_SLACK);
        psa->quantile_ends[l] = end < blocks_k ? end : blocks_k;
    }
    psa->text_blocks = (desc->text_tokens + psa->block_k - 1) / psa->block_k;
    psa->text_row_first = desc->seq_q - desc->text_tokens;
    const int keep = (int)ceil((double)desc->binary_density * nk - CLPSA__COUNT_SLACK);
    psa->binary_keep = keep < blocks_k ? keep : blocks_k;
    /* The row budget density * nk in eighths of a block (level 8 costs 1), so the device walks
     * it in integers; the relative slack makes a float density such as 0.7f (a little below
     * 0.7) count as the decimal the caller wrote, at every nk. */
    psa->budget_units =
        psa->mode == CLPSA_MODE_BUDGET ? (int)floor(8.0 * psa->density * nk * (1.0 + 1e-6)) : 0;
}
