/* SPDX-License-Identifier: Apache-2.0 */
/* Device normalisation and the lookup of kernel parameters for a context. */
#include "internal.h"
#include "kernel_variant.h"

#include <clpsa/clpsa_tuning.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void lower_copy(const char *in, char *out, size_t size) {
    size_t i = 0;
    for (; in[i] && i + 1 < size; ++i)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* PoCL names CPU devices "pthread-<llvm cpu>-<model>" or "cpu-<llvm cpu>-<model>": the
 * architecture is the LLVM CPU name, which ends where the model name (capitalised) starts. */
static void pocl_cpu_arch(const char *device_name, char *arch, size_t size) {
    const char *start = device_name;
    if (strncmp(start, "pthread-", 8) == 0)
        start += 8;
    else if (strncmp(start, "cpu-", 4) == 0)
        start += 4;
    size_t length = 0;
    while (start[length] && !(start[length] == '-' && isupper((unsigned char)start[length + 1])))
        ++length;
    snprintf(arch, size, "%.*s", (int)length, start);
}

void clpsa_normalize_device(unsigned vendor_id, const char *vendor_name, const char *platform_name,
                            const char *device_name, int nv_compute_major, int nv_compute_minor,
                            char *vendor, size_t vendor_size, char *arch, size_t arch_size) {
    vendor_name = vendor_name ? vendor_name : "";
    platform_name = platform_name ? platform_name : "";
    device_name = device_name ? device_name : "";
    arch[0] = '\0';
    if (strstr(platform_name, "Portable Computing Language") || strstr(platform_name, "PoCL")) {
        snprintf(vendor, vendor_size, "pocl");
        pocl_cpu_arch(device_name, arch, arch_size);
    } else if (vendor_id == 0x10DE || strstr(vendor_name, "NVIDIA")) {
        snprintf(vendor, vendor_size, "nvidia");
        if (nv_compute_major > 0)
            snprintf(arch, arch_size, "sm_%d%d", nv_compute_major, nv_compute_minor);
    } else if (vendor_id == 0x1002 || strstr(vendor_name, "Advanced Micro Devices") ||
               strstr(vendor_name, "AMD")) {
        snprintf(vendor, vendor_size, "amd");
        if (strncmp(device_name, "gfx", 3) == 0) /* AMD's runtime names devices by gfx id */
            snprintf(arch, arch_size, "%.*s", (int)strcspn(device_name, ": "), device_name);
    } else if (vendor_id == 0x8086 || strstr(vendor_name, "Intel")) {
        snprintf(vendor, vendor_size, "intel");
    } else {
        lower_copy(vendor_name, vendor, vendor_size);
    }
}

const char *clpsa_context_device_key(const clpsa_context *ctx) {
    return ctx ? ctx->device_key : "";
}

static bool matches(const char *want, const char *have) {
    return want && strcmp(want, have) == 0;
}

/* Built-in table: the most specific row wins, per parameter. */
static void apply_table(clpsa_context *ctx) {
    for (int pass = 0; pass < 3; ++pass) {
        const clpsa__param_source source = pass == 0   ? CLPSA__SOURCE_TABLE_VENDOR
                                           : pass == 1 ? CLPSA__SOURCE_TABLE_ARCH
                                                       : CLPSA__SOURCE_TABLE_DEVICE;
        for (size_t r = 0; r < clpsa__param_table_size; ++r) {
            const clpsa__param_row *row = &clpsa__param_table[r];
            if (!matches(row->vendor, ctx->device_vendor_key))
                continue;
            const bool vendor_row = !row->arch && !row->device;
            const bool arch_row = row->arch && !row->device && matches(row->arch, ctx->device_arch);
            const bool device_row = row->arch && row->device &&
                                    matches(row->arch, ctx->device_arch) &&
                                    matches(row->device, ctx->info.device_name);
            if ((pass == 0 && !vendor_row) || (pass == 1 && !arch_row) ||
                (pass == 2 && !device_row))
                continue;
            for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
                if (row->value[id]) {
                    ctx->params.value[id] = row->value[id];
                    ctx->params.source[id] = source;
                }
        }
    }
}

void clpsa__params_init(clpsa_context *ctx) {
    const clpsa__device_info *info = &ctx->info;
    clpsa_normalize_device(info->vendor_id, info->device_vendor, info->platform_name,
                           info->device_name, info->nv_compute_major, info->nv_compute_minor,
                           ctx->device_vendor_key, sizeof ctx->device_vendor_key, ctx->device_arch,
                           sizeof ctx->device_arch);
    snprintf(ctx->device_key, sizeof ctx->device_key, "%s/%s/%s", ctx->device_vendor_key,
             ctx->device_arch, info->device_name);
    const bool cpu = (info->type & CL_DEVICE_TYPE_CPU) != 0;
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id) {
        ctx->params.value[id] =
            cpu ? clpsa__param_defs[id].default_cpu : clpsa__param_defs[id].default_gpu;
        ctx->params.source[id] = CLPSA__SOURCE_GENERIC;
    }
    apply_table(ctx);
    int cached[CLPSA__PARAM_COUNT];
    if (clpsa__params_cache_load(ctx, cached))
        for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
            if (cached[id]) {
                ctx->params.value[id] = cached[id];
                ctx->params.source[id] = CLPSA__SOURCE_TUNED_CACHE;
            }
    const char *env = getenv("CLPSA_PARAMS");
    if (env && *env) {
        char why[1024];
        int values[CLPSA__PARAM_COUNT];
        if (clpsa__params_parse(env, values, why, sizeof why))
            memcpy(ctx->overrides, values, sizeof values);
        else
            clpsa__log(ctx, CLPSA_LOG_ERROR, "CLPSA_PARAMS ignored: %s", why);
    }
}

int clpsa__param_value(const clpsa_context *ctx, clpsa__param_id id, clpsa__param_source *source) {
    clpsa__lock(ctx); /* another thread may be setting overrides or tuning */
    int value = ctx->overrides[id];
    if (value) {
        *source = CLPSA__SOURCE_OVERRIDE;
    } else {
        *source = ctx->params.source[id];
        value = ctx->params.value[id];
    }
    clpsa__unlock(ctx);
    return value;
}

clpsa_status clpsa_context_set_params(clpsa_context *ctx, const char *overrides) {
    if (!ctx)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa__clear_error(ctx);
    int values[CLPSA__PARAM_COUNT];
    char why[1024];
    if (!clpsa__params_parse(overrides ? overrides : "", values, why, sizeof why))
        return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE, "parameter override: %s", why);
    clpsa__lock(ctx);
    memcpy(ctx->overrides, values, sizeof values);
    clpsa__unlock(ctx);
    return CLPSA_OK;
}

clpsa_status clpsa_context_describe_params(clpsa_context *ctx, char *out, size_t size) {
    if (!ctx || !out || size == 0)
        return CLPSA_ERROR_NULL_ARGUMENT;
    out[0] = '\0';
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id) {
        clpsa__param_source source;
        const int value = clpsa__param_value(ctx, (clpsa__param_id)id, &source);
        const size_t used = strlen(out);
        char unused[128] = "";
        const char *idle = clpsa__param_idle_variant(&ctx->info, (clpsa__param_id)id);
        if (idle)
            snprintf(unused, sizeof unused, "; its variant %s cannot run on this device", idle);
        if (value == 0) /* only the VARIANT parameters have no default value */
            snprintf(out + used, size - used,
                     "%s.%s=auto (generic default: the first variant that fits)\n",
                     clpsa__param_defs[id].family, clpsa__param_defs[id].name);
        else
            snprintf(out + used, size - used, "%s.%s=%d (%s%s)\n", clpsa__param_defs[id].family,
                     clpsa__param_defs[id].name, value, clpsa__param_source_name(source), unused);
    }
    return CLPSA_OK;
}

clpsa_status clpsa_context_describe_variants(clpsa_context *ctx, char *out, size_t size) {
    if (!ctx || !out || size == 0)
        return CLPSA_ERROR_NULL_ARGUMENT;
    clpsa__kernel_variants_describe(&ctx->info, out, size);
    return CLPSA_OK;
}

size_t clpsa_builtin_params_count(void) {
    return clpsa__param_table_size;
}

clpsa_status clpsa_builtin_params_row(size_t index, char *match, size_t match_size, char *params,
                                      size_t params_size) {
    if (!match || !params || match_size == 0 || params_size == 0)
        return CLPSA_ERROR_NULL_ARGUMENT;
    if (index >= clpsa__param_table_size)
        return CLPSA_ERROR_INVALID_VALUE;
    const clpsa__param_row *row = &clpsa__param_table[index];
    if (row->device)
        snprintf(match, match_size, "%s/%s/%s", row->vendor, row->arch, row->device);
    else if (row->arch)
        snprintf(match, match_size, "%s/%s", row->vendor, row->arch);
    else
        snprintf(match, match_size, "%s", row->vendor);
    clpsa__params_format(row->value, params, params_size);
    return CLPSA_OK;
}
