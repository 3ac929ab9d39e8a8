/* SPDX-License-Identifier: Apache-2.0 */
/* The files of the `clpsa` command beyond its inputs (issue 14): cache files that are not
 * regular files, library errors that fail no call, and outputs written all or nothing with
 * the permissions the umask gives. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_npy.h>
#include <clpsa/clpsa_tuning.h>

#include "support/test_support.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLPSA_TOOL_PATH
#error "CLPSA_TOOL_PATH must name the built clpsa binary"
#endif

static char dir[64];

static int group_setup(void **state) {
    (void)state;
    return ts_temp_dir_create(dir, sizeof dir, "clpsa_test_tool_files") ? 0 : -1;
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

typedef struct tool_result {
    int status; /* exit code; 124: killed by `timeout` (a hang); -1: no normal exit */
    char err[16384];
} tool_result;

static tool_result result;

/* Runs `ENV clpsa ARGS` (a printf format, through sh) under `timeout 300`, stderr captured. */
static const tool_result *run_tool(const char *env, const char *fmt, ...) {
    char args[2048];
    va_list list;
    va_start(list, fmt);
    vsnprintf(args, sizeof args, fmt, list);
    va_end(list);
    char command[4096], err[512];
    snprintf(err, sizeof err, "%s/stderr.txt", dir);
    snprintf(command, sizeof command, "%s timeout 300 '%s' %s >/dev/null 2>'%s' </dev/null", env,
             CLPSA_TOOL_PATH, args, err);
    const int status = system(command);
    result.status = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.err[0] = '\0';
    FILE *f = fopen(err, "rb");
    if (f) {
        const size_t n = fread(result.err, 1, sizeof result.err - 1, f);
        result.err[n] = '\0';
        fclose(f);
    }
    return &result;
}

static void expect_exit(const tool_result *r, int code, const char *what) {
    if (r->status != code)
        fail_msg("%s: exit %d, expected %d\n--- stderr:\n%s", what, r->status, code, r->err);
}

static void expect_stderr(const tool_result *r, const char *needle, const char *what) {
    if (!strstr(r->err, needle))
        fail_msg("%s: stderr does not mention \"%s\":\n%s", what, needle, r->err);
}

static bool exists(const char *path) {
    struct stat info;
    return lstat(path, &info) == 0;
}

/* Fails when a temporary (NAME.tmp.*) is left in the test directory. */
static void expect_no_temporaries(const char *what) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e; e = readdir(d))
        if (strstr(e->d_name, ".tmp."))
            fail_msg("%s: left %s behind", what, e->d_name);
    closedir(d);
}

/* Small random inputs: Q [1, 2, 32, 32], K and V [1, 1, 32, 32]; returns the flags naming them. */
static const char *inputs(void) {
    static char args[2048];
    if (args[0])
        return args;
    static const char *const names[3] = {"q.npy", "k.npy", "v.npy"};
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3; ++i) {
        const int64_t shape[4] = {1, i == 0 ? 2 : 1, 32, 32};
        const size_t count = (size_t)shape[1] * 32 * 32;
        float *data = malloc(count * sizeof *data);
        assert_non_null(data);
        for (size_t j = 0; j < count; ++j) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            data[j] = (float)(state >> 40) / 16777216.0f - 0.5f;
        }
        char message[512];
        if (clpsa_npy_write(path_of(names[i]), CLPSA_NPY_FLOAT32, 4, shape, data, message,
                            sizeof message) != CLPSA_OK)
            fail_msg("%s", message);
        free(data);
    }
    snprintf(args, sizeof args, "--q '%s' --k '%s' --v '%s' --bm 16 --bn 16 --reps 1",
             path_of("q.npy"), path_of("k.npy"), path_of("v.npy"));
    return args;
}

/* Issue 14, defect 6: a malformed CLPSA_PARAMS fails no call, so its error line was dropped
 * (the tool kept errors for failure reports), whatever CLPSA_LOG said. */
static void test_library_errors_are_shown(void **state) {
    (void)state;
    static const char *const levels[] = {"", "CLPSA_LOG=off", "CLPSA_LOG=error", "CLPSA_LOG=warn"};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; ++i) {
        char env[128];
        snprintf(env, sizeof env, "%s CLPSA_PARAMS=dense.BOGUS=3", levels[i]);
        const tool_result *r = run_tool(env, "devices");
        expect_exit(r, 0, env);
        expect_stderr(r, "CLPSA_PARAMS ignored", env);
        expect_stderr(r, "\"dense.BOGUS\" is not a parameter", env);
    }
    const tool_result *r =
        run_tool("CLPSA_LOG=off CLPSA_PARAMS=dense.TILE_N=7", "run %s --dense", inputs());
    expect_exit(r, 0, "run with a bad CLPSA_PARAMS");
    expect_stderr(r, "dense.TILE_N = 7 is outside its allowed values", "run");
    /* A failure's detail, printed by the logger as it happened, is not repeated. */
    r = run_tool("", "run --device no-such-device-anywhere");
    expect_exit(r, 1, "run --device no-such-device-anywhere");
    const char *first = strstr(r->err, "no-such-device-anywhere\"");
    assert_non_null(first);
    if (strstr(first + 1, "no-such-device-anywhere\""))
        fail_msg("the detail is printed twice:\n%s", r->err);
}

static uint64_t fnv1a(const char *text) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *text; ++text)
        h = (h ^ (unsigned char)*text) * 0x100000001b3ull;
    return h;
}

/* Issue 14, defect 4: FIFOs in place of every program binary and of the tuned-parameter file.
 * Reading one waited for a writer: `clpsa run` and `clpsa devices` hung (exit 124 here). */
static void test_fifos_in_the_cache_do_not_hang(void **state) {
    (void)state;
    char cache[64];
    assert_true(ts_temp_dir_create(cache, sizeof cache, "clpsa_test_tool_fifo"));
    char env[256];
    snprintf(env, sizeof env, "CLPSA_CACHE_DIR='%s'", cache);
    const tool_result *r = run_tool(env, "run %s --dense", inputs());
    expect_exit(r, 0, "filling the cache");

    /* The tuned-parameter file is named by the hash of "device key|driver version". */
    clpsa_context *ctx = NULL;
    assert_int_equal(clpsa_context_create(NULL, &ctx), CLPSA_OK);
    char driver[256] = "", key[1024];
    assert_int_equal(
        clGetDeviceInfo(clpsa_context_device(ctx), CL_DRIVER_VERSION, sizeof driver, driver, NULL),
        CL_SUCCESS);
    snprintf(key, sizeof key, "%s|%s", clpsa_context_device_key(ctx), driver);
    clpsa_context_destroy(ctx);
    char path[1024];
    snprintf(path, sizeof path, "%s/params-%016llx.txt", cache, (unsigned long long)fnv1a(key));
    assert_int_equal(mkfifo(path, 0600), 0);
    int programs = 0;
    DIR *d = opendir(cache);
    assert_non_null(d);
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (strncmp(e->d_name, "program-", 8) != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", cache, e->d_name);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        programs++;
    }
    closedir(d);
    assert_true(programs > 0);

    r = run_tool(env, "devices");
    expect_exit(r, 0, "devices with a FIFO for the tuned parameters");
    expect_stderr(r, "not a regular file (a FIFO)", "devices");
    r = run_tool(env, "run %s --dense", inputs());
    expect_exit(r, 0, "run with FIFOs in the cache");
    expect_stderr(r, "program cache: ignoring", "run");
    expect_stderr(r, "not a regular file (a FIFO)", "run");
    assert_true(ts_temp_dir_remove(cache));
}

/* Issue 14, defect 8: a later output that fails leaves none of the earlier ones (nor any
 * temporary), and a file already at an output's path is left as it was. */
static void test_outputs_are_all_or_nothing(void **state) {
    (void)state;
    const char *out = path_of("all_out.npy"), *levels = path_of("all_levels.npy");
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fputs("an older file", f);
    fclose(f);
    const tool_result *r = run_tool("", "run %s --out '%s' --levels-out '%s' --png '%s'", inputs(),
                                    out, levels, path_of("no-such-dir/map.png"));
    expect_exit(r, 1, "run with an unwritable --png");
    expect_stderr(r, "no-such-dir/map.png", "unwritable --png");
    assert_false(exists(levels));
    char text[64] = "";
    f = fopen(out, "rb");
    assert_non_null(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    assert_string_equal(text, "an older file");
    expect_no_temporaries("unwritable --png");

    /* A directory at the last output's path: checked before anything is renamed. */
    const char *taken = path_of("taken.png");
    assert_int_equal(mkdir(taken, 0700), 0);
    r = run_tool("", "run %s --levels-out '%s' --png '%s'", inputs(), levels, taken);
    expect_exit(r, 1, "run with a directory as --png");
    expect_stderr(r, "is a directory", "directory as --png");
    assert_false(exists(levels));
    expect_no_temporaries("directory as --png");
    assert_int_equal(rmdir(taken), 0);

    r = run_tool("", "run %s --out '%s' --levels-out '%s'", inputs(), out, levels);
    expect_exit(r, 0, "run with writable outputs");
    clpsa_npy_array a;
    char message[512];
    if (clpsa_npy_read(out, &a, message, sizeof message) != CLPSA_OK)
        fail_msg("%s", message);
    assert_int_equal(a.count, 2 * 32 * 32);
    clpsa_npy_free(&a);
    if (clpsa_npy_read(levels, &a, message, sizeof message) != CLPSA_OK)
        fail_msg("%s", message);
    clpsa_npy_free(&a);
    expect_no_temporaries("writable outputs");
}

/* Issue 14, defect 8: the level-map picture was created 0600 (mkstemp) where every other output
 * follows the umask. */
static void test_outputs_follow_the_umask(void **state) {
    (void)state;
    static const struct {
        const char *umask;
        mode_t mode;
    } cases[] = {{"022", 0644}, {"027", 0640}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const char *png = path_of("umask.png"), *out = path_of("umask_out.npy");
        unlink(png);
        unlink(out);
        char env[64];
        snprintf(env, sizeof env, "umask %s;", cases[i].umask);
        const tool_result *r = run_tool(env, "run %s --out '%s' --png '%s'", inputs(), out, png);
        expect_exit(r, 0, env);
        const char *const paths[2] = {png, out};
        for (int p = 0; p < 2; ++p) {
            struct stat info;
            assert_int_equal(stat(paths[p], &info), 0);
            if ((info.st_mode & 0777) != cases[i].mode)
                fail_msg("umask %s: %s has mode %03o, expected %03o", cases[i].umask, paths[p],
                         (unsigned)(info.st_mode & 0777), (unsigned)cases[i].mode);
        }
    }
}

int main(void) {
    ts_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_errors_are_shown),
        cmocka_unit_test(test_fifos_in_the_cache_do_not_hang),
        cmocka_unit_test(test_outputs_are_all_or_nothing),
        cmocka_unit_test(test_outputs_follow_the_umask),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
