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

#include <dirent.h>
#include <errno.h>
#include <math.h>
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
    snprintf(dir, sizeof dir, "/tmp/clpsa_test_cli.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    DIR *d = opendir(dir);
    if (d) {
        char path[512];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (remove(path) != 0)
                fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
        }
        closedir(d);
    }
    return rmdir(dir) == 0 ? 0 : -1;
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
    const tool_result *r = run_tool("run --q '%s' --k '%s' --v '%s' --out '%s' --reps 1 %s %s %s",
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

/* The value after "key": in the tool's JSON, or NULL. */
static const char *json_value(const char *json, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *at = strstr(json, pattern);
    return at ? at + strlen(pattern) : NULL;
}

static double json_number(const char *json, const char *key) {
    const char *value = json_value(json, key);
    if (!value)
        fail_msg("JSON has no \"%s\":\n%s", key, json);
    char *end = NULL;
    const double x = strtod(value, &end);
    if (end == value)
        fail_msg("JSON \"%s\" is not a number:\n%s", key, json);
    return x;
}

static void test_run_builtin_json(void **state) {
    (void)state;
    const tool_result *r = run_tool("run --json --reps 2");
    expect_exit(r, 0, "run --json");
    /* stdout holds exactly one object; everything else goes to stderr. */
    const char *out = r->out;
    assert_true(out[0] == '{');
    const size_t length = strlen(out);
    assert_true(length >= 3 && !strcmp(out + length - 2, "}\n"));
    assert_null(strchr(strchr(out, '}') + 1, '{'));

    assert_non_null(json_value(out, "device"));
    assert_true(*json_value(out, "device") == '"');
    const char *shape = json_value(out, "shape");
    assert_non_null(shape);
    assert_memory_equal(shape, "[1, 4, 4, 1024, 1024, 64]", 25);
    assert_memory_equal(json_value(out, "dtype"), "\"fp32\"", 6);
    assert_memory_equal(json_value(out, "causal"), "false", 5);
    assert_true(json_number(out, "time_ms") > 0.0);
    assert_true(json_number(out, "tflops") > 0.0);
    const double err = json_number(out, "max_abs_err");
    if (!(err >= 0.0 && err <= 1e-4))
        fail_msg("max_abs_err %g", err);
    assert_memory_equal(json_value(out, "check"), "\"ok\"", 4);

    /* The human form carries the same facts. */
    r = run_tool("run --reps 1 --causal --dtype fp16 --dense");
    expect_exit(r, 0, "run --causal --dtype fp16");
    expect_contains(r->out, "fp16", "stdout");
    expect_contains(r->out, "causal   yes", "stdout");
    expect_contains(r->out, "TFLOP/s", "stdout");
    expect_contains(r->out, "check    ok", "stdout");
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
        cmocka_unit_test(test_run_input_errors), cmocka_unit_test(test_devices),
        cmocka_unit_test(test_run_builtin_json), cmocka_unit_test(test_run_files_bhnd),
        cmocka_unit_test(test_run_files_bnhd),   cmocka_unit_test(test_run_float16_inputs),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
