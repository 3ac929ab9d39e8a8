/* SPDX-License-Identifier: Apache-2.0 */
/* The program caches: in memory per context, binaries on disk shared between contexts, and
 * every kind of damaged file ignored with a log line, never trusted. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <clpsa/clpsa.h>
#include <clpsa/clpsa_tuning.h>

#include "support/test_support.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char cache_dir[64];

static int setup(void **state) {
    (void)state;
    return ts_temp_dir_create(cache_dir, sizeof cache_dir, "clpsa-cache-test") ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return ts_temp_dir_remove(cache_dir) ? 0 : -1;
}

static clpsa_context *make_context(ts_log *log, const char *dir) {
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.cache_dir = dir;
    desc.log = ts_log_callback;
    desc.log_user = log;
    desc.log_level = CLPSA_LOG_WARN;
    clpsa_context *ctx = NULL;
    assert_int_equal(clpsa_context_create(&desc, &ctx), CLPSA_OK);
    return ctx;
}

static clpsa_plan_desc tiny_desc(void) {
    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE; /* one program, so the counts below are exact */
    d.batch = 1;
    d.heads_q = 1;
    d.seq_q = 40;
    d.head_dim = 64;
    return d;
}

/* Runs the plan on fixed inputs and returns the output (caller frees). */
static float *run_tiny(clpsa_context *ctx) {
    clpsa_plan_desc d = tiny_desc();
    clpsa_plan *plan = NULL;
    assert_int_equal(clpsa_plan_create(ctx, &d, &plan), CLPSA_OK);
    const size_t n = 40 * 64;
    float *host = malloc(n * sizeof *host);
    for (size_t i = 0; i < n; ++i)
        host[i] = (float)((i * 7919u) % 113u) / 113.0f - 0.5f;
    cl_mem buffers[4];
    for (int i = 0; i < 4; ++i)
        assert_int_equal(clpsa_context_alloc(ctx, n * sizeof *host, &buffers[i]), CLPSA_OK);
    cl_command_queue queue = clpsa_context_queue(ctx);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(clEnqueueWriteBuffer(queue, buffers[i], CL_TRUE, 0, n * sizeof *host, host,
                                              0, NULL, NULL),
                         CL_SUCCESS);
    assert_int_equal(
        clpsa_plan_run(plan, NULL, buffers[0], buffers[1], buffers[2], buffers[3], 0, NULL, NULL),
        CLPSA_OK);
    assert_int_equal(
        clEnqueueReadBuffer(queue, buffers[3], CL_TRUE, 0, n * sizeof *host, host, 0, NULL, NULL),
        CL_SUCCESS);
    for (int i = 0; i < 4; ++i)
        clReleaseMemObject(buffers[i]);
    clpsa_plan_destroy(plan);
    return host;
}

/* The single program file in the cache directory. */
static void find_cache_file(char *path, size_t capacity) {
    DIR *dir = opendir(cache_dir);
    assert_non_null(dir);
    int found = 0;
    for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
        if (strncmp(e->d_name, "program-", 8) != 0 || strstr(e->d_name, ".tmp"))
            continue;
        snprintf(path, capacity, "%s/%s", cache_dir, e->d_name);
        found++;
    }
    closedir(dir);
    assert_int_equal(found, 1);
}

static clpsa_cache_stats stats_of(const clpsa_context *ctx) {
    clpsa_cache_stats s;
    clpsa_context_cache_stats(ctx, &s);
    return s;
}

static void test_memory_then_disk_hits(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *first = make_context(&log, cache_dir);
    assert_string_equal(clpsa_context_cache_dir(first), cache_dir);
    float *built = run_tiny(first);
    assert_int_equal(stats_of(first).builds, 1);
    float *again = run_tiny(first);
    assert_int_equal(stats_of(first).builds, 1);
    assert_int_equal(stats_of(first).memory_hits, 1);
    clpsa_context_destroy(first);

    clpsa_context *second = make_context(&log, cache_dir);
    float *loaded = run_tiny(second);
    const clpsa_cache_stats s = stats_of(second);
    assert_int_equal(s.builds, 0);
    assert_int_equal(s.disk_hits, 1);
    assert_int_equal(s.disk_rejects, 0);
    clpsa_context_destroy(second);
    /* The same binary gives bit-identical results. */
    assert_memory_equal(built, again, 40 * 64 * sizeof(float));
    assert_memory_equal(built, loaded, 40 * 64 * sizeof(float));
    assert_int_equal(log.warnings, 0);
    free(built);
    free(again);
    free(loaded);
}

typedef enum damage { FLIP_BINARY_BYTE, TRUNCATE, BAD_MAGIC, BAD_VERSION, EMPTY } damage;

static void damage_file(const char *path, damage kind) {
    FILE *file = fopen(path, "r+b");
    assert_non_null(file);
    fseek(file, 0, SEEK_END);
    const long size = ftell(file);
    unsigned char byte = 0;
    switch (kind) {
    case FLIP_BINARY_BYTE:
        fseek(file, size - 10, SEEK_SET);
        assert_int_equal(fread(&byte, 1, 1, file), 1);
        byte ^= 0x5a;
        fseek(file, size - 10, SEEK_SET);
        fwrite(&byte, 1, 1, file);
        break;
    case TRUNCATE:
        assert_int_equal(ftruncate(fileno(file), size / 2), 0);
        break;
    case BAD_MAGIC:
        fseek(file, 0, SEEK_SET);
        fwrite("XXXX", 1, 4, file);
        break;
    case BAD_VERSION:
        fseek(file, 8, SEEK_SET);
        byte = 0x7f;
        fwrite(&byte, 1, 1, file);
        break;
    case EMPTY:
        assert_int_equal(ftruncate(fileno(file), 0), 0);
        break;
    }
    fclose(file);
}

static void check_damage_is_ignored(damage kind, const char *why) {
    ts_log log = {0};
    clpsa_context *writer = make_context(&log, cache_dir);
    float *reference = run_tiny(writer);
    clpsa_context_destroy(writer);

    char path[512];
    find_cache_file(path, sizeof path);
    damage_file(path, kind);

    clpsa_context *reader = make_context(&log, cache_dir);
    float *result = run_tiny(reader);
    const clpsa_cache_stats s = stats_of(reader);
    clpsa_context_destroy(reader);
    assert_int_equal(s.disk_rejects, 1);
    assert_int_equal(s.disk_hits, 0);
    assert_int_equal(s.builds, 1);
    assert_int_equal(log.warnings, 1);
    if (!strstr(log.last_warning, "ignoring") || !strstr(log.last_warning, why))
        fail_msg("log line \"%s\" should say it ignores the file because: %s", log.last_warning,
                 why);
    assert_memory_equal(reference, result, 40 * 64 * sizeof(float));

    /* The rebuilt program replaced the damaged file: the next context loads it. */
    clpsa_context *healed = make_context(&log, cache_dir);
    free(run_tiny(healed));
    assert_int_equal(stats_of(healed).disk_hits, 1);
    clpsa_context_destroy(healed);
    free(reference);
    free(result);
}

static void test_corrupt_binary_is_ignored(void **state) {
    (void)state;
    check_damage_is_ignored(FLIP_BINARY_BYTE, "digest");
}

static void test_truncated_file_is_ignored(void **state) {
    (void)state;
    check_damage_is_ignored(TRUNCATE, "truncated");
}

static void test_bad_magic_is_ignored(void **state) {
    (void)state;
    check_damage_is_ignored(BAD_MAGIC, "magic");
}

static void test_other_format_version_is_ignored(void **state) {
    (void)state;
    check_damage_is_ignored(BAD_VERSION, "format version");
}

static void test_empty_file_is_ignored(void **state) {
    (void)state;
    check_damage_is_ignored(EMPTY, "truncated");
}

/* ---- Entries written by hand (docs/api.md, "Caches on disk", gives the layout) ---- */

typedef struct entry {
    unsigned char header[32]; /* magic, version, key size, binary size, digest */
    char *key;
    unsigned char *binary;
    uint32_t key_size;
    uint64_t binary_size;
} entry;

static uint64_t fnv1a(const void *data, size_t size, uint64_t h) {
    const unsigned char *bytes = data;
    for (size_t i = 0; i < size; ++i)
        h = (h ^ bytes[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_SEED 0xcbf29ce484222325ull

static void read_entry(const char *path, entry *e) {
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    assert_int_equal(fread(e->header, 1, sizeof e->header, file), sizeof e->header);
    memcpy(&e->key_size, e->header + 12, 4);
    memcpy(&e->binary_size, e->header + 16, 8);
    e->key = malloc(e->key_size);
    e->binary = malloc(e->binary_size);
    assert_int_equal(fread(e->key, 1, e->key_size, file), e->key_size);
    assert_int_equal(fread(e->binary, 1, e->binary_size, file), e->binary_size);
    fclose(file);
}

static void free_entry(entry *e) {
    free(e->key);
    free(e->binary);
}

/* Writes e's header (version kept) with binary_size set to `size` and the digest over the whole
 * entry (whole_digest) or, as format version 1 had it, over the binary alone. */
static void write_entry(const char *path, const entry *e, const unsigned char *binary,
                        uint64_t size, bool whole_digest) {
    unsigned char header[32];
    memcpy(header, e->header, sizeof header);
    memcpy(header + 16, &size, 8);
    uint64_t digest = FNV_SEED;
    if (whole_digest) {
        digest = fnv1a(header, 24, digest);
        digest = fnv1a(e->key, e->key_size, digest);
    }
    digest = fnv1a(binary, size, digest);
    memcpy(header + 24, &digest, 8);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fwrite(header, 1, sizeof header, file);
    fwrite(e->key, 1, e->key_size, file);
    fwrite(binary, 1, size, file);
    assert_int_equal(fclose(file), 0);
}

/* Runs the tiny plan in a fresh context on the doctored cache and checks that the bad entry was
 * refused (`why` in the one warning), the result equals `reference` and the rebuilt program
 * replaced the file. */
static void check_rebuilt(const float *reference, const char *why, uint64_t disk_hits) {
    ts_log log = {0};
    clpsa_context *reader = make_context(&log, cache_dir);
    float *result = run_tiny(reader);
    const clpsa_cache_stats s = stats_of(reader);
    clpsa_context_destroy(reader);
    assert_int_equal(s.disk_rejects, 1);
    assert_int_equal(s.disk_hits, disk_hits);
    assert_int_equal(s.builds, 1);
    assert_int_equal(log.warnings, 1);
    if (!strstr(log.last_warning, why))
        fail_msg("log line \"%s\" should say: %s", log.last_warning, why);
    assert_memory_equal(reference, result, 40 * 64 * sizeof(float));
    free(result);
    clpsa_context *healed = make_context(&log, cache_dir);
    free(run_tiny(healed));
    assert_int_equal(stats_of(healed).disk_hits, 1);
    assert_int_equal(stats_of(healed).disk_rejects, 0);
    clpsa_context_destroy(healed);
}

/* Issue 14, defect 1: the first half of a real binary under a header whose sizes and (format 1)
 * checksum agree with it. Version 1 handed it to the driver, and PoCL crashed. */
static void test_half_binary_with_valid_checksum_is_refused(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *writer = make_context(&log, cache_dir);
    float *reference = run_tiny(writer);
    clpsa_context_destroy(writer);
    char path[512];
    find_cache_file(path, sizeof path);
    entry e;
    read_entry(path, &e);
    write_entry(path, &e, e.binary, e.binary_size / 2, false);
    check_rebuilt(reference, "digest does not match", 0);
    free_entry(&e);
    free(reference);
}

/* Issue 14, defect 3: sizes whose 64-bit sum wraps to the file size of 101 bytes; version 1
 * believed them and asked malloc for about 2^64 bytes. */
static void test_wrapping_sizes_are_refused(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *writer = make_context(&log, cache_dir);
    float *reference = run_tiny(writer);
    clpsa_context_destroy(writer);
    char path[512];
    find_cache_file(path, sizeof path);
    entry e;
    read_entry(path, &e);
    const uint64_t wrapped = (uint64_t)101 - 32 - e.key_size; /* mod 2^64 */
    memcpy(e.header + 16, &wrapped, 8);
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    fwrite(e.header, 1, 32, file);
    fwrite(e.key, 1, 69, file); /* 101 bytes in all */
    assert_int_equal(fclose(file), 0);
    check_rebuilt(reference, "size disagrees with its header", 0);
    free_entry(&e);
    free(reference);
}

/* Issue 14, defect 2: a whole, valid binary of another program (entries swapped) loads and
 * builds, but has no dense_attention kernel. The plan must be built from source. */
/* Copies cl/<name> from the source tree to dir/<name>, appending `extra`. */
static void copy_kernel_source(const char *dir, const char *name, const char *extra) {
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/%s", CLPSA_TEST_KERNEL_SOURCES, name);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, in)) > 0)
        assert_int_equal(fwrite(buffer, 1, n, out), n);
    fputs(extra, out);
    fclose(in);
    fclose(out);
}

/* A program whose source carries nv_wgmma.cl's sm_90a marker is rebuilt from its first
 * build's PTX; where that cannot be done (here: PoCL's binary is no PTX) the build fails and
 * the variant selector falls back to the next variant with a warning naming why, never an
 * error. The CPU dense variant is given the marker through CLPSA_KERNEL_DIR. */
static void test_sm90a_rewrite_failure_falls_back(void **state) {
    (void)state;
    char kernels[64], portable[96];
    assert_true(ts_temp_dir_create(kernels, sizeof kernels, "clpsa-marked-kernels"));
    snprintf(portable, sizeof portable, "%s/portable", kernels);
    assert_int_equal(mkdir(portable, 0700), 0);
    static const char *const files[] = {"common.cl", "dense.cl", "portable/cpu_flash.cl",
                                        "portable/simt_flash.cl", "portable/dense_simt.cl"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; ++i)
        copy_kernel_source(kernels, files[i], "");
    copy_kernel_source(kernels, "portable/dense_cpu.cl", "\n//clpsa-sm90a: (test)\n");
    setenv("CLPSA_KERNEL_DIR", kernels, 1);

    ts_log log = {0};
    clpsa_context *ctx = make_context(&log, cache_dir);
    cl_device_type type = 0;
    assert_int_equal(
        clGetDeviceInfo(clpsa_context_device(ctx), CL_DEVICE_TYPE, sizeof type, &type, NULL),
        CL_SUCCESS);
    clpsa_plan_desc d = tiny_desc();
    clpsa_plan *plan = NULL;
    /* Asked for by name or chosen by the plan, the variant whose build fails gives way to
     * the next one with a warning that says why. */
    for (int named = 0; named < 2; ++named) {
        log.warnings = 0;
        log.last_warning[0] = '\0';
        assert_int_equal(clpsa_context_set_params(ctx, named ? "dense.VARIANT=3" : NULL), CLPSA_OK);
        const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
        if (named && status == CLPSA_ERROR_UNSUPPORTED)
            break; /* not a CPU device: the CPU variant cannot be named here */
        assert_int_equal(status, CLPSA_OK);
        const char *variant = clpsa_plan_kernel_variant(plan, "dense");
        assert_non_null(variant);
        assert_string_not_equal(variant, "portable-cpu");
        if (type & CL_DEVICE_TYPE_CPU) { /* where the CPU variant comes first */
            assert_true(log.warnings > 0);
            assert_non_null(strstr(log.last_warning, "cannot be rewritten for sm_90a"));
            assert_non_null(strstr(log.last_warning, "falling back"));
        }
        clpsa_plan_destroy(plan);
        plan = NULL;
    }
    clpsa_context_destroy(ctx);
    unsetenv("CLPSA_KERNEL_DIR");

    char path[160];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; ++i) {
        snprintf(path, sizeof path, "%s/%s", kernels, files[i]);
        assert_int_equal(remove(path), 0);
    }
    snprintf(path, sizeof path, "%s/portable/dense_cpu.cl", kernels);
    assert_int_equal(remove(path), 0);
    assert_int_equal(rmdir(portable), 0);
    assert_true(ts_temp_dir_remove(kernels));
}

static void test_binary_without_the_kernel_is_rebuilt(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *writer = make_context(&log, cache_dir);
    float *reference = run_tiny(writer);
    /* A real binary for this device that holds another kernel. */
    const char *source = "__kernel void other_kernel(__global float *x) { x[0] = 1.0f; }";
    cl_int err = CL_SUCCESS;
    cl_context cl_ctx = clpsa_context_cl_context(writer);
    cl_device_id device = clpsa_context_device(writer);
    cl_program program = clCreateProgramWithSource(cl_ctx, 1, &source, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    assert_int_equal(clBuildProgram(program, 1, &device, "", NULL, NULL), CL_SUCCESS);
    size_t size = 0;
    assert_int_equal(clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, sizeof size, &size, NULL),
                     CL_SUCCESS);
    unsigned char *other = malloc(size);
    assert_int_equal(clGetProgramInfo(program, CL_PROGRAM_BINARIES, sizeof other, &other, NULL),
                     CL_SUCCESS);
    clReleaseProgram(program);
    clpsa_context_destroy(writer);

    char path[512];
    find_cache_file(path, sizeof path);
    entry e;
    read_entry(path, &e);
    write_entry(path, &e, other, size, true);
    /* The binary loads (a disk hit), then cannot make the kernel (a reject). */
    check_rebuilt(reference, "cannot make kernel dense_attention", 1);
    free(other);
    free_entry(&e);
    free(reference);
}

/* Issue 14, defect 4: a FIFO in place of the entry. Opening it for reading used to wait for a
 * writer forever; the alarm turns such a hang into a failure. */
static void test_fifo_in_place_of_an_entry_is_refused(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *writer = make_context(&log, cache_dir);
    float *reference = run_tiny(writer);
    clpsa_context_destroy(writer);
    char path[512];
    find_cache_file(path, sizeof path);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(60);
    clpsa_context *reader = make_context(&log, cache_dir);
    float *result = run_tiny(reader);
    alarm(0);
    const clpsa_cache_stats s = stats_of(reader);
    clpsa_context_destroy(reader);
    assert_int_equal(s.disk_rejects, 1);
    assert_int_equal(s.builds, 1);
    if (!strstr(log.last_warning, "not a regular file (a FIFO)"))
        fail_msg("log line \"%s\" should say the entry is a FIFO", log.last_warning);
    /* The rebuilt binary took the FIFO's place: rename() replaces any directory entry. */
    assert_memory_equal(reference, result, 40 * 64 * sizeof(float));
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    assert_true(S_ISREG(info.st_mode));
    free(result);
    free(reference);
}

static void test_cache_dir_resolution(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *ctx = NULL;
    const char *saved = getenv("CLPSA_CACHE_DIR");
    char *saved_copy = saved ? strdup(saved) : NULL;

    setenv("CLPSA_CACHE_DIR", "/tmp/clpsa-env-dir", 1);
    ctx = make_context(&log, NULL);
    assert_string_equal(clpsa_context_cache_dir(ctx), "/tmp/clpsa-env-dir");
    clpsa_context_destroy(ctx);

    unsetenv("CLPSA_CACHE_DIR");
    setenv("XDG_CACHE_HOME", "/tmp/xdg-home", 1);
    ctx = make_context(&log, NULL);
    assert_string_equal(clpsa_context_cache_dir(ctx), "/tmp/xdg-home/clpsa");
    clpsa_context_destroy(ctx);

    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/tmp/some-home", 1);
    ctx = make_context(&log, NULL);
    assert_string_equal(clpsa_context_cache_dir(ctx), "/tmp/some-home/.cache/clpsa");
    clpsa_context_destroy(ctx);

    if (saved_copy)
        setenv("CLPSA_CACHE_DIR", saved_copy, 1);
    free(saved_copy);
}

static void test_disk_cache_can_be_disabled(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.cache_dir = cache_dir;
    desc.disable_disk_cache = 1;
    desc.log = ts_log_callback;
    desc.log_user = &log;
    clpsa_context *ctx = NULL;
    assert_int_equal(clpsa_context_create(&desc, &ctx), CLPSA_OK);
    assert_string_equal(clpsa_context_cache_dir(ctx), "");
    free(run_tiny(ctx));
    assert_int_equal(stats_of(ctx).builds, 1);
    clpsa_context_destroy(ctx);
    DIR *dir = opendir(cache_dir);
    int files = 0;
    for (struct dirent *e = readdir(dir); e; e = readdir(dir))
        files += e->d_name[0] != '.';
    closedir(dir);
    assert_int_equal(files, 0);
}

/* A cache directory that cannot be created costs a warning, never the plan. */
static void test_unwritable_cache_dir_only_warns(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log, "/proc/clpsa-cannot-exist/cache");
    free(run_tiny(ctx));
    assert_int_equal(stats_of(ctx).builds, 1);
    assert_true(log.warnings >= 1);
    assert_non_null(strstr(log.last_warning, "cannot"));
    clpsa_context_destroy(ctx);
}

/* The plan's status when it is built with CLPSA_BUILD_OPTIONS set to options. */
static clpsa_status create_with_options(clpsa_context *ctx, const char *options) {
    setenv("CLPSA_BUILD_OPTIONS", options, 1);
    clpsa_plan_desc d = tiny_desc();
    clpsa_plan *plan = NULL;
    const clpsa_status status = clpsa_plan_create(ctx, &d, &plan);
    unsetenv("CLPSA_BUILD_OPTIONS");
    if (status == CLPSA_OK)
        clpsa_plan_destroy(plan);
    else
        assert_null(plan);
    return status;
}

/* CLPSA_BUILD_OPTIONS reaches the compiler and the cache key: a program built with it is a
 * new entry (never the binary built without), the same kernel text gives the same result, an
 * option the compiler refuses fails the plan with the option named, and options too long for
 * the library's buffer are refused before any build. */
static void test_build_options_reach_compiler_and_key(void **state) {
    (void)state;
    ts_log log = {0};
    clpsa_context *ctx = make_context(&log, cache_dir);
    float *plain = run_tiny(ctx);
    assert_int_equal(stats_of(ctx).builds, 1);

    setenv("CLPSA_BUILD_OPTIONS", "-DCLPSA_TEST_UNUSED_MACRO=1", 1);
    float *with_macro = run_tiny(ctx);
    unsetenv("CLPSA_BUILD_OPTIONS");
    assert_int_equal(stats_of(ctx).builds, 2);
    assert_memory_equal(plain, with_macro, 40 * 64 * sizeof(float));

    assert_int_equal(create_with_options(ctx, "-clpsa-no-such-option"), CLPSA_ERROR_BUILD_FAILED);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "-clpsa-no-such-option"));

    char long_options[2100];
    memset(long_options, 'x', sizeof long_options - 1);
    long_options[0] = '-';
    long_options[1] = 'D';
    long_options[sizeof long_options - 1] = '\0';
    const uint64_t builds_before = stats_of(ctx).builds;
    assert_int_equal(create_with_options(ctx, long_options), CLPSA_ERROR_INVALID_VALUE);
    assert_non_null(strstr(clpsa_context_last_error(ctx), "CLPSA_BUILD_OPTIONS"));
    assert_int_equal(stats_of(ctx).builds, builds_before);
    clpsa_context_destroy(ctx);
    free(plain);
    free(with_macro);
}

int main(void) {
    ts_apply_test_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_memory_then_disk_hits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_binary_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_magic_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_format_version_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file_is_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_binary_with_valid_checksum_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrapping_sizes_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_without_the_kernel_is_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm90a_rewrite_failure_falls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_in_place_of_an_entry_is_refused, setup, teardown),
        cmocka_unit_test(test_cache_dir_resolution),
        cmocka_unit_test_setup_teardown(test_disk_cache_can_be_disabled, setup, teardown),
        cmocka_unit_test(test_unwritable_cache_dir_only_warns),
        cmocka_unit_test_setup_teardown(test_build_options_reach_compiler_and_key, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
