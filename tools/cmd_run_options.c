/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: its command line. Every value is checked here where the rule is simple, so a
 * wrong flag is reported by its name with exit status 2 before any device work; the library
 * re-checks everything when the plan is made. */
#include "run_internal.h"

#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define COMMAND CLPSA__RUN_COMMAND

void clpsa__run_usage(FILE *out) {
    fprintf(
        out,
        "usage: clpsa run [options]\n"
        "\n"
        "Runs Pyramid Sparse Attention (PSA) and reports its density, level histogram, time\n"
        "(total and per stage, median of --reps runs after a warm-up) against dense attention\n"
        "on the same device, and the relative L2 error against dense of PSA and of the binary\n"
        "block-sparse baseline at the same density.\n"
        "Without --q/--k/--v it runs the embedded video-like workload (8 x 16 x 16 tokens, 2\n"
        "heads, D = 64; thresholds 0.4,0.5,0.6,0.8) in raster and in hilbert token order, and\n"
        "checks %d dense rows against a double-precision computation. Causal (--causal or\n"
        "the understanding preset) it is video understanding: the video in raster order, then\n"
        "%d text tokens (unless --text-tokens says otherwise) whose queries read the whole\n"
        "video, a prompt about it, which reads every block it sees at level 1 as text.\n"
        "\n"
        "inputs:\n"
        "  --device SPEC      device index (see `clpsa devices`) or part of its name\n"
        "  --q F --k F --v F  .npy float32 or float16, shape [B, H, N, D]; K and V share one\n"
        "                     shape; B and D equal Q's; Q's heads a multiple of K's\n"
        "  --bnhd             the inputs (and --out) are [B, N, H, D] instead\n"
        "  --dtype T          storage on the device: fp32, fp16 or bf16 (default: fp16 for\n"
        "                     float16 inputs, else fp32)\n"
        "  --causal           bottom-right aligned causal mask (raster order only)\n"
        "  --scale X          logit scale (default 1/sqrt(D))\n"
        "  --reps N           timed runs of each method (default %d)\n"
        "\n"
        "method (what --out holds; the report always covers all three):\n"
        "  (default)          PSA\n"
        "  --dense            exact dense attention\n"
        "  --binary           binary block-sparse baseline at the density of PSA with the same\n"
        "                     options\n"
        "\n"
        "PSA options (a preset first, then each flag given overrides it):\n"
        "  --preset NAME      wan21-14b, wan21-1.3b, wan22-5b, cogvideox, understanding\n"
        "  --tau t1,t2,t4,t8  level thresholds, non-decreasing in [0, 1]\n"
        "  --mode M           threshold (default), quantile, energy or budget\n"
        "  --density X        budget mode's target density in (0, 1]: every query block\n"
        "                     spends X of dense compute where pooling loses least (alone it\n"
        "                     selects --mode budget; --mode budget alone means 0.15)\n"
        "  --bm N, --bn N     query / key block size, 16..256; bn a multiple of 8\n"
        "                     (default 128 / 64)\n"
        "  --align-tile N     pooled-block alignment tile (default 32; 0: off)\n"
        "  --min-full X       fraction of key blocks kept at level 1 at least (default 0.06;\n"
        "                     0: off)\n"
        "  --text-tokens N    text tokens at the end of the sequence: their key blocks, and\n"
        "                     every block their own query blocks see, at level 1\n"
        "  --sim-cap t2,t4,t8 cap levels by key-block self-similarity, cosine thresholds\n"
        "  --sample-q N, --sample-k N  sampled rows / keys per block in the estimate\n"
        "                     (default bm/4, bn/4; = bm / bn: exact; budget mode measures\n"
        "                     bm/16 rows a block by default and takes no --sample-k)\n"
        "  --seed S           seed of the sampled estimate (default 0)\n"
        "  --scores-in F      block scores S (float32 [B, Hq, nq, nk]): skip the estimate\n"
        "  --levels-in F      level map M (int8 [B, Hq, nq, nk], values 0, 1, 2, 4, 8): skip\n"
        "                     estimate and assignment (both are used in every order run)\n"
        "\n"
        "video token order (the built-in workload has a grid; inputs from files need --grid):\n"
        "  --grid T,H,W       frames, height, width: the workload's size, or the layout of\n"
        "                     the files' tokens (N = T*H*W + text tokens)\n"
        "  --order O          raster, hilbert or tiles: run only this order\n"
        "  --tile tt,th,tw    cube size of --order tiles (default 2,4,4)\n"
        "\n"
        "outputs (block maps and files are those of the last order run: hilbert when the\n"
        "workload compares both; block maps are in the order's block order):\n"
        "  --out F            the output, float32 .npy [B, Hq, Nq, D] (or [B, Nq, Hq, D] with\n"
        "                     --bnhd)\n"
        "  --levels-out F     PSA's level map, int8 [B, Hq, nq, nk]\n"
        "  --scores-out F     PSA's block scores, float32 [B, Hq, nq, nk]\n"
        "  --perm-out F       the token order, int32 [N]: position i holds token perm[i]\n"
        "  --png F            PSA's level map as a picture (batch 0, one panel per head)\n"
        "  --json             print one JSON object on stdout instead of text\n"
        "\n"
        "exit status: 0 success, 1 failure (bad input file, library error, failed check),\n"
        "2 wrong command line\n",
        CLPSA__RUN_CHECK_ROWS, CLPSA__RUN_WORKLOAD_TEXT, CLPSA__RUN_DEFAULT_REPS);
}

const char *clpsa__run_order_name(clpsa_ordering order) {
    switch (order) {
    case CLPSA_ORDER_RASTER:
        return "raster";
    case CLPSA_ORDER_HILBERT:
        return "hilbert";
    case CLPSA_ORDER_TILES:
        return "tiles";
    }
    return "?";
}

const char *clpsa__run_mode_name(clpsa_mode mode) {
    switch (mode) {
    case CLPSA_MODE_THRESHOLD:
        return "threshold";
    case CLPSA_MODE_QUANTILE:
        return "quantile";
    case CLPSA_MODE_ENERGY:
        return "energy";
    case CLPSA_MODE_BUDGET:
        return "budget";
    }
    return "?";
}

/* Exactly `count` comma-separated numbers. */
static bool parse_floats(const char *text, int count, float *out) {
    if (!text)
        return false;
    char buffer[256];
    if (snprintf(buffer, sizeof buffer, "%s", text) >= (int)sizeof buffer)
        return false;
    char *rest = buffer;
    for (int i = 0; i < count; ++i) {
        char *comma = strchr(rest, ',');
        if ((comma != NULL) != (i + 1 < count))
            return false;
        if (comma)
            *comma = '\0';
        double value = 0.0;
        if (!clpsa__tool_parse_double(rest, &value))
            return false;
        out[i] = (float)value;
        rest = comma ? comma + 1 : rest;
    }
    return true;
}

static bool parse_ints(const char *text, int count, long min, long max, int *out) {
    if (!text)
        return false;
    char buffer[256];
    if (snprintf(buffer, sizeof buffer, "%s", text) >= (int)sizeof buffer)
        return false;
    char *rest = buffer;
    for (int i = 0; i < count; ++i) {
        char *comma = strchr(rest, ',');
        if ((comma != NULL) != (i + 1 < count))
            return false;
        if (comma)
            *comma = '\0';
        long value = 0;
        if (!clpsa__tool_parse_int(rest, min, max, &value))
            return false;
        out[i] = (int)value;
        rest = comma ? comma + 1 : rest;
    }
    return true;
}

static const char *shown(const char *value) {
    return value ? value : "";
}

static int parse_tau(const char *value, run_options *o) {
    if (!parse_floats(value, 4, o->tau))
        return clpsa__tool_usage_error(COMMAND,
                                       "--tau '%s': need 4 comma-separated thresholds "
                                       "t1,t2,t4,t8",
                                       shown(value));
    for (int i = 0; i < 4; ++i) {
        if (!(o->tau[i] >= 0.0f && o->tau[i] <= 1.0f))
            return clpsa__tool_usage_error(COMMAND, "--tau '%s': threshold %d is %g, not in [0, 1]",
                                           value, i + 1, (double)o->tau[i]);
        if (i > 0 && o->tau[i] < o->tau[i - 1])
            return clpsa__tool_usage_error(COMMAND,
                                           "--tau '%s': thresholds must be non-decreasing "
                                           "(%g after %g)",
                                           value, (double)o->tau[i], (double)o->tau[i - 1]);
    }
    o->tau_given = true;
    return CLPSA__EXIT_OK;
}

/* Flags whose value is kept as given: paths, the device and the preset name (the library
 * knows the presets and names the known ones when it refuses one). */
static const clpsa__tool_text_flag text_flags[] = {
    {"--device", offsetof(run_options, device)},
    {"--q", offsetof(run_options, q)},
    {"--k", offsetof(run_options, k)},
    {"--v", offsetof(run_options, v)},
    {"--out", offsetof(run_options, out)},
    {"--scores-in", offsetof(run_options, scores_in)},
    {"--levels-in", offsetof(run_options, levels_in)},
    {"--scores-out", offsetof(run_options, scores_out)},
    {"--levels-out", offsetof(run_options, levels_out)},
    {"--png", offsetof(run_options, png)},
    {"--perm-out", offsetof(run_options, perm_out)},
    {"--preset", offsetof(run_options, preset)},
};

/* The value flags other than paths, in the order they are handled below. */
static int parse_value(const char *flag, const char *value, run_options *o) {
    if (!value)
        return clpsa__tool_usage_error(COMMAND, "%s needs a value", flag);
    long n = 0;
    double x = 0.0;
    if (!strcmp(flag, "--dtype")) {
        if (!strcmp(value, "fp32"))
            o->dtype = CLPSA_DTYPE_FP32;
        else if (!strcmp(value, "fp16"))
            o->dtype = CLPSA_DTYPE_FP16;
        else if (!strcmp(value, "bf16"))
            o->dtype = CLPSA_DTYPE_BF16;
        else
            return clpsa__tool_usage_error(COMMAND, "--dtype '%s': use fp32, fp16, bf16", value);
    } else if (!strcmp(flag, "--scale")) {
        if (!clpsa__tool_parse_double(value, &o->scale) || o->scale == 0.0)
            return clpsa__tool_usage_error(COMMAND, "--scale '%s': need a non-zero number", value);
    } else if (!strcmp(flag, "--reps")) {
        if (!clpsa__tool_parse_int(value, 1, 100000, &n))
            return clpsa__tool_usage_error(COMMAND, "--reps '%s': need 1 to 100000", value);
        o->reps = (int)n;
    } else if (!strcmp(flag, "--seed")) {
        if (!clpsa__tool_parse_int(value, 0, LONG_MAX, &n))
            return clpsa__tool_usage_error(COMMAND, "--seed '%s': need an integer >= 0", value);
        o->seed = (uint64_t)n;
    } else if (!strcmp(flag, "--tau")) {
        return parse_tau(value, o);
    } else if (!strcmp(flag, "--mode")) {
        if (!strcmp(value, "threshold"))
            o->mode = CLPSA_MODE_THRESHOLD;
        else if (!strcmp(value, "quantile"))
            o->mode = CLPSA_MODE_QUANTILE;
        else if (!strcmp(value, "energy"))
            o->mode = CLPSA_MODE_ENERGY;
        else if (!strcmp(value, "budget"))
            o->mode = CLPSA_MODE_BUDGET;
        else
            return clpsa__tool_usage_error(
                COMMAND, "--mode '%s': use threshold, quantile, energy or budget", value);
    } else if (!strcmp(flag, "--density")) {
        if (!clpsa__tool_parse_double(value, &x) || !(x > 0.0 && x <= 1.0))
            return clpsa__tool_usage_error(COMMAND, "--density '%s': need a number in (0, 1]",
                                           value);
        o->density = (float)x;
    } else if (!strcmp(flag, "--bm")) {
        return clpsa__tool_parse_block(COMMAND, flag, value, false, &o->block_q);
    } else if (!strcmp(flag, "--bn")) {
        return clpsa__tool_parse_block(COMMAND, flag, value, true, &o->block_k);
    } else if (!strcmp(flag, "--align-tile")) {
        if (!clpsa__tool_parse_int(value, 0, 4096, &n))
            return clpsa__tool_usage_error(COMMAND, "--align-tile '%s': need 0 (off) to 4096",
                                           value);
        o->align_tile = n == 0 ? CLPSA_OFF : (int)n;
    } else if (!strcmp(flag, "--min-full")) {
        if (!clpsa__tool_parse_double(value, &x) || x < 0.0 || x > 1.0)
            return clpsa__tool_usage_error(COMMAND, "--min-full '%s': need 0 (off) to 1", value);
        o->min_full = x == 0.0 ? (float)CLPSA_OFF : (float)x;
    } else if (!strcmp(flag, "--text-tokens")) {
        if (!clpsa__tool_parse_int(value, 0, INT_MAX, &n))
            return clpsa__tool_usage_error(COMMAND, "--text-tokens '%s': need an integer >= 0",
                                           value);
        o->text_tokens = (int)n;
        o->text_given = true;
    } else if (!strcmp(flag, "--sim-cap")) {
        if (!parse_floats(value, 3, o->sim_thresholds))
            return clpsa__tool_usage_error(COMMAND,
                                           "--sim-cap '%s': need 3 comma-separated cosine "
                                           "thresholds t2,t4,t8",
                                           value);
        for (int i = 0; i < 3; ++i)
            if (!(o->sim_thresholds[i] >= -1.0f && o->sim_thresholds[i] <= 1.0f))
                return clpsa__tool_usage_error(COMMAND,
                                               "--sim-cap '%s': threshold %d is %g, not in "
                                               "[-1, 1]",
                                               value, i + 1, (double)o->sim_thresholds[i]);
        o->sim_cap = true;
    } else if (!strcmp(flag, "--sample-q") || !strcmp(flag, "--sample-k")) {
        if (!clpsa__tool_parse_int(value, 1, 256, &n))
            return clpsa__tool_usage_error(COMMAND, "%s '%s': need 1 to 256 (at most the block)",
                                           flag, value);
        *(flag[9] == 'q' ? &o->sample_q : &o->sample_k) = (int)n;
    } else if (!strcmp(flag, "--grid")) {
        if (!parse_ints(value, 3, 1, 1 << 20, o->grid))
            return clpsa__tool_usage_error(COMMAND,
                                           "--grid '%s': need frames,height,width, each at "
                                           "least 1",
                                           value);
        o->grid_given = true;
    } else if (!strcmp(flag, "--order")) {
        if (!strcmp(value, "raster"))
            o->order = CLPSA_ORDER_RASTER;
        else if (!strcmp(value, "hilbert"))
            o->order = CLPSA_ORDER_HILBERT;
        else if (!strcmp(value, "tiles"))
            o->order = CLPSA_ORDER_TILES;
        else
            return clpsa__tool_usage_error(COMMAND, "--order '%s': use raster, hilbert or tiles",
                                           value);
    } else if (!strcmp(flag, "--tile")) {
        if (!parse_ints(value, 3, 1, 1 << 20, o->tile))
            return clpsa__tool_usage_error(COMMAND, "--tile '%s': need tt,th,tw, each at least 1",
                                           value);
    }
    return CLPSA__EXIT_OK;
}

static const char *const value_flags[] = {
    "--dtype",    "--scale",    "--reps",       "--seed",     "--tau",         "--mode",
    "--bm",       "--bn",       "--align-tile", "--min-full", "--text-tokens", "--sim-cap",
    "--sample-q", "--sample-k", "--grid",       "--order",    "--tile",        "--density",
};

/* Combinations that cannot work, reported by the flags involved. */
static int check_combinations(const run_options *o) {
    const int given = (o->q != NULL) + (o->k != NULL) + (o->v != NULL);
    if (given != 0 && given != 3)
        return clpsa__tool_usage_error(COMMAND, "--q, --k and --v go together (missing:%s%s%s)",
                                       o->q ? "" : " --q", o->k ? "" : " --k", o->v ? "" : " --v");
    if (o->bnhd && given == 0)
        return clpsa__tool_usage_error(COMMAND, "--bnhd describes --q/--k/--v files; the "
                                                "built-in workload is [B, H, N, D]");
    if (o->density > 0.0f && o->mode && o->mode != CLPSA_MODE_BUDGET)
        return clpsa__tool_usage_error(COMMAND,
                                       "--density with --mode %s: a target density is budget "
                                       "mode's (leave out --mode, or use --mode budget)",
                                       clpsa__run_mode_name(o->mode));
    if (o->scores_in && (o->mode == CLPSA_MODE_BUDGET || o->density > 0.0f))
        return clpsa__tool_usage_error(COMMAND,
                                       "--scores-in with budget mode: budget mode measures "
                                       "block masses itself (--levels-in still works)");
    if (o->scores_in && o->levels_in)
        return clpsa__tool_usage_error(COMMAND,
                                       "--scores-in and --levels-in exclude each other (a level "
                                       "map skips the estimate that scores replace)");
    if (o->levels_in && o->scores_out)
        return clpsa__tool_usage_error(COMMAND,
                                       "--scores-out with --levels-in: a supplied level map "
                                       "skips the estimate, so there are no scores to write");
    const bool has_grid = o->grid_given || given == 0;
    if (o->order && o->order != CLPSA_ORDER_RASTER && !has_grid)
        return clpsa__tool_usage_error(COMMAND,
                                       "--order %s needs a video grid: add --grid T,H,W for "
                                       "--q/--k/--v inputs",
                                       clpsa__run_order_name(o->order));
    if (o->perm_out && !has_grid)
        return clpsa__tool_usage_error(COMMAND,
                                       "--perm-out needs a video grid: add --grid T,H,W for "
                                       "--q/--k/--v inputs");
    if ((o->tile[0] || o->tile[1] || o->tile[2]) && o->order != CLPSA_ORDER_TILES)
        return clpsa__tool_usage_error(COMMAND, "--tile only applies to --order tiles");
    if (o->causal && o->order && o->order != CLPSA_ORDER_RASTER)
        return clpsa__tool_usage_error(COMMAND,
                                       "--causal with --order %s: a causal mask is defined in "
                                       "the tokens' own order; use --order raster",
                                       clpsa__run_order_name(o->order));
    return CLPSA__EXIT_OK;
}

int clpsa__run_parse_options(int argc, char **argv, run_options *o, bool *help) {
    memset(o, 0, sizeof *o);
    o->reps = CLPSA__RUN_DEFAULT_REPS;
    *help = false;
    bool dense = false, binary = false;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *value = NULL;
        bool matched = false;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return CLPSA__EXIT_OK;
        } else if (!strcmp(a, "--bnhd")) {
            o->bnhd = matched = true;
        } else if (!strcmp(a, "--causal")) {
            o->causal = matched = true;
        } else if (!strcmp(a, "--json")) {
            o->json = matched = true;
        } else if (!strcmp(a, "--dense")) {
            dense = matched = true;
        } else if (!strcmp(a, "--binary")) {
            binary = matched = true;
        }
        if (!matched) {
            int rc = CLPSA__EXIT_OK;
            matched = clpsa__tool_text_option(COMMAND, argc, argv, &i, text_flags,
                                              sizeof text_flags / sizeof text_flags[0], o, &rc);
            if (rc != CLPSA__EXIT_OK)
                return rc;
        }
        for (size_t f = 0; !matched && f < sizeof value_flags / sizeof value_flags[0]; ++f) {
            if (!clpsa__tool_option(argc, argv, &i, value_flags[f], &value))
                continue;
            matched = true;
            const int rc = parse_value(value_flags[f], value, o);
            if (rc != CLPSA__EXIT_OK)
                return rc;
        }
        if (!matched)
            return clpsa__tool_usage_error(COMMAND, "unknown option '%s'", a);
    }
    if (dense && binary)
        return clpsa__tool_usage_error(COMMAND, "--dense and --binary exclude each other");
    o->method = dense ? RUN_METHOD_DENSE : binary ? RUN_METHOD_BINARY : RUN_METHOD_PSA;
    /* "PSA at 15 % of dense compute" is one flag: --density 0.15. */
    if (o->density > 0.0f && !o->mode)
        o->mode = CLPSA_MODE_BUDGET;
    const int rc = check_combinations(o);
    /* The causal built-in workload is video understanding: the video, then a prompt about it. */
    const bool understanding = o->causal || (o->preset && !strcmp(o->preset, "understanding"));
    if (rc == CLPSA__EXIT_OK && !o->q && understanding && !o->text_given)
        o->text_tokens = CLPSA__RUN_WORKLOAD_TEXT;
    return rc;
}
