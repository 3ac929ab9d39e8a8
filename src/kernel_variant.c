/* SPDX-License-Identifier: Apache-2.0 */
/* The kernel-variant table and its selector (kernel_variant.h). */
#include "kernel_variant.h"

#include <stdio.h>
#include <string.h>

/* Preference order: a vendor variant first, where it fits (nvidia-mma before nvidia-wgmma:
 * on the H200 the wgmma kernels run no faster yet, bench/NOTES.md); then the CPU-shaped one, which
 * fits every plan on a CPU; then, on the devices left (GPUs without a vendor path, or NVIDIA
 * with fp32 storage), the SIMT-shaped one (3.1x the portable kernel on the H200, bench/NOTES.md);
 * the portable kernel always fits. Variants after a family's first `automatic` ones would be
 * opt-in: they run only when asked for (family.VARIANT from an override, the tuned cache or a
 * table row, or an override of their own tunable), never as the first that fits. */
static const clpsa__kernel_variant *const dense_variants[] = {
    &clpsa__nvidia_mma_dense, &clpsa__nvidia_wgmma_dense, &clpsa__portable_cpu_dense,
    &clpsa__portable_simt_dense, &clpsa__portable_dense};
static const clpsa__kernel_variant *const attend_variants[] = {
    &clpsa__nvidia_mma_attend, &clpsa__nvidia_wgmma_attend, &clpsa__portable_cpu_attend,
    &clpsa__portable_simt_attend, &clpsa__portable_attend};
static const clpsa__kernel_variant *const estimate_variants[] = {
    &clpsa__nvidia_mma_estimate, &clpsa__nvidia_wgmma_estimate, &clpsa__portable_cpu_estimate,
    &clpsa__portable_estimate_staged, &clpsa__portable_estimate};
static const clpsa__kernel_variant *const budget_variants[] = {
    &clpsa__nvidia_mma_budget, &clpsa__nvidia_wgmma_budget, &clpsa__portable_cpu_budget,
    &clpsa__portable_budget};
static const clpsa__kernel_variant *const decode_variants[] = {&clpsa__portable_cpu_decode,
                                                               &clpsa__portable_decode};

static const struct {
    const char *name;
    const clpsa__kernel_variant *const *variants;
    size_t count;
    clpsa__param_id variant_param;
    size_t automatic;
} families[CLPSA__KERNEL_FAMILIES] = {
    [CLPSA__FAMILY_DENSE] = {"dense", dense_variants, 5, CLPSA__P_DENSE_VARIANT, 5},
    [CLPSA__FAMILY_ATTEND] = {"attend", attend_variants, 5, CLPSA__P_ATTEND_VARIANT, 5},
    [CLPSA__FAMILY_ESTIMATE] = {"estimate", estimate_variants, 5, CLPSA__P_ESTIMATE_VARIANT, 5},
    [CLPSA__FAMILY_BUDGET] = {"budget", budget_variants, 4, CLPSA__P_BUDGET_VARIANT, 4},
    [CLPSA__FAMILY_DECODE] = {"decode", decode_variants, 2, CLPSA__P_DECODE_VARIANT, 2},
};

const clpsa__kernel_variant *const *clpsa__kernel_variants(clpsa__kernel_family family,
                                                           size_t *count) {
    *count = families[family].count;
    return families[family].variants;
}

static const clpsa__kernel_variant *variant_at(clpsa__kernel_family family, size_t i) {
    return families[family].variants[i];
}

static bool fits(const clpsa_plan *plan, const clpsa__kernel_variant *v, char *why, size_t size) {
    return v->device_fits(&plan->ctx->info, why, size) && v->plan_fits(plan, why, size);
}

/* Builds one variant, shrinking its work-group while it asks to; CLPSA_OK or the last error. */
static clpsa_status build_one(clpsa_plan *plan, const clpsa__kernel_variant *v, const char *options,
                              cl_kernel *kernel, clpsa__kernel_config *config) {
    clpsa_context *ctx = plan->ctx;
    const size_t source_length = strlen(plan->parameter_source);
    size_t files = 0;
    while (files < 5 && v->files[files])
        ++files;
    for (int attempt = 0;; ++attempt) {
        plan->parameter_source[source_length] = '\0';
        clpsa_status status = v->configure(plan, attempt, config);
        if (status != CLPSA_OK)
            return status;
        char all[1024];
        snprintf(all, sizeof all, "%s %s", options, config->options);
        cl_kernel built = NULL;
        status = clpsa__program_kernel(ctx, v->files, files, all, v->kernel, &built);
        if (status != CLPSA_OK)
            return status;
        size_t limit = 0;
        const cl_int err = clGetKernelWorkGroupInfo(built, ctx->device, CL_KERNEL_WORK_GROUP_SIZE,
                                                    sizeof limit, &limit, NULL);
        if (err != CL_SUCCESS) {
            clReleaseKernel(built);
            return clpsa__fail_cl(ctx, err, "clGetKernelWorkGroupInfo");
        }
        if ((size_t)config->items <= limit) {
            *kernel = built;
            return CLPSA_OK;
        }
        clReleaseKernel(built);
        /* Registers: the compiled kernel allows fewer work-items than asked for. */
        clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                    "the compiled %s kernel (%s) allows at most %zu work-items per group on this "
                    "device, not %d; choose smaller parameters (CLPSA_PARAMS)",
                    v->kernel, v->name, limit, config->items);
        clpsa__log(ctx, CLPSA_LOG_INFO, "%s: trying a smaller work-group",
                   clpsa__context_error(ctx));
    }
}

static void note_variant(clpsa_plan *plan, const char *family, const clpsa__kernel_variant *v,
                         const char *why) {
    const size_t used = strlen(plan->parameter_source);
    snprintf(plan->parameter_source + used, sizeof plan->parameter_source - used,
             "%s%s.VARIANT=%d %s (%s)", used ? ", " : "", family, v->id, v->name, why);
}

/* The first variant of the family that fits the plan and has a tunable the user overrode;
 * which tunable, in `what`. */
static const clpsa__kernel_variant *
overridden_variant(const clpsa_plan *plan, clpsa__kernel_family family, char *what, size_t size) {
    clpsa_context *ctx = plan->ctx;
    for (size_t i = 0; i < families[family].count; ++i) {
        const clpsa__kernel_variant *v = variant_at(family, i);
        char why[256];
        if (!fits(plan, v, why, sizeof why))
            continue;
        for (int p = 0; p < CLPSA__VARIANT_MAX_PARAMS && v->params[p] != CLPSA__PARAM_COUNT; ++p) {
            clpsa__param_source source;
            clpsa__param_value(ctx, v->params[p], &source);
            if (source != CLPSA__SOURCE_OVERRIDE)
                continue;
            snprintf(what, size, "user override of %s.%s", clpsa__param_defs[v->params[p]].family,
                     clpsa__param_defs[v->params[p]].name);
            return v;
        }
    }
    return NULL;
}

clpsa_status clpsa__kernel_variant_build(clpsa_plan *plan, clpsa__kernel_family family,
                                         const char *options, cl_kernel *kernel,
                                         const clpsa__kernel_variant **variant,
                                         clpsa__kernel_config *config) {
    clpsa_context *ctx = plan->ctx;
    const char *name = families[family].name;
    clpsa__param_source source;
    int requested = clpsa__param_value(ctx, families[family].variant_param, &source);
    const char *asked_by = clpsa__param_source_name(source);
    char why[512];
    /* A user override of one variant's own tunable (dense.TILE_N) asks for that variant,
     * unless VARIANT itself is overridden: the override would otherwise do nothing. */
    char implied[96];
    if (source != CLPSA__SOURCE_OVERRIDE) {
        const clpsa__kernel_variant *v = overridden_variant(plan, family, implied, sizeof implied);
        if (v) {
            requested = v->id;
            asked_by = implied;
        }
    }

    /* The named variant first (where it fits), then the table's order. */
    const clpsa__kernel_variant *order[8];
    size_t n = 0;
    if (requested) {
        for (size_t i = 0; i < families[family].count; ++i) {
            const clpsa__kernel_variant *v = variant_at(family, i);
            if (v->id != requested)
                continue;
            if (fits(plan, v, why, sizeof why))
                order[n++] = v;
            else if (source == CLPSA__SOURCE_OVERRIDE) {
                /* Under the lock: a tuning run (which holds it throughout) reads the flag. */
                clpsa__lock(ctx);
                ctx->override_refused = true;
                clpsa__unlock(ctx);
                return clpsa__fail(ctx, CLPSA_ERROR_INVALID_VALUE,
                                   "parameter override %s.VARIANT=%d (%s) cannot run this plan on "
                                   "this device: %s",
                                   name, requested, v->name, why);
            } else /* a device-wide table or cache value meets a plan it does not cover */
                clpsa__log(ctx, CLPSA_LOG_INFO,
                           "%s.VARIANT=%d (%s, %s) cannot run this plan: %s; choosing another",
                           name, requested, v->name, asked_by, why);
        }
    }
    for (size_t i = 0; i < families[family].count; ++i) {
        const clpsa__kernel_variant *v = variant_at(family, i);
        if ((n > 0 && order[0] == v) || i >= families[family].automatic)
            continue;
        if (fits(plan, v, why, sizeof why))
            order[n++] = v;
        else
            clpsa__log(ctx, CLPSA_LOG_DEBUG, "%s variant %s does not fit: %s", name, v->name, why);
    }
    clpsa_status status =
        clpsa__fail(ctx, CLPSA_ERROR_UNSUPPORTED,
                    "no %s kernel variant can run this plan on this device", name);
    const size_t source_length = strlen(plan->parameter_source);
    for (size_t c = 0; c < n; ++c) {
        const clpsa__kernel_variant *v = order[c];
        plan->parameter_source[source_length] = '\0';
        const bool asked = requested == v->id;
        note_variant(plan, name, v, asked ? asked_by : "first that fits");
        status = build_one(plan, v, options, kernel, config);
        if (status == CLPSA_OK) {
            *variant = v;
            clpsa__log(ctx, CLPSA_LOG_INFO,
                       "%s kernel: %s variant, %d rows and %d work-items per "
                       "group",
                       name, v->name, config->rows, config->items);
            return CLPSA_OK;
        }
        /* A build that fails on some driver, a kernel that cannot take the group it needs, or
         * a source file that a CLPSA_KERNEL_DIR lacks falls back to the next variant; anything
         * else (an impossible override, out of memory) is the caller's answer. */
        const bool fall_back = status == CLPSA_ERROR_BUILD_FAILED ||
                               status == CLPSA_ERROR_UNSUPPORTED || status == CLPSA_ERROR_IO;
        if (!fall_back || c + 1 == n)
            return status;
        clpsa__log(ctx, CLPSA_LOG_WARN, "%s variant %s failed (%s); falling back to %s", name,
                   v->name, clpsa__context_error(ctx), order[c + 1]->name);
        clpsa__clear_error(ctx);
    }
    return status;
}

const char *clpsa__param_idle_variant(const clpsa__device_info *info, clpsa__param_id id) {
    const char *idle = NULL;
    for (int f = 0; f < CLPSA__KERNEL_FAMILIES; ++f)
        for (size_t i = 0; i < families[f].count; ++i) {
            const clpsa__kernel_variant *v = variant_at((clpsa__kernel_family)f, i);
            bool uses = false;
            for (int p = 0; p < CLPSA__VARIANT_MAX_PARAMS && v->params[p] != CLPSA__PARAM_COUNT;
                 ++p)
                uses = uses || v->params[p] == id;
            if (!uses)
                continue;
            char why[256];
            if (v->device_fits(info, why, sizeof why))
                return NULL;
            idle = v->name;
        }
    return idle;
}

void clpsa__kernel_variants_describe(const clpsa__device_info *info, char *out, size_t size) {
    out[0] = '\0';
    for (int f = 0; f < CLPSA__KERNEL_FAMILIES; ++f) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s variants:", families[f].name);
        for (size_t i = 0; i < families[f].count; ++i) {
            const clpsa__kernel_variant *v = variant_at((clpsa__kernel_family)f, i);
            char why[256];
            const bool ok = v->device_fits(info, why, sizeof why);
            used = strlen(out);
            snprintf(out + used, size - used, "%s %s (%s.VARIANT=%d) %s%s", i ? ";" : "", v->name,
                     families[f].name, v->id, ok ? "runs here" : "not here: ",
                     ok ? (i >= families[f].automatic ? " when asked for" : "") : why);
        }
        used = strlen(out);
        snprintf(out + used, size - used, "\n");
    }
}
