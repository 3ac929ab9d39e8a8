/* SPDX-License-Identifier: Apache-2.0 */
/* The `clpsa` command as a user runs it: exit codes, what it prints, the output file it writes
 * (checked against a naive double-precision attention computed here) and an error message
 * naming the problem for every bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_npy.h>

#include "support/test_support.h"

#include <png.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLPSA_TOOL_PATH
#error "CLPSA_TOOL_PATH must name the built clpsa binary"
#endif

static char dir[64];

static int group_setup(void **state) {
    (void)state;
    return ts_temp_dir_create(dir, sizeof dir, "clpsa_test_cli") ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    return ts_temp_dir_remove(dir) ? 0 : -1;
}

/* A path in the test directory; valid for the next 31 calls. */
static const char *path_of(const char *name) {
    static char paths[32][512];
    static int next;
    char *p = paths[next++ % 32];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* ---- Running the tool ---- */

typedef struct tool_result {
    int status; /* exit code; -1 if it did not exit normally */
    char out[16384];
    char err[16384];
} tool_result;

static tool_result result; /* large: kept off the stack */

static void slurp(const char *path, char *text, size_t size) {
    text[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    const size_t n = fread(text, 1, size - 1, f);
    text[n] = '\0';
    fclose(f);
}

/* Runs `clpsa ARGS` with stdout and stderr captured; ARGS is a printf format. */
static const tool_result *run_tool(const char *fmt, ...) {
    char args[2048];
    va_list list;
    va_start(list, fmt);
    vsnprintf(args, sizeof args, fmt, list);
    va_end(list);
    char command[4096], out[512], err[512];
    snprintf(out, sizeof out, "%s/stdout.txt", dir);
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    snprintf(command, sizeof command, "'%s' %s >'%s' 2>'%s'", CLPSA_TOOL_PATH, args, out, err);
    const int status = system(command);
    result.status = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    slurp(out, result.out, sizeof result.out);
    slurp(err, result.err, sizeof result.err);
    return &result;
}

static void expect_exit(const tool_result *r, int code, const char *what) {
    if (r->status != code)
        fail_msg("%s: exit %d, expected %d\n--- stdout:\n%s\n--- stderr:\n%s", what, r->status,
                 code, r->out, r->err);
}

static void expect_contains(const char *text, const char *needle, const char *stream) {
    if (!strstr(text, needle))
        fail_msg("%s does not mention \"%s\":\n%s", stream, needle, text);
}

/* Fails unless the command exits with `code` and stderr mentions every needle (NULL ends). */
static void expect_error(const tool_result *r, int code, const char *what, ...) {
    expect_exit(r, code, what);
    va_list list;
    va_start(list, what);
    for (const char *needle; (needle = va_arg(list, const char *));)
        expect_contains(r->err, needle, "stderr");
    va_end(list);
}

/* ---- Test data ---- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

static float uniform_signed(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

typedef struct dims {
    int b, h, n, d;
} dims;

static size_t dims_count(dims s) {
    return (size_t)s.b * s.h * s.n * s.d;
}

/* Element index of (b, h, n, e) in a contiguous tensor of the given layout. */
static size_t index_of(dims s, int bnhd, int b, int h, int n, int e) {
    return bnhd ? (((size_t)b * s.n + n) * s.h + h) * s.d + e
                : (((size_t)b * s.h + h) * s.n + n) * s.d + e;
}

static void file_shape(dims s, int bnhd, int64_t shape[4]) {
    shape[0] = s.b;
    shape[1] = bnhd ? s.n : s.h;
    shape[2] = bnhd ? s.h : s.n;
    shape[3] = s.d;
}

/* Writes random float32 data of shape `s` in `layout` to `name`; returns the data. */
static float *write_random(const char *name, dims s, int bnhd) {
    const size_t count = dims_count(s);
    float *data = malloc(count * sizeof(float));
    assert_non_null(data);
    for (size_t i = 0; i < count; ++i)
        data[i] = uniform_signed();
    int64_t shape[4];
    file_shape(s, bnhd, shape);
    char message[512];
    if (clpsa_npy_write(path_of(name), CLPSA_NPY_FLOAT32, 4, shape, data, message,
                        sizeof message) != CLPSA_OK)
        fail_msg("%s", message);
    return data;
}

/* Naive attention in double: out[b,h,t] = softmax(scale * q·k) v over the visible keys
 * (bottom-right aligned causal mask), query head h reading kv head h / (Hq / Hkv). */
static double *reference(const float *q, const float *k, const float *v, dims qs, dims ks, int bnhd,
                         int causal, double scale) {
    double *out = calloc(dims_count(qs), sizeof(double));
    double *w = malloc((size_t)ks.n * sizeof(double));
    assert_non_null(out);
    assert_non_null(w);
    const int group = qs.h / ks.h;
    for (int b = 0; b < qs.b; ++b)
        for (int h = 0; h < qs.h; ++h)
            for (int t = 0; t < qs.n; ++t) {
                const int hk = h / group;
                int visible = causal ? t + (ks.n - qs.n) + 1 : ks.n;
                visible = visible < 0 ? 0 : visible > ks.n ? ks.n : visible;
                double max = -INFINITY, sum = 0.0;
                for (int c = 0; c < visible; ++c) {
                    double dot = 0.0;
                    for (int e = 0; e < qs.d; ++e)
                        dot += (double)q[index_of(qs, bnhd, b, h, t, e)] *
                               (double)k[index_of(ks, bnhd, b, hk, c, e)];
                    w[c] = dot * scale;
                    max = w[c] > max ? w[c] : max;
                }
                for (int c = 0; c < visible; ++c)
                    sum += (w[c] = exp(w[c] - max));
                for (int e = 0; e < qs.d; ++e) {
                    double acc = 0.0;
                    for (int c = 0; c < visible; ++c)
                        acc += w[c] * (double)v[index_of(ks, bnhd, b, hk, c, e)];
                    out[index_of(qs, bnhd, b, h, t, e)] = visible ? acc / sum : 0.0;
                }
            }
    free(w);
    return out;
}

/* Runs the tool on files it reads, compares its --out with the reference. */
static void run_files_case(const char *label, dims qs, dims ks, int bnhd, int causal,
                           double scale) {
    float *q = write_random("q.npy", qs, bnhd);
    float *k = write_random("k.npy", ks, bnhd);
    float *v = write_random("v.npy", ks, bnhd);
    const char *out_path = path_of("out.npy");
    remove(out_path);
    char scale_arg[64] = "";
    if (scale > 0.0)
        snprintf(scale_arg, sizeof scale_arg, "--scale %.17g", scale);
    const tool_result *r =
        run_tool("run --dense --q '%s' --k '%s' --v '%s' --out '%s' --reps 1 %s %s %s",
                 path_of("q.npy"), path_of("k.npy"), path_of("v.npy"), out_path,
                 bnhd ? "--bnhd" : "", causal ? "--causal" : "", scale_arg);
    expect_exit(r, 0, label);
    expect_contains(r->out, "time", "stdout");

    clpsa_npy_array out;
    char message[512];
    if (clpsa_npy_read(out_path, &out, message, sizeof message) != CLPSA_OK)
        fail_msg("%s: %s", label, message);
    assert_int_equal(out.type, CLPSA_NPY_FLOAT32);
    assert_int_equal(out.ndim, 4);
    int64_t shape[4];
    file_shape(qs, bnhd, shape);
    for (int i = 0; i < 4; ++i)
        assert_int_equal(out.shape[i], shape[i]);

    const double used_scale = scale > 0.0 ? (double)(float)scale : 1.0 / sqrt((double)qs.d);
    double *ref = reference(q, k, v, qs, ks, bnhd, causal, used_scale);
    const float *got = out.data;
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < out.count; ++i) {
        if (!isfinite(got[i]))
            fail_msg("%s: output element %zu is %g", label, i, (double)got[i]);
        err2 += (got[i] - ref[i]) * (got[i] - ref[i]);
        ref2 += ref[i] * ref[i];
    }
    const double rel_l2 = sqrt(err2 / ref2);
    if (!(rel_l2 <= 1e-5))
        fail_msg("%s: relative L2 error %g exceeds 1e-5", label, rel_l2);
    clpsa_npy_free(&out);
    free(ref);
    free(q);
    free(k);
    free(v);
}

/* ---- Tests ---- */

static void test_version_and_help(void **state) {
    (void)state;
    const tool_result *r = run_tool("--version");
    expect_exit(r, 0, "--version");
    expect_contains(r->out, clpsa_version(), "stdout");

    r = run_tool("--help");
    expect_exit(r, 0, "--help");
    expect_contains(r->out, "usage: clpsa", "stdout");
    expect_contains(r->out, "devices", "stdout");

    r = run_tool("%s", "");
    expect_error(r, 2, "no command", "usage: clpsa", NULL);
    r = run_tool("frobnicate");
    expect_error(r, 2, "unknown command", "unknown command 'frobnicate'", "usage: clpsa", NULL);

    r = run_tool("run --help");
    expect_exit(r, 0, "run --help");
    expect_contains(r->out, "--bnhd", "stdout");
    r = run_tool("devices --help");
    expect_exit(r, 0, "devices --help");
}

static void test_devices(void **state) {
    (void)state;
    /* The tool must name the device a context picks by the same rules. */
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log_level = CLPSA_LOG_ERROR;
    clpsa_context *ctx = NULL;
    assert_int_equal(clpsa_context_create(&desc, &ctx), CLPSA_OK);
    char name[1024];
    snprintf(name, sizeof name, "%s", clpsa_context_device_name(ctx));
    clpsa_context_destroy(ctx);

    const tool_result *r = run_tool("devices");
    expect_exit(r, 0, "devices");
    expect_contains(r->out, "device 0:", "stdout");
    expect_contains(r->out, "compute units", "stdout");
    expect_contains(r->out, "global memory", "stdout");
    expect_contains(r->out, "OpenCL C", "stdout");
    expect_contains(r->out, "clpsa would use", "stdout");
    expect_contains(r->out, name, "stdout");

    r = run_tool("devices --device 0");
    expect_exit(r, 0, "devices --device 0");
    expect_contains(r->out, "clpsa would use", "stdout");

    r = run_tool("devices --device 9999");
    expect_error(r, 1, "devices --device 9999", "CLPSA_ERROR_DEVICE_NOT_FOUND", "9999", NULL);
    r = run_tool("devices --device no-such-device-name");
    expect_error(r, 1, "devices --device name", "no-such-device-name", NULL);
    r = run_tool("devices --bogus");
    expect_error(r, 2, "devices --bogus", "unknown option '--bogus'", NULL);
}

/* ---- JSON: a strict syntax check (RFC 8259), so "--json parses" means what it says ---- */

static const char *json_skip(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        ++p;
    return p;
}

static const char *json_parse_string(const char *p) {
    if (*p++ != '"')
        return NULL;
    for (; *p != '"'; ++p) {
        if ((unsigned char)*p < 0x20)
            return NULL; /* also the end of the text */
        if (*p != '\\')
            continue;
        ++p;
        if (*p == 'u') {
            for (int i = 1; i <= 4; ++i)
                if (!isxdigit((unsigned char)p[i]))
                    return NULL;
            p += 4;
        } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
            return NULL;
        }
    }
    return p + 1;
}

static const char *json_parse_digits(const char *p) {
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p))
        ++p;
    return p;
}

static const char *json_parse_number(const char *p) {
    if (*p == '-')
        ++p;
    p = *p == '0' ? p + 1 : json_parse_digits(p);
    if (p && *p == '.')
        p = json_parse_digits(p + 1);
    if (p && (*p == 'e' || *p == 'E')) {
        ++p;
        if (*p == '+' || *p == '-')
            ++p;
        p = json_parse_digits(p);
    }
    return p;
}

/* The end of the JSON value at p, or NULL if it is not one. */
static const char *json_parse(const char *p, int depth) {
    p = json_skip(p);
    if (depth > 32)
        return NULL;
    if (*p == '{' || *p == '[') {
        const bool object = *p == '{';
        const char close = object ? '}' : ']';
        p = json_skip(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (object) {
                p = json_parse_string(json_skip(p));
                if (!p)
                    return NULL;
                p = json_skip(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = json_parse(p, depth + 1);
            if (!p)
                return NULL;
            p = json_skip(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
        }
    }
    if (*p == '"')
        return json_parse_string(p);
    if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    return json_parse_number(p);
}

static void expect_one_json_object(const char *text) {
    const char *end = json_parse(text, 0);
    if (text[0] != '{' || !end || *json_skip(end) != '\0')
        fail_msg("stdout is not exactly one JSON object:\n%s", text);
}

/* The value after "key": in the tool's JSON, or NULL. */
static const char *json_value(const char *json, const char *key) {
    char pattern[64];
    const int length = snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    if (length < 0 || (size_t)length >= sizeof pattern)
        return NULL;
    const char *at = json ? strstr(json, pattern) : NULL;
    return at ? at + strlen(pattern) : NULL;
}

static const char *json_require(const char *json, const char *key) {
    const char *value = json_value(json, key);
    if (!value)
        fail_msg("JSON has no \"%s\":\n%s", key, json ? json : "(null)");
    return value;
}

/* The first number after "key": (searching from `json`, so a section pointer narrows it). */
static double json_number(const char *json, const char *key) {
    const char *value = json_require(json, key);
    char *end = NULL;
    const double x = strtod(value, &end);
    if (end == value)
        fail_msg("JSON \"%s\" is not a number:\n%.200s", key, value);
    return x;
}

static void expect_json_text(const char *json, const char *key, const char *text) {
    const char *value = json_require(json, key);
    if (strncmp(value, text, strlen(text)) != 0)
        fail_msg("JSON \"%s\" is %.40s, expected %s", key, value, text);
}

/* ---- .npy helpers ---- */

static void write_npy(const char *name, clpsa_npy_type type, int ndim, const int64_t *shape,
                      const void *data) {
    char message[512];
    if (clpsa_npy_write(path_of(name), type, ndim, shape, data, message, sizeof message) !=
        CLPSA_OK)
        fail_msg("%s", message);
}

/* Reads `path` and checks its type and shape. */
static void read_npy(const char *path, clpsa_npy_type type, int ndim, const int64_t *shape,
                     clpsa_npy_array *out) {
    char message[512];
    if (clpsa_npy_read(path, out, message, sizeof message) != CLPSA_OK)
        fail_msg("%s", message);
    if (out->type != type || out->ndim != ndim)
        fail_msg("%s: type %d with %d dimensions, expected type %d with %d", path, (int)out->type,
                 out->ndim, (int)type, ndim);
    for (int i = 0; i < ndim; ++i)
        if (out->shape[i] != shape[i])
            fail_msg("%s: dimension %d is %lld, expected %lld", path, i, (long long)out->shape[i],
                     (long long)shape[i]);
}

static double rel_l2(const float *a, const float *ref, size_t count) {
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < count; ++i) {
        if (!isfinite(a[i]))
            return INFINITY;
        err2 += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        ref2 += (double)ref[i] * ref[i];
    }
    return sqrt(err2 / ref2);
}

static bool is_level(int f) {
    return f == 0 || f == 1 || f == 2 || f == 4 || f == 8;
}

/* ---- PSA runs ---- */

/* The small problem of most PSA tests: the workload on a 2 x 8 x 8 grid (128 tokens, 2 heads,
 * D = 64) with 16 x 16 blocks, so B, Hq, nq, nk = 1, 2, 8, 8. */
#define SMALL "--grid 2,8,8 --bm 16 --bn 16 --reps 1"
static const int64_t small_map[4] = {1, 2, 8, 8};

static void test_run_default(void **state) {
    (void)state;
    /* The main job as CI runs it (one timed run to keep the suite quick). */
    const tool_result *r = run_tool("run --reps 1");
    expect_exit(r, 0, "run (built-in workload)");
    expect_contains(r->out, "8 x 16 x 16 grid = 2048 tokens", "stdout");
    expect_contains(r->out, "params    PSA: ", "stdout");
    expect_contains(r->out, "check ok", "stdout");
    expect_contains(r->out, "tau 0.4/0.5/0.6/0.8", "stdout");
    expect_contains(r->out, "raster order", "stdout");
    expect_contains(r->out, "hilbert order", "stdout");
    expect_contains(r->out, "density   0.", "stdout");
    expect_contains(r->out, "blocks at level 0: ", "stdout");
    expect_contains(r->out, "estimate", "stdout");
    expect_contains(r->out, "rel L2 vs dense: PSA ", "stdout");
    expect_contains(r->out, "binary at density ", "stdout");
    expect_contains(r->out, "hilbert vs raster", "stdout");

    /* A causal dense run in fp16: one order only (a mask lives in raster order). */
    r = run_tool("run " SMALL " --causal --dtype fp16 --dense");
    expect_exit(r, 0, "run --causal --dtype fp16 --dense");
    expect_contains(r->out, "fp16", "stdout");
    expect_contains(r->out, ", causal", "stdout");
    expect_contains(r->out, "TFLOP/s", "stdout");
    expect_contains(r->out, "check ok", "stdout");
    expect_contains(r->out, "raster order", "stdout");
    assert_null(strstr(r->out, "hilbert order"));
}

/* "PSA at 15 % of dense compute" is one flag; the report says budget mode and its target, and
 * the density spent stays within it. */
static void test_run_budget(void **state) {
    (void)state;
    const tool_result *r = run_tool("run " SMALL " --density 0.15");
    expect_exit(r, 0, "run --density 0.15");
    expect_contains(r->out, "budget mode, target density 0.15", "stdout");
    expect_contains(r->out, "binary at density ", "stdout");
    r = run_tool("run " SMALL " --mode budget --order raster --json");
    expect_exit(r, 0, "run --mode budget --json");
    expect_one_json_object(r->out);
    expect_json_text(r->out, "mode", "\"budget\"");
    if (fabs(json_number(r->out, "target_density") - 0.15) > 1e-6)
        fail_msg("target_density %g, expected the default 0.15",
                 json_number(r->out, "target_density"));
    const char *order = json_require(r->out, "orders");
    const double density = json_number(order, "density");
    if (!(density > 0.0 && density <= 0.15 * (1 + 1e-6)))
        fail_msg("budget mode at 0.15 spent %g", density);
}

static void expect_order(const char *order, const char *name) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    expect_json_text(order, "order", quoted);
    const double density = json_number(order, "density");
    if (!(density > 0.0 && density <= 1.0))
        fail_msg("%s: density %g", name, density);
    assert_true(fabs(json_number(order, "sparsity") - (1.0 - density)) < 1e-5);
    const char *histogram = json_require(order, "histogram");
    double cells = 0.0;
    for (int l = 0; l < 5; ++l) {
        char key[4];
        snprintf(key, sizeof key, "%d", (int[]){0, 1, 2, 4, 8}[l]);
        cells += json_number(histogram, key);
    }
    assert_true(cells == 1 * 2 * 8 * 8);
    const char *psa = json_require(order, "psa");
    static const char *const stages[] = {"time_ms", "pool_ms", "estimate_ms", "assign_ms",
                                         "attend_ms"};
    for (int s = 0; s < 5; ++s)
        assert_true(json_number(psa, stages[s]) >= 0.0);
    assert_true(json_number(psa, "time_ms") > 0.0);
    const double psa_err = json_number(psa, "rel_l2");
    if (!(psa_err >= 0.0 && psa_err < 0.5))
        fail_msg("%s: PSA rel_l2 %g", name, psa_err);
    assert_true(json_number(order, "speedup_vs_dense") > 0.0);
    const char *binary = json_require(order, "binary");
    /* Binary keeps whole blocks, ceil(density * nk) a row: at least PSA's budget. */
    assert_true(json_number(binary, "density") >= density - 1e-9);
    assert_true(json_number(binary, "time_ms") > 0.0);
    const double binary_err = json_number(binary, "rel_l2");
    if (!(binary_err >= 0.0 && binary_err < 1.0))
        fail_msg("%s: binary rel_l2 %g", name, binary_err);
    (void)json_number(order, "binary_error_ratio");
}

/* One run with --json and every output file, then the files checked one by one. */
static void test_run_json_and_files(void **state) {
    (void)state;
    const char *png = path_of("levels.png");
    const tool_result *r =
        run_tool("run " SMALL " --json --levels-out '%s' --scores-out '%s' --perm-out '%s' "
                 "--png '%s' --out '%s'",
                 path_of("levels.npy"), path_of("scores.npy"), path_of("perm.npy"), png,
                 path_of("psa_out.npy"));
    expect_exit(r, 0, "run --json with every output");
    const char *out = r->out;
    expect_one_json_object(out);
    /* Every top-level field, space-separated. */
    const char *top = "device device_reason parameter_source dense_parameter_source method input "
                      "grid text_tokens layout shape dtype causal scale reps preset block blocks "
                      "thresholds mode align_tile min_full similarity_cap estimator sample seed "
                      "levels_source dense orders files";
    for (const char *key = top; *key;) {
        const size_t n = strcspn(key, " ");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)n, key);
        (void)json_require(out, name);
        key += n + (key[n] == ' ');
    }
    expect_json_text(out, "method", "\"psa\"");
    expect_json_text(out, "input", "\"workload\"");
    expect_json_text(out, "grid", "[2, 8, 8]");
    expect_json_text(out, "shape", "[1, 2, 2, 128, 128, 64]");
    expect_json_text(out, "block", "[16, 16]");
    expect_json_text(out, "blocks", "[8, 8]");
    expect_json_text(out, "thresholds", "[0.4, 0.5, 0.6, 0.8]");
    expect_json_text(out, "mode", "\"threshold\"");
    expect_json_text(out, "causal", "false");
    expect_json_text(out, "levels_source", "\"estimated\"");
    const char *dense = json_require(out, "dense");
    assert_true(json_number(dense, "time_ms") > 0.0);
    assert_true(json_number(dense, "tflops") > 0.0);
    assert_true(json_number(dense, "max_abs_err") <= 2e-5);
    expect_json_text(dense, "check", "\"ok\"");
    const char *orders = json_require(out, "orders");
    assert_true(orders[0] == '[');
    const char *raster = strstr(orders, "\"order\": \"raster\"");
    const char *hilbert = strstr(orders, "\"order\": \"hilbert\"");
    assert_non_null(raster);
    assert_non_null(hilbert);
    assert_true(raster < hilbert);
    expect_order(raster, "raster");
    expect_order(hilbert, "hilbert");
    const char *files = json_require(out, "files");
    expect_json_text(files, "png", "\"");

    /* The level map (of the last order, hilbert): int8 [B, Hq, nq, nk] of levels. */
    clpsa_npy_array levels, scores, perm;
    read_npy(path_of("levels.npy"), CLPSA_NPY_INT8, 4, small_map, &levels);
    const int8_t *m = levels.data;
    for (size_t i = 0; i < levels.count; ++i)
        if (!is_level(m[i]))
            fail_msg("levels.npy[%zu] = %d", i, m[i]);
    /* Scores: float32 of the same shape, each row a distribution. */
    read_npy(path_of("scores.npy"), CLPSA_NPY_FLOAT32, 4, small_map, &scores);
    const float *s = scores.data;
    for (size_t row = 0; row < scores.count / 8; ++row) {
        double sum = 0.0;
        for (int j = 0; j < 8; ++j) {
            assert_true(s[row * 8 + j] >= 0.0f);
            sum += s[row * 8 + j];
        }
        if (fabs(sum - 1.0) > 1e-5)
            fail_msg("scores.npy row %zu sums to %.9g", row, sum);
    }
    /* The token order: a permutation of the 128 tokens. */
    const int64_t tokens = 128;
    read_npy(path_of("perm.npy"), CLPSA_NPY_INT32, 1, &tokens, &perm);
    bool seen[128] = {false};
    for (int i = 0; i < 128; ++i) {
        const int32_t t = ((const int32_t *)perm.data)[i];
        if (t < 0 || t >= 128 || seen[t])
            fail_msg("perm.npy[%d] = %d is out of range or repeated", i, (int)t);
        seen[t] = true;
    }
    clpsa_npy_free(&perm);

    /* The picture (layout of tools/level_png.h): cell = clamp(256 / 8, 2, 16) = 16, so two
     * 128 x 128 panels 8 apart under 18 of title, a margin of 8, and the 88 x 104 legend 16
     * to the right: width 8 + 128 + 8 + 128 + 16 + 88 + 8, height 8 + 18 + 128 + 8. */
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, png))
        fail_msg("%s: not a readable PNG: %s", png, image.message);
    assert_int_equal(image.width, 384);
    assert_int_equal(image.height, 162);
    image.format = PNG_FORMAT_RGB;
    uint8_t *rgb = malloc(PNG_IMAGE_SIZE(image));
    assert_non_null(rgb);
    if (!png_image_finish_read(&image, NULL, rgb, 0, NULL))
        fail_msg("%s: decoding failed: %s", png, image.message);
    /* Every cell's centre has its level's colour (the README's legend). */
    static const uint8_t colors[9][3] = {
        [0] = {222, 222, 222}, [1] = {68, 1, 84},    [2] = {49, 104, 142},
        [4] = {53, 183, 121},  [8] = {253, 231, 37},
    };
    for (int h = 0; h < 2; ++h)
        for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 8; ++j) {
                const int x = 8 + h * (128 + 8) + j * 16 + 8, y = 8 + 18 + i * 16 + 8;
                const uint8_t *px = rgb + ((size_t)y * image.width + x) * 3;
                const int f = m[(h * 8 + i) * 8 + j];
                if (memcmp(px, colors[f], 3) != 0)
                    fail_msg("head %d block (%d, %d) level %d: pixel (%d, %d) is %d,%d,%d", h, i, j,
                             f, x, y, px[0], px[1], px[2]);
            }
    free(rgb);

    /* Those scores supplied back give the same level map. */
    r = run_tool("run " SMALL " --order hilbert --scores-in '%s' --levels-out '%s'",
                 path_of("scores.npy"), path_of("levels2.npy"));
    expect_exit(r, 0, "run --scores-in");
    expect_contains(r->out, "assigned from scores in", "stdout");
    clpsa_npy_array again;
    read_npy(path_of("levels2.npy"), CLPSA_NPY_INT8, 4, small_map, &again);
    assert_memory_equal(again.data, levels.data, levels.count);
    clpsa_npy_free(&again);
    clpsa_npy_free(&levels);
    clpsa_npy_free(&scores);
}

/* Q, K, V files for the level-map tests: B=1, Hq=2, Hkv=1 (GQA), N=64, D=32; with 16 x 16
 * blocks the maps are [1, 2, 4, 4]. */
static const int64_t file_map[4] = {1, 2, 4, 4};

static const char *file_inputs(void) {
    static char args[2048];
    if (!args[0]) {
        free(write_random("m_q.npy", (dims){1, 2, 64, 32}, 0));
        free(write_random("m_k.npy", (dims){1, 1, 64, 32}, 0));
        free(write_random("m_v.npy", (dims){1, 1, 64, 32}, 0));
        snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --bm 16 --bn 16 --reps 1",
                 path_of("m_q.npy"), path_of("m_k.npy"), path_of("m_v.npy"));
    }
    return args;
}

static void test_run_levels_in(void **state) {
    (void)state;
    /* An all-level-1 map is dense attention (docs/algorithm.md §4). */
    int8_t ones[32];
    memset(ones, 1, sizeof ones);
    write_npy("ones.npy", CLPSA_NPY_INT8, 4, file_map, ones);
    const tool_result *r = run_tool("run %s --levels-in '%s' --out '%s' --json", file_inputs(),
                                    path_of("ones.npy"), path_of("ones_out.npy"));
    expect_exit(r, 0, "run --levels-in (all 1)");
    expect_one_json_object(r->out);
    expect_json_text(r->out, "levels_source", "\"read from ");
    assert_true(json_number(r->out, "density") == 1.0);
    r = run_tool("run %s --dense --out '%s'", file_inputs(), path_of("dense_out.npy"));
    expect_exit(r, 0, "run --dense");
    const int64_t out_shape[4] = {1, 2, 64, 32};
    clpsa_npy_array psa, dense;
    read_npy(path_of("ones_out.npy"), CLPSA_NPY_FLOAT32, 4, out_shape, &psa);
    read_npy(path_of("dense_out.npy"), CLPSA_NPY_FLOAT32, 4, out_shape, &dense);
    const double err = rel_l2(psa.data, dense.data, psa.count);
    if (!(err <= 1e-6))
        fail_msg("all-1 level map vs dense: relative L2 %g exceeds 1e-6", err);
    clpsa_npy_free(&psa);

    /* --out holds the method asked for: its error against dense is the one reported. */
    static const struct {
        const char *flag, *section, *method;
    } methods[] = {{"", "psa", "\"psa\""}, {"--binary", "binary", "\"binary\""}};
    for (int m = 0; m < 2; ++m) {
        r = run_tool("run %s %s --out '%s' --json", file_inputs(), methods[m].flag,
                     path_of("method_out.npy"));
        expect_exit(r, 0, methods[m].section);
        expect_one_json_object(r->out);
        expect_json_text(r->out, "method", methods[m].method);
        const char *section = json_require(json_require(r->out, "orders"), methods[m].section);
        const double reported = json_number(section, "rel_l2");
        clpsa_npy_array got;
        read_npy(path_of("method_out.npy"), CLPSA_NPY_FLOAT32, 4, out_shape, &got);
        const double actual = rel_l2(got.data, dense.data, got.count);
        if (!(fabs(actual - reported) <= 1e-5 * reported + 1e-7))
            fail_msg("%s: --out has rel L2 %g against dense, the report says %g",
                     methods[m].section, actual, reported);
        clpsa_npy_free(&got);
    }
    clpsa_npy_free(&dense);
}

static void test_run_psa_errors(void **state) {
    (void)state;
    const tool_result *r = run_tool("run --mode fast");
    expect_error(r, 2, "--mode fast", "--mode 'fast'", "threshold, quantile, energy or budget",
                 NULL);
    /* Budget mode: a density in (0, 1], for that mode only, measured (not supplied) scores. */
    r = run_tool("run --density 1.5");
    expect_error(r, 2, "--density 1.5", "--density '1.5'", "(0, 1]", NULL);
    r = run_tool("run --mode threshold --density 0.2");
    expect_error(r, 2, "--density with --mode threshold", "--density with --mode threshold",
                 "budget mode", NULL);
    r = run_tool("run --density 0.2 --scores-in b.npy");
    expect_error(r, 2, "--scores-in with budget mode", "--scores-in with budget mode", NULL);
    r = run_tool("run " SMALL " --density 0.001");
    expect_error(r, 2, "--density 0.001", "--density: density = 0.001", "[1/(8 nk), 1]", NULL);
    r = run_tool("run --tau 0.4,0.5,0.6");
    expect_error(r, 2, "--tau with 3 values", "--tau '0.4,0.5,0.6'", "4 comma-separated", NULL);
    r = run_tool("run --tau 0.5,0.4,0.6,0.8");
    expect_error(r, 2, "--tau decreasing", "--tau", "non-decreasing", NULL);
    r = run_tool("run --tau 0.4,0.5,0.6,1.5");
    expect_error(r, 2, "--tau above 1", "--tau", "not in [0, 1]", NULL);
    r = run_tool("run --bn 12");
    expect_error(r, 2, "--bn 12", "--bn '12'", "multiple of 8", NULL);
    r = run_tool("run --sim-cap 0.7,0.6");
    expect_error(r, 2, "--sim-cap with 2 values", "--sim-cap", NULL);
    r = run_tool("run --dense --binary");
    expect_error(r, 2, "--dense --binary", "--dense and --binary", NULL);
    r = run_tool("run --order zigzag");
    expect_error(r, 2, "--order zigzag", "--order 'zigzag'", NULL);
    r = run_tool("run --levels-in a.npy --scores-in b.npy");
    expect_error(r, 2, "--levels-in with --scores-in", "--scores-in and --levels-in", NULL);
    /* Rules only the library knows come back under the flag's name. */
    r = run_tool("run " SMALL " --preset nope");
    expect_error(r, 2, "--preset nope", "--preset", "\"nope\" is not known", "wan21-14b", NULL);
    r = run_tool("run " SMALL " --sample-q 32");
    expect_error(r, 2, "--sample-q 32 with bm 16", "--sample-q", "sample_q = 32", NULL);

    const char *inputs = file_inputs();
    r = run_tool("run %s --order hilbert", inputs);
    expect_error(r, 2, "--order without --grid", "--order hilbert needs a video grid", NULL);
    r = run_tool("run %s --perm-out '%s'", inputs, path_of("p.npy"));
    expect_error(r, 2, "--perm-out without --grid", "--perm-out needs a video grid", NULL);
    r = run_tool("run %s --grid 2,4,4", inputs);
    expect_error(r, 1, "--grid not matching", "--grid 2,4,4", "make 32", "64 tokens", NULL);

    /* Level maps: wrong shape (the dimension named), a value 3, a float map. */
    int8_t levels[40];
    memset(levels, 2, sizeof levels);
    const int64_t wide[4] = {1, 2, 4, 5};
    write_npy("wide.npy", CLPSA_NPY_INT8, 4, wide, levels);
    r = run_tool("run %s --levels-in '%s'", inputs, path_of("wide.npy"));
    expect_error(r, 1, "levels of the wrong shape", path_of("wide.npy"),
                 "dimension 3 (nk) is 5, expected 4", "Nk = 64 / bn = 16", NULL);
    levels[1 * 16 + 2 * 4 + 3] = 3;
    write_npy("three.npy", CLPSA_NPY_INT8, 4, file_map, levels);
    r = run_tool("run %s --levels-in '%s'", inputs, path_of("three.npy"));
    expect_error(r, 1, "level 3", path_of("three.npy"), "value 3 at [0, 1, 2, 3]",
                 "0, 1, 2, 4 or 8", NULL);
    float scores[40];
    for (int i = 0; i < 40; ++i)
        scores[i] = 0.25f;
    write_npy("float_levels.npy", CLPSA_NPY_FLOAT32, 4, file_map, scores);
    r = run_tool("run %s --levels-in '%s'", inputs, path_of("float_levels.npy"));
    expect_error(r, 1, "float level map", path_of("float_levels.npy"), "holds float32", "int8",
                 NULL);

    /* Scores: wrong heads, then a row with nothing in it. */
    const int64_t heads3[4] = {1, 3, 4, 4};
    float many[48];
    for (int i = 0; i < 48; ++i)
        many[i] = 0.25f;
    write_npy("heads3.npy", CLPSA_NPY_FLOAT32, 4, heads3, many);
    r = run_tool("run %s --scores-in '%s'", inputs, path_of("heads3.npy"));
    expect_error(r, 1, "scores of the wrong shape", path_of("heads3.npy"),
                 "dimension 1 (Hq) is 3, expected 2", NULL);
    for (int j = 0; j < 4; ++j)
        scores[5 * 4 + j] = 0.0f;
    write_npy("zero_row.npy", CLPSA_NPY_FLOAT32, 4, file_map, scores);
    r = run_tool("run %s --scores-in '%s'", inputs, path_of("zero_row.npy"));
    expect_error(r, 1, "a scores row of zeros", path_of("zero_row.npy"), "row 5 sums to 0", NULL);
}

static void test_run_files_bhnd(void **state) {
    (void)state;
    const dims qs = {2, 4, 37, 32}, ks = {2, 2, 53, 32};
    run_files_case("bhnd, GQA, Nk > Nq", qs, ks, 0, 0, 0.0);
    const dims qc = {1, 2, 45, 32}, kc = {1, 1, 29, 32};
    run_files_case("bhnd, causal, Nk < Nq, scale", qc, kc, 0, 1, 0.3);
}

static void test_run_files_bnhd(void **state) {
    (void)state;
    const dims qs = {2, 4, 37, 32}, ks = {2, 2, 53, 32};
    run_files_case("bnhd, GQA, Nk > Nq", qs, ks, 1, 0, 0.0);
    const dims qc = {1, 2, 45, 32}, kc = {1, 2, 64, 32};
    run_files_case("bnhd, causal, Nk > Nq", qc, kc, 1, 1, 0.0);
}

static void test_run_float16_inputs(void **state) {
    (void)state;
    /* float16 files are stored as fp16 unless --dtype says otherwise; the values are exact in
     * float, so the reference sees what the device sees. */
    const dims s = {1, 2, 24, 32};
    const size_t count = dims_count(s);
    float *host[3];
    const char *names[3] = {"h_q.npy", "h_k.npy", "h_v.npy"};
    int64_t shape[4];
    file_shape(s, 0, shape);
    uint16_t *half = malloc(count * sizeof(uint16_t));
    assert_non_null(half);
    for (int t = 0; t < 3; ++t) {
        host[t] = malloc(count * sizeof(float));
        assert_non_null(host[t]);
        for (size_t i = 0; i < count; ++i)
            host[t][i] = uniform_signed();
        assert_int_equal(clpsa_convert_from_float(CLPSA_DTYPE_FP16, host[t], half, count),
                         CLPSA_OK);
        assert_int_equal(clpsa_convert_to_float(CLPSA_DTYPE_FP16, half, host[t], count), CLPSA_OK);
        assert_int_equal(
            clpsa_npy_write(path_of(names[t]), CLPSA_NPY_FLOAT16, 4, shape, half, NULL, 0),
            CLPSA_OK);
    }
    free(half);
    const tool_result *r =
        run_tool("run --q '%s' --k '%s' --v '%s' --out '%s' --reps 1 --json", path_of(names[0]),
                 path_of(names[1]), path_of(names[2]), path_of("h_out.npy"));
    expect_exit(r, 0, "float16 inputs");
    assert_memory_equal(json_value(r->out, "dtype"), "\"fp16\"", 6);
    assert_memory_equal(json_value(r->out, "max_abs_err"), "null", 4);

    clpsa_npy_array out;
    assert_int_equal(clpsa_npy_read(path_of("h_out.npy"), &out, NULL, 0), CLPSA_OK);
    assert_int_equal(out.type, CLPSA_NPY_FLOAT32);
    double *ref = reference(host[0], host[1], host[2], s, s, 0, 0, 1.0 / sqrt(32.0));
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < count; ++i) {
        const double got = ((const float *)out.data)[i];
        err2 += (got - ref[i]) * (got - ref[i]);
        ref2 += ref[i] * ref[i];
    }
    /* Storage is fp16 but the arithmetic fp32 (probabilities may be rounded for P·V). */
    if (!(sqrt(err2 / ref2) <= 2e-3))
        fail_msg("float16 inputs: relative L2 error %g", sqrt(err2 / ref2));
    clpsa_npy_free(&out);
    free(ref);
    for (int t = 0; t < 3; ++t)
        free(host[t]);
}

static void test_run_usage_errors(void **state) {
    (void)state;
    const tool_result *r = run_tool("run --dtype fp64");
    expect_error(r, 2, "--dtype fp64", "--dtype 'fp64'", "fp32, fp16, bf16", NULL);
    r = run_tool("run --dtype");
    expect_error(r, 2, "--dtype without value", "--dtype needs a value", NULL);
    r = run_tool("run --scale abc");
    expect_error(r, 2, "--scale abc", "--scale 'abc'", NULL);
    r = run_tool("run --reps 0");
    expect_error(r, 2, "--reps 0", "--reps '0'", NULL);
    r = run_tool("run --frobnicate");
    expect_error(r, 2, "run --frobnicate", "unknown option '--frobnicate'", NULL);
    r = run_tool("run --q '%s'", path_of("q.npy"));
    expect_error(r, 2, "--q alone", "--q, --k and --v go together", "--k", "--v", NULL);
    r = run_tool("run --q --k k.npy --v v.npy");
    expect_error(r, 2, "--q without value", "--q needs a value", NULL);
}

static void test_run_input_errors(void **state) {
    (void)state;
    const dims qs = {1, 4, 16, 32}, ks = {1, 2, 16, 32};
    free(write_random("e_q.npy", qs, 0));
    free(write_random("e_k.npy", ks, 0));
    free(write_random("e_v.npy", ks, 0));
    char q[512], k[512], v[512];
    snprintf(q, sizeof q, "%s", path_of("e_q.npy"));
    snprintf(k, sizeof k, "%s", path_of("e_k.npy"));
    snprintf(v, sizeof v, "%s", path_of("e_v.npy"));

    const char *missing = path_of("missing.npy");
    const tool_result *r = run_tool("run --q '%s' --k '%s' --v '%s'", q, missing, v);
    expect_error(r, 1, "missing file", missing, "No such file", NULL);

    const char *garbage = path_of("garbage.npy");
    FILE *f = fopen(garbage, "wb");
    assert_non_null(f);
    fputs("this is not a numpy file\n", f);
    fclose(f);
    r = run_tool("run --q '%s' --k '%s' --v '%s'", garbage, k, v);
    expect_error(r, 1, "malformed npy", garbage, "bad magic", NULL);

    /* q and k disagree on the head dimension, then on the batch. */
    const char *k_dim = path_of("e_k_dim.npy");
    free(write_random("e_k_dim.npy", (dims){1, 2, 16, 64}, 0));
    const char *v_dim = path_of("e_v_dim.npy");
    free(write_random("e_v_dim.npy", (dims){1, 2, 16, 64}, 0));
    r = run_tool("run --q '%s' --k '%s' --v '%s'", q, k_dim, v_dim);
    expect_error(r, 1, "head dim mismatch", k_dim, "head dim 64", "head dim 32", NULL);
    const char *k_batch = path_of("e_k_batch.npy");
    free(write_random("e_k_batch.npy", (dims){2, 2, 16, 32}, 0));
    const char *v_batch = path_of("e_v_batch.npy");
    free(write_random("e_v_batch.npy", (dims){2, 2, 16, 32}, 0));
    r = run_tool("run --q '%s' --k '%s' --v '%s'", q, k_batch, v_batch);
    expect_error(r, 1, "batch mismatch", k_batch, "batch 2", NULL);

    /* K and V must match each other. */
    r = run_tool("run --q '%s' --k '%s' --v '%s'", q, k, v_dim);
    expect_error(r, 1, "k/v mismatch", v_dim, "K and V must have the same shape", NULL);

    /* 4 query heads over 3 kv heads. */
    const char *k3 = path_of("e_k3.npy");
    free(write_random("e_k3.npy", (dims){1, 3, 16, 32}, 0));
    const char *v3 = path_of("e_v3.npy");
    free(write_random("e_v3.npy", (dims){1, 3, 16, 32}, 0));
    r = run_tool("run --q '%s' --k '%s' --v '%s'", q, k3, v3);
    expect_error(r, 1, "Hq % Hkv", q, "not a multiple of the 3 heads", NULL);

    /* Wrong rank and wrong element type. */
    const char *flat = path_of("e_flat.npy");
    const int64_t shape3[3] = {4, 16, 32};
    float *zeros = calloc(4 * 16 * 32, sizeof(float));
    assert_non_null(zeros);
    assert_int_equal(clpsa_npy_write(flat, CLPSA_NPY_FLOAT32, 3, shape3, zeros, NULL, 0), CLPSA_OK);
    r = run_tool("run --q '%s' --k '%s' --v '%s'", flat, k, v);
    expect_error(r, 1, "3-d input", flat, "3 dimensions", "4-d", NULL);
    const char *ints = path_of("e_int.npy");
    const int64_t shape4[4] = {1, 4, 16, 32};
    assert_int_equal(clpsa_npy_write(ints, CLPSA_NPY_INT32, 4, shape4, zeros, NULL, 0), CLPSA_OK);
    free(zeros);
    r = run_tool("run --q '%s' --k '%s' --v '%s'", ints, k, v);
    expect_error(r, 1, "int32 input", ints, "float32 or float16", NULL);

    /* A head dim the library refuses: its status and detail reach stderr. */
    const char *q_odd = path_of("e_q_odd.npy");
    free(write_random("e_q_odd.npy", (dims){1, 2, 8, 12}, 0));
    const char *k_odd = path_of("e_k_odd.npy");
    free(write_random("e_k_odd.npy", (dims){1, 2, 8, 12}, 0));
    r = run_tool("run --q '%s' --k '%s' --v '%s'", q_odd, k_odd, k_odd);
    expect_error(r, 1, "head dim 12", "clpsa_plan_create", "CLPSA_ERROR_", "head_dim", NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help), cmocka_unit_test(test_run_usage_errors),
        cmocka_unit_test(test_run_input_errors), cmocka_unit_test(test_run_psa_errors),
        cmocka_unit_test(test_devices),          cmocka_unit_test(test_run_default),
        cmocka_unit_test(test_run_budget),       cmocka_unit_test(test_run_json_and_files),
        cmocka_unit_test(test_run_levels_in),    cmocka_unit_test(test_run_files_bhnd),
        cmocka_unit_test(test_run_files_bnhd),   cmocka_unit_test(test_run_float16_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
