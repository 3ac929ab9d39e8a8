/* SPDX-License-Identifier: Apache-2.0 */
/* Plans: a validated problem description with its kernels compiled, run many times. */
#include "kernel_variant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLPSA__MAX_HEAD_DIM 256

void clpsa_plan_desc_init(clpsa_plan_desc *desc) {
    if (desc)
        memset(desc, 0, sizeof *desc);
}

static bool strides_unset(const clpsa_strides *s) {
    return s->batch == 0 && s->head == 0 && s->seq == 0 && s->dim == 0;
}

static bool dtype_valid(clpsa_dtype dtype) {
    return dtype == CLPSA_DTYPE_FP32 || dtype == CLPSA_DTYPE_FP16 || dtype == CLPSA_DTYPE_BF16;
}

static clpsa_status check_positive(clpsa_context *ctx, const char *name, int value) {
    if (value <= 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE, "%s = %d: it must be at least 1", name,
                           value);
    return CLPSA_OK;
}

/* Fills in defaults and checks every rule that does not need a buffer. */
static clpsa_status resolve_desc(clpsa_context *ctx, const clpsa_plan_desc *in,
                                 clpsa_plan_desc *d) {
    *d = *in;
    if (d->method == 0)
        d->method = CLPSA_METHOD_PSA;
    if (d->method != CLPSA_METHOD_PSA && d->method != CLPSA_METHOD_DENSE &&
        d->method != CLPSA_METHOD_BINARY)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "method = %d: it must be CLPSA_METHOD_PSA (%d), _DENSE (%d) or "
                           "_BINARY (%d)",
                           (int)d->method, (int)CLPSA_METHOD_PSA, (int)CLPSA_METHOD_DENSE,
                           (int)CLPSA_METHOD_BINARY);
    if (d->heads_kv == 0)
        d->heads_kv = d->heads_q;
    if (d->seq_k == 0)
        d->seq_k = d->seq_q;
    clpsa_status status = CLPSA_OK;
    const struct {
        const char *name;
        int value;
    } sizes[] = {{"batch", d->batch}, {"heads_q", d->heads_q}, {"heads_kv", d->heads_kv},
                 {"seq_q", d->seq_q}, {"seq_k", d->seq_k},     {"head_dim", d->head_dim}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && status == CLPSA_OK; ++i)
        status = check_positive(ctx, sizes[i].name, sizes[i].value);
    if (status != CLPSA_OK)
        return status;
    if (d->heads_q % d->heads_kv != 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                           "heads_q = %d is not a multiple of heads_kv = %d (grouped-query "
                           "attention shares each kv head among heads_q / heads_kv query heads)",
                           d->heads_q, d->heads_kv);
    if (d->head_dim % 8 != 0 || d->head_dim > CLPSA__MAX_HEAD_DIM)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "head_dim = %d is not supported: it must be a multiple of 8 from 8 "
                           "to %d (e.g. 32, 64, 96, 128, 256)",
                           d->head_dim, CLPSA__MAX_HEAD_DIM);
    if ((long long)d->batch * d->heads_q > 65535)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "batch * heads_q = %lld exceeds 65535, the work-group count some "
                           "devices allow in the second dimension",
                           (long long)d->batch * d->heads_q);
    if (d->dtype == CLPSA_DTYPE_DEFAULT)
        d->dtype = CLPSA_DTYPE_FP32;
    if (!dtype_valid(d->dtype))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "dtype = %d: it must be CLPSA_DTYPE_FP32, _FP16 or _BF16",
                           (int)d->dtype);
    if (d->out_dtype == CLPSA_DTYPE_DEFAULT)
        d->out_dtype = d->dtype;
    if (!dtype_valid(d->out_dtype))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "out_dtype = %d: it must be CLPSA_DTYPE_FP32, _FP16 or _BF16",
                           (int)d->out_dtype);
    if (!isfinite(d->scale))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "scale = %g: it must be finite (0 selects 1/sqrt(head_dim))",
                           (double)d->scale);
    if (d->scale == 0.0f)
        d->scale = 1.0f / sqrtf((float)d->head_dim);
    if (d->shard_heads_q == 0 && d->shard_head_first == 0)
        d->shard_heads_q = d->heads_q;
    if (d->shard_head_first < 0 || d->shard_heads_q < 1 ||
        (long long)d->shard_head_first + d->heads_q > d->shard_heads_q)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                           "shard_head_first = %d, heads_q = %d, shard_heads_q = %d: a shard's "
                           "heads [shard_head_first, shard_head_first + heads_q) must lie inside "
                           "[0, shard_heads_q) (both 0: not a shard)",
                           d->shard_head_first, d->heads_q, d->shard_heads_q);
    if (d->kv_capacity == 0)
        d->kv_capacity = d->seq_k;
    if (d->kv_capacity < d->seq_k)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                           "kv_capacity = %d is below seq_k = %d: the key/value cache must hold "
                           "the keys of a run (0 selects seq_k)",
                           d->kv_capacity, d->seq_k);
    if (d->method != CLPSA_METHOD_DENSE && d->kv_capacity != d->seq_k)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "kv_capacity = %d differs from seq_k = %d: a key/value cache that "
                           "grows is supported by CLPSA_METHOD_DENSE only (a sparse plan's "
                           "block grid depends on seq_k)",
                           d->kv_capacity, d->seq_k);
    if (strides_unset(&d->q_strides))
        d->q_strides = clpsa_strides_bhnd(d->heads_q, d->seq_q, d->head_dim);
    if (strides_unset(&d->k_strides))
        d->k_strides = clpsa_strides_bhnd(d->heads_kv, d->kv_capacity, d->head_dim);
    if (strides_unset(&d->v_strides))
        d->v_strides = clpsa_strides_bhnd(d->heads_kv, d->kv_capacity, d->head_dim);
    if (strides_unset(&d->out_strides))
        d->out_strides = clpsa_strides_bhnd(d->heads_q, d->seq_q, d->head_dim);
    return CLPSA_OK;
}

static clpsa__tensor make_tensor(const char *name, const clpsa_plan_desc *d, int heads, int seq,
                                 clpsa_strides strides, clpsa_dtype dtype) {
    const clpsa__tensor t = {name, d->batch, heads, seq, d->head_dim, strides, dtype};
    return t;
}

clpsa_status clpsa__plan_desc_check(clpsa_context *ctx, const clpsa_plan_desc *desc,
                                    clpsa_plan_desc *d, clpsa__psa_options *psa,
                                    clpsa__tensor tensors[4]) {
    memset(psa, 0, sizeof *psa);
    clpsa_status status = resolve_desc(ctx, desc, d);
    if (status == CLPSA_OK && d->method != CLPSA_METHOD_DENSE)
        status = clpsa__psa_resolve(ctx, desc, d, psa);
    if (status != CLPSA_OK)
        return status;
    tensors[0] = make_tensor("q", d, d->heads_q, d->seq_q, d->q_strides, d->dtype);
    tensors[1] = make_tensor("k", d, d->heads_kv, d->kv_capacity, d->k_strides, d->dtype);
    tensors[2] = make_tensor("v", d, d->heads_kv, d->kv_capacity, d->v_strides, d->dtype);
    tensors[3] = make_tensor("out", d, d->heads_q, d->seq_q, d->out_strides, d->out_dtype);
    for (int i = 0; i < 4 && status == CLPSA_OK; ++i)
        status = clpsa__tensor_check_strides(ctx, &tensors[i]);
    return status;
}

/* Builds the dense kernel: the first variant that fits the plan and the device. */
static clpsa_status build_dense(clpsa_plan *plan) {
    char options[256];
    snprintf(options, sizeof options, "-cl-std=CL1.2 -DHEAD_DIM=%d -DIN_TYPE=%d -DOUT_TYPE=%d",
             plan->desc.head_dim, (int)plan->desc.dtype, (int)plan->desc.out_dtype);
    plan->parameter_source[0] = '\0';
    clpsa__kernel_config config;
    const clpsa_status status = clpsa__kernel_variant_build(
        plan, CLPSA__FAMILY_DENSE, options, &plan->dense, &plan->dense_variant, &config);
    if (status != CLPSA_OK)
        return status;
    plan->dense_rows = config.rows;
    plan->dense_items = config.items;
    clpsa__log(plan->ctx, CLPSA_LOG_INFO, "dense kernel: D=%d; %s", plan->desc.head_dim,
               plan->parameter_source);
    return CLPSA_OK;
}

clpsa_status clpsa_plan_create(clpsa_context *ctx, const clpsa_plan_desc *desc, clpsa_plan **out) {
    if (out)
        *out = NULL;
    if (!ctx || !desc || !out)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "clpsa_plan_create: ctx (%p), desc (%p) and out (%p) must not be "
                           "NULL",
                           (void *)ctx, (const void *)desc, (void *)out);
    clpsa__clear_error(ctx);
    clpsa_plan_desc d;
    clpsa__psa_options psa;
    clpsa__tensor tensors[4];
    clpsa_status status = clpsa__plan_desc_check(ctx, desc, &d, &psa, tensors);
    if (status != CLPSA_OK)
        return status;

    clpsa_plan *plan = calloc(1, sizeof *plan);
    if (!plan)
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_plan_create: out of memory");
    plan->ctx = ctx;
    plan->desc = d;
    plan->q = tensors[0];
    plan->k = tensors[1];
    plan->v = tensors[2];
    plan->out = tensors[3];
    plan->psa = psa;
    if (d.method != CLPSA_METHOD_DENSE)
        status = clpsa__plan_build_psa(plan);
    else
        status =
            clpsa__plan_wants_decode(plan) ? clpsa__plan_build_decode(plan) : build_dense(plan);
    if (status != CLPSA_OK) {
        clpsa_plan_destroy(plan);
        return status;
    }
    *out = plan;
    return CLPSA_OK;
}

void clpsa_plan_destroy(clpsa_plan *plan) {
    if (!plan)
        return;
    if (plan->dense)
        clReleaseKernel(plan->dense);
    clpsa__plan_release_decode(plan);
    clpsa__plan_release_psa(plan);
    free(plan);
}

clpsa_status clpsa_plan_get_desc(const clpsa_plan *plan, clpsa_plan_desc *out) {
    if (!plan || !out)
        return CLPSA_ERROR_NULL_ARGUMENT;
    *out = plan->desc;
    return CLPSA_OK;
}

clpsa_status clpsa_plan_buffer_sizes(const clpsa_plan *plan, clpsa_buffer_sizes *out) {
    if (!plan || !out)
        return CLPSA_ERROR_NULL_ARGUMENT;
    out->q = clpsa__tensor_bytes(&plan->q);
    out->k = clpsa__tensor_bytes(&plan->k);
    out->v = clpsa__tensor_bytes(&plan->v);
    out->out = clpsa__tensor_bytes(&plan->out);
    return CLPSA_OK;
}

const char *clpsa_plan_parameter_source(const clpsa_plan *plan) {
    return plan ? plan->parameter_source : "";
}

const char *clpsa_plan_kernel_variant(const clpsa_plan *plan, const char *family) {
    if (!plan || !family)
        return NULL;
    const clpsa__kernel_variant *v = !strcmp(family, "dense")      ? plan->dense_variant
                                     : !strcmp(family, "attend")   ? plan->attend_variant
                                     : !strcmp(family, "estimate") ? plan->estimate_variant
                                     : !strcmp(family, "budget")   ? plan->budget_variant
                                     : !strcmp(family, "decode")   ? plan->decode_variant
                                                                   : NULL;
    return v ? v->name : NULL;
}

double clpsa_plan_flops(const clpsa_plan *plan) {
    if (!plan)
        return 0.0;
    const clpsa_plan_desc *d = &plan->desc;
    double pairs = 0.0;
    if (d->causal) {
        const long long shift = (long long)d->seq_k - d->seq_q;
        for (long long t = 0; t < d->seq_q; ++t) {
            long long visible = t + shift + 1;
            visible = visible < 0 ? 0 : (visible > d->seq_k ? d->seq_k : visible);
            pairs += (double)visible;
        }
    } else {
        pairs = (double)d->seq_q * (double)d->seq_k;
    }
    return 4.0 * d->batch * d->heads_q * pairs * d->head_dim;
}

clpsa_status clpsa_plan_set_kv_length(clpsa_plan *plan, int seq_k) {
    if (!plan)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa_context *ctx = plan->ctx;
    clpsa__clear_error(ctx);
    if (plan->desc.method != CLPSA_METHOD_DENSE)
        return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                           "clpsa_plan_set_kv_length: the plan's method is not "
                           "CLPSA_METHOD_DENSE; a sparse plan's block grid depends on seq_k, "
                           "which is fixed at creation");
    if (seq_k < 1 || seq_k > plan->desc.kv_capacity)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_SHAPE,
                           "clpsa_plan_set_kv_length: seq_k = %d: it must be in [1, kv_capacity "
                           "= %d]",
                           seq_k, plan->desc.kv_capacity);
    plan->desc.seq_k = seq_k;
    return CLPSA_OK;
}

static clpsa_status check_queue(clpsa_context *ctx, cl_command_queue queue) {
    cl_context owner = NULL;
    const cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof owner, &owner, NULL);
    /* Only CL_INVALID_COMMAND_QUEUE blames the handle; running out of memory is not its fault. */
    if (err != CL_SUCCESS && err != CL_INVALID_COMMAND_QUEUE)
        return clpsa__fail_cl(ctx, err, "clGetCommandQueueInfo(CL_QUEUE_CONTEXT)");
    if (err != CL_SUCCESS)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "queue %p is not a valid command queue: OpenCL error %d (%s)",
                           (void *)queue, (int)err, clpsa__cl_error_name(err));
    if (owner != ctx->cl_ctx)
        return clpsa__fail(ctx, CLPSA_ERROR_WRONG_CONTEXT,
                           "queue %p belongs to cl_context %p, but the plan's context is %p",
                           (void *)queue, (void *)owner, (void *)ctx->cl_ctx);
    return CLPSA_OK;
}

static clpsa_status check_run_args(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k,
                                   cl_mem v, cl_mem out, cl_uint num_events,
                                   const cl_event *wait_list) {
    clpsa_context *ctx = plan->ctx;
    if (!queue)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "queue is NULL and the context has no queue of its own");
    if (num_events > 0 && !wait_list)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT, "num_events = %u but wait_list is NULL",
                           num_events);
    if (num_events == 0 && wait_list)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "wait_list is set but num_events = 0 (OpenCL requires both or "
                           "neither)");
    clpsa_status status = check_queue(ctx, queue);
    const struct {
        const clpsa__tensor *tensor;
        cl_mem buffer;
    } buffers[4] = {{&plan->q, q}, {&plan->k, k}, {&plan->v, v}, {&plan->out, out}};
    for (int i = 0; i < 4 && status == CLPSA_OK; ++i)
        status = clpsa__check_buffer(ctx, buffers[i].tensor, buffers[i].buffer);
    if (status != CLPSA_OK)
        return status;
    for (int i = 0; i < 3; ++i)
        if (buffers[i].buffer == out)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "buffer out is the same cl_mem as input %s: the output must "
                               "not alias an input",
                               buffers[i].tensor->name);
    return CLPSA_OK;
}

clpsa_status clpsa_plan_run(clpsa_plan *plan, cl_command_queue queue, cl_mem q, cl_mem k, cl_mem v,
                            cl_mem out, cl_uint num_events, const cl_event *wait_list,
                            cl_event *event) {
    if (event)
        *event = NULL;
    if (!plan)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa_context *ctx = plan->ctx;
    clpsa__clear_error(ctx);
    if (!queue)
        queue = ctx->queue;
    clpsa_status status = check_run_args(plan, queue, q, k, v, out, num_events, wait_list);
    if (status != CLPSA_OK)
        return status;

    if (plan->desc.method != CLPSA_METHOD_DENSE)
        return clpsa__plan_run_psa(plan, queue, q, k, v, out, num_events, wait_list, event);
    if (plan->decode_variant)
        return clpsa__plan_run_decode(plan, queue, q, k, v, out, num_events, wait_list, event);
    const clpsa_plan_desc *d = &plan->desc;
    const cl_int group = d->heads_q / d->heads_kv;
    const cl_int causal = d->causal ? 1 : 0;
    const cl_long strides[12] = {
        d->q_strides.batch, d->q_strides.head,    d->q_strides.seq,    d->k_strides.batch,
        d->k_strides.head,  d->k_strides.seq,     d->v_strides.batch,  d->v_strides.head,
        d->v_strides.seq,   d->out_strides.batch, d->out_strides.head, d->out_strides.seq,
    };
    cl_kernel kernel = plan->dense;
    /* The first error is kept (OR-ing OpenCL's negative codes would make up another one). */
    cl_int err =
        clpsa__set_args(kernel, 22, CLPSA__ARG(q), CLPSA__ARG(k), CLPSA__ARG(v), CLPSA__ARG(out),
                        CLPSA__ARG(d->heads_q), CLPSA__ARG(group), CLPSA__ARG(d->seq_q),
                        CLPSA__ARG(d->seq_k), CLPSA__ARG(d->scale), CLPSA__ARG(causal),
                        CLPSA__ARG(strides[0]), CLPSA__ARG(strides[1]), CLPSA__ARG(strides[2]),
                        CLPSA__ARG(strides[3]), CLPSA__ARG(strides[4]), CLPSA__ARG(strides[5]),
                        CLPSA__ARG(strides[6]), CLPSA__ARG(strides[7]), CLPSA__ARG(strides[8]),
                        CLPSA__ARG(strides[9]), CLPSA__ARG(strides[10]), CLPSA__ARG(strides[11]));
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clSetKernelArg(dense_attention)");

    const size_t row_groups = ((size_t)d->seq_q + plan->dense_rows - 1) / plan->dense_rows;
    const size_t global[2] = {row_groups * plan->dense_items, (size_t)d->batch * d->heads_q};
    const size_t local[2] = {(size_t)plan->dense_items, 1};
    err =
        clEnqueueNDRangeKernel(queue, kernel, 2, NULL, global, local, num_events, wait_list, event);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clEnqueueNDRangeKernel(dense_attention)");
    return CLPSA_OK;
}

cl_int clpsa__set_args(cl_kernel kernel, int count, ...) {
    va_list args;
    va_start(args, count);
    cl_int first_error = CL_SUCCESS;
    for (int i = 0; i < count; ++i) {
        const size_t size = va_arg(args, size_t);
        const void *value = va_arg(args, const void *);
        const cl_int err = clSetKernelArg(kernel, (cl_uint)i, size, value);
        if (err != CL_SUCCESS && first_error == CL_SUCCESS)
            first_error = err;
    }
    va_end(args);
    return first_error;
}
