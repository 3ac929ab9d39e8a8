/* SPDX-License-Identifier: Apache-2.0 */
/* Compiled programs, cached in memory per context and as binaries on disk. The key names
 * everything a binary depends on: platform, device, driver, the kernel text and the options. */
#include "internal.h"
#include "ptx_sm90a.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *make_key(const clpsa_context *ctx, const char *file, const char *source,
                      size_t source_size, const char *options) {
    const uint64_t source_hash = clpsa__hash64(source, source_size, CLPSA__HASH_SEED);
    const char *fmt = "platform=%s|platform_version=%s|device=%s|driver=%s|device_version=%s|"
                      "file=%s|source=%016llx|options=%s";
    const int length =
        snprintf(NULL, 0, fmt, ctx->info.platform_name, ctx->info.platform_version,
                 ctx->info.device_name, ctx->info.driver_version, ctx->info.device_version, file,
                 (unsigned long long)source_hash, options);
    char *key = malloc((size_t)length + 1);
    if (key)
        snprintf(key, (size_t)length + 1, fmt, ctx->info.platform_name, ctx->info.platform_version,
                 ctx->info.device_name, ctx->info.driver_version, ctx->info.device_version, file,
                 (unsigned long long)source_hash, options);
    return key;
}

/* The index of the entry with this key, or program_count when there is none. */
static size_t find_in_memory(const clpsa_context *ctx, const char *key) {
    for (size_t i = 0; i < ctx->program_count; ++i)
        if (strcmp(ctx->programs[i].key, key) == 0)
            return i;
    return ctx->program_count;
}

/* Takes ownership of key and program. */
static clpsa_status remember(clpsa_context *ctx, char *key, cl_program program, bool from_disk) {
    if (ctx->program_count == ctx->program_capacity) {
        const size_t capacity = ctx->program_capacity ? 2 * ctx->program_capacity : 8;
        clpsa__program_entry *grown = realloc(ctx->programs, capacity * sizeof *grown);
        if (!grown) {
            free(key);
            clReleaseProgram(program);
            return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "program cache: out of memory");
        }
        ctx->programs = grown;
        ctx->program_capacity = capacity;
    }
    ctx->programs[ctx->program_count].key = key;
    ctx->programs[ctx->program_count].program = program;
    ctx->programs[ctx->program_count].from_disk = from_disk;
    ctx->program_count++;
    return CLPSA_OK;
}

void clpsa__program_cache_release(clpsa_context *ctx) {
    for (size_t i = 0; i < ctx->program_count; ++i) {
        clReleaseProgram(ctx->programs[i].program);
        free(ctx->programs[i].key);
    }
    free(ctx->programs);
    ctx->programs = NULL;
    ctx->program_count = ctx->program_capacity = 0;
}

static char *build_log(const clpsa_context *ctx, cl_program program) {
    size_t size = 0;
    if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size) !=
            CL_SUCCESS ||
        size == 0)
        return NULL;
    char *log = malloc(size + 1);
    if (!log)
        return NULL;
    if (clGetProgramBuildInfo(program, ctx->device, CL_PROGRAM_BUILD_LOG, size, log, NULL) !=
        CL_SUCCESS) {
        free(log);
        return NULL;
    }
    log[size] = '\0';
    return log;
}

static cl_program load_binary(clpsa_context *ctx, const char *key, const char *options) {
    unsigned char *binary = NULL;
    size_t size = 0;
    if (!clpsa__disk_cache_load(ctx, key, &binary, &size))
        return NULL;
    cl_int binary_status = CL_SUCCESS, err = CL_SUCCESS;
    const unsigned char *binaries[1] = {binary};
    cl_program program = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &size, binaries,
                                                   &binary_status, &err);
    free(binary);
    if (err == CL_SUCCESS && binary_status == CL_SUCCESS)
        err = clBuildProgram(program, 1, &ctx->device, options, NULL, NULL);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS) {
        clpsa__log(ctx, CLPSA_LOG_WARN,
                   "program cache: the driver refused a cached binary (%s); rebuilding from "
                   "source",
                   clpsa__cl_error_name(err != CL_SUCCESS ? err : binary_status));
        ctx->cache_stats.disk_rejects++;
        if (program)
            clReleaseProgram(program);
        return NULL;
    }
    ctx->cache_stats.disk_hits++;
    return program;
}

static void store_binary(clpsa_context *ctx, const char *key, cl_program program) {
    if (!ctx->cache_dir[0])
        return;
    size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL) !=
            CL_SUCCESS ||
        size == 0)
        return;
    unsigned char *binary = malloc(size);
    if (!binary)
        return;
    unsigned char *binaries[1] = {binary};
    if (clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof binaries, binaries, NULL) ==
        CL_SUCCESS)
        clpsa__disk_cache_store(ctx, key, binary, size);
    free(binary);
}

/* Replaces *program (built from source, released here) by the sm_90a module made from its PTX
 * (src/ptx_sm90a.c). Fails, with nothing left to release, when the driver returns no PTX or
 * refuses the module: the variant selector then falls back to the next variant. */
static clpsa_status rebuild_as_sm90a(clpsa_context *ctx, const char *file, const char *options,
                                     cl_program *program) {
    size_t size = 0;
    cl_int err = clGetProgramInfo(*program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL);
    unsigned char *ptx = err == CL_SUCCESS && size > 0 ? malloc(size) : NULL;
    unsigned char *binaries[1] = {ptx};
    if (ptx)
        err = clGetProgramInfo(*program, CL_PROGRAM_BINARIES, sizeof binaries, binaries, NULL);
    clReleaseProgram(*program);
    *program = NULL;
    if (!ptx || err != CL_SUCCESS) {
        free(ptx);
        return clpsa__fail(ctx, CLPSA_ERROR_BUILD_FAILED,
                           "building %s: the driver returned no program binary to rewrite "
                           "for sm_90a",
                           file);
    }
    const char *why = NULL;
    size_t patched_size = 0;
    char *patched = clpsa__ptx_enable_sm90a((const char *)ptx, size, &patched_size, &why);
    free(ptx);
    if (!patched)
        return clpsa__fail(ctx, CLPSA_ERROR_BUILD_FAILED,
                           "building %s: its binary cannot be rewritten for sm_90a: %s", file, why);
    const unsigned char *module[1] = {(const unsigned char *)patched};
    cl_int binary_status = CL_SUCCESS;
    cl_program rebuilt = clCreateProgramWithBinary(ctx->cl_ctx, 1, &ctx->device, &patched_size,
                                                   module, &binary_status, &err);
    free(patched);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clCreateProgramWithBinary of the sm_90a module");
    err = clBuildProgram(rebuilt, 1, &ctx->device, options, NULL, NULL);
    ctx->cache_stats.builds++;
    if (err != CL_SUCCESS) {
        char *log = build_log(ctx, rebuilt);
        clReleaseProgram(rebuilt);
        const clpsa_status status = clpsa__fail(
            ctx, CLPSA_ERROR_BUILD_FAILED,
            "building the sm_90a module of %s failed with OpenCL error %d (%s); build log:\n%s",
            file, (int)err, clpsa__cl_error_name(err), log ? log : "(no log)");
        free(log);
        return status;
    }
    *program = rebuilt;
    return CLPSA_OK;
}

static clpsa_status build_from_source(clpsa_context *ctx, const char *file, const char *source,
                                      size_t source_size, const char *options, cl_program *out) {
    cl_int err = CL_SUCCESS;
    const char *sources[1] = {source};
    cl_program program = clCreateProgramWithSource(ctx->cl_ctx, 1, sources, &source_size, &err);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(ctx, err, "clCreateProgramWithSource");
    clpsa__log(ctx, CLPSA_LOG_INFO, "compiling %s with \"%s\"", file, options);
    err = clBuildProgram(program, 1, &ctx->device, options, NULL, NULL);
    ctx->cache_stats.builds++;
    if (err != CL_SUCCESS) {
        char *log = build_log(ctx, program);
        clReleaseProgram(program);
        const clpsa_status status =
            clpsa__fail(ctx, CLPSA_ERROR_BUILD_FAILED,
                        "building %s with options \"%s\" failed with OpenCL error %d (%s); "
                        "build log:\n%s",
                        file, options, (int)err, clpsa__cl_error_name(err), log ? log : "(no log)");
        clpsa__log(ctx, CLPSA_LOG_ERROR, "%s", clpsa__context_error(ctx));
        free(log);
        return status;
    }
    if (strstr(source, CLPSA__SM90A_MARKER)) {
        /* An nvidia-wgmma program (cl/nvidia/nv_wgmma.cl): this build only gave the PTX to
         * rewrite into the sm_90a module that runs. */
        const clpsa_status status = rebuild_as_sm90a(ctx, file, options, &program);
        if (status != CLPSA_OK)
            return status;
    }
    /* Drivers report registers, local memory and spills here (NVIDIA with -cl-nv-verbose). */
    char *log = build_log(ctx, program);
    if (log && log[strspn(log, " \t\r\n")])
        clpsa__log(ctx, CLPSA_LOG_DEBUG, "build log of %s:\n%s", file, log);
    free(log);
    *out = program;
    return CLPSA_OK;
}

/* Loads and joins the files in order (common.cl first) into one source text. */
static clpsa_status load_sources(clpsa_context *ctx, const char *const *files, size_t count,
                                 char **text, size_t *size, char *names, size_t names_cap) {
    *text = NULL;
    *size = 0;
    names[0] = '\0';
    for (size_t i = 0; i < count; ++i) {
        char *part = NULL;
        size_t part_size = 0;
        clpsa_status status = clpsa__kernel_source_load(ctx, files[i], &part, &part_size);
        if (status != CLPSA_OK) {
            free(*text);
            *text = NULL;
            return status;
        }
        char *joined = realloc(*text, *size + part_size + 2);
        if (!joined) {
            free(part);
            free(*text);
            *text = NULL;
            return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "joining kernel sources");
        }
        memcpy(joined + *size, part, part_size);
        joined[*size + part_size] = '\n';
        joined[*size + part_size + 1] = '\0';
        *text = joined;
        *size += part_size + 1;
        free(part);
        const size_t used = strlen(names);
        snprintf(names + used, names_cap - used, "%s%s", i ? "+" : "", files[i]);
    }
    return CLPSA_OK;
}

/* The cache entry of the program made of the files with the options: from memory, else from
 * the disk cache, else built from source (and stored on disk). */
static clpsa_status program_entry(clpsa_context *ctx, const char *const *files, size_t count,
                                  const char *options, size_t *index, char **source,
                                  size_t *source_size, char *file, size_t file_capacity) {
    clpsa_status status = load_sources(ctx, files, count, source, source_size, file, file_capacity);
    if (status != CLPSA_OK)
        return status;
    char *key = make_key(ctx, file, *source, *source_size, options);
    if (!key)
        return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "program cache: out of memory");
    *index = find_in_memory(ctx, key);
    if (*index < ctx->program_count) {
        ctx->cache_stats.memory_hits++;
        free(key);
        return CLPSA_OK;
    }
    cl_program program = load_binary(ctx, key, options);
    const bool from_disk = program != NULL;
    if (!program) {
        status = build_from_source(ctx, file, *source, *source_size, options, &program);
        if (status != CLPSA_OK) {
            free(key);
            return status;
        }
        store_binary(ctx, key, program);
    }
    *index = ctx->program_count;
    return remember(ctx, key, program, from_disk);
}

static clpsa_status program_kernel_locked(clpsa_context *ctx, const char *const *files,
                                          size_t count, const char *options, const char *name,
                                          cl_kernel *out) {
    *out = NULL;
    char *source = NULL;
    size_t source_size = 0, index = 0;
    char file[512];
    clpsa_status status =
        program_entry(ctx, files, count, options, &index, &source, &source_size, file, sizeof file);
    if (status != CLPSA_OK) {
        free(source);
        return status;
    }
    clpsa__program_entry *entry = &ctx->programs[index];
    cl_int err = CL_SUCCESS;
    cl_kernel kernel = clCreateKernel(entry->program, name, &err);
    if (err != CL_SUCCESS && entry->from_disk) {
        /* A binary that loads can still be the wrong one (entries swapped, a driver that keeps
         * only part of it): whatever went wrong, the source is the authority. */
        clpsa__log(ctx, CLPSA_LOG_WARN,
                   "program cache: the cached binary of %s cannot make kernel %s (%s); "
                   "rebuilding from source",
                   file, name, clpsa__cl_error_name(err));
        ctx->cache_stats.disk_rejects++;
        cl_program rebuilt = NULL;
        status = build_from_source(ctx, file, source, source_size, options, &rebuilt);
        if (status != CLPSA_OK) {
            free(source);
            return status;
        }
        store_binary(ctx, entry->key, rebuilt); /* replaces the bad file */
        clReleaseProgram(entry->program);       /* kernels made from it keep their reference */
        entry->program = rebuilt;
        entry->from_disk = false;
        kernel = clCreateKernel(rebuilt, name, &err);
    }
    free(source);
    if (err != CL_SUCCESS) {
        char what[768];
        snprintf(what, sizeof what, "clCreateKernel(%s) of %s", name, file);
        return clpsa__fail_cl(ctx, err, what);
    }
    *out = kernel;
    return CLPSA_OK;
}

/* The library's options for a program followed by CLPSA_BUILD_OPTIONS, when it is set: extra
 * compiler flags for kernel development (e.g. -cl-nv-verbose, which makes NVIDIA's compiler
 * report registers and spills of every kernel in the debug log). They are part of the options,
 * so of the cache key: a binary built with them is never taken for one built without. */
static clpsa_status join_build_options(clpsa_context *ctx, const char *options, char *joined,
                                       size_t capacity) {
    const char *extra = getenv("CLPSA_BUILD_OPTIONS");
    const int length = extra && *extra ? snprintf(joined, capacity, "%s %s", options, extra)
                                       : snprintf(joined, capacity, "%s", options);
    if (length < 0 || (size_t)length >= capacity)
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                           "CLPSA_BUILD_OPTIONS: the kernel build options with it are %d "
                           "characters, more than the %zu allowed",
                           length, capacity - 1);
    return CLPSA_OK;
}

/* The context's program list is shared by the threads that use the context: one at a time. */
clpsa_status clpsa__program_kernel(clpsa_context *ctx, const char *const *files, size_t count,
                                   const char *options, const char *name, cl_kernel *out) {
    *out = NULL;
    char joined[2048];
    clpsa_status status = join_build_options(ctx, options, joined, sizeof joined);
    if (status != CLPSA_OK)
        return status;
    clpsa__lock(ctx);
    status = program_kernel_locked(ctx, files, count, joined, name, out);
    clpsa__unlock(ctx);
    return status;
}
