/* SPDX-License-Identifier: Apache-2.0 */
/* The portable kernels (cl/dense.cl, cl/attend.cl): one work-item per query row; they run on
 * every OpenCL device, so they end every family's list of variants. */
#include "kernel_variant.h"

#include <stdio.h>

static bool always(const clpsa__device_info *info, char *why, size_t size) {
    return true;
}

static bool any_plan(const clpsa_plan *plan, char *why, size_t size) {
    return true;
}

/* Rows per work-group: the looked-up value, halved per earlier attempt whose compiled kernel
 * allowed fewer work-items (register pressure), unless it was an explicit override. */
static clpsa_status rows_for_attempt(clpsa_plan *plan, clpsa__param_id id, int attempt, int cap,
                                     int *rows) {
    bool overridden = false;
    clpsa_status status = clpsa__plan_param(plan, id, rows, &overridden);
    if (status != CLPSA_OK)
        return status;
    if (*rows > cap)
        *rows = cap; /* rows past the query block would idle */
    if (attempt > 0 && (overridden || (*rows >> attempt) < 16 || *rows <= 16))
        return CLPSA_ERROR_UNSUPPORTED; /* build_one's error stays the detail */
    *rows >>= attempt;
    return CLPSA_OK;
}

static clpsa_status configure_dense(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    int tile = 0;
    clpsa_status status =
        rows_for_attempt(plan, CLPSA__P_DENSE_BLOCK_M, attempt, 1 << 30, &out->rows);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, CLPSA__P_DENSE_TILE_N, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    out->items = out->rows;
    snprintf(out->options, sizeof out->options, "-DBLOCK_M=%d -DTILE_N=%d", out->rows, tile);
    return CLPSA_OK;
}

static clpsa_status configure_attend(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    int tile = 0;
    clpsa_status status =
        rows_for_attempt(plan, CLPSA__P_ATTEND_ROWS, attempt, plan->psa.block_q, &out->rows);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, CLPSA__P_ATTEND_TILE_N, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    out->items = out->rows;
    snprintf(out->options, sizeof out->options, "-DATT_M=%d -DTILE_N=%d", out->rows, tile);
    return CLPSA_OK;
}

const clpsa__kernel_variant clpsa__portable_dense = {
    CLPSA__FAMILY_DENSE,
    1,
    "portable",
    {"common.cl", "dense.cl", NULL},
    "dense_attention",
    {CLPSA__P_DENSE_BLOCK_M, CLPSA__P_DENSE_TILE_N, CLPSA__PARAM_COUNT},
    always,
    any_plan,
    configure_dense,
};

const clpsa__kernel_variant clpsa__portable_attend = {
    CLPSA__FAMILY_ATTEND,
    1,
    "portable",
    {"common.cl", "attend.cl", NULL},
    "psa_attend",
    {CLPSA__P_ATTEND_ROWS, CLPSA__P_ATTEND_TILE_N, CLPSA__PARAM_COUNT},
    always,
    any_plan,
    configure_attend,
};

/* The sampled estimate: one work-group per query block (rows = 1 block). */
static clpsa_status configure_estimate(clpsa_plan *plan, bool staged, clpsa__kernel_config *out) {
    int wg = 0;
    const clpsa_status status = clpsa__plan_param(plan, CLPSA__P_ESTIMATE_WG, &wg, NULL);
    if (status != CLPSA_OK)
        return status;
    out->rows = 1;
    out->items = wg;
    snprintf(out->options, sizeof out->options, "-DEST_WG=%d -DESTIMATE_STAGED=%d", wg,
             staged ? 1 : 0);
    return CLPSA_OK;
}

static clpsa_status configure_plain(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return attempt > 0 ? CLPSA_ERROR_UNSUPPORTED : configure_estimate(plan, false, out);
}

static clpsa_status configure_staged(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return attempt > 0 ? CLPSA_ERROR_UNSUPPORTED : configure_estimate(plan, true, out);
}

/* The staged kernel keeps the sampled rows, per-work-item maxima and the reductions in local
 * memory; it needs them to fit at the work-group size the plan would use. */
static bool staged_fits(const clpsa_plan *plan, char *why, size_t size) {
    clpsa__param_source source;
    const cl_ulong wg = (cl_ulong)clpsa__param_value(plan->ctx, CLPSA__P_ESTIMATE_WG, &source);
    const cl_ulong sq = (cl_ulong)plan->psa.sample_q, d = (cl_ulong)plan->desc.head_dim;
    const cl_ulong local = sq * d * 4 + wg * sq * 4 + sq * 4 + wg * 4;
    if (local > plan->ctx->info.local_mem_size) {
        snprintf(why, size, "needs %llu bytes of local memory; the device has %llu",
                 (unsigned long long)local, (unsigned long long)plan->ctx->info.local_mem_size);
        return false;
    }
    return true;
}

const clpsa__kernel_variant clpsa__portable_estimate = {
    CLPSA__FAMILY_ESTIMATE,
    1,
    "portable",
    {"common.cl", "estimate.cl", NULL},
    "estimate_sampled",
    {CLPSA__P_ESTIMATE_WG, CLPSA__PARAM_COUNT},
    always,
    any_plan,
    configure_plain,
};

const clpsa__kernel_variant clpsa__portable_estimate_staged = {
    CLPSA__FAMILY_ESTIMATE,
    2,
    "portable-staged",
    {"common.cl", "estimate.cl", NULL},
    "estimate_sampled_staged",
    {CLPSA__P_ESTIMATE_WG, CLPSA__PARAM_COUNT},
    always,
    staged_fits,
    configure_staged,
};

/* The CPU-shaped variants (cl/portable/): one work-item per group owns CPU_ROWS query rows and
 * register-blocks them with float16 vectors (rows along the lanes), which PoCL compiles to
 * AVX-512 without relying on its work-item loop vectoriser. */
static bool cpu_device(const clpsa__device_info *info, char *why, size_t size) {
    if (info->type & CL_DEVICE_TYPE_CPU)
        return true;
    snprintf(why, size, "not a CPU device (shaped for one work-item per core with wide vectors)");
    return false;
}

/* Rows per work-item: CPU_ROWS, at most the query block rounded up to whole vectors of 16. */
static clpsa_status configure_cpu(clpsa_plan *plan, int attempt, clpsa__param_id rows_id,
                                  clpsa__param_id tile_id, int max_rows,
                                  clpsa__kernel_config *out) {
    int tile = 0;
    if (attempt > 0)
        return CLPSA_ERROR_UNSUPPORTED; /* one work-item per group: nothing to shrink */
    clpsa_status status = clpsa__plan_param(plan, rows_id, &out->rows, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, tile_id, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    const int cap = (max_rows + 15) / 16 * 16;
    if (out->rows > cap)
        out->rows = cap;
    out->items = 1;
    snprintf(out->options, sizeof out->options, "-DCPU_ROWS=%d -DCPU_TILE_N=%d", out->rows, tile);
    return CLPSA_OK;
}

static clpsa_status configure_cpu_dense(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure_cpu(plan, attempt, CLPSA__P_DENSE_CPU_ROWS, CLPSA__P_DENSE_CPU_TILE_N, 1 << 30,
                         out);
}

static clpsa_status configure_cpu_attend(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure_cpu(plan, attempt, CLPSA__P_ATTEND_CPU_ROWS, CLPSA__P_ATTEND_CPU_TILE_N,
                         plan->psa.block_q, out);
}

const clpsa__kernel_variant clpsa__portable_cpu_dense = {
    CLPSA__FAMILY_DENSE, 3,
    "portable-cpu",      {"common.cl", "portable/cpu_flash.cl", "portable/dense_cpu.cl", NULL},
    "dense_attention",   {CLPSA__P_DENSE_CPU_ROWS, CLPSA__P_DENSE_CPU_TILE_N, CLPSA__PARAM_COUNT},
    cpu_device,          any_plan,
    configure_cpu_dense,
};

const clpsa__kernel_variant clpsa__portable_cpu_attend = {
    CLPSA__FAMILY_ATTEND,
    3,
    "portable-cpu",
    {"common.cl", "portable/cpu_flash.cl", "portable/attend_cpu.cl", NULL},
    "psa_attend",
    {CLPSA__P_ATTEND_CPU_ROWS, CLPSA__P_ATTEND_CPU_TILE_N, CLPSA__PARAM_COUNT},
    cpu_device,
    any_plan,
    configure_cpu_attend,
};

/* The sampled estimate for CPUs: one work-item per query block, its sampled rows along the
 * lanes; nothing to tune. */
static clpsa_status configure_cpu_estimate(clpsa_plan *plan, int attempt,
                                           clpsa__kernel_config *out) {
    (void)plan;
    if (attempt > 0)
        return CLPSA_ERROR_UNSUPPORTED;
    out->rows = 1;
    out->items = 1;
    out->options[0] = '\0';
    return CLPSA_OK;
}

const clpsa__kernel_variant clpsa__portable_cpu_estimate = {
    CLPSA__FAMILY_ESTIMATE,
    4,
    "portable-cpu",
    {"common.cl", "portable/estimate_cpu.cl", NULL},
    "estimate_sampled",
    {CLPSA__PARAM_COUNT},
    cpu_device,
    any_plan,
    configure_cpu_estimate,
};

/* The SIMT-shaped variants (cl/portable/simt_flash.cl): work-groups of 2 x SIMT_ROWS work-items
 * with SIMT_RPW x 4k register tiles of logits and outputs, Q^T, K^T / V and P^T in local memory.
 * Chosen automatically on devices no vendor or CPU variant serves (GPUs without a vendor path).
 * The kernel's local memory: Q^T (all of it, or with qstage 2 one head-dimension part sharing
 * its buffer with P^T), a part of K^T / V, P^T, the row partials, the slots (3 per key), the
 * query rows and one flag. */
static cl_ulong simt_local_bytes(int d, int rows, int tile, int split, int qstage, int rpw) {
    const cl_ulong qt = (cl_ulong)(qstage == 2 ? d / split : d) * rows, pt = (cl_ulong)tile * rows;
    const cl_ulong qp = qstage == 2 ? (qt > pt ? qt : pt) : qt + pt;
    return 4 * (qp + (cl_ulong)tile * (d / split) + (cl_ulong)rows * 2 * rpw + 3 * (cl_ulong)tile +
                rows + 1);
}

/* The most parts the kernel can stage the head dimension in with rpw rows per work-item (each
 * part a multiple of 8 rpw head dimensions: 32 with 4 rows, 64 with 8). */
static int simt_max_split(int d, int rpw) {
    int split = 1;
    while (split < 4 && d % (2 * split * 8 * rpw) == 0)
        split *= 2;
    return split;
}

static bool simt_plan(const clpsa_plan *plan, char *why, size_t size) {
    const int d = plan->desc.head_dim;
    if (d % 32 != 0 || d > 128) {
        snprintf(why, size, "head_dim = %d: needs a multiple of 32 up to 128", d);
        return false;
    }
    const cl_ulong least = simt_local_bytes(d, 32, 32, simt_max_split(d, 4), 2, 4);
    if (least > plan->ctx->info.local_mem_size) {
        snprintf(why, size, "needs %llu bytes of local memory at D = %d; the device has %llu",
                 (unsigned long long)least, d, (unsigned long long)plan->ctx->info.local_mem_size);
        return false;
    }
    return true;
}

/* The fewest parts, from *split up, in which rows x tile fit in `have` bytes with Q^T staged as
 * qstage says; false (*split unchanged) if none fits. */
static bool simt_fit_split(int d, int rows, int tile, int qstage, int rpw, cl_ulong have,
                           int *split) {
    for (int s = *split; s <= simt_max_split(d, rpw); s *= 2)
        if (simt_local_bytes(d, rows, tile, s, qstage, rpw) <= have) {
            *split = s;
            return true;
        }
    return false;
}

/* The tunables of one SIMT-shaped variant. */
typedef struct simt_param_ids {
    clpsa__param_id rows, tile, split, qstage, rpw, unroll;
} simt_param_ids;

/* Whether rows x tile fit with rpw rows per work-item, from *split parts and Q^T as *qstage says
 * up (more parts, then Q^T staged per tile); the split and qstage that fit. */
static bool simt_fit(int d, int rows, int tile, int rpw, cl_ulong have, int *split, int *qstage) {
    int s = *split;
    if (simt_fit_split(d, rows, tile, *qstage, rpw, have, &s)) {
        *split = s;
        return true;
    }
    s = *split;
    if (*qstage == 1 && simt_fit_split(d, rows, tile, 2, rpw, have, &s)) {
        *split = s;
        *qstage = 2;
        return true;
    }
    return false;
}

/* SIMT_ROWS, SIMT_TILE_N, SIMT_DSPLIT, SIMT_QSTAGE and SIMT_RPW as looked up; where local memory
 * cannot hold them, the head dimension is split further, then Q^T is staged with every tile (how
 * 64 rows x 64 keys fit at D = 128 in 48 KiB), before 8 rows per work-item become 4 and the
 * tile, then the rows, are made smaller (on the H200 at D = 128, 32 rows x 32 keys split in two
 * ran at 15.1 TFLOP/s, 32 x 64 at 12.9); rows halved per earlier attempt whose kernel allowed
 * fewer work-items. */
static clpsa_status configure_simt(clpsa_plan *plan, int attempt, const simt_param_ids *ids,
                                   int max_rows, clpsa__kernel_config *out) {
    int rows = 0, tile = 0, split = 0, qstage = 0, rpw = 0, unroll = 0;
    bool rows_overridden = false;
    clpsa_status status = clpsa__plan_param(plan, ids->rows, &rows, &rows_overridden);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, ids->tile, &tile, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, ids->split, &split, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, ids->qstage, &qstage, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, ids->rpw, &rpw, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, ids->unroll, &unroll, NULL);
    if (status != CLPSA_OK)
        return status;
    if (rows > 32 && max_rows <= 32)
        rows = 32; /* rows past the query block would idle */
    if (attempt > 0) {
        if (rows_overridden || rows <= 32)
            return CLPSA_ERROR_UNSUPPORTED;
        rows = 32;
    }
    const int d = plan->desc.head_dim;
    const cl_ulong have = plan->ctx->info.local_mem_size;
    /* 8 rows per work-item cover 64 keys and 64 head dimensions per float4 step. */
    int s8 = split < simt_max_split(d, 8) ? split : simt_max_split(d, 8), q8 = qstage;
    if (rpw == 8 && tile % 64 == 0 && d % 64 == 0 && simt_fit(d, rows, tile, 8, have, &s8, &q8)) {
        split = s8;
        qstage = q8;
    } else {
        rpw = 4;
        if (split > simt_max_split(d, 4))
            split = simt_max_split(d, 4);
        const int shapes[3][2] = {{rows, tile}, {rows, 32}, {32, 32}};
        for (int i = 0; i < 3; ++i) {
            int s = split, q = qstage;
            const bool fits = simt_fit(d, shapes[i][0], shapes[i][1], 4, have, &s, &q);
            if (fits || i == 2) {
                rows = shapes[i][0];
                tile = shapes[i][1];
                split = fits ? s : simt_max_split(d, 4);
                qstage = fits ? q : 2;
                break;
            }
        }
    }
    out->rows = rows;
    out->items = 2 * rows;
    snprintf(out->options, sizeof out->options,
             "-DSIMT_ROWS=%d -DSIMT_TILE_N=%d -DSIMT_DSPLIT=%d -DSIMT_QSTAGE=%d -DSIMT_RPW=%d "
             "-DSIMT_UNROLL=%d",
             rows, tile, split, qstage, rpw, unroll);
    return CLPSA_OK;
}

static clpsa_status configure_simt_dense(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    static const simt_param_ids ids = {CLPSA__P_DENSE_SIMT_ROWS,   CLPSA__P_DENSE_SIMT_TILE_N,
                                       CLPSA__P_DENSE_SIMT_DSPLIT, CLPSA__P_DENSE_SIMT_QSTAGE,
                                       CLPSA__P_DENSE_SIMT_RPW,    CLPSA__P_DENSE_SIMT_UNROLL};
    return configure_simt(plan, attempt, &ids, 1 << 30, out);
}

static clpsa_status configure_simt_attend(clpsa_plan *plan, int attempt,
                                          clpsa__kernel_config *out) {
    static const simt_param_ids ids = {CLPSA__P_ATTEND_SIMT_ROWS,   CLPSA__P_ATTEND_SIMT_TILE_N,
                                       CLPSA__P_ATTEND_SIMT_DSPLIT, CLPSA__P_ATTEND_SIMT_QSTAGE,
                                       CLPSA__P_ATTEND_SIMT_RPW,    CLPSA__P_ATTEND_SIMT_UNROLL};
    return configure_simt(plan, attempt, &ids, plan->psa.block_q, out);
}

const clpsa__kernel_variant clpsa__portable_simt_dense = {
    CLPSA__FAMILY_DENSE,
    4,
    "portable-simt",
    {"common.cl", "portable/simt_flash.cl", "portable/dense_simt.cl", NULL},
    "dense_attention",
    {CLPSA__P_DENSE_SIMT_ROWS, CLPSA__P_DENSE_SIMT_TILE_N, CLPSA__P_DENSE_SIMT_DSPLIT,
     CLPSA__P_DENSE_SIMT_QSTAGE, CLPSA__P_DENSE_SIMT_RPW, CLPSA__P_DENSE_SIMT_UNROLL,
     CLPSA__PARAM_COUNT},
    always,
    simt_plan,
    configure_simt_dense,
};

const clpsa__kernel_variant clpsa__portable_simt_attend = {
    CLPSA__FAMILY_ATTEND,
    4,
    "portable-simt",
    {"common.cl", "portable/simt_flash.cl", "portable/attend_simt.cl", NULL},
    "psa_attend",
    {CLPSA__P_ATTEND_SIMT_ROWS, CLPSA__P_ATTEND_SIMT_TILE_N, CLPSA__P_ATTEND_SIMT_DSPLIT,
     CLPSA__P_ATTEND_SIMT_QSTAGE, CLPSA__P_ATTEND_SIMT_RPW, CLPSA__P_ATTEND_SIMT_UNROLL,
     CLPSA__PARAM_COUNT},
    always,
    simt_plan,
    configure_simt_attend,
};

/* Budget mode's measurement (cl/budget.cl): one work-group per query block, its sampled rows
 * staged in local memory, work-items owning key blocks. */
static cl_ulong budget_local_bytes(const clpsa_plan *plan, int wg) {
    const cl_ulong sq = (cl_ulong)plan->psa.sample_q, d = (cl_ulong)plan->desc.head_dim;
    return 4 * (sq * d + sq + (cl_ulong)wg * sq + 2 * sq);
}

static bool budget_fits(const clpsa_plan *plan, char *why, size_t size) {
    const cl_ulong need = budget_local_bytes(plan, 16);
    if (need > plan->ctx->info.local_mem_size) {
        snprintf(why, size,
                 "needs %llu bytes of local memory at sample_q = %d, head_dim = %d; the device "
                 "has %llu",
                 (unsigned long long)need, plan->psa.sample_q, plan->desc.head_dim,
                 (unsigned long long)plan->ctx->info.local_mem_size);
        return false;
    }
    return true;
}

/* BUDGET_WG as looked up, halved while local memory cannot hold it or an earlier attempt's
 * kernel allowed fewer work-items (down to 16; an override is never changed). */
static clpsa_status configure_budget(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    int wg = 0;
    bool overridden = false;
    const clpsa_status status = clpsa__plan_param(plan, CLPSA__P_BUDGET_WG, &wg, &overridden);
    if (status != CLPSA_OK)
        return status;
    if (attempt > 0 && (overridden || (wg >> attempt) < 16))
        return CLPSA_ERROR_UNSUPPORTED;
    wg >>= attempt;
    while (!overridden && wg > 16 && budget_local_bytes(plan, wg) > plan->ctx->info.local_mem_size)
        wg /= 2;
    out->rows = 1;
    out->items = wg;
    snprintf(out->options, sizeof out->options, "-DBUDGET_WG=%d", wg);
    return CLPSA_OK;
}

const clpsa__kernel_variant clpsa__portable_budget = {
    CLPSA__FAMILY_BUDGET,
    1,
    "portable",
    {"common.cl", "budget.cl", NULL},
    "budget_measure",
    {CLPSA__P_BUDGET_WG, CLPSA__PARAM_COUNT},
    always,
    budget_fits,
    configure_budget,
};

/* The measurement for CPUs (cl/portable/budget_cpu.cl): one work-item per group of whole query
 * blocks, about BUDGET_CPU_ROWS sampled rows along the vector lanes, Q^T in local memory. */
static int cpu_budget_blocks(int cpu_rows, int sample_q) {
    return cpu_rows > sample_q ? cpu_rows / sample_q : 1;
}

static cl_ulong cpu_budget_local_bytes(const clpsa_plan *plan, int blocks) {
    const int rows = blocks * plan->psa.sample_q, lanes = rows <= 8 ? 8 : 16;
    const cl_ulong pad = (cl_ulong)(rows + lanes - 1) / lanes * lanes;
    return 4 * (pad * (cl_ulong)plan->desc.head_dim + 3 * pad);
}

static bool cpu_budget_fits(const clpsa_plan *plan, char *why, size_t size) {
    const cl_ulong need = cpu_budget_local_bytes(plan, 1);
    if (need > plan->ctx->info.local_mem_size) {
        snprintf(why, size,
                 "needs %llu bytes of local memory at sample_q = %d, head_dim = %d; the device "
                 "has %llu",
                 (unsigned long long)need, plan->psa.sample_q, plan->desc.head_dim,
                 (unsigned long long)plan->ctx->info.local_mem_size);
        return false;
    }
    return true;
}

/* BUDGET_CPU_ROWS as looked up, lowered (not below one query block) while local memory cannot
 * hold the group's Q^T; the work-item is alone in its group, so there is nothing to shrink. */
static clpsa_status configure_cpu_budget(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    if (attempt > 0)
        return CLPSA_ERROR_UNSUPPORTED;
    int rows = 0;
    const clpsa_status status = clpsa__plan_param(plan, CLPSA__P_BUDGET_CPU_ROWS, &rows, NULL);
    if (status != CLPSA_OK)
        return status;
    int blocks = cpu_budget_blocks(rows, plan->psa.sample_q);
    while (blocks > 1 && cpu_budget_local_bytes(plan, blocks) > plan->ctx->info.local_mem_size)
        blocks /= 2;
    out->rows = blocks;
    out->items = 1;
    snprintf(out->options, sizeof out->options, "-DBUDGET_CPU_ROWS=%d",
             blocks * plan->psa.sample_q);
    return CLPSA_OK;
}

const clpsa__kernel_variant clpsa__portable_cpu_budget = {
    CLPSA__FAMILY_BUDGET, 2,
    "portable-cpu",       {"common.cl", "portable/budget_cpu.cl", NULL},
    "budget_measure",     {CLPSA__P_BUDGET_CPU_ROWS, CLPSA__PARAM_COUNT},
    cpu_device,           cpu_budget_fits,
    configure_cpu_budget,
};

/* The split-K decode kernels (cl/decode.cl): DEC_ROWS query rows of one kv head per
 * work-group, DEC_TILE_N keys staged per tile. */
static cl_ulong decode_local_bytes(int d, int rows, int tile) {
    return 4 * ((cl_ulong)rows * d + (cl_ulong)tile * (d + 1) + (cl_ulong)tile * d +
                (cl_ulong)rows * tile + 3 * (cl_ulong)rows);
}

/* DEC_WG and DEC_TILE_N as looked up; the tile halved until local memory holds it, the group
 * halved per earlier attempt whose kernel allowed fewer work-items (unless overridden). */
static clpsa_status configure_decode(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    int wg = 0, tile = 0;
    bool wg_overridden = false;
    clpsa_status status = clpsa__plan_param(plan, CLPSA__P_DECODE_WG, &wg, &wg_overridden);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, CLPSA__P_DECODE_TILE_N, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    if (attempt > 0 && (wg_overridden || (wg >> attempt) < 32))
        return CLPSA_ERROR_UNSUPPORTED; /* build_one's error stays the detail */
    wg >>= attempt;
    const int d = plan->desc.head_dim, rows = plan->decode_rows;
    const cl_ulong have = plan->ctx->info.local_mem_size;
    while (tile > 8 && decode_local_bytes(d, rows, tile) > have)
        tile /= 2;
    if (decode_local_bytes(d, rows, tile) > have)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_UNSUPPORTED,
                           "the decode kernel needs %llu bytes of local memory at D = %d with "
                           "%d rows and %d keys per tile; the device has %llu",
                           (unsigned long long)decode_local_bytes(d, rows, tile), d, rows, tile,
                           (unsigned long long)have);
    plan->decode_wg = plan->decode_combine_wg = wg;
    plan->decode_tile = tile;
    out->rows = rows;
    out->items = wg;
    snprintf(out->options, sizeof out->options,
             "-DDEC_WG=%d -DDEC_COMBINE_WG=%d -DDEC_TILE_N=%d -DDEC_ROWS=%d", wg, wg, tile, rows);
    return CLPSA_OK;
}

/* The CPU-shaped decode kernel: one work-item per group, nothing in local memory; the combine
 * kernel's 16 work-items share the head dimension (PoCL runs them as one vector loop). */
static clpsa_status configure_cpu_decode(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    int tile = 0;
    if (attempt > 0)
        return CLPSA_ERROR_UNSUPPORTED; /* one work-item per group: nothing to shrink */
    const clpsa_status status = clpsa__plan_param(plan, CLPSA__P_DECODE_TILE_N, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    plan->decode_wg = 1;
    plan->decode_combine_wg = 16;
    plan->decode_tile = tile;
    out->rows = plan->decode_rows;
    out->items = 1;
    snprintf(out->options, sizeof out->options,
             "-DDEC_COMBINE_WG=16 -DDEC_TILE_N=%d -DDEC_ROWS=%d -DCPU_ROWS=16 -DCPU_TILE_N=%d",
             tile, plan->decode_rows, tile);
    return CLPSA_OK;
}

const clpsa__kernel_variant clpsa__portable_cpu_decode = {
    CLPSA__FAMILY_DECODE,
    3,
    "portable-cpu",
    {"common.cl", "decode_combine.cl", "portable/cpu_flash.cl", "portable/decode_cpu.cl"},
    "decode_partial",
    {CLPSA__P_DECODE_CU_GROUPS, CLPSA__P_DECODE_TILE_N, CLPSA__PARAM_COUNT},
    cpu_device,
    any_plan,
    configure_cpu_decode,
};

const clpsa__kernel_variant clpsa__portable_decode = {
    CLPSA__FAMILY_DECODE,
    1,
    "portable",
    {"common.cl", "decode_combine.cl", "decode.cl", NULL},
    "decode_partial",
    {CLPSA__P_DECODE_CU_GROUPS, CLPSA__P_DECODE_WG, CLPSA__P_DECODE_TILE_N, CLPSA__PARAM_COUNT},
    always,
    any_plan,
    configure_decode,
};
