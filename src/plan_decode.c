/* SPDX-License-Identifier: Apache-2.0 */
/* Decode: dense plans of a few query rows against a long key/value cache run split-K
 * (cl/decode.cl). A kernel over (split of the keys, rows of one kv head) writes partial
 * softmax states; a second kernel merges them per query row. The key length is a run-time
 * argument, so a cache that grows between runs (clpsa_plan_set_kv_length) never rebuilds the
 * program or reallocates: the partials are sized for the plan's kv_capacity. */
#include "kernel_variant.h"

#include <stdio.h>
#include <string.h>

/* Rows of one kv head a work-group holds at most: more would push the query rows and their
 * accumulators past what local memory and registers hold at D = 256. */
#define DECODE_MAX_ROWS_PER_GROUP 16
/* Splits of the keys per (batch, kv head, row group) at most: enough for one kv head to fill
 * a large GPU (decode.CU_GROUPS x compute units work-groups), few enough that the combine's
 * walk over the partials stays short. */
#define DECODE_MAX_SPLITS 256

bool clpsa__plan_wants_decode(const clpsa_plan *plan) {
    if (plan->desc.method != CLPSA_METHOD_DENSE || plan->desc.seq_q > CLPSA__DECODE_MAX_QUERY_ROWS)
        return false;
    clpsa__param_source source;
    clpsa__param_value(plan->ctx, CLPSA__P_DENSE_VARIANT, &source);
    return source != CLPSA__SOURCE_OVERRIDE;
}

clpsa_status clpsa__plan_build_decode(clpsa_plan *plan) {
    clpsa_context *ctx = plan->ctx;
    const clpsa_plan_desc *d = &plan->desc;
    const int group = d->heads_q / d->heads_kv;
    const int rows = group * d->seq_q; /* query rows that read one kv head */
    plan->decode_rows = rows < DECODE_MAX_ROWS_PER_GROUP ? rows : DECODE_MAX_ROWS_PER_GROUP;
    plan->decode_row_groups = (rows + plan->decode_rows - 1) / plan->decode_rows;

    char options[256];
    snprintf(options, sizeof options, "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DOUT_TYPE=%d",
             d->head_dim, (int)d->dtype, (int)d->out_dtype);
    plan->parameter_source[0] = '\0';
    clpsa__kernel_config config;
    clpsa_status status = clpsa__kernel_variant_build(
        plan, CLPSA__FAMILY_DECODE, options, &plan->decode_partial, &plan->decode_variant, &config);
    if (status != CLPSA_OK)
        return status;
    cl_program program = NULL;
    cl_int err =
        clGetKernelInfo(plan->decode_partial, CL_KERNEL_PROGRAM, sizeof program, &program, NULL);
    if (err == CL_SUCCESS)
        plan->decode_combine = clCreateKernel(program, "decode_combine", &err);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clCreateKernel(decode_combine)");

    status = clpsa__plan_param(plan, CLPSA__P_DECODE_CU_GROUPS, &plan->decode_cu_groups, NULL);
    if (status != CLPSA_OK)
        return status;
    /* No more splits than DECODE_MAX_SPLITS or tiles of a full cache; fewer where the partials
     * would not fit one allocation (half the device's largest, leaving room for the caller's
     * tensors). */
    int splits = DECODE_MAX_SPLITS;
    const int tiles = (d->kv_capacity + plan->decode_tile - 1) / plan->decode_tile;
    if (splits > tiles)
        splits = tiles;
    const size_t query_rows = (size_t)d->batch * d->heads_q * d->seq_q;
    const size_t limit = (size_t)(ctx->info.max_mem_alloc_size / 2);
    while (splits > 1 && query_rows * (size_t)splits * d->head_dim * sizeof(float) > limit)
        splits /= 2;
    plan->decode_max_splits = splits;
    status = clpsa_context_alloc(ctx, query_rows * (size_t)splits * d->head_dim * sizeof(float),
                                 &plan->decode_acc);
    if (status == CLPSA_OK)
        status = clpsa_context_alloc(ctx, query_rows * (size_t)splits * 2 * sizeof(float),
                                     &plan->decode_ml);
    if (status != CLPSA_OK)
        return status;
    clpsa__log(ctx, CLPSA_LOG_INFO,
               "decode kernels: D=%d, %d query rows per kv head in %d group(s) of %d, up to %d "
               "splits of the keys (capacity %d); %s",
               d->head_dim, rows, plan->decode_row_groups, plan->decode_rows, splits,
               d->kv_capacity, plan->parameter_source);
    return CLPSA_OK;
}

void clpsa__plan_release_decode(clpsa_plan *plan) {
    if (plan->decode_last)
        clReleaseEvent(plan->decode_last);
    if (plan->decode_first)
        clReleaseEvent(plan->decode_first);
    if (plan->decode_partial)
        clReleaseKernel(plan->decode_partial);
    if (plan->decode_combine)
        clReleaseKernel(plan->decode_combine);
    if (plan->decode_acc)
        clReleaseMemObject(plan->decode_acc);
    if (plan->decode_ml)
        clReleaseMemObject(plan->decode_ml);
}

clpsa_status clpsa__plan_run_decode(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                    cl_mem v, cl_mem out, cl_uint num_events,
                                    const cl_event *wait_list, cl_event *event) {
    clpsa_context *ctx = plan->ctx;
    const clpsa_plan_desc *d = &plan->desc;
    /* Enough splits for decode.CU_GROUPS work-groups per compute unit over the (batch, kv
     * head, row group) groups, of whole tiles, as even as the tiles allow, at most the plan's
     * maximum. */
    const int tile = plan->decode_tile;
    const int tiles = (d->seq_k + tile - 1) / tile;
    const long long groups = (long long)d->batch * d->heads_kv * plan->decode_row_groups;
    const long long wanted = (long long)plan->decode_cu_groups * plan->ctx->info.compute_units;
    long long want_splits = (wanted + groups - 1) / groups;
    if (want_splits > plan->decode_max_splits)
        want_splits = plan->decode_max_splits;
    int splits = tiles < want_splits ? tiles : (int)want_splits;
    if (splits < 1)
        splits = 1;
    const int chunk = (tiles + splits - 1) / splits * tile;
    splits = (d->seq_k + chunk - 1) / chunk;

    const cl_int group = d->heads_q / d->heads_kv;
    const cl_int causal = d->causal ? 1 : 0;
    const cl_int row_groups = plan->decode_row_groups, max_splits = plan->decode_max_splits;
    const cl_long qs[3] = {d->q_strides.batch, d->q_strides.head, d->q_strides.seq};
    const cl_long ks[3] = {d->k_strides.batch, d->k_strides.head, d->k_strides.seq};
    const cl_long vs[3] = {d->v_strides.batch, d->v_strides.head, d->v_strides.seq};
    const cl_long os[3] = {d->out_strides.batch, d->out_strides.head, d->out_strides.seq};
    cl_int err = clpsa__set_args(
        plan->decode_partial, 23, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(v),
        CLPSA__ARG(plan->decode_acc), CLPSA__ARG(plan->decode_ml), CLPSA__ARG(d->heads_q),
        CLPSA__ARG(group), CLPSA__ARG(d->seq_q), CLPSA__ARG(d->seq_k), CLPSA__ARG(d->scale),
        CLPSA__ARG(causal), CLPSA__ARG(row_groups), CLPSA__ARG(chunk), CLPSA__ARG(max_splits),
        CLPSA__ARG(qs[0]), CLPSA__ARG(qs[1]), CLPSA__ARG(qs[2]), CLPSA__ARG(ks[0]),
        CLPSA__ARG(ks[1]), CLPSA__ARG(ks[2]), CLPSA__ARG(vs[0]), CLPSA__ARG(vs[1]),
        CLPSA__ARG(vs[2]));
    if (err == CL_SUCCESS)
        err = clpsa__set_args(plan->decode_combine, 10, CLPSA__ARG(plan->decode_acc),
                              CLPSA__ARG(plan->decode_ml), CLPSA__ARG(out), CLPSA__ARG(d->heads_q),
                              CLPSA__ARG(d->seq_q), CLPSA__ARG(splits), CLPSA__ARG(max_splits),
                              CLPSA__ARG(os[0]), CLPSA__ARG(os[1]), CLPSA__ARG(os[2]));
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clSetKernelArg(decode)");

    /* The partials are the plan's: this run starts after the previous one's combine (which
     * may have been on another queue) and after the caller's wait list. */
    cl_event start[2];
    cl_uint start_count = 0;
    if (plan->decode_last) {
        if (num_events > 0) {
            err = clEnqueueMarkerWithWaitList(queue, num_events, wait_list, &start[start_count]);
            if (err != CL_SUCCESS)
                return clpsa__fail_cl(ctx, err, "clEnqueueMarkerWithWaitList");
            ++start_count;
        }
        start[start_count++] = plan->decode_last;
        clRetainEvent(plan->decode_last);
    }
    const size_t wg = (size_t)plan->decode_wg;
    const size_t local[2] = {wg, 1};
    const size_t global[2] = {(size_t)splits * wg,
                              (size_t)d->batch * d->heads_kv * (size_t)row_groups};
    cl_event partial = NULL, combined = NULL;
    err = clEnqueueNDRangeKernel(queue, plan->decode_partial, 2, NULL, global, local,
                                 start_count ? start_count : num_events,
                                 start_count ? start : wait_list, &partial);
    for (cl_uint e = 0; e < start_count; ++e)
        clReleaseEvent(start[e]);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clEnqueueNDRangeKernel(decode_partial)");
    const size_t combine_wg = (size_t)plan->decode_combine_wg;
    const size_t combine_global = (size_t)d->batch * d->heads_q * d->seq_q * combine_wg;
    err = clEnqueueNDRangeKernel(queue, plan->decode_combine, 1, NULL, &combine_global, &combine_wg,
                                 1, &partial, &combined);
    if (plan->decode_first)
        clReleaseEvent(plan->decode_first);
    plan->decode_first = partial;
    if (err != CL_SUCCESS) {
        /* The split kernel still runs on the partials: the next run waits for it. */
        clRetainEvent(partial);
        if (plan->decode_last)
            clReleaseEvent(plan->decode_last);
        plan->decode_last = partial;
        return clpsa__fail_cl(ctx, err, "clEnqueueNDRangeKernel(decode_combine)");
    }
    if (plan->decode_last)
        clReleaseEvent(plan->decode_last);
    plan->decode_last = combined;
    if (event) {
        clRetainEvent(combined);
        *event = combined;
    }
    return CLPSA_OK;
}
