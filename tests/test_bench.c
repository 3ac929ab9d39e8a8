/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench` as a user runs it: the built binary on PoCL, its JSON read back with a strict
 * parser and checked record by record (every field of every method, finite values), its CSV,
 * the exactness anchors (PSA with every threshold at 1 equals dense; the CLBlast baseline agrees
 * with the dense kernel), inputs from .npy files, and the exit status and message of bad
 * command lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_npy.h>

#include "support/test_support.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#ifndef CLPSA_TOOL_PATH
#error "CLPSA_TOOL_PATH must name the built clpsa binary"
#endif

/* CLBlast against the dense kernel, fp32 on the same inputs: only summation order differs. */
#define CLBLAST_TOLERANCE 1e-5
/* PSA with every block at level 1 is dense attention; only rounding may differ. */
#define EXACT_TOLERANCE 1e-6

static char dir[256];

static int group_setup(void **state) {
    (void)state;
    return ts_temp_dir_create(dir, sizeof dir, "clpsa_test_bench") ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    return ts_temp_dir_remove(dir) ? 0 : -1;
}

/* A path in the test directory; valid for the next 15 calls. */
static const char *path_of(const char *name) {
    static char paths[16][512];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

/* ---- Running the tool ---- */

/* The whole file, NUL-terminated (malloc'ed); NULL if it cannot be read. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        const long size = ftell(f);
        if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1))) {
            const size_t n = fread(text, 1, (size_t)size, f);
            text[n] = '\0';
        }
    }
    fclose(f);
    return text;
}

typedef struct tool_result {
    int status; /* exit code; -1 if it did not exit normally */
    char *out, *err;
} tool_result;

static void result_free(tool_result *r) {
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

/* Runs `clpsa bench ARGS` with stdout and stderr captured; ARGS is a printf format. */
static tool_result run_bench(const char *fmt, ...) {
    char args[2048];
    va_list list;
    va_start(list, fmt);
    vsnprintf(args, sizeof args, fmt, list);
    va_end(list);
    char command[4096];
    const char *out = path_of("stdout.txt"), *err = path_of("stderr.txt");
    snprintf(command, sizeof command, "'%s' bench %s >'%s' 2>'%s' </dev/null", CLPSA_TOOL_PATH,
             args, out, err);
    const int status = system(command);
    tool_result r;
    r.status = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_text(out);
    r.err = read_text(err);
    if (!r.out || !r.err)
        fail_msg("cannot read the captured output of: %s", command);
    return r;
}

static void expect_exit(const tool_result *r, int code, const char *what) {
    if (r->status != code)
        fail_msg("%s: exit %d, expected %d\n--- stdout:\n%.4000s\n--- stderr:\n%.4000s", what,
                 r->status, code, r->out, r->err);
}

/* ---- A strict JSON reader (RFC 8259), into a tree ---- */

typedef enum jtype { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype;

typedef struct jvalue {
    jtype type;
    double number;
    bool boolean;
    char *string;         /* J_STRING */
    size_t count;         /* J_ARRAY, J_OBJECT: items */
    struct jvalue *items; /* J_ARRAY, J_OBJECT */
    char **keys;          /* J_OBJECT */
} jvalue;

static void json_free(jvalue *v) {
    for (size_t i = 0; i < v->count; ++i) {
        json_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    memset(v, 0, sizeof *v);
}

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        ++p;
    return p;
}

/* A string literal at p into *out (escapes other than \" and \\ kept as '?'). */
static const char *parse_string(const char *p, char **out) {
    if (*p++ != '"')
        return NULL;
    const size_t length = strlen(p);
    char *text = malloc(length + 1);
    size_t n = 0;
    assert_non_null(text);
    for (; *p != '"'; ++p) {
        if ((unsigned char)*p < 0x20) { /* also the end of the text */
            free(text);
            return NULL;
        }
        if (*p != '\\') {
            text[n++] = *p;
            continue;
        }
        ++p;
        if (*p == 'u') {
            for (int i = 1; i <= 4; ++i)
                if (!isxdigit((unsigned char)p[i])) {
                    free(text);
                    return NULL;
                }
            p += 4;
            text[n++] = '?';
        } else if (*p && strchr("\"\\/bfnrt", *p)) {
            text[n++] = *p == '"' || *p == '\\' || *p == '/' ? *p : '?';
        } else {
            free(text);
            return NULL;
        }
    }
    text[n] = '\0';
    *out = text;
    return p + 1;
}

static const char *parse_digits(const char *p) {
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p))
        ++p;
    return p;
}

static const char *parse_number(const char *p, double *out) {
    const char *start = p;
    if (*p == '-')
        ++p;
    p = *p == '0' ? p + 1 : parse_digits(p);
    if (p && *p == '.')
        p = parse_digits(p + 1);
    if (p && (*p == 'e' || *p == 'E')) {
        ++p;
        if (*p == '+' || *p == '-')
            ++p;
        p = parse_digits(p);
    }
    if (p)
        *out = strtod(start, NULL);
    return p;
}

static const char *parse_value(const char *p, jvalue *v, int depth);

static const char *parse_container(const char *p, jvalue *v, int depth) {
    const bool object = *p == '{';
    const char close = object ? '}' : ']';
    v->type = object ? J_OBJECT : J_ARRAY;
    p = skip_space(p + 1);
    if (*p == close)
        return p + 1;
    size_t capacity = 0;
    for (;;) {
        if (v->count == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            v->items = realloc(v->items, capacity * sizeof *v->items);
            assert_non_null(v->items);
            if (object) {
                v->keys = realloc(v->keys, capacity * sizeof *v->keys);
                assert_non_null(v->keys);
            }
        }
        jvalue *item = &v->items[v->count];
        memset(item, 0, sizeof *item);
        if (object) {
            v->keys[v->count] = NULL;
            p = parse_string(skip_space(p), &v->keys[v->count]);
            if (!p)
                return NULL;
            p = skip_space(p);
            if (*p++ != ':') {
                ++v->count; /* the key is freed with the rest */
                return NULL;
            }
        }
        ++v->count;
        p = parse_value(p, item, depth + 1);
        if (!p)
            return NULL;
        p = skip_space(p);
        if (*p == close)
            return p + 1;
        if (*p++ != ',')
            return NULL;
    }
}

static const char *parse_value(const char *p, jvalue *v, int depth) {
    memset(v, 0, sizeof *v);
    p = skip_space(p);
    if (depth > 32)
        return NULL;
    if (*p == '{' || *p == '[')
        return parse_container(p, v, depth);
    if (*p == '"') {
        v->type = J_STRING;
        return parse_string(p, &v->string);
    }
    if (!strncmp(p, "null", 4))
        return v->type = J_NULL, p + 4;
    if (!strncmp(p, "true", 4))
        return v->type = J_BOOL, v->boolean = true, p + 4;
    if (!strncmp(p, "false", 5))
        return v->type = J_BOOL, v->boolean = false, p + 5;
    v->type = J_NUMBER;
    return parse_number(p, &v->number);
}

/* Parses text that must be exactly one JSON object. */
static void json_parse_object(const char *text, jvalue *out) {
    const char *end = parse_value(text, out, 0);
    if (!end || *skip_space(end) != '\0' || out->type != J_OBJECT) {
        json_free(out);
        fail_msg("not exactly one JSON object:\n%.4000s", text);
    }
}

static const jvalue *json_get(const jvalue *object, const char *key) {
    for (size_t i = 0; object->type == J_OBJECT && i < object->count; ++i)
        if (!strcmp(object->keys[i], key))
            return &object->items[i];
    return NULL;
}

static const jvalue *json_require(const jvalue *object, const char *key, jtype type) {
    const jvalue *v = json_get(object, key);
    if (!v)
        fail_msg("JSON object has no \"%s\"", key);
    if (v->type != type)
        fail_msg("JSON \"%s\" has type %d, expected %d", key, (int)v->type, (int)type);
    return v;
}

/* A number that must be finite (NaN and infinity are written as null, so that fails too). */
static double json_finite(const jvalue *object, const char *key) {
    const double x = json_require(object, key, J_NUMBER)->number;
    if (!isfinite(x))
        fail_msg("JSON \"%s\" is %g", key, x);
    return x;
}

static const char *json_text(const jvalue *object, const char *key) {
    return json_require(object, key, J_STRING)->string;
}

/* ---- The report ---- */

static const char *const methods[] = {"psa",    "psa_attend",    "psa_estimate_assign", "dense",
                                      "binary", "dense_clblast", "psa_threshold"};
/* A density sweep's groups hold every method; a --tau run's have no psa_threshold. */
#define METHOD_COUNT 7
#define TAU_METHOD_COUNT 6
#define group_size(sweep) ((sweep) ? METHOD_COUNT : TAU_METHOD_COUNT)

static int method_index(const char *name) {
    for (int m = 0; m < METHOD_COUNT; ++m)
        if (!strcmp(name, methods[m]))
            return m;
    fail_msg("unknown method \"%s\"", name);
    return -1;
}

static bool is_dense(int m) {
    return m == 3 || m == 5;
}

/* Checks one record's schema and values; returns its method index. */
static int check_record(const jvalue *r, bool sweep) {
    json_text(r, "workload");
    const jvalue *shape = json_require(r, "shape", J_ARRAY);
    assert_int_equal(shape->count, 4);
    for (size_t i = 0; i < 4; ++i) {
        assert_int_equal(shape->items[i].type, J_NUMBER);
        assert_true(shape->items[i].number >= 1.0);
    }
    assert_true(json_finite(r, "heads_kv") >= 1.0);
    assert_true(json_finite(r, "seq_k") >= 1.0);
    const jvalue *grid = json_get(r, "grid");
    assert_non_null(grid);
    assert_true(grid->type == J_NULL || (grid->type == J_ARRAY && grid->count == 3));
    json_text(r, "dtype");
    if (sweep) {
        const double target = json_finite(r, "target_density");
        assert_true(target > 0.0 && target <= 1.0);
    } else {
        json_require(r, "target_density", J_NULL);
    }
    const int m = method_index(json_text(r, "method"));
    const double density = json_finite(r, "density");
    assert_true(density > 0.0 && density <= 1.0 + 1e-9);
    if (json_finite(r, "time_ms") <= 0.0 || json_finite(r, "tflops") <= 0.0)
        fail_msg("%s: time and TFLOP/s must be positive", methods[m]);
    const char *stages[4] = {"pool_ms", "estimate_ms", "assign_ms", "attend_ms"};
    if (is_dense(m)) {
        if (m == 3 && fabs(density - 1.0) > 0.0)
            fail_msg("dense density %g", density);
        json_require(r, "rel_l2", J_NULL);
        json_require(r, "tau", J_NULL);
        for (int s = 0; s < 4; ++s)
            json_require(r, stages[s], J_NULL);
    } else {
        assert_true(json_finite(r, "rel_l2") >= 0.0);
        /* A sweep's PSA is budget mode (no thresholds); the threshold rule carries its own. */
        const bool thresholds = m == 6 || (m <= 2 && !sweep);
        if (thresholds) {
            const jvalue *tau = json_require(r, "tau", J_ARRAY);
            assert_int_equal(tau->count, 4);
            assert_string_equal(json_text(r, "rule"), "threshold");
        } else {
            json_require(r, "tau", J_NULL);
            if (m <= 2)
                assert_string_equal(json_text(r, "rule"), "budget");
            else
                json_require(r, "rule", J_NULL);
        }
        for (int s = 0; s < 4; ++s)
            assert_true(json_finite(r, stages[s]) >= 0.0);
    }
    if (m == 5) {
        const double agreement = json_finite(r, "clblast_vs_dense");
        if (!(agreement <= CLBLAST_TOLERANCE) && !strcmp(json_text(r, "dtype"), "fp32"))
            fail_msg("dense_clblast differs from dense by %g (relative L2), more than %g",
                     agreement, CLBLAST_TOLERANCE);
    } else {
        json_require(r, "clblast_vs_dense", J_NULL);
    }
    return m;
}

/* Checks the whole report: header fields, then every record; every (workload, dtype, target)
 * group holds each method exactly once. Returns the number of records. */
static size_t check_report(const jvalue *root, bool sweep) {
    if (!*json_text(root, "device"))
        fail_msg("empty device name");
    const jvalue *params = json_require(root, "parameters", J_OBJECT);
    assert_true(json_finite(params, "reps") >= 1.0);
    json_require(params, "workloads", J_ARRAY);
    json_require(params, "dtypes", J_ARRAY);
    json_text(params, "density_control");
    const jvalue *records = json_require(root, "records", J_ARRAY);
    assert_true(records->count > 0);
    const size_t group = group_size(sweep);
    if (records->count % group != 0)
        fail_msg("%zu records: not whole groups of %zu methods", records->count, group);
    for (size_t g = 0; g < records->count; g += group) {
        int seen[METHOD_COUNT] = {0};
        const jvalue *first = &records->items[g];
        for (size_t i = g; i < g + group; ++i) {
            const jvalue *r = &records->items[i];
            assert_int_equal(r->type, J_OBJECT);
            ++seen[check_record(r, sweep)];
            assert_string_equal(json_text(r, "workload"), json_text(first, "workload"));
            assert_string_equal(json_text(r, "dtype"), json_text(first, "dtype"));
            if (sweep)
                assert_true(json_finite(r, "target_density") ==
                            json_finite(first, "target_density"));
        }
        for (int m = 0; m < (int)group; ++m)
            if (seen[m] != 1)
                fail_msg("records %zu..%zu: method %s appears %d times", g, g + group - 1,
                         methods[m], seen[m]);
    }
    return records->count;
}

static const jvalue *find_record(const jvalue *root, const char *workload, const char *method,
                                 size_t *from) {
    const jvalue *records = json_get(root, "records");
    for (size_t i = *from; i < records->count; ++i) {
        const jvalue *r = &records->items[i];
        if (!strcmp(json_text(r, "workload"), workload) &&
            !strcmp(json_text(r, "method"), method)) {
            *from = i + 1;
            return r;
        }
    }
    return NULL;
}

static void load_report(const char *path, jvalue *root) {
    char *text = read_text(path);
    if (!text)
        fail_msg("%s was not written", path);
    json_parse_object(text, root);
    free(text);
}

/* ---- Tests ---- */

/* The acceptance run: --quick on every workload, each method's every field. */
static void test_quick_json(void **state) {
    (void)state;
    const char *json = path_of("quick.json");
    tool_result r = run_bench("--quick --json '%s'", json);
    expect_exit(&r, 0, "bench --quick");
    /* Without --json - the table goes to stdout. */
    if (!strstr(r.out, "dense_clblast") || !strstr(r.out, "records in"))
        fail_msg("no table on stdout:\n%s", r.out);
    result_free(&r);
    jvalue root;
    load_report(json, &root);
    assert_int_equal(check_report(&root, true), 3 * 2 * METHOD_COUNT);
    /* Budget mode spends at most each target and close to it (whole eighths of a block a
     * row); the threshold search lands near PSA's density (it aims at 0.02; whole blocks of
     * the small quick shape may leave it a little further). */
    const char *workloads[3] = {"random", "video", "video-hilbert"};
    for (int w = 0; w < 3; ++w) {
        size_t at = 0, at_threshold = 0;
        for (const jvalue *x; (x = find_record(&root, workloads[w], "psa", &at));) {
            const double target = json_finite(x, "target_density");
            const double density = json_finite(x, "density");
            if (density > target * (1 + 1e-6) || density < target - 0.02)
                fail_msg("%s: budget-mode density %g for target %g", workloads[w], density, target);
            const jvalue *t = find_record(&root, workloads[w], "psa_threshold", &at_threshold);
            assert_non_null(t);
            assert_true(json_finite(t, "target_density") == target);
            if (fabs(json_finite(t, "density") - density) > 0.05)
                fail_msg("%s: threshold rule at density %g for PSA's %g", workloads[w],
                         json_finite(t, "density"), density);
        }
    }
    assert_true(json_require(json_get(&root, "parameters"), "quick", J_BOOL)->boolean);
    json_free(&root);
}

/* Every threshold at 1 puts every block at level 1: PSA (and binary at its density 1) must
 * equal dense attention; the CLBlast baseline must agree with the dense kernel. */
static void test_exact_anchors(void **state) {
    (void)state;
    const char *json = path_of("exact.json");
    tool_result r =
        run_bench("--quick --workload random,video --tau 1,1,1,1 --reps 1 --json '%s'", json);
    expect_exit(&r, 0, "bench --tau 1,1,1,1");
    result_free(&r);
    jvalue root;
    load_report(json, &root);
    assert_int_equal(check_report(&root, false), 2 * TAU_METHOD_COUNT);
    const char *workloads[2] = {"random", "video"};
    const char *exact[2] = {"psa", "binary"};
    for (int w = 0; w < 2; ++w) {
        for (int m = 0; m < 2; ++m) {
            size_t at = 0;
            const jvalue *x = find_record(&root, workloads[w], exact[m], &at);
            assert_non_null(x);
            const double density = json_finite(x, "density"), error = json_finite(x, "rel_l2");
            if (density != 1.0 || !(error <= EXACT_TOLERANCE))
                fail_msg("%s %s with tau 1,1,1,1: density %g, error %g against dense (limit %g)",
                         workloads[w], exact[m], density, error, EXACT_TOLERANCE);
        }
        size_t at = 0;
        const jvalue *x = find_record(&root, workloads[w], "dense_clblast", &at);
        assert_non_null(x);
        assert_true(json_finite(x, "clblast_vs_dense") <= CLBLAST_TOLERANCE);
    }
    json_free(&root);
}

/* The causal video-text workload with every threshold at 1: every visible block at level 1,
 * so PSA equals causal dense attention (the dense record is causal too: compared like with
 * like); --causal puts the other workloads under the same mask. */
static void test_video_text_causal(void **state) {
    (void)state;
    const char *json = path_of("video_text.json");
    tool_result r = run_bench("--workload video-text,video --causal --shapes 1x2x1280x64 "
                              "--tau 1,1,1,1 --reps 1 --no-clblast --json '%s'",
                              json);
    expect_exit(&r, 0, "bench --workload video-text --tau 1,1,1,1");
    result_free(&r);
    jvalue root;
    load_report(json, &root);
    const jvalue *parameters = json_get(&root, "parameters");
    assert_true(json_require(parameters, "causal", J_BOOL)->boolean);
    assert_true(json_finite(parameters, "text_tokens") == 256.0);
    const char *workloads[2] = {"video-text", "video"};
    for (int w = 0; w < 2; ++w) {
        size_t at = 0;
        const jvalue *x = find_record(&root, workloads[w], "psa", &at);
        assert_non_null(x);
        const double error = json_finite(x, "rel_l2");
        if (!(error <= EXACT_TOLERANCE))
            fail_msg("%s psa with tau 1,1,1,1: error %g against causal dense (limit %g)",
                     workloads[w], error, EXACT_TOLERANCE);
        at = 0;
        assert_non_null(find_record(&root, workloads[w], "dense", &at));
    }
    json_free(&root);
}

static size_t count_char(const char *text, char c) {
    size_t n = 0;
    for (; *text; ++text)
        n += *text == c;
    return n;
}

/* --json - puts exactly the JSON object on stdout (no table); --csv writes a header and one row
 * per record with the same columns. */
static void test_csv_and_json_stdout(void **state) {
    (void)state;
    const char *csv = path_of("one.csv");
    tool_result r = run_bench(
        "--quick --workload video-hilbert --densities 0.3 --reps 1 --json - --csv '%s'", csv);
    expect_exit(&r, 0, "bench --json - --csv F");
    jvalue root;
    json_parse_object(r.out, &root);
    const size_t records = check_report(&root, true);
    assert_int_equal(records, METHOD_COUNT);
    json_free(&root);
    result_free(&r);

    char *text = read_text(csv);
    assert_non_null(text);
    assert_int_equal(count_char(text, '\n'), records + 1);
    const char *header = "workload,batch,heads_q,heads_kv,seq_q,seq_k,head_dim,grid,dtype,"
                         "target_density,method,density,time_ms,tflops,rel_l2,";
    if (strncmp(text, header, strlen(header)) != 0)
        fail_msg("CSV header:\n%.400s", text);
    const size_t columns = count_char(strtok(text, "\n"), ',');
    for (char *row = strtok(NULL, "\n"); row; row = strtok(NULL, "\n")) {
        if (count_char(row, ',') != columns)
            fail_msg("CSV row with %zu commas, header has %zu:\n%s", count_char(row, ','), columns,
                     row);
        if (strncmp(row, "video-hilbert,1,2,2,1024,1024,64,4x16x16,fp32,0.3,", 50) != 0)
            fail_msg("CSV row: %s", row);
    }
    free(text);
}

static void write_tensor(const char *name, ts_rng *rng, const int64_t shape[4]) {
    const size_t count = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
    float *data = malloc(count * sizeof(float));
    assert_non_null(data);
    ts_fill_normal(rng, data, count, 0.0f, 1.0f);
    char message[512];
    const clpsa_status status =
        clpsa_npy_write(path_of(name), CLPSA_NPY_FLOAT32, 4, shape, data, message, sizeof message);
    free(data);
    if (status != CLPSA_OK)
        fail_msg("%s", message);
}

/* Inputs from .npy files with grouped heads (4 query heads over 2 key/value heads), in two
 * storage types: the workload is "npy", the shape the files', and the CLBlast baseline (which
 * maps query heads to key/value heads itself) still agrees with dense. */
static void test_npy_inputs(void **state) {
    (void)state;
    ts_rng rng;
    ts_rng_init(&rng, ts_case_begin("bench npy inputs"));
    const int64_t q_shape[4] = {1, 4, 256, 64}, kv_shape[4] = {1, 2, 256, 64};
    write_tensor("q.npy", &rng, q_shape);
    write_tensor("k.npy", &rng, kv_shape);
    write_tensor("v.npy", &rng, kv_shape);
    const char *json = path_of("npy.json");
    tool_result r = run_bench("--q '%s' --k '%s' --v '%s' --densities 0.5 --dtype fp32,fp16 "
                              "--reps 1 --json '%s'",
                              path_of("q.npy"), path_of("k.npy"), path_of("v.npy"), json);
    expect_exit(&r, 0, "bench --q --k --v");
    result_free(&r);
    jvalue root;
    load_report(json, &root);
    assert_int_equal(check_report(&root, true), 2 * METHOD_COUNT);
    const jvalue *records = json_get(&root, "records");
    for (size_t i = 0; i < records->count; ++i) {
        const jvalue *x = &records->items[i];
        assert_string_equal(json_text(x, "workload"), "npy");
        const jvalue *shape = json_get(x, "shape");
        assert_true(shape->items[1].number == 4.0 && shape->items[2].number == 256.0);
        assert_true(json_finite(x, "heads_kv") == 2.0);
        json_require(x, "grid", J_NULL);
        /* fp16: a dense kernel may round the probabilities to the storage type for P V (as
         * matrix-unit variants do); CLBlast never does, so only a loose bound holds. */
        if (!strcmp(json_text(x, "method"), "dense_clblast") &&
            !strcmp(json_text(x, "dtype"), "fp16"))
            assert_true(json_finite(x, "clblast_vs_dense") <= 1e-2);
    }
    json_free(&root);
}

static void expect_usage_error(const char *args, const char *needle) {
    tool_result r = run_bench("%s", args);
    expect_exit(&r, 2, args);
    if (!strstr(r.err, needle))
        fail_msg("bench %s: stderr does not mention \"%s\":\n%s", args, needle, r.err);
    result_free(&r);
}

static void test_usage(void **state) {
    (void)state;
    tool_result r = run_bench("--help");
    expect_exit(&r, 0, "bench --help");
    assert_non_null(strstr(r.out, "usage: clpsa bench"));
    assert_non_null(strstr(r.out, "--densities"));
    result_free(&r);

    expect_usage_error("--bogus", "unknown option '--bogus'");
    expect_usage_error("--shapes 1x2x1024", "is not BxHxNxD");
    expect_usage_error("--shapes 1x2x1024x60", "head dim 60");
    expect_usage_error("--shapes 1x2x1000x64", "N = 1000 is not T*S*S");
    expect_usage_error("--densities 0.2,0", "'0' is not a density");
    expect_usage_error("--densities 1.5", "'1.5' is not a density");
    expect_usage_error("--dtype fp64", "'fp64' is not fp32");
    expect_usage_error("--workload movies", "'movies' is not random");
    expect_usage_error("--tau 0.5,0.4,0.6,0.8", "non-decreasing");
    expect_usage_error("--tau 1,1,1,1 --densities 0.2", "exclude each other");
    expect_usage_error("--q q.npy", "--q, --k and --v go together");
    expect_usage_error("--q a --k b --v c --workload video", "the files are the workload");
    expect_usage_error("--json - --csv -", "only one can go to stdout");
    expect_usage_error("--reps 0", "--reps '0'");
    expect_usage_error("--bn 20", "--bn '20'");
    expect_usage_error("--json", "--json needs a value");
    expect_usage_error("--causal --workload video,video-hilbert", "--causal with video-hilbert");
    expect_usage_error("--text-tokens 5", "applies to --workload video-text only");
    expect_usage_error("--workload video-text --text-tokens 0", "--text-tokens '0'");
    expect_usage_error("--workload video-text --shapes 1x2x1000x64",
                       "N = 1000 minus 256 text tokens is not a video grid");

    /* A file that is not there is a failed run (exit 1) naming the file. */
    r = run_bench("--q '%s' --k '%s' --v '%s' --reps 1", path_of("none.npy"), path_of("none.npy"),
                  path_of("none.npy"));
    expect_exit(&r, 1, "bench --q missing");
    assert_non_null(strstr(r.err, "none.npy"));
    result_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),         cmocka_unit_test(test_quick_json),
        cmocka_unit_test(test_exact_anchors), cmocka_unit_test(test_csv_and_json_stdout),
        cmocka_unit_test(test_npy_inputs),    cmocka_unit_test(test_video_text_causal),
    };
    ts_apply_test_filter();
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
