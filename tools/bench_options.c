/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench`: its command line. Every value is checked here, so a wrong flag is reported by
 * its name with exit status 2 before any device work (which can take minutes). */
#include "bench_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define COMMAND CLPSA__BENCH_COMMAND
#define DEFAULT_REPS 10
#define QUICK_REPS 3

static const bench_shape default_shapes[] = {
    {1, 8, 8, 4096, 4096, 64},
    {1, 8, 8, 8192, 8192, 128},
};
static const double default_densities[] = {0.05, 0.1, 0.2, 0.3, 0.5};
/* --quick: under a minute on 2 CPU cores through PoCL, CLBlast's first compile included. */
static const bench_shape quick_shapes[] = {{1, 2, 2, 1024, 1024, 64}};
static const double quick_densities[] = {0.2, 0.4};

void clpsa__bench_usage(FILE *out) {
    fprintf(
        out,
        "usage: clpsa bench [options]\n"
        "\n"
        "Times attention methods on one device and reports time (median of --reps runs after\n"
        "a warm-up, from OpenCL profiling events), TFLOP/s (of the work done: 4*B*Hq*Nq*Nk*D\n"
        "for dense, times the density for sparse methods) and the relative L2 error against\n"
        "dense attention, for each workload, shape, dtype and target density:\n"
        "  psa                  the PSA pipeline (pool, estimate, assign, attend)\n"
        "  psa_attend           its attend stage alone\n"
        "  psa_estimate_assign  its estimate and assign stages (TFLOP/s of the sampled dot\n"
        "                       products)\n"
        "  dense                clpsa's dense attention\n"
        "  binary               block-sparse baseline at PSA's measured density\n"
        "  psa_threshold        (density sweeps) the threshold rule at PSA's measured density\n"
        "  dense_clblast        S = QK^T and O = PV with CLBlast GEMMs, a softmax kernel between\n"
        "                       (fp32 on the same rounded inputs; wall time between clFinish)\n"
        "PSA runs budget mode at each target density (it spends at most that share of\n"
        "dense compute a query block). psa_threshold reaches PSA's density by bisection on\n"
        "one factor s of the thresholds, tau = min(1, s * (0.4, 0.5, 0.6, 0.8)) in threshold\n"
        "mode, until the measured density is within %.2f of it (or the closest found); with\n"
        "--tau, psa is the threshold rule at those thresholds. dense and dense_clblast do\n"
        "not depend on it: measured once per inputs, repeated in each density's records.\n"
        "\n"
        "  --device SPEC       device index (see `clpsa devices`) or part of its name\n"
        "  --quick             small and fast: shapes 1x2x1024x64, densities 0.2,0.4, 3 reps\n"
        "                      (flags given as well override these); the defaults are sized\n"
        "                      for GPUs, so start with this on a CPU\n"
        "  --workload LIST     comma-separated: random (Gaussian Q, K, V), video (the embedded\n"
        "                      video-like workload, raster order), video-hilbert (the same in\n"
        "                      hilbert token order), video-text (video understanding: the\n"
        "                      video then --text-tokens text tokens whose queries read the\n"
        "                      whole video; causal, PSA with preset understanding, N = T*S*S\n"
        "                      + text tokens), all (default: random, video, video-hilbert)\n"
        "  --causal            causal (bottom-right aligned) dense, PSA and binary; not with\n"
        "                      video-hilbert (which the default list then leaves out)\n"
        "  --text-tokens N     video-text's text tokens (default %d)\n"
        "  --shapes LIST       comma-separated BxHxNxD (default 1x8x4096x64,1x8x8192x128);\n"
        "                      video workloads need N = T*S*S (a grid of T frames of S x S)\n"
        "                      or the N of --grid\n"
        "  --grid T,H,W        the video workloads' grid: frames, height, width\n"
        "  --no-clblast        skip the CLBlast baseline (its fp32 scores need N*N floats)\n"
        "  --densities LIST    target densities in (0, 1] (default 0.05,0.1,0.2,0.3,0.5)\n"
        "  --tau t1,t2,t4,t8   fixed PSA thresholds instead of the density sweep\n"
        "  --dtype LIST        storage of Q, K, V: fp32, fp16, bf16, comma-separated (default\n"
        "                      fp32)\n"
        "  --q F --k F --v F   inputs from .npy files (float32 or float16, [B, H, N, D]; K and\n"
        "                      V may have fewer heads, Q's a multiple) instead of a workload\n"
        "  --bm N, --bn N      PSA's query / key block size (default 128 / 64)\n"
        "  --reps N            timed runs of each method (default %d; --quick %d)\n"
        "  --seed S            seed of the random workload (default 0)\n"
        "  --json F            one JSON object: device, parameters, records ('-': stdout)\n"
        "  --csv F             one row per record ('-': stdout)\n"
        "Without --json - or --csv -, a table goes to stdout. Progress goes to stderr when it\n"
        "is a terminal. bench/plot.py turns the JSON into pictures.\n"
        "\n"
        "exit status: 0 success, 1 failure, 2 wrong command line\n",
        CLPSA__BENCH_DENSITY_TOLERANCE, CLPSA__BENCH_TEXT_TOKENS, DEFAULT_REPS, QUICK_REPS);
}

static const char *shown(const char *value) {
    return value ? value : "";
}

/* Splits a copy of `text` at commas; returns the number of items (0 when too many or too long
 * to hold, or an item is empty). */
static int split(const char *text, char *buffer, size_t size, char **items, int max) {
    if (!text || snprintf(buffer, size, "%s", text) >= (int)size)
        return 0;
    int count = 0;
    for (char *rest = buffer; rest;) {
        char *comma = strchr(rest, ',');
        if (comma)
            *comma = '\0';
        if (!*rest || count == max)
            return 0;
        items[count++] = rest;
        rest = comma ? comma + 1 : NULL;
    }
    return count;
}

static bool parse_shape(const char *text, bench_shape *s) {
    char buffer[128];
    if (snprintf(buffer, sizeof buffer, "%s", text) >= (int)sizeof buffer)
        return false;
    long v[4];
    char *rest = buffer;
    for (int i = 0; i < 4; ++i) {
        char *x = strchr(rest, 'x');
        if ((x != NULL) != (i < 3))
            return false;
        if (x)
            *x = '\0';
        if (!clpsa__tool_parse_int(rest, 1, INT_MAX, &v[i]))
            return false;
        rest = x ? x + 1 : rest;
    }
    *s = (bench_shape){(int)v[0], (int)v[1], (int)v[1], (int)v[2], (int)v[2], (int)v[3]};
    return true;
}

static int parse_list(const char *flag, const char *value, bench_options *o) {
    char buffer[1024];
    char *items[64];
    const int n = split(value, buffer, sizeof buffer, items, 64);
    if (!strcmp(flag, "--grid")) {
        long side[3] = {0, 0, 0};
        for (int i = 0; i < 3 && n == 3; ++i)
            if (!clpsa__tool_parse_int(items[i], 1, 1 << 20, &side[i]))
                side[0] = 0;
        if (n != 3 || !side[0])
            return clpsa__tool_usage_error(
                COMMAND, "--grid '%s': need T,H,W (three positive integers)", shown(value));
        for (int i = 0; i < 3; ++i)
            o->grid[i] = (int)side[i];
        return CLPSA__EXIT_OK;
    }
    if (!strcmp(flag, "--workload")) {
        memset(o->workloads, 0, sizeof o->workloads);
        for (int i = 0; i < n; ++i) {
            if (!strcmp(items[i], "all")) {
                for (int w = 0; w < BENCH_WORKLOAD_FILES; ++w)
                    o->workloads[w] = o->workloads[w] || clpsa__bench_workload_default(w);
                continue;
            }
            int w = 0;
            while (w < BENCH_WORKLOAD_FILES &&
                   strcmp(items[i], clpsa__bench_workload_name((bench_workload)w)) != 0)
                ++w;
            if (w == BENCH_WORKLOAD_FILES)
                return clpsa__tool_usage_error(COMMAND,
                                               "--workload '%s': '%s' is not random, video, "
                                               "video-hilbert, video-text or all",
                                               value, items[i]);
            o->workloads[w] = true;
        }
        if (n == 0)
            return clpsa__tool_usage_error(COMMAND,
                                           "--workload '%s': need a list of random, "
                                           "video, video-hilbert, video-text, all",
                                           shown(value));
    } else if (!strcmp(flag, "--shapes")) {
        if (n == 0 || n > CLPSA__BENCH_MAX_SHAPES)
            return clpsa__tool_usage_error(COMMAND, "--shapes '%s': need 1 to %d shapes BxHxNxD",
                                           shown(value), CLPSA__BENCH_MAX_SHAPES);
        for (int i = 0; i < n; ++i) {
            bench_shape *s = &o->shapes[i];
            if (!parse_shape(items[i], s))
                return clpsa__tool_usage_error(COMMAND,
                                               "--shapes '%s': '%s' is not BxHxNxD (four "
                                               "positive integers, e.g. 1x8x4096x64)",
                                               value, items[i]);
            if (s->dim % 8 != 0 || s->dim > 256)
                return clpsa__tool_usage_error(COMMAND,
                                               "--shapes '%s': head dim %d is not a multiple of "
                                               "8 from 8 to 256",
                                               value, s->dim);
        }
        o->shape_count = n;
    } else if (!strcmp(flag, "--densities")) {
        if (n == 0 || n > CLPSA__BENCH_MAX_DENSITIES)
            return clpsa__tool_usage_error(COMMAND, "--densities '%s': need 1 to %d numbers",
                                           shown(value), CLPSA__BENCH_MAX_DENSITIES);
        for (int i = 0; i < n; ++i) {
            double x = 0.0;
            if (!clpsa__tool_parse_double(items[i], &x) || !(x > 0.0 && x <= 1.0))
                return clpsa__tool_usage_error(COMMAND,
                                               "--densities '%s': '%s' is not a density in "
                                               "(0, 1]",
                                               value, items[i]);
            o->densities[i] = x;
        }
        o->density_count = n;
    } else if (!strcmp(flag, "--dtype")) {
        if (n == 0 || n > CLPSA__BENCH_MAX_DTYPES)
            return clpsa__tool_usage_error(COMMAND, "--dtype '%s': need fp32, fp16, bf16",
                                           shown(value));
        for (int i = 0; i < n; ++i) {
            const clpsa_dtype t = !strcmp(items[i], "fp32")   ? CLPSA_DTYPE_FP32
                                  : !strcmp(items[i], "fp16") ? CLPSA_DTYPE_FP16
                                  : !strcmp(items[i], "bf16") ? CLPSA_DTYPE_BF16
                                                              : CLPSA_DTYPE_DEFAULT;
            if (t == CLPSA_DTYPE_DEFAULT)
                return clpsa__tool_usage_error(COMMAND,
                                               "--dtype '%s': '%s' is not fp32, fp16 "
                                               "or bf16",
                                               value, items[i]);
            o->dtypes[i] = t;
        }
        o->dtype_count = n;
    } else if (!strcmp(flag, "--tau")) {
        if (n != 4)
            return clpsa__tool_usage_error(COMMAND,
                                           "--tau '%s': need 4 comma-separated thresholds "
                                           "t1,t2,t4,t8",
                                           shown(value));
        for (int i = 0; i < 4; ++i) {
            double x = 0.0;
            if (!clpsa__tool_parse_double(items[i], &x) || !(x >= 0.0 && x <= 1.0))
                return clpsa__tool_usage_error(COMMAND, "--tau '%s': '%s' is not in [0, 1]", value,
                                               items[i]);
            o->tau[i] = (float)x;
            if (i > 0 && o->tau[i] < o->tau[i - 1])
                return clpsa__tool_usage_error(
                    COMMAND, "--tau '%s': thresholds must be non-decreasing", value);
        }
        o->tau_given = true;
    }
    return CLPSA__EXIT_OK;
}

static int parse_number(const char *flag, const char *value, bench_options *o) {
    long n = 0;
    if (!strcmp(flag, "--reps")) {
        if (!clpsa__tool_parse_int(value, 1, 100000, &n))
            return clpsa__tool_usage_error(COMMAND, "--reps '%s': need 1 to 100000", shown(value));
        o->reps = (int)n;
    } else if (!strcmp(flag, "--seed")) {
        if (!clpsa__tool_parse_int(value, 0, LONG_MAX, &n))
            return clpsa__tool_usage_error(COMMAND, "--seed '%s': need an integer >= 0",
                                           shown(value));
        o->seed = (uint64_t)n;
    } else if (!strcmp(flag, "--text-tokens")) {
        if (!clpsa__tool_parse_int(value, 1, 1 << 20, &n))
            return clpsa__tool_usage_error(COMMAND, "--text-tokens '%s': need 1 to %d",
                                           shown(value), 1 << 20);
        o->text_tokens = (int)n;
    } else {
        const bool key = !strcmp(flag, "--bn");
        return clpsa__tool_parse_block(COMMAND, flag, value, key, key ? &o->block_k : &o->block_q);
    }
    return CLPSA__EXIT_OK;
}

static const clpsa__tool_text_flag text_flags[] = {
    {"--device", offsetof(bench_options, device)}, {"--q", offsetof(bench_options, q)},
    {"--k", offsetof(bench_options, k)},           {"--v", offsetof(bench_options, v)},
    {"--json", offsetof(bench_options, json)},     {"--csv", offsetof(bench_options, csv)},
};
static const char *const list_flags[] = {"--workload", "--shapes", "--densities",
                                         "--dtype",    "--tau",    "--grid"};
static const char *const number_flags[] = {"--reps", "--seed", "--bm", "--bn", "--text-tokens"};

/* Flags whose values the --q/--k/--v files or --tau replace, and the defaults left. */
static int check_and_default(bench_options *o, bool workload_given) {
    const int files = (o->q != NULL) + (o->k != NULL) + (o->v != NULL);
    if (files != 0 && files != 3)
        return clpsa__tool_usage_error(COMMAND, "--q, --k and --v go together (missing:%s%s%s)",
                                       o->q ? "" : " --q", o->k ? "" : " --k", o->v ? "" : " --v");
    if (files && workload_given)
        return clpsa__tool_usage_error(COMMAND, "--workload with --q/--k/--v: the files are the "
                                                "workload");
    if (files && o->shape_count)
        return clpsa__tool_usage_error(COMMAND, "--shapes with --q/--k/--v: the files' shape is "
                                                "the shape");
    if (o->tau_given && o->density_count)
        return clpsa__tool_usage_error(COMMAND, "--tau and --densities exclude each other (fixed "
                                                "thresholds, or a sweep of target densities)");
    if (o->json && o->csv && !strcmp(o->json, "-") && !strcmp(o->csv, "-"))
        return clpsa__tool_usage_error(COMMAND, "--json - and --csv -: only one can go to stdout");
    if (files) {
        memset(o->workloads, 0, sizeof o->workloads);
        o->workloads[BENCH_WORKLOAD_FILES] = true;
    } else if (!workload_given) {
        for (int w = 0; w < BENCH_WORKLOAD_FILES; ++w)
            o->workloads[w] = clpsa__bench_workload_default(w);
        /* Causal masks are defined in the tokens' own order. */
        o->workloads[BENCH_WORKLOAD_HILBERT] = !o->causal;
    }
    if (o->causal && o->workloads[BENCH_WORKLOAD_HILBERT])
        return clpsa__tool_usage_error(COMMAND, "--causal with video-hilbert: a causal mask is "
                                                "defined in the tokens' own order; leave "
                                                "video-hilbert out of --workload");
    if (o->text_tokens && !o->workloads[BENCH_WORKLOAD_VIDEO_TEXT])
        return clpsa__tool_usage_error(COMMAND, "--text-tokens applies to --workload video-text "
                                                "only");
    if (!o->text_tokens)
        o->text_tokens = CLPSA__BENCH_TEXT_TOKENS;
    if (!files && !o->shape_count) {
        const bench_shape *s = o->quick ? quick_shapes : default_shapes;
        o->shape_count = o->quick ? (int)(sizeof quick_shapes / sizeof quick_shapes[0])
                                  : (int)(sizeof default_shapes / sizeof default_shapes[0]);
        memcpy(o->shapes, s, (size_t)o->shape_count * sizeof *s);
    }
    if (!o->tau_given && !o->density_count) {
        const double *d = o->quick ? quick_densities : default_densities;
        o->density_count = o->quick ? (int)(sizeof quick_densities / sizeof quick_densities[0])
                                    : (int)(sizeof default_densities / sizeof default_densities[0]);
        memcpy(o->densities, d, (size_t)o->density_count * sizeof *d);
    }
    if (!o->dtype_count) {
        o->dtypes[0] = CLPSA_DTYPE_FP32;
        o->dtype_count = 1;
    }
    if (!o->reps)
        o->reps = o->quick ? QUICK_REPS : DEFAULT_REPS;
    /* A video grid is checked now: finding out after the first shape's minutes is too late. */
    for (int i = 0; i < o->shape_count; ++i) {
        int grid[3];
        const bench_shape *s = &o->shapes[i];
        if ((o->workloads[BENCH_WORKLOAD_VIDEO] || o->workloads[BENCH_WORKLOAD_HILBERT]) &&
            !clpsa__bench_grid_for(o, s->seq_q, grid))
            return o->grid[0]
                       ? clpsa__tool_usage_error(COMMAND,
                                                 "--grid %d,%d,%d has %lld tokens but --shapes "
                                                 "has N = %d",
                                                 o->grid[0], o->grid[1], o->grid[2],
                                                 (long long)o->grid[0] * o->grid[1] * o->grid[2],
                                                 s->seq_q)
                       : clpsa__tool_usage_error(COMMAND,
                                                 "--shapes: N = %d is not T*S*S (frames of S x "
                                                 "S tokens, S from 8 to 128), which the video "
                                                 "workloads need; use e.g. 1024, 2048, 4096, "
                                                 "or give --grid T,H,W",
                                                 s->seq_q);
        if (o->workloads[BENCH_WORKLOAD_VIDEO_TEXT] &&
            (s->seq_q <= o->text_tokens ||
             !clpsa__bench_grid_for(o, s->seq_q - o->text_tokens, grid)))
            return clpsa__tool_usage_error(COMMAND,
                                           "--shapes: N = %d minus %d text tokens is not a video "
                                           "grid T*S*S (S from 8 to 128) or --grid's, which "
                                           "video-text needs; use e.g. %d",
                                           s->seq_q, o->text_tokens, 2048 + o->text_tokens);
        if ((o->workloads[BENCH_WORKLOAD_VIDEO] || o->workloads[BENCH_WORKLOAD_HILBERT] ||
             o->workloads[BENCH_WORKLOAD_VIDEO_TEXT]) &&
            s->dim % 2 != 0)
            return clpsa__tool_usage_error(COMMAND, "--shapes: the video workloads need an "
                                                    "even head dim");
    }
    return CLPSA__EXIT_OK;
}

int clpsa__bench_parse_options(int argc, char **argv, bench_options *o, bool *help) {
    memset(o, 0, sizeof *o);
    *help = false;
    bool workload_given = false;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *value = NULL;
        bool matched = false;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return CLPSA__EXIT_OK;
        } else if (!strcmp(a, "--quick")) {
            o->quick = matched = true;
        } else if (!strcmp(a, "--no-clblast")) {
            o->no_clblast = matched = true;
        } else if (!strcmp(a, "--causal")) {
            o->causal = matched = true;
        } else if (!strcmp(a, "--json") && i + 1 < argc && !strcmp(argv[i + 1], "-")) {
            /* "-" would otherwise read as the start of an option. */
            o->json = argv[++i];
            matched = true;
        } else if (!strcmp(a, "--csv") && i + 1 < argc && !strcmp(argv[i + 1], "-")) {
            o->csv = argv[++i];
            matched = true;
        }
        if (!matched) {
            int rc = CLPSA__EXIT_OK;
            matched = clpsa__tool_text_option(COMMAND, argc, argv, &i, text_flags,
                                              sizeof text_flags / sizeof text_flags[0], o, &rc);
            if (rc != CLPSA__EXIT_OK)
                return rc;
        }
        for (size_t f = 0; !matched && f < sizeof list_flags / sizeof list_flags[0]; ++f) {
            if (!clpsa__tool_option(argc, argv, &i, list_flags[f], &value))
                continue;
            matched = true;
            if (!value)
                return clpsa__tool_usage_error(COMMAND, "%s needs a value", list_flags[f]);
            workload_given = workload_given || !strcmp(list_flags[f], "--workload");
            const int rc = parse_list(list_flags[f], value, o);
            if (rc != CLPSA__EXIT_OK)
                return rc;
        }
        for (size_t f = 0; !matched && f < sizeof number_flags / sizeof number_flags[0]; ++f) {
            if (!clpsa__tool_option(argc, argv, &i, number_flags[f], &value))
                continue;
            matched = true;
            if (!value)
                return clpsa__tool_usage_error(COMMAND, "%s needs a value", number_flags[f]);
            const int rc = parse_number(number_flags[f], value, o);
            if (rc != CLPSA__EXIT_OK)
                return rc;
        }
        if (!matched)
            return clpsa__tool_usage_error(COMMAND, "unknown option '%s'", a);
    }
    return check_and_default(o, workload_given);
}
