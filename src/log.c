/* SPDX-License-Identifier: Apache-2.0 */
/* Logging through the context's callback and the last-error record. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *level_name(clpsa_log_level level) {
    switch (level) {
    case CLPSA_LOG_ERROR:
        return "error";
    case CLPSA_LOG_WARN:
        return "warn";
    case CLPSA_LOG_INFO:
        return "info";
    case CLPSA_LOG_DEBUG:
        return "debug";
    case CLPSA_LOG_TRACE:
        return "trace";
    case CLPSA_LOG_OFF:
        break;
    }
    return "off";
}

clpsa_log_level clpsa__log_level_from_env(void) {
    const char *value = getenv("CLPSA_LOG");
    if (!value || !*value)
        return CLPSA_LOG_WARN;
    for (int level = CLPSA_LOG_OFF; level <= CLPSA_LOG_TRACE; ++level)
        if (strcasecmp(value, level_name((clpsa_log_level)level)) == 0)
            return (clpsa_log_level)level;
    if (value[0] >= '0' && value[0] <= '5' && value[1] == '\0')
        return (clpsa_log_level)(value[0] - '0');
    return CLPSA_LOG_WARN;
}

void clpsa__log_to_stderr(void *user, clpsa_log_level level, const char *message) {
    (void)user;
    fprintf(stderr, "clpsa %s: %s\n", level_name(level), message);
}

static void vlog(const clpsa_context *ctx, clpsa_log_level level, const char *fmt, va_list args) {
    if (!ctx || level > ctx->log_level || level == CLPSA_LOG_OFF)
        return;
    char message[2048];
    vsnprintf(message, sizeof message, fmt, args);
    ctx->log(ctx->log_user, level, message);
}

void clpsa__log(const clpsa_context *ctx, clpsa_log_level level, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vlog(ctx, level, fmt, args);
    va_end(args);
}

/* The calling thread's last failure on a context: one record per thread, tagged with the
 * context's id, so threads sharing a context never write or read each other's detail. */
static _Thread_local struct {
    unsigned long context_id; /* 0: none */
    char text[CLPSA__ERROR_CAPACITY];
} context_error;

const char *clpsa__context_error(const clpsa_context *ctx) {
    return ctx && context_error.context_id == ctx->id ? context_error.text : "";
}

void clpsa__clear_error(clpsa_context *ctx) {
    if (ctx && context_error.context_id == ctx->id)
        context_error.text[0] = '\0';
}

/* A failure with no context to hold its detail (context creation, a NULL context argument, the
 * context-free helpers) is kept per thread, so threads do not see each other's errors. */
static _Thread_local char thread_error[CLPSA__THREAD_ERROR_CAPACITY];

const char *clpsa__thread_error(void) {
    return thread_error;
}

void clpsa__set_thread_error(const char *message) {
    snprintf(thread_error, sizeof thread_error, "%s", message ? message : "");
}

clpsa_status clpsa__fail(clpsa_context *ctx, clpsa_status status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    if (!ctx) {
        vsnprintf(thread_error, sizeof thread_error, fmt, args);
        va_end(args);
        return status;
    }
    context_error.context_id = ctx->id;
    vsnprintf(context_error.text, sizeof context_error.text, fmt, args);
    va_end(args);
    clpsa__log(ctx, CLPSA_LOG_DEBUG, "%s: %s", clpsa_status_name(status), context_error.text);
    return status;
}

clpsa_status clpsa__status_from_cl(cl_int cl_error) {
    switch (cl_error) {
    case CL_SUCCESS:
        return CLPSA_OK;
    case CL_OUT_OF_RESOURCES:
    case CL_OUT_OF_HOST_MEMORY:
    case CL_MEM_OBJECT_ALLOCATION_FAILURE:
        return CLPSA_ERROR_OUT_OF_MEMORY;
    case CL_INVALID_CONTEXT:
        return CLPSA_ERROR_WRONG_CONTEXT;
    case CL_BUILD_PROGRAM_FAILURE:
    case CL_COMPILER_NOT_AVAILABLE:
        return CLPSA_ERROR_BUILD_FAILED;
    case CL_DEVICE_NOT_FOUND:
        return CLPSA_ERROR_DEVICE_NOT_FOUND;
    default:
        return CLPSA_ERROR_OPENCL;
    }
}

clpsa_status clpsa__fail_cl(clpsa_context *ctx, cl_int cl_error, const char *what) {
    return clpsa__fail(ctx, clpsa__status_from_cl(cl_error), "%s failed with OpenCL error %d (%s)",
                       what, (int)cl_error, clpsa__cl_error_name(cl_error));
}

const char *clpsa__cl_error_name(cl_int cl_error) {
    return clpsa_opencl_error_name(cl_error);
}

const char *clpsa_opencl_error_name(cl_int cl_error) {
    switch (cl_error) {
#define CLPSA__CL_ERROR(code)                                                                      \
    case code:                                                                                     \
        return #code;
        CLPSA__CL_ERROR(CL_SUCCESS)
        CLPSA__CL_ERROR(CL_DEVICE_NOT_FOUND)
        CLPSA__CL_ERROR(CL_DEVICE_NOT_AVAILABLE)
        CLPSA__CL_ERROR(CL_COMPILER_NOT_AVAILABLE)
        CLPSA__CL_ERROR(CL_MEM_OBJECT_ALLOCATION_FAILURE)
        CLPSA__CL_ERROR(CL_OUT_OF_RESOURCES)
        CLPSA__CL_ERROR(CL_OUT_OF_HOST_MEMORY)
        CLPSA__CL_ERROR(CL_PROFILING_INFO_NOT_AVAILABLE)
        CLPSA__CL_ERROR(CL_BUILD_PROGRAM_FAILURE)
        CLPSA__CL_ERROR(CL_INVALID_VALUE)
        CLPSA__CL_ERROR(CL_INVALID_PLATFORM)
        CLPSA__CL_ERROR(CL_INVALID_DEVICE)
        CLPSA__CL_ERROR(CL_INVALID_CONTEXT)
        CLPSA__CL_ERROR(CL_INVALID_COMMAND_QUEUE)
        CLPSA__CL_ERROR(CL_INVALID_MEM_OBJECT)
        CLPSA__CL_ERROR(CL_INVALID_BINARY)
        CLPSA__CL_ERROR(CL_INVALID_BUILD_OPTIONS)
        CLPSA__CL_ERROR(CL_INVALID_PROGRAM)
        CLPSA__CL_ERROR(CL_INVALID_PROGRAM_EXECUTABLE)
        CLPSA__CL_ERROR(CL_INVALID_KERNEL_NAME)
        CLPSA__CL_ERROR(CL_INVALID_KERNEL)
        CLPSA__CL_ERROR(CL_INVALID_ARG_INDEX)
        CLPSA__CL_ERROR(CL_INVALID_ARG_VALUE)
        CLPSA__CL_ERROR(CL_INVALID_ARG_SIZE)
        CLPSA__CL_ERROR(CL_INVALID_KERNEL_ARGS)
        CLPSA__CL_ERROR(CL_INVALID_WORK_DIMENSION)
        CLPSA__CL_ERROR(CL_INVALID_WORK_GROUP_SIZE)
        CLPSA__CL_ERROR(CL_INVALID_WORK_ITEM_SIZE)
        CLPSA__CL_ERROR(CL_INVALID_GLOBAL_OFFSET)
        CLPSA__CL_ERROR(CL_INVALID_EVENT_WAIT_LIST)
        CLPSA__CL_ERROR(CL_INVALID_EVENT)
        CLPSA__CL_ERROR(CL_INVALID_OPERATION)
        CLPSA__CL_ERROR(CL_INVALID_BUFFER_SIZE)
        CLPSA__CL_ERROR(CL_INVALID_GLOBAL_WORK_SIZE)
        CLPSA__CL_ERROR(CL_MISALIGNED_SUB_BUFFER_OFFSET)
        CLPSA__CL_ERROR(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
#undef CLPSA__CL_ERROR
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    }
    return "unknown OpenCL error";
}
