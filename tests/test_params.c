/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel parameters: device normalisation, lookup precedence (override > tuned cache >
 * built-in table > generic), damaged tuned caches, overrides outside the space, every built-in
 * row against the reference, and a short real tuning run whose cache the next plan uses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include "ref/ref_attention.h"
#include "support/test_support.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cache_dir[64];

static int make_cache_dir(void **state) {
    (void)state;
    return ts_temp_dir_create(cache_dir, sizeof cache_dir, "clpsa-params-test") ? 0 : -1;
}

static int remove_cache_dir(void **state) {
    (void)state;
    return ts_temp_dir_remove(cache_dir) ? 0 : -1;
}

static clpsa_context *make_context(ts_log *log) {
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.cache_dir = cache_dir;
    desc.log = ts_log_callback;
    desc.log_user = log;
    desc.log_level = CLPSA_LOG_WARN;
    clpsa_context *ctx = NULL;
    assert_int_equal(clpsa_context_create(&desc, &ctx), CLPSA_OK);
    return ctx;
}

/* The line of text at *at (without its newline) into line; *at moves past it. False at the
 * end of the text. */
static bool next_line(const char **at, char *line, size_t size) {
    if (!**at)
        return false;
    const size_t length = strcspn(*at, "\n");
    snprintf(line, size, "%.*s", (int)length, *at);
    *at += length + ((*at)[length] == '\n');
    return true;
}

static void describe(clpsa_context *ctx, char *out, size_t size) {
    assert_int_equal(clpsa_context_describe_params(ctx, out, size), CLPSA_OK);
}

static void test_device_normalisation(void **state) {
    (void)state;
    char vendor[32], arch[64];
    clpsa_normalize_device(0x10DE, "NVIDIA Corporation", "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", 9,
                           0, vendor, sizeof vendor, arch, sizeof arch);
    assert_string_equal(vendor, "nvidia");
    assert_string_equal(arch, "sm_90");
    clpsa_normalize_device(0x10DE, "NVIDIA Corporation", "NVIDIA CUDA", "Tesla T4", 0, 0, vendor,
                           sizeof vendor, arch, sizeof arch);
    assert_string_equal(arch, ""); /* no compute capability reported */
    clpsa_normalize_device(0x1002, "Advanced Micro Devices, Inc.",
                           "AMD Accelerated Parallel "
                           "Processing",
                           "gfx90a:sramecc+:xnack-", 0, 0, vendor, sizeof vendor, arch,
                           sizeof arch);
    assert_string_equal(vendor, "amd");
    assert_string_equal(arch, "gfx90a");
    clpsa_normalize_device(0x8086, "Intel(R) Corporation", "Intel(R) OpenCL Graphics",
                           "Intel(R) Arc(TM) A770 Graphics", 0, 0, vendor, sizeof vendor, arch,
                           sizeof arch);
    assert_string_equal(vendor, "intel");
    clpsa_normalize_device(0x8086, "GenuineIntel", "Portable Computing Language",
                           "pthread-skylake-avx512-Intel(R) Xeon(R) Processor @ 2.80GHz", 0, 0,
                           vendor, sizeof vendor, arch, sizeof arch);
    assert_string_equal(vendor, "pocl");
    assert_string_equal(arch, "skylake-avx512");
    clpsa_normalize_device(0x1022, "AuthenticAMD", "Portable Computing Language",
                           "cpu-znver3-AMD EPYC 7763 64-Core Processor", 0, 0, vendor,
                           sizeof vendor, arch, sizeof arch);
    assert_string_equal(arch, "znver3");
    clpsa_normalize_device(0x1234, "Acme Chips", "Acme CL", "Rocket", 0, 0, vendor, sizeof vendor,
                           arch, sizeof arch);
    assert_string_equal(vendor, "acme chips");
}

static void test_overrides_are_checked(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    const struct {
        const char *text, *needle;
    } bad[] = {
        {"attend.TILE_N=48", "attend.TILE_N = 48 is outside its allowed values (8, 16, 32, 64)"},
        {"dense.BLOCK_M=4096", "dense.BLOCK_M = 4096 is outside"},
        {"dense.BLOCK_M=0", "outside"},
        {"foo.BAR=1", "\"foo.BAR\" is not a parameter"},
        {"dense.BLOCK_M=abc", "is not an integer"},
        {"BLOCK_M=32", "is not family.NAME=value"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        assert_int_equal(clpsa_context_set_params(ctx, bad[i].text), CLPSA_ERROR_INVALID_VALUE);
        if (!strstr(clpsa_context_last_error(ctx), bad[i].needle))
            fail_msg("override \"%s\": last_error \"%s\" lacks \"%s\"", bad[i].text,
                     clpsa_context_last_error(ctx), bad[i].needle);
    }
    char text[8192];
    describe(ctx, text, sizeof text);
    assert_null(strstr(text, "user override")); /* rejected text changed nothing */
    assert_int_equal(clpsa_context_set_params(ctx, "attend.TILE_N=16, dense.BLOCK_M=64"), CLPSA_OK);
    describe(ctx, text, sizeof text);
    assert_non_null(strstr(text, "attend.TILE_N=16 (user override)"));
    assert_non_null(strstr(text, "dense.BLOCK_M=64 (user override)"));
    assert_int_equal(clpsa_context_set_params(ctx, NULL), CLPSA_OK);
    describe(ctx, text, sizeof text);
    assert_null(strstr(text, "user override"));
    clpsa_context_destroy(ctx);
}

/* Runs a small dense and a small PSA plan with the context's current parameters and checks
 * the dense output against the double reference and PSA's all-level-1 output against dense;
 * inputs and output stored as dtype (the matrix-unit variants take only 16-bit storage). */
static void check_plans_in_storage(clpsa_context *ctx, const char *label, clpsa_dtype dtype) {
    const int heads = 2, seq = 77, dim = 64;
    ts_dims dims = {1, heads, seq, dim};
    const size_t count = (size_t)heads * seq * dim;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_seed());
    float *host[3];
    for (int t = 0; t < 3; ++t) {
        host[t] = malloc(count * sizeof(float));
        ts_fill_normal(&rng, host[t], count, 0.0f, 1.0f);
        ts_round_to_dtype(dtype, host[t], count);
    }
    ts_buffer q, k, v, out;
    ts_buffer_create(&q, ctx, "q", dtype, count);
    ts_buffer_create(&k, ctx, "k", dtype, count);
    ts_buffer_create(&v, ctx, "v", dtype, count);
    ts_buffer_create(&out, ctx, "out", dtype, count);
    ts_buffer_upload(&q, host[0]);
    ts_buffer_upload(&k, host[1]);
    ts_buffer_upload(&v, host[2]);
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1, d.heads_q = heads, d.seq_q = seq, d.head_dim = dim;
    d.dtype = dtype;
    /* bn 32: 8 sampled keys per block, which the matrix-unit estimate takes */
    d.block_q = 32, d.block_k = 32;
    double *reference = malloc(count * sizeof(double));
    ref_attention_problem problem;
    memset(&problem, 0, sizeof problem);
    problem.batch = 1, problem.heads_q = heads, problem.heads_kv = heads;
    problem.seq_q = seq, problem.seq_k = seq, problem.head_dim = dim;
    problem.q_strides = clpsa_strides_bhnd(heads, seq, dim);
    problem.k_strides = problem.v_strides = problem.q_strides;
    problem.scale = 1.0 / 8.0;
    assert_int_equal(ref_attention_dense(&problem, host[0], host[1], host[2], reference), 0);
    float *got = malloc(count * sizeof(float));
    for (int method = 0; method < 2; ++method) {
        d.method = method ? CLPSA_METHOD_PSA : CLPSA_METHOD_DENSE;
        clpsa_plan *plan = NULL;
        ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
        if (method) {
            clpsa_block_grid grid;
            ts_check(ctx, clpsa_plan_block_grid(plan, &grid));
            int8_t *ones = malloc(grid.count);
            memset(ones, 1, grid.count);
            ts_check(ctx, clpsa_plan_set_levels(plan, ones));
            free(ones);
        }
        ts_buffer_poison(&out);
        ts_check(ctx, clpsa_plan_run(plan, NULL, q.mem, k.mem, v.mem, out.mem, 0, NULL, NULL));
        ts_buffer_download(&out, got);
        ts_buffer_check_canary(&out);
        const ts_tolerance tol = dtype == CLPSA_DTYPE_FP32 ? (ts_tolerance){1e-5, 1e-4, 1e-5}
                                                           : (ts_tolerance){1.6e-2, 1.6e-2, 8e-3};
        print_message("%s %s: %s\n", label, method ? "psa" : "dense",
                      clpsa_plan_parameter_source(plan));
        ts_assert_close(label, got, reference, dims, tol);
        clpsa_plan_destroy(plan);
    }
    free(got);
    free(reference);
    for (int t = 0; t < 3; ++t)
        free(host[t]);
    ts_buffer_release(&q);
    ts_buffer_release(&k);
    ts_buffer_release(&v);
    ts_buffer_release(&out);
}

/* check_plans_in_storage in fp32, or in bf16 where the context's parameters name a kernel
 * variant that refuses fp32 storage (a row of the matrix-unit variants), so the row's own
 * variants are the ones checked. */
static void check_plans_match_reference(clpsa_context *ctx, const char *label) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1, d.heads_q = 2, d.seq_q = 77, d.head_dim = 64;
    d.block_q = 32, d.block_k = 32;
    clpsa_dtype dtype = CLPSA_DTYPE_FP32;
    for (int method = 0; method < 2; ++method) {
        d.method = method ? CLPSA_METHOD_PSA : CLPSA_METHOD_DENSE;
        clpsa_plan *plan = NULL;
        const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
        clpsa_plan_destroy(plan);
        if (status == CLPSA_ERROR_INVALID_VALUE &&
            strstr(clpsa_context_last_error(ctx), "take fp16 or bf16"))
            dtype = CLPSA_DTYPE_BF16;
        else
            ts_check(ctx, status);
    }
    check_plans_in_storage(ctx, label, dtype);
}

static void test_builtin_rows_match_reference(void **state) {
    (void)state;
    ts_case_begin("builtin_rows");
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    const size_t rows = clpsa_builtin_params_count();
    print_message("built-in table: %zu rows\n", rows);
    /* Without a tuned cache or an override, each value a row matching this device (its key
     * starts with the row's match) sets comes from the table; the rest are generic defaults. */
    char text[8192];
    describe(ctx, text, sizeof text);
    print_message("%s", text);
    int from_table = 0;
    for (size_t r = 0; r < rows; ++r) {
        char match[512], params[512];
        assert_int_equal(clpsa_builtin_params_row(r, match, sizeof match, params, sizeof params),
                         CLPSA_OK);
        const char *key = clpsa_context_device_key(ctx);
        const size_t length = strlen(match);
        if (strncmp(key, match, length) != 0 || (key[length] != '/' && key[length] != '\0'))
            continue;
        for (char *item = strtok(params, ","); item; item = strtok(NULL, ",")) {
            char expected[128];
            snprintf(expected, sizeof expected, "%s (built-in table", item);
            if (!strstr(text, expected))
                fail_msg("row %s sets %s, but the context reports:\n%s", match, item, text);
            from_table++;
        }
    }
    int lines = 0, generic = 0;
    for (const char *at = text; (at = strchr(at, '\n')) != NULL; ++at)
        lines++;
    for (const char *at = text; (at = strstr(at, "(generic default")) != NULL; ++at)
        generic++;
    assert_int_equal(generic, lines - from_table);
    for (size_t r = 0; r < rows; ++r) {
        char match[512], params[512];
        assert_int_equal(clpsa_builtin_params_row(r, match, sizeof match, params, sizeof params),
                         CLPSA_OK);
        /* Every row's values are in the space. Rows of this device's vendor run and agree
         * with the reference; another vendor's row that names its vendor's kernel variant is
         * refused as an override, saying why, and never runs another kernel silently. */
        ts_check(ctx, clpsa_context_set_params(ctx, params));
        const char *key = clpsa_context_device_key(ctx);
        const size_t vendor_length = strcspn(match, "/");
        const bool same_vendor =
            strncmp(key, match, vendor_length) == 0 && key[vendor_length] == '/';
        if (same_vendor || !strstr(params, "VARIANT=")) {
            check_plans_match_reference(ctx, match);
            continue;
        }
        clpsa_plan_desc d;
        clpsa_plan_desc_init(&d);
        d.batch = 1, d.heads_q = 2, d.seq_q = 64, d.head_dim = 32;
        clpsa_plan *plan = NULL;
        for (int method = 0; method < 2; ++method) {
            d.method = method ? CLPSA_METHOD_PSA : CLPSA_METHOD_DENSE;
            const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
            if (status == CLPSA_OK) {
                clpsa_plan_destroy(plan);
                continue; /* the row names no variant of this family */
            }
            assert_int_equal(status, CLPSA_ERROR_INVALID_VALUE);
            assert_non_null(strstr(clpsa_context_last_error(ctx), "cannot run this plan"));
        }
    }
    char match[8], params[8];
    assert_int_equal(clpsa_builtin_params_row(rows, match, sizeof match, params, sizeof params),
                     CLPSA_ERROR_INVALID_VALUE);
    /* Extremes of the space as overrides also agree. */
    ts_check(ctx, clpsa_context_set_params(ctx, "dense.BLOCK_M=128,dense.TILE_N=8,"
                                                "attend.ATT_M=16,attend.TILE_N=64,"
                                                "estimate.EST_WG=128,assign.ASSIGN_WG=256"));
    check_plans_match_reference(ctx, "extremes");
    clpsa_context_destroy(ctx);
}

static void find_params_file(char *path, size_t size) {
    DIR *dir = opendir(cache_dir);
    assert_non_null(dir);
    int found = 0;
    for (struct dirent *e = readdir(dir); e; e = readdir(dir))
        if (strncmp(e->d_name, "params-", 7) == 0 && !strstr(e->d_name, ".tmp")) {
            snprintf(path, size, "%s/%s", cache_dir, e->d_name);
            found++;
        }
    closedir(dir);
    assert_int_equal(found, 1);
}

/* A short real tuning run writes the cache; the next context's plans use it; an override
 * still wins over it. */
static void test_tuning_writes_cache_next_plan_uses(void **state) {
    (void)state;
    ts_case_begin("tuning_cache");
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    clpsa_tune_desc desc;
    clpsa_tune_desc_init(&desc);
    desc.heads = 1, desc.seq = 256, desc.head_dim = 32;
    desc.budget_seconds = 6.0;
    desc.repetitions = 1;
    clpsa_tune_result result;
    ts_check(ctx, clpsa_tune(ctx, &desc, &result));
    assert_int_equal(result.families, 6); /* dense, attend, estimate, assign, budget, decode */
    for (int f = 0; f < result.families; ++f) {
        print_message("tuned %s: default %.3f ms, best %.3f ms (%s), %d tried, %d rejected\n",
                      result.family[f].family, result.family[f].default_ms,
                      result.family[f].best_ms, result.family[f].best, result.family[f].tried,
                      result.family[f].rejected);
        assert_true(result.family[f].best_ms <= result.family[f].default_ms);
        assert_true(result.family[f].tried >= 1);
        assert_int_equal(result.family[f].rejected, 0);
        assert_true(strlen(result.family[f].best) > 0);
        /* A winner names only its own family's parameters (its variant's, and which variant). */
        char best[sizeof result.family[f].best];
        snprintf(best, sizeof best, "%s", result.family[f].best);
        const size_t family_length = strlen(result.family[f].family);
        for (char *item = strtok(best, ","); item; item = strtok(NULL, ","))
            if (strncmp(item, result.family[f].family, family_length) != 0 ||
                item[family_length] != '.')
                fail_msg("tuned %s names another family's parameter: %s", result.family[f].family,
                         result.family[f].best);
    }
    assert_true(strlen(result.cache_path) > 0);
    assert_int_equal(access(result.cache_path, R_OK), 0);
    clpsa_context_destroy(ctx);

    ctx = make_context(&log);
    char text[8192];
    describe(ctx, text, sizeof text);
    assert_non_null(strstr(text, "dense.BLOCK_M="));
    /* Except those of variants this device cannot run: no plan here ever uses them. And where
     * the device has the matrix-unit variants, the fp32 problem tuned here excludes them: their
     * NV_ tunables and each family's VARIANT keep the table's values (16-bit plans still get
     * the matrix units). */
    int variants[8];
    const int count = ts_variants_available(ctx, "dense", variants, 8);
    bool matrix_units = false;
    for (int i = 0; i < count; ++i)
        matrix_units = matrix_units || variants[i] == 2 || variants[i] == 5;
    char line[512];
    for (const char *at = text; next_line(&at, line, sizeof line);) {
        const bool excluded = matrix_units && (strstr(line, ".NV_") || strstr(line, ".VARIANT="));
        if (line[0] && !strstr(line, "(tuned cache)") &&
            !strstr(line, "cannot run on this device") && !excluded)
            fail_msg("after tuning every parameter should come from the tuned cache:\n%s", text);
    }
    check_plans_match_reference(ctx, "tuned");
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.batch = 1, d.heads_q = 1, d.seq_q = 100, d.head_dim = 32;
    d.method = CLPSA_METHOD_DENSE;
    clpsa_plan *plan = NULL;
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    assert_non_null(strstr(clpsa_plan_parameter_source(plan), "tuned cache"));
    clpsa_plan_destroy(plan);
    ts_check(ctx, clpsa_context_set_params(ctx, "dense.TILE_N=8"));
    ts_check(ctx, clpsa_plan_create(ctx, &d, &plan));
    assert_non_null(strstr(clpsa_plan_parameter_source(plan), "dense.TILE_N=8 (user override)"));
    assert_non_null(strstr(clpsa_plan_parameter_source(plan), "dense.BLOCK_M="));
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    assert_int_equal(log.warnings, 0);
}

typedef enum damage {
    TRUNCATE,
    FLIP,
    OTHER_VERSION,
    BAD_MAGIC,
    OTHER_DRIVER,
    LONG_LINE,
    FIFO,
} damage;

/* The file's checksum: FNV-1a of every byte before the checksum line. */
static uint64_t fnv1a(const char *text, size_t size) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; ++i)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ull;
    return h;
}

static void damage_params(const char *path, damage kind) {
    FILE *file = fopen(path, "r+b");
    assert_non_null(file);
    char text[8192];
    const size_t size = fread(text, 1, sizeof text - 1, file);
    text[size] = '\0';
    fclose(file);
    if (kind == FIFO) {
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        return;
    }
    file = fopen(path, "wb");
    switch (kind) {
    case FIFO:
        break;
    case LONG_LINE: {
        /* Issue 14, defect 7: a line whose first 255 characters are a valid setting and whose
         * whole is not (BLOCK_M=7 is not allowed), with a correct checksum. Cut at 255 it
         * loaded as dense.BLOCK_M=16. */
        char *end = strstr(text, "driver=");
        assert_non_null(end);
        end = strchr(end, '\n') + 1;
        char doctored[8192];
        int length =
            snprintf(doctored, sizeof doctored, "%.*sdense.BLOCK_M=16", (int)(end - text), text);
        while (length < (int)(end - text) + 300)
            doctored[length++] = ',';
        length +=
            snprintf(doctored + length, sizeof doctored - (size_t)length, "dense.BLOCK_M=7\n");
        length +=
            snprintf(doctored + length, sizeof doctored - (size_t)length, "checksum=%016llx\n",
                     (unsigned long long)fnv1a(doctored, (size_t)length));
        fwrite(doctored, 1, (size_t)length, file);
        break;
    }
    case TRUNCATE:
        fwrite(text, 1, size / 2, file);
        break;
    case FLIP: { /* a tuned value changed without updating the checksum */
        char *value = strstr(text, "BLOCK_M=");
        assert_non_null(value);
        value[8] = value[8] == '1' ? '3' : '1';
        fwrite(text, 1, size, file);
        break;
    }
    case OTHER_VERSION:
        text[13] = '9'; /* "clpsa-params 9" */
        fwrite(text, 1, size, file);
        break;
    case BAD_MAGIC:
        fputs("not a parameter file\n", file);
        break;
    case OTHER_DRIVER: {
        char *driver = strstr(text, "driver=");
        assert_non_null(driver);
        driver[7] = 'X';
        fwrite(text, 1, size, file);
        break;
    }
    }
    fclose(file);
}

/* A tuning run of the dense family alone, one head of seq x head_dim, one timed run each. */
static clpsa_tune_desc short_dense_tuning(int seq, int head_dim, double budget_seconds) {
    clpsa_tune_desc desc;
    clpsa_tune_desc_init(&desc);
    desc.heads = 1, desc.seq = seq, desc.head_dim = head_dim;
    desc.kernels = "dense";
    desc.budget_seconds = budget_seconds;
    desc.repetitions = 1;
    return desc;
}

static void test_damaged_tuned_cache_is_ignored(void **state) {
    (void)state;
    ts_case_begin("damaged_cache");
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    clpsa_tune_desc desc = short_dense_tuning(128, 32, 2.0);
    clpsa_tune_result result;
    ts_check(ctx, clpsa_tune(ctx, &desc, &result));
    clpsa_context_destroy(ctx);
    char path[512];
    find_params_file(path, sizeof path);
    FILE *file = fopen(path, "rb");
    char good[8192];
    const size_t good_size = fread(good, 1, sizeof good, file);
    fclose(file);
    const struct {
        damage kind;
        const char *why;
    } cases[] = {{TRUNCATE, "truncated"},
                 {FLIP, "checksum"},
                 {OTHER_VERSION, "format version"},
                 {BAD_MAGIC, "magic"},
                 {OTHER_DRIVER, "checksum"},
                 {LONG_LINE, "line 4 has 315 characters, more than the 255 allowed"},
                 {FIFO, "not a regular file (a FIFO)"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        unlink(path); /* the FIFO case leaves a FIFO, which fopen would wait on */
        file = fopen(path, "wb");
        fwrite(good, 1, good_size, file);
        fclose(file);
        damage_params(path, cases[i].kind);
        log.warnings = 0;
        alarm(60); /* opening a FIFO used to wait for a writer forever */
        ctx = make_context(&log);
        alarm(0);
        char text[8192];
        describe(ctx, text, sizeof text);
        assert_null(strstr(text, "tuned cache"));
        assert_int_equal(log.warnings, 1);
        if (!strstr(log.last_warning, "ignoring") || !strstr(log.last_warning, cases[i].why))
            fail_msg("case %zu: warning \"%s\" should say it ignores the file (%s)", i,
                     log.last_warning, cases[i].why);
        check_plans_match_reference(ctx, "after a damaged cache");
        clpsa_context_destroy(ctx);
    }
}

/* A candidate whose VARIANT cannot run the problem is no candidate: at D = 48 portable-simt
 * (head dimensions a multiple of 32) is refused as an override for every one of its settings,
 * and the search must count none of them as tried or rejected, nor pick one. The cache then
 * holds the tunables of the variants that ran, but neither the excluded variant's nor the
 * family's VARIANT (a plan at D = 64 may be best served by the excluded one). */
static void test_tune_skips_variants_the_problem_excludes(void **state) {
    (void)state;
    ts_case_begin("tune_skips");
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    clpsa_tune_desc desc = short_dense_tuning(96, 48, 4.0);
    clpsa_tune_result result;
    ts_check(ctx, clpsa_tune(ctx, &desc, &result));
    assert_int_equal(result.families, 1);
    const clpsa_tune_family_result *r = &result.family[0];
    print_message("tuned dense at D=48: %d tried, %d rejected, best %s\n", r->tried, r->rejected,
                  r->best);
    assert_true(r->tried >= 1);
    assert_int_equal(r->rejected, 0);
    assert_null(strstr(r->best, "VARIANT=4"));
    clpsa_context_destroy(ctx);

    ctx = make_context(&log);
    char text[8192];
    describe(ctx, text, sizeof text);
    char line[512];
    for (const char *at = text; next_line(&at, line, sizeof line);) {
        const bool tuned = strstr(line, "(tuned cache)") != NULL;
        if (strncmp(line, "dense.SIMT_", 11) == 0 || strncmp(line, "dense.VARIANT=", 14) == 0) {
            if (tuned)
                fail_msg("D=48 excluded portable-simt, yet the cache sets %s", line);
        } else if (strncmp(line, "dense.", 6) == 0 && !tuned &&
                   !strstr(line, "cannot run on this device")) {
            fail_msg("a variant that ran left %s untuned", line);
        }
    }
    clpsa_context_destroy(ctx);
}

static void test_tune_rejects_bad_requests(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log);
    clpsa_tune_desc desc;
    clpsa_tune_desc_init(&desc);
    desc.kernels = "softmax";
    clpsa_tune_result result;
    assert_int_equal(clpsa_tune(ctx, &desc, &result), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "softmax"));
    desc.kernels = NULL;
    desc.budget_seconds = -1;
    assert_int_equal(clpsa_tune(ctx, &desc, &result), CLPSA_ERROR_INVALID_VALUE);
    assert_int_equal(clpsa_tune(ctx, &desc, NULL), CLPSA_ERROR_NULL_ARGUMENT);
    clpsa_context_destroy(ctx);
}

int main(void) {
    ts_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_normalisation),
        cmocka_unit_test_setup_teardown(test_overrides_are_checked, make_cache_dir,
                                        remove_cache_dir),
        cmocka_unit_test_setup_teardown(test_builtin_rows_match_reference, make_cache_dir,
                                        remove_cache_dir),
        cmocka_unit_test_setup_teardown(test_tuning_writes_cache_next_plan_uses, make_cache_dir,
                                        remove_cache_dir),
        cmocka_unit_test_setup_teardown(test_damaged_tuned_cache_is_ignored, make_cache_dir,
                                        remove_cache_dir),
        cmocka_unit_test_setup_teardown(test_tune_skips_variants_the_problem_excludes,
                                        make_cache_dir, remove_cache_dir),
        cmocka_unit_test_setup_teardown(test_tune_rejects_bad_requests, make_cache_dir,
                                        remove_cache_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
