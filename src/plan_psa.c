/* SPDX-License-Identifier: Apache-2.0 */
/* PSA plans: kernels, scratch buffers and the enqueued pipeline
 * pool -> [similarity] -> [estimate] -> [assign] -> work list -> attend. */
#include "kernel_variant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The estimate's scratch: at most this many bytes and at most an eighth of the device's memory
 * (CLPSA_SCRATCH_LIMIT replaces both). Each launch covers as many heads as fit, and each
 * launch ends in a partly filled last wave of work-groups: at 256 MiB the H200 workload took
 * three launches of four heads (66 MB a head) and budget mode's measurement four of three (82
 * MB a head), which cost the measurement 1.8x its time. */
#define CLPSA__ESTIMATE_SCRATCH_CAP ((size_t)1 << 30)

/* CLPSA_SCRATCH_LIMIT, when set: a whole number of bytes, or of KiB, MiB or GiB with the suffix
 * K, M or G, from 1 byte to 1 TiB; into *cap. */
static clpsa_status scratch_limit_from_env(clpsa_context *ctx, size_t *cap) {
    const char *text = getenv("CLPSA_SCRATCH_LIMIT");
    if (!text || !*text)
        return CLPSA_OK;
    unsigned long long value = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9' && value <= (1ull << 40); ++p)
        value = value * 10 + (unsigned long long)(*p - '0');
    int shift = 0; /* the suffix's power of two */
    if (p > text && (*p == 'K' || *p == 'M' || *p == 'G')) {
        shift = *p == 'K' ? 10 : *p == 'M' ? 20 : 30;
        ++p;
    }
    if (p == text || *p != '\0' || value == 0 || value > (1ull << 40) >> shift)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "CLPSA_SCRATCH_LIMIT = \"%.40s\": the estimate's scratch limit must be "
                           "a whole number of bytes, or of KiB, MiB or GiB with the suffix K, M "
                           "or G, from 1 byte to 1 TiB",
                           text);
    *cap = (size_t)(value << shift);
    return CLPSA_OK;
}

static int next_power_of_two(int x) {
    int p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

static clpsa_status create_kernel(clpsa_plan *plan, const char *file, const char *options,
                                  const char *name, cl_kernel *out) {
    const char *const files[2] = {"common.cl", file};
    return clpsa__program_kernel(plan->ctx, files, 2, options, name, out);
}

/* The PSA kernels' parameters for this plan (context lookup, checked against the device). */
static clpsa_status choose_parameters(clpsa_plan *plan) {
    plan->parameter_source[0] = '\0';
    /* The sampled estimate's variants look up their own parameters. */
    clpsa_status status = CLPSA_OK;
    if (plan->psa.estimator != CLPSA_ESTIMATOR_SAMPLED)
        status = clpsa__plan_param(plan, CLPSA__P_ESTIMATE_WG, &plan->estimate_wg, NULL);
    if (status == CLPSA_OK)
        status = clpsa__plan_param(plan, CLPSA__P_ASSIGN_WG, &plan->assign_wg, NULL);
    return status;
}

static clpsa_status alloc(clpsa_plan *plan, size_t bytes, cl_mem *out) {
    return clpsa_context_alloc(plan->ctx, bytes, out);
}

static clpsa_status create_buffers(clpsa_plan *plan) {
    const clpsa_plan_desc *d = &plan->desc;
    const size_t esize = clpsa_dtype_size(d->dtype);
    const size_t kv_heads = (size_t)d->batch * d->heads_kv;
    const size_t bh = (size_t)d->batch * d->heads_q;
    const size_t pooled = (size_t)plan->np2 + plan->np4 + plan->np8;
    const size_t cells = plan->rows * (size_t)plan->blocks_k;
    clpsa_status status = alloc(plan, kv_heads * pooled * d->head_dim * esize, &plan->k_pyramid);
    if (status == CLPSA_OK)
        status = alloc(plan, kv_heads * pooled * d->head_dim * esize, &plan->v_pyramid);
    if (status == CLPSA_OK)
        status =
            alloc(plan, kv_heads * plan->blocks_k * 3 * sizeof(float), &plan->similarity_stats);
    if (status == CLPSA_OK)
        status = alloc(plan, cells * sizeof(float), &plan->scores);
    if (status == CLPSA_OK && plan->budget_measure)
        status = alloc(plan, cells * 3 * sizeof(float), &plan->budget_loss);
    if (status == CLPSA_OK)
        status = alloc(plan, cells, &plan->levels);
    if (status == CLPSA_OK)
        status = alloc(plan, plan->rows * 4 * sizeof(cl_int), &plan->counts);
    if (status == CLPSA_OK)
        status = alloc(plan, cells * sizeof(cl_int), &plan->list);
    if (status != CLPSA_OK)
        return status;

    /* The estimate's reduced scratch (rows x nk floats per work-group), launched over as many
     * heads at a time as fit under the cap. */
    const size_t per_head = (size_t)plan->blocks_q * plan->estimate_rows * plan->blocks_k * 4;
    size_t cap = CLPSA__ESTIMATE_SCRATCH_CAP;
    if (cap > plan->ctx->info.global_mem_size / 8)
        cap = (size_t)(plan->ctx->info.global_mem_size / 8);
    status = scratch_limit_from_env(plan->ctx, &cap);
    if (status != CLPSA_OK)
        return status;
    if (cap > plan->ctx->info.max_mem_alloc_size)
        cap = plan->ctx->info.max_mem_alloc_size;
    size_t heads = cap / per_head;
    heads = heads < 1 ? 1 : heads > bh ? bh : heads;
    plan->estimate_heads_per_launch = (int)heads;
    clpsa__log(plan->ctx, CLPSA_LOG_INFO,
               "estimate scratch: %zu bytes, %d of %d heads per launch (limit %zu bytes)",
               heads * per_head, (int)heads, (int)bh, cap);
    status = alloc(plan, heads * per_head, &plan->estimate_scratch);
    if (status != CLPSA_OK)
        return status;

    if (plan->psa.permuted) {
        const size_t tokens = (size_t)plan->desc.seq_k;
        int32_t *perm = malloc(tokens * sizeof *perm);
        if (!perm)
            return clpsa__fail(plan->ctx, CLPSA_ERROR_OUT_OF_MEMORY, "token permutation");
        const clpsa__psa_options *o = &plan->psa;
        status = clpsa_ordering_permutation(o->ordering, o->grid[0], o->grid[1], o->grid[2],
                                            o->tile, plan->desc.text_tokens, perm);
        cl_int err = CL_SUCCESS;
        if (status == CLPSA_OK)
            plan->perm = clCreateBuffer(plan->ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                        tokens * sizeof *perm, perm, &err);
        free(perm);
        if (status != CLPSA_OK)
            return clpsa__fail(plan->ctx, status, "computing the token ordering failed");
        if (err != CL_SUCCESS)
            return clpsa__fail_cl(plan->ctx, err, "clCreateBuffer(permutation)");
    }
    if (plan->psa.estimator == CLPSA_ESTIMATOR_SAMPLED) {
        const int sq = plan->psa.sample_q, sk = plan->psa.sample_k;
        int *rows = malloc(bh * sq * sizeof *rows);
        int *keys = malloc(bh * sk * sizeof *keys);
        if (!rows || !keys) {
            free(rows);
            free(keys);
            return clpsa__fail(plan->ctx, CLPSA_ERROR_OUT_OF_MEMORY, "sample offsets");
        }
        const size_t shard_heads = (size_t)plan->desc.heads_q;
        for (size_t x = 0; x < bh; ++x) {
            /* (b, h) of the whole model when the plan is a head shard */
            const uint64_t global = (x / shard_heads) * (uint64_t)plan->desc.shard_heads_q +
                                    (uint64_t)plan->desc.shard_head_first + x % shard_heads;
            const uint64_t stream = plan->psa.seed + 2 * global;
            clpsa__draw_offsets(stream, plan->psa.block_q, sq, rows + x * sq);
            clpsa__draw_offsets(stream + 1, plan->psa.block_k, sk, keys + x * sk);
        }
        cl_int err = CL_SUCCESS;
        plan->row_offsets =
            clCreateBuffer(plan->ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                           bh * sq * sizeof *rows, rows, &err);
        if (err == CL_SUCCESS)
            plan->key_offsets =
                clCreateBuffer(plan->ctx->cl_ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                               bh * sk * sizeof *keys, keys, &err);
        free(rows);
        free(keys);
        if (err != CL_SUCCESS)
            return clpsa__fail_cl(plan->ctx, err, "clCreateBuffer(sample offsets)");
    }
    return CLPSA_OK;
}

/* Budget mode's kernels: the measurement (a kernel family, cl/budget.cl) and the allocation,
 * whose row of up to 4 nk upgrades is selected from in local memory. */
static clpsa_status build_budget(clpsa_plan *plan, char *options, size_t size) {
    clpsa_context *ctx = plan->ctx;
    const clpsa_plan_desc *d = &plan->desc;
    const clpsa__psa_options *psa = &plan->psa;
    plan->upgrade_n = 4 * plan->blocks_k;
    /* ratio bits, level and cost per upgrade; level and next step per block; then the
     * selection's histogram (2 x 256 ints), per-work-item partials (20 bytes each) and the
     * ranked candidates (128 x 9 bytes), rounded up */
    const cl_ulong local = (cl_ulong)plan->upgrade_n * 6 + (cl_ulong)plan->upgrade_n / 2 + 2048 +
                           (cl_ulong)plan->assign_wg * 20 + 1280;
    if (local > ctx->info.local_mem_size)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "seq_k = %d with block_k = %d gives %d key blocks; budget mode keeps "
                           "up to 4 upgrades per block in local memory, %llu bytes, and this "
                           "device has %llu",
                           d->seq_k, psa->block_k, plan->blocks_k, (unsigned long long)local,
                           (unsigned long long)ctx->info.local_mem_size);
    snprintf(options, size,
             "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DBLOCK_Q=%d -DBLOCK_K=%d -DSAMPLE_Q=%d "
             "-DPERMUTED=%d",
             d->head_dim, (int)d->dtype, psa->block_q, psa->block_k, psa->sample_q, psa->permuted);
    clpsa__kernel_config measure;
    clpsa_status status =
        clpsa__kernel_variant_build(plan, CLPSA__FAMILY_BUDGET, options, &plan->budget_measure,
                                    &plan->budget_variant, &measure);
    if (status != CLPSA_OK)
        return status;
    plan->budget_wg = measure.items;
    plan->budget_blocks_per_group = measure.rows;
    snprintf(options, size, "-cl-std=CL1.2 -DUPGRADE_N=%d -DASSIGN_WG=%d", plan->upgrade_n,
             plan->assign_wg);
    status = create_kernel(plan, "budget.cl", options, "budget_allocate", &plan->budget_allocate);
    if (status == CLPSA_OK)
        status = clpsa__plan_check_kernel_group(plan, plan->budget_allocate, CLPSA__P_ASSIGN_WG,
                                                plan->assign_wg);
    return status;
}

clpsa_status clpsa__plan_build_psa(clpsa_plan *plan) {
    clpsa_context *ctx = plan->ctx;
    const clpsa_plan_desc *d = &plan->desc;
    clpsa__psa_options *psa = &plan->psa;
    plan->blocks_q = (d->seq_q + psa->block_q - 1) / psa->block_q;
    plan->blocks_k = (d->seq_k + psa->block_k - 1) / psa->block_k;
    plan->np2 = (d->seq_k + 1) / 2;
    plan->np4 = (d->seq_k + 3) / 4;
    plan->np8 = (d->seq_k + 7) / 8;
    plan->rows = (size_t)d->batch * d->heads_q * plan->blocks_q;
    clpsa__psa_finish(d, plan->blocks_k, psa);
    clpsa_status status = choose_parameters(plan);
    if (status != CLPSA_OK)
        return status;
    plan->sort_n = next_power_of_two(plan->blocks_k);
    /* value, index, two level bytes per padded entry */
    if ((cl_ulong)plan->sort_n * 10 > ctx->info.local_mem_size)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "seq_k = %d with block_k = %d gives %d key blocks; this device's "
                           "local memory (%llu bytes) sorts at most %llu per row",
                           d->seq_k, psa->block_k, plan->blocks_k,
                           (unsigned long long)ctx->info.local_mem_size,
                           (unsigned long long)(ctx->info.local_mem_size / 10));
    const bool budget = psa->mode == CLPSA_MODE_BUDGET && d->method == CLPSA_METHOD_PSA;
    /* Budget mode's measurement keeps 5 floats per (sampled row, key block) in the estimate's
     * scratch: the block's logit maximum, its full sum and its pooled sums. */
    /* The antidiagonal estimate keeps 2 floats per (stride row, key block): a block's sum of
     * weights and the running maximum it is relative to. */
    plan->estimate_rows = budget ? psa->sample_q * 5
                          : psa->estimator == CLPSA_ESTIMATOR_SAMPLED
                              ? psa->sample_q
                              : psa->block_q / psa->stride * 2;

    char options[512];
    const int permuted = psa->permuted;
    snprintf(options, sizeof options, "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DPERMUTED=%d",
             d->head_dim, (int)d->dtype, permuted);
    status = create_kernel(plan, "pool.cl", options, "pool_pyramid", &plan->pool);
    if (status == CLPSA_OK)
        status = create_kernel(plan, "pool.cl", options, "block_similarity", &plan->similarity);
    if (status != CLPSA_OK)
        return status;

    if (budget) {
        status = build_budget(plan, options, sizeof options);
        if (status != CLPSA_OK)
            return status;
    } else if (psa->estimator == CLPSA_ESTIMATOR_SAMPLED) {
        snprintf(options, sizeof options,
                 "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DBLOCK_Q=%d -DBLOCK_K=%d "
                 "-DSAMPLE_Q=%d -DSAMPLE_K=%d -DPERMUTED=%d",
                 d->head_dim, (int)d->dtype, psa->block_q, psa->block_k, psa->sample_q,
                 psa->sample_k, permuted);
        clpsa__kernel_config estimate;
        status = clpsa__kernel_variant_build(plan, CLPSA__FAMILY_ESTIMATE, options, &plan->estimate,
                                             &plan->estimate_variant, &estimate);
        if (status != CLPSA_OK)
            return status;
        plan->estimate_blocks_per_group = estimate.rows;
        plan->estimate_wg = estimate.items;
    } else {
        snprintf(options, sizeof options,
                 "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DBLOCK_Q=%d -DBLOCK_K=%d "
                 "-DSTRIDE=%d -DEST_WG=%d -DPERMUTED=%d",
                 d->head_dim, (int)d->dtype, psa->block_q, psa->block_k, psa->stride,
                 plan->estimate_wg, permuted);
        status =
            create_kernel(plan, "estimate.cl", options, "estimate_antidiagonal", &plan->estimate);
        if (status != CLPSA_OK)
            return status;
        plan->estimate_blocks_per_group = 1;
        status = clpsa__plan_check_kernel_group(plan, plan->estimate, CLPSA__P_ESTIMATE_WG,
                                                plan->estimate_wg);
        if (status != CLPSA_OK)
            return status;
    }

    snprintf(options, sizeof options, "-cl-std=CL1.2 -DSORT_N=%d -DASSIGN_WG=%d", plan->sort_n,
             plan->assign_wg);
    status = create_kernel(plan, "assign.cl", options, "assign_levels", &plan->assign);
    if (status == CLPSA_OK)
        status = create_kernel(plan, "assign.cl", options, "build_work_list", &plan->work_list);
    if (status != CLPSA_OK)
        return status;

    /* A work-group never spans two query blocks: the variant sizes it to at most bm rows. */
    snprintf(options, sizeof options,
             "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DOUT_TYPE=%d -DBLOCK_Q=%d -DBLOCK_K=%d "
             "-DPERMUTED=%d",
             d->head_dim, (int)d->dtype, (int)d->out_dtype, psa->block_q, psa->block_k, permuted);
    clpsa__kernel_config attend;
    status = clpsa__kernel_variant_build(plan, CLPSA__FAMILY_ATTEND, options, &plan->attend,
                                         &plan->attend_variant, &attend);
    if (status == CLPSA_OK) {
        plan->attend_rows = attend.rows;
        plan->attend_items = attend.items;
    }
    if (status == CLPSA_OK)
        status =
            clpsa__plan_check_kernel_group(plan, plan->assign, CLPSA__P_ASSIGN_WG, plan->assign_wg);
    if (status != CLPSA_OK)
        return status;
    clpsa__log(ctx, CLPSA_LOG_INFO, "PSA plan: bm=%d bn=%d nq=%d nk=%d mode=%d estimator=%d; %s",
               psa->block_q, psa->block_k, plan->blocks_q, plan->blocks_k, (int)psa->mode,
               (int)psa->estimator, plan->parameter_source);
    return create_buffers(plan);
}

void clpsa__plan_forget_events(clpsa_plan *plan) {
    for (int s = 0; s < CLPSA__STAGES; ++s) {
        if (plan->stage_first[s])
            clReleaseEvent(plan->stage_first[s]);
        if (plan->stage_last[s])
            clReleaseEvent(plan->stage_last[s]);
        plan->stage_first[s] = plan->stage_last[s] = NULL;
    }
    if (plan->failed_last)
        clReleaseEvent(plan->failed_last);
    plan->failed_last = NULL;
}

void clpsa__plan_release_psa(clpsa_plan *plan) {
    clpsa__plan_forget_events(plan);
    if (plan->last_queue)
        clReleaseCommandQueue(plan->last_queue);
    cl_kernel kernels[] = {plan->pool,           plan->similarity,     plan->estimate,
                           plan->assign,         plan->work_list,      plan->attend,
                           plan->budget_measure, plan->budget_allocate};
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; ++i)
        if (kernels[i])
            clReleaseKernel(kernels[i]);
    cl_mem buffers[] = {
        plan->perm,        plan->k_pyramid,   plan->v_pyramid,        plan->similarity_stats,
        plan->row_offsets, plan->key_offsets, plan->estimate_scratch, plan->scores,
        plan->levels,      plan->budget_loss, plan->counts,           plan->list};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; ++i)
        if (buffers[i])
            clReleaseMemObject(buffers[i]);
}

/* Enqueues one stage command after *previous (or the caller's wait list for the first one)
 * and makes its event the new *previous. */
typedef struct chain {
    cl_command_queue queue;
    cl_uint num_events;
    const cl_event *wait_list;
    cl_event previous;
    clpsa_plan *plan;
} chain;

static clpsa_status enqueue(chain *c, int stage, cl_kernel kernel, cl_uint dims,
                            const size_t *global, const size_t *local, const char *name) {
    cl_event event = NULL;
    const cl_uint waits = c->previous ? 1 : c->num_events;
    const cl_event *list = c->previous ? &c->previous : c->wait_list;
    const cl_int err =
        clEnqueueNDRangeKernel(c->queue, kernel, dims, NULL, global, local, waits, list, &event);
    if (err != CL_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "clEnqueueNDRangeKernel(%s)", name);
        return clpsa__fail_cl(c->plan->ctx, err, what);
    }
    if (!c->plan->stage_first[stage]) {
        c->plan->stage_first[stage] = event;
        clRetainEvent(event);
    }
    if (c->plan->stage_last[stage])
        clReleaseEvent(c->plan->stage_last[stage]);
    c->plan->stage_last[stage] = event;
    clRetainEvent(event);
    if (c->previous)
        clReleaseEvent(c->previous);
    c->previous = event;
    return CLPSA_OK;
}

static size_t round_up(size_t x, size_t to) {
    return (x + to - 1) / to * to;
}

/* Budget mode's measurement of heads [bh_first, bh_first + heads): w into the scores, the
 * pooling losses into budget_loss. */
static clpsa_status enqueue_measure(chain *c, clpsa_plan *plan, cl_mem q, cl_mem k, cl_int bh_first,
                                    int heads) {
    const clpsa_plan_desc *d = &plan->desc;
    const cl_int heads_q = d->heads_q, group = d->heads_q / d->heads_kv;
    const cl_int seq_q = d->seq_q, seq_k = d->seq_k;
    const cl_int nq = plan->blocks_q, nk = plan->blocks_k;
    const cl_int np2 = plan->np2, np4 = plan->np4, np8 = plan->np8;
    const cl_int causal = d->causal ? 1 : 0;
    const cl_float scale = d->scale;
    const cl_long qs[3] = {d->q_strides.batch, d->q_strides.head, d->q_strides.seq};
    const cl_long ks[3] = {d->k_strides.batch, d->k_strides.head, d->k_strides.seq};
    const cl_int err = clpsa__set_args(
        plan->budget_measure, 26, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(plan->k_pyramid),
        CLPSA__ARG(plan->perm), CLPSA__ARG(plan->row_offsets), CLPSA__ARG(plan->estimate_scratch),
        CLPSA__ARG(plan->scores), CLPSA__ARG(plan->budget_loss), CLPSA__ARG(bh_first),
        CLPSA__ARG(heads_q), CLPSA__ARG(group), CLPSA__ARG(seq_q), CLPSA__ARG(seq_k),
        CLPSA__ARG(nq), CLPSA__ARG(nk), CLPSA__ARG(np2), CLPSA__ARG(np4), CLPSA__ARG(np8),
        CLPSA__ARG(scale), CLPSA__ARG(causal), CLPSA__ARG(qs[0]), CLPSA__ARG(qs[1]),
        CLPSA__ARG(qs[2]), CLPSA__ARG(ks[0]), CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]));
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(plan->ctx, err, "clSetKernelArg(budget_measure)");
    const size_t local[2] = {(size_t)plan->budget_wg, 1};
    const size_t groups =
        ((size_t)nq + plan->budget_blocks_per_group - 1) / plan->budget_blocks_per_group;
    const size_t global[2] = {groups * plan->budget_wg, (size_t)heads};
    return enqueue(c, CLPSA__STAGE_ESTIMATE, plan->budget_measure, 2, global, local,
                   "budget_measure");
}

clpsa_status clpsa__plan_run_psa(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                 cl_mem v, cl_mem out, cl_uint num_events,
                                 const cl_event *wait_list, cl_event *event) {
    clpsa_context *ctx = plan->ctx;
    const clpsa_plan_desc *d = &plan->desc;
    const clpsa__psa_options *psa = &plan->psa;
    /* The scratch buffers are the plan's: this run starts after the last one ended (it may
     * have been on another queue), and after the caller's wait list. */
    cl_event start[2];
    cl_uint start_count = 0;
    cl_event previous_run = plan->stage_last[CLPSA__STAGE_ATTEND]
                                ? plan->stage_last[CLPSA__STAGE_ATTEND]
                                : plan->failed_last;
    if (previous_run) {
        clRetainEvent(previous_run);
        if (num_events > 0) {
            cl_event marker = NULL;
            const cl_int err = clEnqueueMarkerWithWaitList(queue, num_events, wait_list, &marker);
            if (err != CL_SUCCESS) {
                clReleaseEvent(previous_run);
                return clpsa__fail_cl(ctx, err, "clEnqueueMarkerWithWaitList");
            }
            start[start_count++] = marker;
        }
        start[start_count++] = previous_run;
    }
    clpsa__plan_forget_events(plan);
    clRetainCommandQueue(queue);
    if (plan->last_queue)
        clReleaseCommandQueue(plan->last_queue);
    plan->last_queue = queue;
    plan->last_run_source = plan->source;
    plan->inputs_replaced_since_run = false;
    chain c = {queue, start_count ? start_count : num_events, start_count ? start : wait_list, NULL,
               plan};
    const cl_int heads_q = d->heads_q, heads_kv = d->heads_kv;
    const cl_int group = d->heads_q / d->heads_kv;
    const cl_int seq_q = d->seq_q, seq_k = d->seq_k;
    const cl_int bq = psa->block_q, bk = psa->block_k;
    const cl_int nq = plan->blocks_q, nk = plan->blocks_k;
    const cl_int np2 = plan->np2, np4 = plan->np4, np8 = plan->np8;
    const cl_int causal = d->causal ? 1 : 0;
    const cl_float scale = d->scale;
    const cl_long qs[3] = {d->q_strides.batch, d->q_strides.head, d->q_strides.seq};
    const cl_long ks[3] = {d->k_strides.batch, d->k_strides.head, d->k_strides.seq};
    const cl_long vs[3] = {d->v_strides.batch, d->v_strides.head, d->v_strides.seq};
    const cl_long os[3] = {d->out_strides.batch, d->out_strides.head, d->out_strides.seq};
    cl_int err = CL_SUCCESS;
    clpsa_status status = CLPSA_OK;

    /* pool: levels 2, 4, 8 */
    err = clpsa__set_args(plan->pool, 16, CLPSA__ARG(k), CLPSA__ARG(v), CLPSA__ARG(plan->k_pyramid),
                          CLPSA__ARG(plan->v_pyramid), CLPSA__ARG(plan->perm), CLPSA__ARG(heads_kv),
                          CLPSA__ARG(seq_k), CLPSA__ARG(np2), CLPSA__ARG(np4), CLPSA__ARG(np8),
                          CLPSA__ARG(ks[0]), CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]),
                          CLPSA__ARG(vs[0]), CLPSA__ARG(vs[1]), CLPSA__ARG(vs[2]));
    if (err != CL_SUCCESS) {
        status = clpsa__fail_cl(ctx, err, "clSetKernelArg(pool_pyramid)");
        goto done;
    }
    {
        const size_t local[3] = {d->head_dim <= 64 ? (size_t)d->head_dim : 64, 1, 1};
        const size_t global[3] = {round_up((size_t)d->head_dim, local[0]), (size_t)np8,
                                  (size_t)d->batch * d->heads_kv};
        status = enqueue(&c, CLPSA__STAGE_POOL, plan->pool, 3, global, local, "pool_pyramid");
    }
    const bool estimating = plan->source == CLPSA__ESTIMATE;
    const bool assigning = plan->source != CLPSA__SUPPLIED_LEVELS;
    const bool cap = psa->similarity_cap && d->method == CLPSA_METHOD_PSA;
    if (status == CLPSA_OK && assigning && cap) {
        err = clpsa__set_args(plan->similarity, 10, CLPSA__ARG(k), CLPSA__ARG(plan->perm),
                              CLPSA__ARG(plan->similarity_stats), CLPSA__ARG(heads_kv),
                              CLPSA__ARG(seq_k), CLPSA__ARG(bk), CLPSA__ARG(nk), CLPSA__ARG(ks[0]),
                              CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(block_similarity)");
            goto done;
        }
        const size_t global[2] = {(size_t)nk, (size_t)d->batch * d->heads_kv};
        status =
            enqueue(&c, CLPSA__STAGE_POOL, plan->similarity, 2, global, NULL, "block_similarity");
    }

    /* estimate, over as many heads per launch as the scratch holds */
    const int bh_total = d->batch * d->heads_q;
    for (int first = 0; status == CLPSA_OK && estimating && first < bh_total;
         first += plan->estimate_heads_per_launch) {
        const cl_int bh_first = first;
        const int heads = bh_total - first < plan->estimate_heads_per_launch
                              ? bh_total - first
                              : plan->estimate_heads_per_launch;
        if (plan->budget_measure) {
            status = enqueue_measure(&c, plan, q, k, bh_first, heads);
            continue;
        }
        if (psa->estimator == CLPSA_ESTIMATOR_SAMPLED)
            err = clpsa__set_args(
                plan->estimate, 21, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(plan->perm),
                CLPSA__ARG(plan->row_offsets), CLPSA__ARG(plan->key_offsets),
                CLPSA__ARG(plan->estimate_scratch), CLPSA__ARG(plan->scores), CLPSA__ARG(bh_first),
                CLPSA__ARG(heads_q), CLPSA__ARG(group), CLPSA__ARG(seq_q), CLPSA__ARG(seq_k),
                CLPSA__ARG(nq), CLPSA__ARG(nk), CLPSA__ARG(scale), CLPSA__ARG(qs[0]),
                CLPSA__ARG(qs[1]), CLPSA__ARG(qs[2]), CLPSA__ARG(ks[0]), CLPSA__ARG(ks[1]),
                CLPSA__ARG(ks[2]));
        else
            err = clpsa__set_args(
                plan->estimate, 20, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(plan->perm),
                CLPSA__ARG(plan->estimate_scratch), CLPSA__ARG(plan->scores), CLPSA__ARG(bh_first),
                CLPSA__ARG(heads_q), CLPSA__ARG(group), CLPSA__ARG(seq_q), CLPSA__ARG(seq_k),
                CLPSA__ARG(nq), CLPSA__ARG(nk), CLPSA__ARG(scale), CLPSA__ARG(causal),
                CLPSA__ARG(qs[0]), CLPSA__ARG(qs[1]), CLPSA__ARG(qs[2]), CLPSA__ARG(ks[0]),
                CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(estimate)");
            goto done;
        }
        const size_t groups =
            ((size_t)nq + plan->estimate_blocks_per_group - 1) / plan->estimate_blocks_per_group;
        const size_t local[2] = {(size_t)plan->estimate_wg, 1};
        const size_t global[2] = {groups * plan->estimate_wg, (size_t)heads};
        status = enqueue(&c, CLPSA__STAGE_ESTIMATE, plan->estimate, 2, global, local, "estimate");
    }

    /* assign (or budget mode's allocation), then the work list */
    if (status == CLPSA_OK && assigning && plan->budget_allocate) {
        const cl_int text = psa->text_blocks, text_first = psa->text_row_first;
        const cl_int units = psa->budget_units;
        err = clpsa__set_args(
            plan->budget_allocate, 14, CLPSA__ARG(plan->scores), CLPSA__ARG(plan->budget_loss),
            CLPSA__ARG(plan->levels), CLPSA__ARG(heads_q), CLPSA__ARG(seq_q), CLPSA__ARG(seq_k),
            CLPSA__ARG(bq), CLPSA__ARG(bk), CLPSA__ARG(nq), CLPSA__ARG(nk), CLPSA__ARG(text),
            CLPSA__ARG(text_first), CLPSA__ARG(causal), CLPSA__ARG(units));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(budget_allocate)");
            goto done;
        }
        const size_t local[1] = {(size_t)plan->assign_wg};
        const size_t global[1] = {plan->rows * plan->assign_wg};
        status = enqueue(&c, CLPSA__STAGE_ASSIGN, plan->budget_allocate, 1, global, local,
                         "budget_allocate");
    } else if (status == CLPSA_OK && assigning) {
        const cl_int mode = d->method == CLPSA_METHOD_BINARY ? 4 : (cl_int)psa->mode;
        const cl_int align_tile = psa->align_tile, min_full = psa->min_full_blocks;
        const cl_int text = psa->text_blocks, text_first = psa->text_row_first;
        const cl_int cap_on = cap ? 1 : 0, keep = psa->binary_keep;
        const cl_int *qe = psa->quantile_ends;
        err = clpsa__set_args(
            plan->assign, 30, CLPSA__ARG(plan->scores), CLPSA__ARG(plan->similarity_stats),
            CLPSA__ARG(plan->levels), CLPSA__ARG(heads_q), CLPSA__ARG(group), CLPSA__ARG(seq_q),
            CLPSA__ARG(seq_k), CLPSA__ARG(bq), CLPSA__ARG(bk), CLPSA__ARG(nq), CLPSA__ARG(nk),
            CLPSA__ARG(mode), CLPSA__ARG(psa->thresholds[0]), CLPSA__ARG(psa->thresholds[1]),
            CLPSA__ARG(psa->thresholds[2]), CLPSA__ARG(psa->thresholds[3]), CLPSA__ARG(align_tile),
            CLPSA__ARG(min_full), CLPSA__ARG(text), CLPSA__ARG(text_first), CLPSA__ARG(causal),
            CLPSA__ARG(cap_on), CLPSA__ARG(psa->similarity_thresholds[0]),
            CLPSA__ARG(psa->similarity_thresholds[1]), CLPSA__ARG(psa->similarity_thresholds[2]),
            CLPSA__ARG(keep), CLPSA__ARG(qe[0]), CLPSA__ARG(qe[1]), CLPSA__ARG(qe[2]),
            CLPSA__ARG(qe[3]));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(assign_levels)");
            goto done;
        }
        const size_t local[1] = {(size_t)plan->assign_wg};
        const size_t global[1] = {plan->rows * plan->assign_wg};
        status = enqueue(&c, CLPSA__STAGE_ASSIGN, plan->assign, 1, global, local, "assign_levels");
    }
    if (status == CLPSA_OK) {
        const cl_long rows = (cl_long)plan->rows;
        err = clpsa__set_args(plan->work_list, 11, CLPSA__ARG(plan->levels),
                              CLPSA__ARG(plan->counts), CLPSA__ARG(plan->list), CLPSA__ARG(seq_q),
                              CLPSA__ARG(seq_k), CLPSA__ARG(bq), CLPSA__ARG(bk), CLPSA__ARG(nq),
                              CLPSA__ARG(nk), CLPSA__ARG(causal), CLPSA__ARG(rows));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(build_work_list)");
            goto done;
        }
        const size_t local[1] = {64};
        const size_t global[1] = {round_up(plan->rows, 64)};
        status =
            enqueue(&c, CLPSA__STAGE_ASSIGN, plan->work_list, 1, global, local, "build_work_list");
    }

    /* attend */
    if (status == CLPSA_OK) {
        err = clpsa__set_args(
            plan->attend, 32, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(v),
            CLPSA__ARG(plan->k_pyramid), CLPSA__ARG(plan->v_pyramid), CLPSA__ARG(plan->perm),
            CLPSA__ARG(plan->counts), CLPSA__ARG(plan->list), CLPSA__ARG(out), CLPSA__ARG(heads_q),
            CLPSA__ARG(group), CLPSA__ARG(seq_q), CLPSA__ARG(seq_k), CLPSA__ARG(nq), CLPSA__ARG(nk),
            CLPSA__ARG(np2), CLPSA__ARG(np4), CLPSA__ARG(np8), CLPSA__ARG(scale),
            CLPSA__ARG(causal), CLPSA__ARG(qs[0]), CLPSA__ARG(qs[1]), CLPSA__ARG(qs[2]),
            CLPSA__ARG(ks[0]), CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]), CLPSA__ARG(vs[0]),
            CLPSA__ARG(vs[1]), CLPSA__ARG(vs[2]), CLPSA__ARG(os[0]), CLPSA__ARG(os[1]),
            CLPSA__ARG(os[2]));
        if (err != CL_SUCCESS) {
            status = clpsa__fail_cl(ctx, err, "clSetKernelArg(psa_attend)");
            goto done;
        }
        const size_t groups_per_block =
            ((size_t)psa->block_q + plan->attend_rows - 1) / plan->attend_rows;
        const size_t local[2] = {(size_t)plan->attend_items, 1};
        const size_t global[2] = {(size_t)nq * groups_per_block * plan->attend_items,
                                  (size_t)bh_total};
        status = enqueue(&c, CLPSA__STAGE_ATTEND, plan->attend, 2, global, local, "psa_attend");
    }
done:
    for (cl_uint e = 0; e < start_count; ++e)
        clReleaseEvent(start[e]);
    if (status != CLPSA_OK) {
        /* What was enqueued still runs on the plan's buffers: the next run waits for it. */
        if (!c.previous && previous_run)
            clRetainEvent(previous_run);
        plan->failed_last = c.previous ? c.previous : previous_run;
        return status;
    }
    if (event)
        *event = c.previous;
    else
        clReleaseEvent(c.previous);
    return CLPSA_OK;
}
