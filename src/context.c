/* SPDX-License-Identifier: Apache-2.0 */
/* The context: the device (wrapped or picked), its facts, the logger and the program cache. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void clpsa_context_desc_init(clpsa_context_desc *desc) {
    if (desc)
        memset(desc, 0, sizeof *desc);
}

static clpsa_status wrap_caller_objects(clpsa_context *ctx, const clpsa_context_desc *desc) {
    if (!desc->cl_context || !desc->device)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "context desc: cl_context (%p) and device (%p) must both be set to "
                           "wrap caller objects, or both be NULL (and queue NULL) to let clpsa "
                           "pick a device",
                           (void *)desc->cl_context, (void *)desc->device);
    cl_uint device_count = 0;
    cl_int err = clGetContextInfo(desc->cl_context, CL_CONTEXT_NUM_DEVICES, sizeof device_count,
                                  &device_count, NULL);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clGetContextInfo(cl_context)");
    cl_device_id devices[64];
    if (device_count > 64)
        device_count = 64;
    err = clGetContextInfo(desc->cl_context, CL_CONTEXT_DEVICES, device_count * sizeof devices[0],
                           devices, NULL);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clGetContextInfo(CL_CONTEXT_DEVICES)");
    bool found = false;
    for (cl_uint i = 0; i < device_count; ++i)
        found = found || devices[i] == desc->device;
    if (!found)
        return clpsa__fail(ctx, CLPSA_ERROR_WRONG_CONTEXT,
                           "context desc: device %p is not one of the %u devices of cl_context "
                           "%p",
                           (void *)desc->device, device_count, (void *)desc->cl_context);
    if (desc->queue) {
        cl_context queue_context = NULL;
        err = clGetCommandQueueInfo(desc->queue, CL_QUEUE_CONTEXT, sizeof queue_context,
                                    &queue_context, NULL);
        if (err != CL_SUCCESS)
            return clpsa__fail_cl(ctx, err, "clGetCommandQueueInfo(queue)");
        if (queue_context != desc->cl_context)
            return clpsa__fail(ctx, CLPSA_ERROR_WRONG_CONTEXT,
                               "context desc: queue %p belongs to cl_context %p, not to %p",
                               (void *)desc->queue, (void *)queue_context,
                               (void *)desc->cl_context);
    }
    /* Retained so the wrapped objects live as long as this context whatever the caller
     * releases meanwhile; destroy releases them. */
    err = clRetainContext(desc->cl_context);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clRetainContext(cl_context)");
    ctx->cl_ctx = desc->cl_context;
    if (desc->queue) {
        err = clRetainCommandQueue(desc->queue);
        if (err != CL_SUCCESS)
            return clpsa__fail_cl(ctx, err, "clRetainCommandQueue(queue)");
        ctx->queue = desc->queue;
    }
    ctx->device = desc->device;
    snprintf(ctx->device_reason, sizeof ctx->device_reason, "wrapped by caller");
    return CLPSA_OK;
}

static clpsa_status create_own_objects(clpsa_context *ctx, const clpsa_context_desc *desc) {
    if (desc->queue)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "context desc: a queue was given without its cl_context and device");
    cl_platform_id platform = NULL;
    cl_device_id device = NULL;
    clpsa_status status = clpsa__select_device(ctx, desc->device_spec, &platform, &device);
    if (status != CLPSA_OK)
        return status;
    const cl_context_properties properties[] = {CL_CONTEXT_PLATFORM,
                                                (cl_context_properties)platform, 0};
    cl_int err = CL_SUCCESS;
    ctx->cl_ctx = clCreateContext(properties, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clCreateContext");
    ctx->device = device;
    /* Profiling is on so tools and benchmarks can time with events; it costs nothing
     * measurable on the devices we know. */
    ctx->queue = clCreateCommandQueue(ctx->cl_ctx, device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clCreateCommandQueue");
    return CLPSA_OK;
}

/* Creation failures have no context to report through: the half-built context's last_error is
 * logged and copied to the thread's record (clpsa_context_last_error(NULL)) before destroying. */
clpsa_status clpsa_context_create(const clpsa_context_desc *desc, clpsa_context **out) {
    clpsa__set_thread_error("");
    if (!out)
        return clpsa__fail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                           "clpsa_context_create: out must not be NULL");
    *out = NULL;
    clpsa_context_desc defaults;
    if (!desc) {
        clpsa_context_desc_init(&defaults);
        desc = &defaults;
    }
    clpsa_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return clpsa__fail(NULL, CLPSA_ERROR_OUT_OF_MEMORY,
                           "clpsa_context_create: out of host memory for the context (%zu bytes)",
                           sizeof *ctx);
    static _Atomic unsigned long next_id = 1;
    ctx->id = next_id++;
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0 ||
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE) != 0 ||
        pthread_mutex_init(&ctx->lock, &attr) != 0) {
        free(ctx);
        return clpsa__fail(NULL, CLPSA_ERROR_OUT_OF_MEMORY,
                           "clpsa_context_create: cannot create the context's mutex");
    }
    pthread_mutexattr_destroy(&attr);
    ctx->log = desc->log ? desc->log : clpsa__log_to_stderr;
    ctx->log_user = desc->log_user;
    ctx->log_level = desc->log_level ? desc->log_level : clpsa__log_level_from_env();

    const bool wrap = desc->cl_context || desc->device;
    clpsa_status status = wrap ? wrap_caller_objects(ctx, desc) : create_own_objects(ctx, desc);
    cl_int err = CL_SUCCESS;
    if (status == CLPSA_OK) {
        status = clpsa__device_info_query(ctx->device, &ctx->info, &err);
        if (status != CLPSA_OK)
            clpsa__fail_cl(ctx, err, "clGetDeviceInfo");
    }
    if (status != CLPSA_OK) {
        clpsa__log(ctx, CLPSA_LOG_ERROR, "context creation failed: %s", clpsa__context_error(ctx));
        clpsa__set_thread_error(clpsa__context_error(ctx));
        clpsa_context_destroy(ctx);
        return status;
    }
    snprintf(ctx->device_label, sizeof ctx->device_label, "%s / %s (driver %s)",
             ctx->info.platform_name, ctx->info.device_name, ctx->info.driver_version);
    if (!desc->disable_disk_cache)
        clpsa__disk_cache_resolve_dir(desc->cache_dir, ctx->cache_dir, sizeof ctx->cache_dir);
    clpsa__params_init(ctx);
    clpsa__log(ctx, CLPSA_LOG_INFO, "device: %s; chosen because: %s; program cache: %s",
               ctx->device_label, ctx->device_reason,
               ctx->cache_dir[0] ? ctx->cache_dir : "memory only");
    *out = ctx;
    return CLPSA_OK;
}

void clpsa_context_destroy(clpsa_context *ctx) {
    if (!ctx)
        return;
    clpsa__program_cache_release(ctx);
    /* Own or wrapped (retained at creation), the references are ours to release. */
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl_ctx)
        clReleaseContext(ctx->cl_ctx);
    clpsa__clear_error(ctx);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

/* const: readers of shared state lock too; the mutex is the one mutable part of them. */
void clpsa__lock(const clpsa_context *ctx) {
    pthread_mutex_lock((pthread_mutex_t *)&ctx->lock);
}

void clpsa__unlock(const clpsa_context *ctx) {
    pthread_mutex_unlock((pthread_mutex_t *)&ctx->lock);
}

const char *clpsa_context_last_error(const clpsa_context *ctx) {
    return ctx ? clpsa__context_error(ctx) : clpsa__thread_error();
}

cl_context clpsa_context_cl_context(const clpsa_context *ctx) {
    return ctx ? ctx->cl_ctx : NULL;
}

cl_device_id clpsa_context_device(const clpsa_context *ctx) {
    return ctx ? ctx->device : NULL;
}

cl_command_queue clpsa_context_queue(const clpsa_context *ctx) {
    return ctx ? ctx->queue : NULL;
}

const char *clpsa_context_device_name(const clpsa_context *ctx) {
    return ctx ? ctx->device_label : "";
}

const char *clpsa_context_device_reason(const clpsa_context *ctx) {
    return ctx ? ctx->device_reason : "";
}

const char *clpsa_context_cache_dir(const clpsa_context *ctx) {
    return ctx ? ctx->cache_dir : "";
}

void clpsa_context_cache_stats(const clpsa_context *ctx, clpsa_cache_stats *out) {
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (ctx) {
        clpsa__lock(ctx);
        *out = ctx->cache_stats;
        clpsa__unlock(ctx);
    }
}

clpsa_status clpsa_context_alloc(clpsa_context *ctx, size_t bytes, cl_mem *out) {
    if (!ctx || !out)
        return clpsa__fail(ctx, CLPSA_ERROR_NULL_ARGUMENT,
                           "clpsa_context_alloc: ctx (%p) and out (%p) must not be NULL",
                           (void *)ctx, (void *)out);
    *out = NULL;
    if (bytes == 0)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "clpsa_context_alloc: bytes is 0; a buffer must hold at least one "
                           "byte");
    if (bytes > ctx->info.max_mem_alloc_size || bytes > ctx->info.global_mem_size)
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY,
                           "clpsa_context_alloc: %zu bytes exceed the device's limits (largest "
                           "single allocation %llu bytes, global memory %llu bytes)",
                           bytes, (unsigned long long)ctx->info.max_mem_alloc_size,
                           (unsigned long long)ctx->info.global_mem_size);
    cl_int err = CL_SUCCESS;
    cl_mem buffer = clCreateBuffer(ctx->cl_ctx, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS) {
        char what[96];
        snprintf(what, sizeof what, "clCreateBuffer(%zu bytes)", bytes);
        return clpsa__fail_cl(ctx, err, what);
    }
    *out = buffer;
    return CLPSA_OK;
}
