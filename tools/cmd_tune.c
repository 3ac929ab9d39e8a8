/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa tune`: searches the kernel parameters of a device, writes the winners to the tuned
 * cache (which later plans on that device use) and reports the gain over the defaults. */
#include "tool_common.h"

#include <clpsa/clpsa_tuning.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out) {
    fprintf(
        out,
        "usage: clpsa tune [--device SPEC] [--budget SECONDS] [--shape B,H,N,D]\n"
        "                  [--dtype fp32|fp16|bf16] [--kernels LIST] [--reps N] [--dry-run]\n"
        "                  [--json]\n"
        "\n"
        "  --budget SECONDS  time for the whole search (default 60); the space of a family\n"
        "                    is searched exhaustively when it fits, sampled otherwise\n"
        "  --shape B,H,N,D   the problem tuned for (default 1,2,2048,64)\n"
        "  --kernels LIST    comma-separated families: dense,attend,estimate,assign,budget,decode\n"
        "                    (all)\n"
        "  --reps N          timed runs per candidate, minimum taken (default 5)\n"
        "  --dry-run         search and report, but do not write the tuned cache\n"
        "  --json            one JSON object on stdout (input of tools/gen_param_table.py)\n");
}

typedef struct progress_state {
    bool terminal;
    const char *last_family;
} progress_state;

/* A progress line redrawn in place on a terminal; nothing when stderr is a file or pipe. */
static void show_progress(void *user, const char *family, int done, int total, double best_ms) {
    progress_state *state = user;
    if (!state->terminal)
        return;
    if (state->last_family && strcmp(state->last_family, family) != 0)
        fputc('\n', stderr);
    state->last_family = family;
    const int width = 30, filled = total ? done * width / total : width;
    fprintf(stderr, "\r  %-8s [%.*s%*s] %3d/%-3d best %.3f ms", family, filled,
            "##############################", width - filled, "", done, total, best_ms);
    fflush(stderr);
}

static bool parse_shape(const char *text, clpsa_tune_desc *desc) {
    int b = 0, h = 0, n = 0, d = 0;
    char tail = 0;
    if (sscanf(text, "%d,%d,%d,%d%c", &b, &h, &n, &d, &tail) != 4 || b < 1 || h < 1 || n < 1 ||
        d < 1)
        return false;
    desc->batch = b, desc->heads = h, desc->seq = n, desc->head_dim = d;
    return true;
}

static void print_json(const clpsa_context *ctx, const clpsa_tune_desc *desc,
                       const clpsa_tune_result *result) {
    char vendor[64], arch[128];
    const char *key = clpsa_context_device_key(ctx);
    const char *slash = strchr(key, '/');
    const char *slash2 = slash ? strchr(slash + 1, '/') : NULL;
    snprintf(vendor, sizeof vendor, "%.*s", slash ? (int)(slash - key) : 0, key);
    snprintf(arch, sizeof arch, "%.*s", slash2 ? (int)(slash2 - slash - 1) : 0,
             slash ? slash + 1 : "");
    char driver[256] = "";
    clGetDeviceInfo(clpsa_context_device(ctx), CL_DRIVER_VERSION, sizeof driver, driver, NULL);
    driver[sizeof driver - 1] = '\0';
    printf("{\"device_key\": ");
    clpsa__tool_json_string(stdout, key);
    printf(", \"vendor\": ");
    clpsa__tool_json_string(stdout, vendor);
    printf(", \"arch\": ");
    clpsa__tool_json_string(stdout, arch);
    printf(", \"device\": ");
    clpsa__tool_json_string(stdout, slash2 ? slash2 + 1 : "");
    printf(", \"driver\": ");
    clpsa__tool_json_string(stdout, driver);
    printf(", \"shape\": [%d, %d, %d, %d], \"dtype\": \"%s\", \"budget_s\": %g, \"cache\": ",
           desc->batch ? desc->batch : 1, desc->heads ? desc->heads : 2,
           desc->seq ? desc->seq : 2048, desc->head_dim ? desc->head_dim : 64,
           clpsa_dtype_name(desc->dtype ? desc->dtype : CLPSA_DTYPE_FP32),
           desc->budget_seconds ? desc->budget_seconds : 60.0);
    clpsa__tool_json_string(stdout, result->cache_path);
    printf(", \"families\": [");
    for (int f = 0; f < result->families; ++f) {
        const clpsa_tune_family_result *r = &result->family[f];
        printf("%s{\"family\": \"%s\", \"default_ms\": %.6f, \"best_ms\": %.6f, \"gain\": %.4f, "
               "\"tried\": %d, \"rejected\": %d, \"exhaustive\": %s, \"best\": ",
               f ? ", " : "", r->family, r->default_ms, r->best_ms,
               r->best_ms > 0 ? r->default_ms / r->best_ms : 0.0, r->tried, r->rejected,
               r->exhaustive ? "true" : "false");
        clpsa__tool_json_string(stdout, r->best);
        printf("}");
    }
    printf("]}\n");
}

int clpsa__cmd_tune(int argc, char **argv) {
    const char *device = NULL;
    bool json = false;
    clpsa_tune_desc desc;
    clpsa_tune_desc_init(&desc);
    for (int i = 1; i < argc; ++i) {
        const char *value = NULL;
        long number = 0;
        double seconds = 0.0;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLPSA__EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--dry-run")) {
            desc.dry_run = 1;
        } else if (clpsa__tool_option(argc, argv, &i, "--device", &value)) {
            if (!value)
                return clpsa__tool_usage_error("tune", "--device needs a value");
            device = value;
        } else if (clpsa__tool_option(argc, argv, &i, "--budget", &value)) {
            if (!value || !clpsa__tool_parse_double(value, &seconds) || seconds <= 0)
                return clpsa__tool_usage_error("tune", "--budget needs a positive number of "
                                                       "seconds");
            desc.budget_seconds = seconds;
        } else if (clpsa__tool_option(argc, argv, &i, "--shape", &value)) {
            if (!value || !parse_shape(value, &desc))
                return clpsa__tool_usage_error("tune", "--shape needs B,H,N,D (four positive "
                                                       "integers)");
        } else if (clpsa__tool_option(argc, argv, &i, "--dtype", &value)) {
            desc.dtype = !value                   ? CLPSA_DTYPE_DEFAULT
                         : !strcmp(value, "fp32") ? CLPSA_DTYPE_FP32
                         : !strcmp(value, "fp16") ? CLPSA_DTYPE_FP16
                         : !strcmp(value, "bf16") ? CLPSA_DTYPE_BF16
                                                  : CLPSA_DTYPE_DEFAULT;
            if (desc.dtype == CLPSA_DTYPE_DEFAULT)
                return clpsa__tool_usage_error("tune", "--dtype must be fp32, fp16 or bf16");
        } else if (clpsa__tool_option(argc, argv, &i, "--kernels", &value)) {
            if (!value)
                return clpsa__tool_usage_error("tune", "--kernels needs a list");
            desc.kernels = value;
        } else if (clpsa__tool_option(argc, argv, &i, "--reps", &value)) {
            if (!value || !clpsa__tool_parse_int(value, 1, 1000, &number))
                return clpsa__tool_usage_error("tune", "--reps needs an integer in [1, 1000]");
            desc.repetitions = (int)number;
        } else {
            return clpsa__tool_usage_error("tune", "unknown option '%s'", argv[i]);
        }
    }
    clpsa_context_desc context_desc;
    clpsa__tool_context_desc_init(&context_desc, device);
    clpsa_context *ctx = NULL;
    clpsa_status status = clpsa_context_create(&context_desc, &ctx);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error("tune", "clpsa_context_create", status, NULL);
    progress_state progress = {isatty(fileno(stderr)) != 0, NULL};
    desc.progress = show_progress;
    desc.progress_user = &progress;
    if (!json)
        printf("tuning %s (key %s)\n", clpsa_context_device_name(ctx),
               clpsa_context_device_key(ctx));
    clpsa_tune_result result;
    status = clpsa_tune(ctx, &desc, &result);
    if (progress.terminal && progress.last_family)
        fputc('\n', stderr);
    if (status != CLPSA_OK) {
        const int code = clpsa__tool_library_error("tune", "clpsa_tune", status, ctx);
        clpsa_context_destroy(ctx);
        return code;
    }
    if (json) {
        print_json(ctx, &desc, &result);
    } else {
        printf("%-9s %11s %11s %6s %6s %8s  %s\n", "family", "default_ms", "best_ms", "gain",
               "tried", "rejected", "winner");
        for (int f = 0; f < result.families; ++f) {
            const clpsa_tune_family_result *r = &result.family[f];
            printf("%-9s %11.3f %11.3f %5.2fx %6d %8d  %s%s\n", r->family, r->default_ms,
                   r->best_ms, r->best_ms > 0 ? r->default_ms / r->best_ms : 0.0, r->tried,
                   r->rejected, r->best, r->exhaustive ? "" : " (sampled)");
        }
        printf("%s\n", result.cache_path[0] ? result.cache_path : "dry run: cache not written");
    }
    clpsa_context_destroy(ctx);
    return CLPSA__EXIT_OK;
}
