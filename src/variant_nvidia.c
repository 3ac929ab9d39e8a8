/* SPDX-License-Identifier: Apache-2.0 */
/* NVIDIA's matrix-unit variants (cl/nvidia/): flash attention on mma.sync through inline PTX,
 * for compute capability 8.0 and newer with fp16 or bf16 storage. Everything clpsa knows about
 * NVIDIA devices beyond their parameters lives in this file. */
#include "kernel_variant.h"

#include <stdio.h>

static bool nvidia_sm80(const clpsa__device_info *info, char *why, size_t size) {
    /* NVIDIA's own OpenCL driver answers cl_nv_device_attribute_query; other drivers of NVIDIA
     * GPUs (PoCL's CUDA device, say) do not, and may not pass inline PTX through. */
    if (info->nv_compute_major == 0) {
        snprintf(why, size, "not an NVIDIA device under NVIDIA's OpenCL driver");
        return false;
    }
    if (info->nv_compute_major < 8) {
        snprintf(why, size, "compute capability %d.%d; mma.sync with bf16 needs 8.0 or newer",
                 info->nv_compute_major, info->nv_compute_minor);
        return false;
    }
    return true;
}

static bool strides_multiple(const clpsa_strides *s, long long of) {
    return s->batch % of == 0 && s->head % of == 0 && s->seq % of == 0;
}

static bool mma_plan(const clpsa_plan *plan, char *why, size_t size) {
    const clpsa_plan_desc *d = &plan->desc;
    if (d->dtype != CLPSA_DTYPE_FP16 && d->dtype != CLPSA_DTYPE_BF16) {
        snprintf(why, size, "storage type %d: the matrix units take fp16 or bf16", (int)d->dtype);
        return false;
    }
    if (d->head_dim % 32 != 0 || d->head_dim > 128) {
        snprintf(why, size, "head_dim = %d: needs a multiple of 32 up to 128", d->head_dim);
        return false;
    }
    /* Q is read two elements at a time; K and V rows are copied 16 bytes at a time. */
    if (!strides_multiple(&d->q_strides, 2) || !strides_multiple(&d->k_strides, 8) ||
        !strides_multiple(&d->v_strides, 8)) {
        snprintf(why, size, "strides: Q's must be even and K's and V's multiples of 8 elements");
        return false;
    }
    return true;
}

/* Warps (16 rows each) and keys per tile for a family's two parameters. */
static clpsa_status configure(clpsa_plan *plan, int attempt, clpsa__param_id warps_id,
                              clpsa__param_id tile_id, clpsa__param_id stages_id, int max_rows,
                              bool dense, bool wgmma, clpsa__kernel_config *out) {
    clpsa_context *ctx = plan->ctx;
    int warps = 0, tile = 0, stages = 0;
    bool warps_overridden = false, tile_overridden = false, stages_overridden = false;
    clpsa_status status = clpsa__plan_param(plan, warps_id, &warps, &warps_overridden);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, tile_id, &tile, &tile_overridden);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, stages_id, &stages, &stages_overridden);
    if (status != CLPSA_OK)
        return status;
    while (warps > 1 && 16 * (warps / 2) >= max_rows)
        warps /= 2; /* rows past the query block would idle */
    if (attempt > 0) {
        if (warps_overridden || (warps >> attempt) < 1)
            return CLPSA_ERROR_UNSUPPORTED;
        warps >>= attempt;
    }
    /* wgmma works on whole warpgroups of four warps. */
    if (wgmma && warps % 4 != 0) {
        if (warps_overridden)
            return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                               "the nvidia-wgmma kernel needs NV_WARPS a multiple of 4 (got %d)",
                               warps);
        if (attempt > 0 && warps < 4)
            return CLPSA_ERROR_UNSUPPORTED; /* no smaller group left to try */
        warps = warps < 4 ? 4 : warps - warps % 4;
    }
    /* Only a causal plan can hide a key of a tile from some of its rows (nv_flash.cl's
     * stage_hidden_values); the others build without that code, which costs registers. */
    const bool guard = plan->desc.causal != 0;
    /* Shrink the tile, then the pipeline, to what local memory holds (never an override). */
    const cl_ulong d = (cl_ulong)plan->desc.head_dim;
    for (;;) {
        /* wgmma's core-matrix tiles need no padding. */
        const cl_ulong pitch = wgmma ? d : d + 8;
        /* K and V tiles; slot rows, biases and last members per description; the records
         * of zeroed non-finite values (nv_flash.cl, first_bad: 3 rows with the causal guard). */
        const cl_ulong local = (cl_ulong)stages * 2 * tile * pitch * 2 +
                               (cl_ulong)(stages + 1) * tile * 12 + (guard ? 3 : 1) * d * 4;
        if (local <= ctx->info.local_mem_size)
            break;
        if (tile > 32 && !tile_overridden)
            tile = 32;
        else if (stages > 1 && !stages_overridden)
            stages = 1;
        else
            return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                               "the %s kernel with NV_TILE_N=%d, NV_STAGES=%d needs "
                               "%llu bytes of local memory at D = %llu; the device has %llu",
                               wgmma ? "nvidia-wgmma" : "nvidia-mma", tile, stages,
                               (unsigned long long)local, (unsigned long long)d,
                               (unsigned long long)ctx->info.local_mem_size);
    }
    out->rows = 16 * warps;
    out->items = 32 * warps;
    snprintf(out->options, sizeof out->options,
             "-DNV_WARPS=%d -DNV_TILE_N=%d -DNV_STAGES=%d -DNV_DENSE=%d -DNV_WGMMA=%d "
             "-DNV_HIDDEN_GUARD=%d -cl-nv-verbose",
             warps, tile, stages, dense ? 1 : 0, wgmma ? 1 : 0, guard ? 1 : 0);
    return CLPSA_OK;
}

static clpsa_status configure_dense(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure(plan, attempt, CLPSA__P_DENSE_NV_WARPS, CLPSA__P_DENSE_NV_TILE_N,
                     CLPSA__P_DENSE_NV_STAGES, 1 << 30, true, false, out);
}

static clpsa_status configure_attend(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure(plan, attempt, CLPSA__P_ATTEND_NV_WARPS, CLPSA__P_ATTEND_NV_TILE_N,
                     CLPSA__P_ATTEND_NV_STAGES, plan->psa.block_q, false, false, out);
}

const clpsa__kernel_variant clpsa__nvidia_mma_dense = {
    CLPSA__FAMILY_DENSE,
    2,
    "nvidia-mma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_flash.cl", NULL},
    "dense_attention",
    {CLPSA__P_DENSE_NV_WARPS, CLPSA__P_DENSE_NV_TILE_N, CLPSA__P_DENSE_NV_STAGES,
     CLPSA__PARAM_COUNT},
    nvidia_sm80,
    mma_plan,
    configure_dense,
};

const clpsa__kernel_variant clpsa__nvidia_mma_attend = {
    CLPSA__FAMILY_ATTEND,
    2,
    "nvidia-mma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_flash.cl", NULL},
    "psa_attend",
    {CLPSA__P_ATTEND_NV_WARPS, CLPSA__P_ATTEND_NV_TILE_N, CLPSA__P_ATTEND_NV_STAGES,
     CLPSA__PARAM_COUNT},
    nvidia_sm80,
    mma_plan,
    configure_attend,
};

/* The nvidia-wgmma variants: the same kernels with Hopper's warpgroup instructions (the
 * program is rewritten into an sm_90a module after its first build, src/ptx_sm90a.c); they share
 * nvidia-mma's tunables. wgmma exists on compute capability 9.0 only (not on 10.x and later). */
static bool nvidia_sm90(const clpsa__device_info *info, char *why, size_t size) {
    if (!nvidia_sm80(info, why, size))
        return false;
    if (info->nv_compute_major != 9 || info->nv_compute_minor != 0) {
        snprintf(why, size, "compute capability %d.%d; wgmma needs 9.0", info->nv_compute_major,
                 info->nv_compute_minor);
        return false;
    }
    return true;
}

static bool wgmma_plan(const clpsa_plan *plan, char *why, size_t size) {
    if (!mma_plan(plan, why, size))
        return false;
    if (plan->desc.head_dim != 64 && plan->desc.head_dim != 128) {
        snprintf(why, size, "head_dim = %d: the wgmma kernels take 64 or 128", plan->desc.head_dim);
        return false;
    }
    return true;
}

static clpsa_status configure_wgmma_dense(clpsa_plan *plan, int attempt,
                                          clpsa__kernel_config *out) {
    return configure(plan, attempt, CLPSA__P_DENSE_NV_WARPS, CLPSA__P_DENSE_NV_TILE_N,
                     CLPSA__P_DENSE_NV_STAGES, 1 << 30, true, true, out);
}

static clpsa_status configure_wgmma_attend(clpsa_plan *plan, int attempt,
                                           clpsa__kernel_config *out) {
    return configure(plan, attempt, CLPSA__P_ATTEND_NV_WARPS, CLPSA__P_ATTEND_NV_TILE_N,
                     CLPSA__P_ATTEND_NV_STAGES, plan->psa.block_q, false, true, out);
}

const clpsa__kernel_variant clpsa__nvidia_wgmma_dense = {
    CLPSA__FAMILY_DENSE,
    5,
    "nvidia-wgmma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_wgmma.cl", "nvidia/nv_flash.cl"},
    "dense_attention",
    {CLPSA__P_DENSE_NV_WARPS, CLPSA__P_DENSE_NV_TILE_N, CLPSA__P_DENSE_NV_STAGES,
     CLPSA__PARAM_COUNT},
    nvidia_sm90,
    wgmma_plan,
    configure_wgmma_dense,
};

const clpsa__kernel_variant clpsa__nvidia_wgmma_attend = {
    CLPSA__FAMILY_ATTEND,
    5,
    "nvidia-wgmma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_wgmma.cl", "nvidia/nv_flash.cl"},
    "psa_attend",
    {CLPSA__P_ATTEND_NV_WARPS, CLPSA__P_ATTEND_NV_TILE_N, CLPSA__P_ATTEND_NV_STAGES,
     CLPSA__PARAM_COUNT},
    nvidia_sm90,
    wgmma_plan,
    configure_wgmma_attend,
};

/* The sampled estimate: query blocks of whole warps share the key tiles. */
static bool mma_estimate_plan(const clpsa_plan *plan, char *why, size_t size) {
    if (!mma_plan(plan, why, size))
        return false;
    const int sk = plan->psa.sample_k;
    if (sk % 8 != 0 || 64 % sk != 0) {
        snprintf(why, size,
                 "sample_k = %d: needs 8, 16, 32 or 64 (key blocks of whole 8-key "
                 "tiles, whole blocks per key tile)",
                 sk);
        return false;
    }
    if ((plan->psa.sample_q + 15) / 16 > 8) {
        snprintf(why, size, "sample_q = %d: at most 128 rows per query block", plan->psa.sample_q);
        return false;
    }
    return true;
}

/* Warps of whole query blocks (WARPS_PER_BLOCK each), halved per attempt whose
 * kernel allowed fewer work-items; nvidia-wgmma's in whole warpgroups of four as well. */
static clpsa_status configure_estimate_kind(clpsa_plan *plan, int attempt, bool wgmma,
                                            clpsa__kernel_config *out) {
    int warps = 0, tile = 0;
    bool overridden = false;
    clpsa_status status = clpsa__plan_param(plan, CLPSA__P_ESTIMATE_NV_WARPS, &warps, &overridden);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, CLPSA__P_ESTIMATE_NV_TILE_N, &tile, NULL);
    if (status != CLPSA_OK)
        return status;
    /* Warps per query block: nv_estimate.cl's WARPS_PER_BLOCK (a warp takes two m-tiles of 16
     * sampled rows with mma.sync where a block has more than 16, one with wgmma). */
    const int sq = plan->psa.sample_q;
    const int per_block = wgmma || sq <= 16 ? (sq + 15) / 16 : (sq + 31) / 32;
    /* nvidia-wgmma: per_block is 1, 2, 4 or 8 (wgmma_estimate_plan), so whole warpgroups of
     * whole blocks are multiples of the larger of 4 and per_block. */
    const int unit = wgmma && per_block < 4 ? 4 : per_block;
    if (wgmma && overridden && warps % unit != 0)
        return clpsa__fail(plan->ctx, CLPSA_ERROR_UNSUPPORTED,
                           "the nvidia-wgmma estimate needs estimate.NV_WARPS a multiple of %d "
                           "(whole warpgroups of four warps and whole query blocks of %d warps "
                           "at sample_q = %d; got %d)",
                           unit, per_block, plan->psa.sample_q, warps);
    if (attempt > 0) {
        if (overridden || (warps >> attempt) < unit)
            return CLPSA_ERROR_UNSUPPORTED;
        warps >>= attempt;
    }
    if (tile % plan->psa.sample_k != 0)
        tile = 64; /* 64 % sample_k == 0 was checked */
    warps = warps < unit ? unit : warps / unit * unit;
    out->rows = warps / per_block;
    out->items = 32 * warps;
    snprintf(out->options, sizeof out->options,
             "-DNV_WARPS=%d -DNV_TILE_N=%d -DNV_WGMMA=%d -cl-nv-verbose", warps, tile,
             wgmma ? 1 : 0);
    return CLPSA_OK;
}

static clpsa_status configure_estimate(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure_estimate_kind(plan, attempt, false, out);
}

const clpsa__kernel_variant clpsa__nvidia_mma_estimate = {
    CLPSA__FAMILY_ESTIMATE,
    3,
    "nvidia-mma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_estimate.cl", NULL},
    "estimate_sampled",
    {CLPSA__P_ESTIMATE_NV_WARPS, CLPSA__P_ESTIMATE_NV_TILE_N, CLPSA__PARAM_COUNT},
    nvidia_sm80,
    mma_estimate_plan,
    configure_estimate,
};

/* The same estimate with wgmma: a warpgroup's 64 sampled rows against each staged tile. */
static bool wgmma_estimate_plan(const clpsa_plan *plan, char *why, size_t size) {
    if (!wgmma_plan(plan, why, size) || !mma_estimate_plan(plan, why, size))
        return false;
    const int per_block = (plan->psa.sample_q + 15) / 16;
    if (per_block != 1 && per_block != 2 && per_block != 4 && per_block != 8) {
        snprintf(why, size,
                 "sample_q = %d: the wgmma estimate takes blocks of 1, 2, 4 or 8 warps (16 rows "
                 "each) that tile warpgroups of four: sample_q <= 32, 49..64 or 113..128",
                 plan->psa.sample_q);
        return false;
    }
    return true;
}

static clpsa_status configure_wgmma_estimate(clpsa_plan *plan, int attempt,
                                             clpsa__kernel_config *out) {
    return configure_estimate_kind(plan, attempt, true, out);
}

const clpsa__kernel_variant clpsa__nvidia_wgmma_estimate = {
    CLPSA__FAMILY_ESTIMATE,
    5,
    "nvidia-wgmma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_wgmma.cl", "nvidia/nv_estimate.cl", NULL},
    "estimate_sampled",
    {CLPSA__P_ESTIMATE_NV_WARPS, CLPSA__P_ESTIMATE_NV_TILE_N, CLPSA__PARAM_COUNT},
    nvidia_sm90,
    wgmma_estimate_plan,
    configure_wgmma_estimate,
};

/* Budget mode's measurement (nv_budget.cl): one m16 tile of sampled rows (16 / sample_q query
 * blocks) per warp; a key block's keys and its pooled tokens staged in two buffers. */
/* Warps per work-group sharing each staged key block: budget.NV_WARPS (default 4: the mma
 * kernel takes 139 registers a work-item (ptxas, sm_90, D = 128), so 4 warps let 3 groups share
 * an SM and hide each other's barriers, where 8 would fit once). */
static cl_ulong budget_local_bytes(const clpsa_plan *plan, int warps, bool wgmma) {
    const cl_ulong bk = (cl_ulong)plan->psa.block_k, d = (cl_ulong)plan->desc.head_dim;
    /* keys and pooled tokens (pitch D + 8; wgmma's core matrices need no padding), row maxima,
     * totals and last visible keys */
    const cl_ulong pitch = wgmma ? d : d + 8;
    return (bk + bk / 2 + bk / 4 + bk / 8) * pitch * 2 + (cl_ulong)warps * 16 * 12;
}

/* The shapes both budget variants take, and the local memory of one group of `warps`. */
static bool budget_plan_fits(const clpsa_plan *plan, int warps, bool wgmma, char *why,
                             size_t size) {
    const int bk = plan->psa.block_k;
    if (bk % 64 != 0 || bk > 128) {
        snprintf(why, size,
                 "block_k = %d: needs 64 or 128 (whole 8-token tiles at pooling level 8, "
                 "the score tiles in registers)",
                 bk);
        return false;
    }
    if (plan->psa.sample_q > 16) {
        snprintf(why, size, "sample_q = %d: at most 16 rows per query block (one m16 tile)",
                 plan->psa.sample_q);
        return false;
    }
    const cl_ulong need = budget_local_bytes(plan, warps, wgmma);
    if (need > plan->ctx->info.local_mem_size) {
        snprintf(why, size,
                 "needs %llu bytes of local memory at block_k = %d, head_dim = %d; the device "
                 "has %llu",
                 (unsigned long long)need, bk, plan->desc.head_dim,
                 (unsigned long long)plan->ctx->info.local_mem_size);
        return false;
    }
    return true;
}

static bool mma_budget_plan(const clpsa_plan *plan, char *why, size_t size) {
    return mma_plan(plan, why, size) && budget_plan_fits(plan, 1, false, why, size);
}

/* budget.NV_WARPS, fewer where the query blocks would leave warps idle (never below one
 * warpgroup for wgmma), halved per attempt whose kernel allowed fewer work-items; an override is
 * kept as given. */
static clpsa_status configure_budget_kind(clpsa_plan *plan, int attempt, bool wgmma,
                                          clpsa__kernel_config *out) {
    const int per_warp = 16 / plan->psa.sample_q; /* query blocks in one m16 tile */
    const int least = wgmma ? 4 : 1;
    int warps = 0;
    bool overridden = false;
    const clpsa_status status =
        clpsa__plan_param(plan, CLPSA__P_BUDGET_NV_WARPS, &warps, &overridden);
    if (status != CLPSA_OK)
        return status;
    if (wgmma && warps % 4 != 0) {
        if (overridden)
            return clpsa__fail(plan->ctx, CLPSA_ERROR_UNSUPPORTED,
                               "the nvidia-wgmma budget measurement needs budget.NV_WARPS a "
                               "multiple of 4 (whole warpgroups; got %d)",
                               warps);
        warps = 4;
    }
    while (!overridden && warps > least && (warps / 2) * per_warp >= plan->blocks_q)
        warps /= 2;
    if (attempt > 0) {
        if (overridden || (warps >> attempt) < least)
            return CLPSA_ERROR_UNSUPPORTED;
        warps >>= attempt;
    }
    while (warps > least && budget_local_bytes(plan, warps, wgmma) > plan->ctx->info.local_mem_size)
        warps /= 2;
    out->rows = warps * per_warp;
    out->items = 32 * warps;
    snprintf(out->options, sizeof out->options, "-DNV_WARPS=%d -DNV_WGMMA=%d -cl-nv-verbose", warps,
             wgmma ? 1 : 0);
    return CLPSA_OK;
}

static clpsa_status configure_budget(clpsa_plan *plan, int attempt, clpsa__kernel_config *out) {
    return configure_budget_kind(plan, attempt, false, out);
}

const clpsa__kernel_variant clpsa__nvidia_mma_budget = {
    CLPSA__FAMILY_BUDGET, 3,
    "nvidia-mma",         {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_budget.cl", NULL},
    "budget_measure",     {CLPSA__P_BUDGET_NV_WARPS, CLPSA__PARAM_COUNT},
    nvidia_sm80,          mma_budget_plan,
    configure_budget,
};

/* The same measurement with wgmma: a warpgroup's four m16 tiles (64 sampled rows) against the
 * staged keys (n = bn) and pooled tokens (n = 7 bn / 8). */
static bool wgmma_budget_plan(const clpsa_plan *plan, char *why, size_t size) {
    return wgmma_plan(plan, why, size) && budget_plan_fits(plan, 4, true, why, size);
}

static clpsa_status configure_wgmma_budget(clpsa_plan *plan, int attempt,
                                           clpsa__kernel_config *out) {
    return configure_budget_kind(plan, attempt, true, out);
}

const clpsa__kernel_variant clpsa__nvidia_wgmma_budget = {
    CLPSA__FAMILY_BUDGET,
    4,
    "nvidia-wgmma",
    {"common.cl", "nvidia/nv_mma.cl", "nvidia/nv_wgmma.cl", "nvidia/nv_budget.cl", NULL},
    "budget_measure",
    {CLPSA__P_BUDGET_NV_WARPS, CLPSA__PARAM_COUNT},
    nvidia_sm90,
    wgmma_budget_plan,
    configure_wgmma_budget,
};
