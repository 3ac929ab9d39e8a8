/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel parameters for one plan: the context's looked-up values, checked against what the
 * device can run for this plan's shapes. */
#include "plan_internal.h"

#include <stdio.h>
#include <string.h>

/* Whether `value` of parameter `id` can run for this plan; why not, in `why`. */
static bool fits(const clpsa_plan *plan, clpsa__param_id id, int value, char *why,
                 size_t why_size) {
    const clpsa__device_info *info = &plan->ctx->info;
    const cl_ulong d = (cl_ulong)plan->desc.head_dim;
    cl_ulong local = 0;
    switch (id) {
    case CLPSA__P_DENSE_TILE_N:
        local = 2 * (cl_ulong)value * d * 4 + (cl_ulong)value * 4;
        break;
    case CLPSA__P_ATTEND_TILE_N:
        local = 2 * (cl_ulong)value * d * 4 + (cl_ulong)value * 8;
        break;
    case CLPSA__P_ESTIMATE_WG:
        local = (cl_ulong)plan->psa.sample_q * 4 + (cl_ulong)value * 4;
        break;
    default:
        break;
    }
    const bool group_size = id == CLPSA__P_DENSE_BLOCK_M || id == CLPSA__P_ATTEND_ROWS ||
                            id == CLPSA__P_ESTIMATE_WG || id == CLPSA__P_ASSIGN_WG ||
                            id == CLPSA__P_DECODE_WG;
    if (group_size && (size_t)value > info->max_work_group_size) {
        snprintf(why, why_size, "%d work-items exceed the device's %zu per work-group", value,
                 info->max_work_group_size);
        return false;
    }
    if (local > info->local_mem_size) {
        snprintf(why, why_size, "needs %llu bytes of local memory at D = %llu; the device has %llu",
                 (unsigned long long)local, (unsigned long long)d,
                 (unsigned long long)info->local_mem_size);
        return false;
    }
    return true;
}

clpsa_status clpsa__plan_param(clpsa_plan *plan, clpsa__param_id id, int *value, bool *overridden) {
    clpsa_context *ctx = plan->ctx;
    const clpsa__param_def *def = &clpsa__param_defs[id];
    clpsa__param_source source;
    int candidate = clpsa__param_value(ctx, id, &source);
    char why[256];
    if (!fits(plan, id, candidate, why, sizeof why)) {
        if (source == CLPSA__SOURCE_OVERRIDE)
            return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                               "parameter override %s.%s=%d cannot run on this device: %s",
                               def->family, def->name, candidate, why);
        clpsa__log(ctx, CLPSA_LOG_WARN,
                   "%s.%s=%d (%s) cannot run for this plan (%s): trying "
                   "smaller values",
                   def->family, def->name, candidate, clpsa__param_source_name(source), why);
        source = CLPSA__SOURCE_GENERIC;
        int fallback = 0;
        for (int i = def->choice_count - 1; i >= 0 && !fallback; --i)
            if (def->choices[i] < candidate && fits(plan, id, def->choices[i], why, sizeof why))
                fallback = def->choices[i];
        if (!fallback)
            return clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                               "no value of %s.%s can run on this device for this plan: %s",
                               def->family, def->name, why);
        candidate = fallback;
    }
    *value = candidate;
    if (overridden)
        *overridden = source == CLPSA__SOURCE_OVERRIDE;
    const size_t used = strlen(plan->parameter_source);
    snprintf(plan->parameter_source + used, sizeof plan->parameter_source - used, "%s%s.%s=%d (%s)",
             used ? ", " : "", def->family, def->name, candidate, clpsa__param_source_name(source));
    return CLPSA_OK;
}

/* After the kernel is built: the compiled kernel may allow fewer work-items than the device
 * (registers); an override that exceeds it is an error, other sources are reported. */
clpsa_status clpsa__plan_check_kernel_group(clpsa_plan *plan, cl_kernel kernel, clpsa__param_id id,
                                            int work_items) {
    size_t limit = 0;
    const cl_int err = clGetKernelWorkGroupInfo(
        kernel, plan->ctx->device, CL_KERNEL_WORK_GROUP_SIZE, sizeof limit, &limit, NULL);
    if (err != CL_SUCCESS)
        return clpsa__fail_cl(plan->ctx, err, "clGetKernelWorkGroupInfo");
    if ((size_t)work_items <= limit)
        return CLPSA_OK;
    const clpsa__param_def *def = &clpsa__param_defs[id];
    return clpsa__fail(plan->ctx, CLPSA_ERROR_UNSUPPORTED,
                       "%s.%s=%d: the compiled %s kernel allows at most %zu work-items per "
                       "group on this device; choose a smaller value (CLPSA_PARAMS)",
                       def->family, def->name, work_items, def->family, limit);
}
