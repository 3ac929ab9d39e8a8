/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the cmocka suites; see test_support.h for the contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_support.h"

#include <clpsa/clpsa_tuning.h>

#include <math.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Random numbers ---- */

void ts_rng_init(ts_rng *rng, uint64_t seed) {
    rng->state = seed;
    rng->has_spare = false;
    rng->spare = 0.0;
}

uint64_t ts_rng_next(ts_rng *rng) {
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double ts_rng_uniform(ts_rng *rng) {
    return (double)(ts_rng_next(rng) >> 11) * 0x1.0p-53;
}

double ts_rng_normal(ts_rng *rng) {
    if (rng->has_spare) {
        rng->has_spare = false;
        return rng->spare;
    }
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    const double u = 1.0 - ts_rng_uniform(rng);
    const double angle = 2.0 * 3.14159265358979323846 * ts_rng_uniform(rng);
    const double radius = sqrt(-2.0 * log(u));
    rng->spare = radius * sin(angle);
    rng->has_spare = true;
    return radius * cos(angle);
}

void ts_fill_uniform(ts_rng *rng, float *dst, size_t count, float lo, float hi) {
    for (size_t i = 0; i < count; ++i)
        dst[i] = (float)(lo + (hi - lo) * ts_rng_uniform(rng));
}

void ts_fill_normal(ts_rng *rng, float *dst, size_t count, float mean, float stddev) {
    for (size_t i = 0; i < count; ++i)
        dst[i] = (float)(mean + stddev * ts_rng_normal(rng));
}

/* ---- Seeds and case labels ---- */

#define TS_DEFAULT_BASE_SEED 0x5EEDC1A5A77E0001ull

static uint64_t base_seed;
static bool base_seed_ready;
static char case_name[256] = "(no case)";
static uint64_t case_seed;

static uint64_t mix64(uint64_t x) {
    ts_rng rng;
    ts_rng_init(&rng, x);
    return ts_rng_next(&rng);
}

uint64_t ts_base_seed(void) {
    if (base_seed_ready)
        return base_seed;
    base_seed = TS_DEFAULT_BASE_SEED;
    const char *env = getenv("CLPSA_TEST_SEED");
    if (env && strcmp(env, "random") == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        base_seed = mix64((uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec) ^
                    (uint64_t)getpid();
    } else if (env && *env) {
        char *end = NULL;
        base_seed = strtoull(env, &end, 0);
        if (*end != '\0')
            fprintf(stderr, "test_support: CLPSA_TEST_SEED=\"%s\" is not a number; using %#llx\n",
                    env, (unsigned long long)base_seed);
    }
    if (base_seed != TS_DEFAULT_BASE_SEED)
        fprintf(stderr, "test_support: base seed CLPSA_TEST_SEED=%#llx\n",
                (unsigned long long)base_seed);
    base_seed_ready = true;
    return base_seed;
}

uint64_t ts_case_begin(const char *name) {
    /* FNV-1a of the name: the seed depends on the case, not on the order cases run in. */
    uint64_t hash = 0xCBF29CE484222325ull;
    for (const char *c = name; *c; ++c)
        hash = (hash ^ (unsigned char)*c) * 0x100000001B3ull;
    snprintf(case_name, sizeof case_name, "%s", name);
    case_seed = mix64(ts_base_seed() ^ hash);
    return case_seed;
}

const char *ts_case_name(void) {
    return case_name;
}

uint64_t ts_case_seed(void) {
    return case_seed;
}

void ts_fail_impl(const char *file, int line, const char *format, ...) {
    char message[2048];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    print_error("ERROR: %s\n  case %s, seed %#llx (reproduce with CLPSA_TEST_SEED=%#llx)\n",
                message, case_name, (unsigned long long)case_seed,
                (unsigned long long)ts_base_seed());
    _fail(file, line);
    abort(); /* _fail jumps back into cmocka inside a test; outside one there is no way on */
}

void ts_check_impl(const char *file, int line, const clpsa_context *ctx, clpsa_status status,
                   const char *what) {
    if (status != CLPSA_OK)
        ts_fail_impl(file, line, "%s returned %s; last_error: %s", what, clpsa_status_name(status),
                     ctx ? clpsa_context_last_error(ctx) : "-");
}

void ts_check_cl_impl(const char *file, int line, cl_int err, const char *what) {
    if (err != CL_SUCCESS)
        ts_fail_impl(file, line, "%s failed with OpenCL error %d", what, (int)err);
}

/* ---- Context ---- */

clpsa_context *ts_context_create(void) {
    return ts_context_create_logged(NULL, NULL, 0);
}

clpsa_context *ts_context_create_logged(clpsa_log_fn log, void *user, clpsa_log_level level) {
    clpsa_context_desc desc;
    clpsa_context_desc_init(&desc);
    desc.log = log;
    desc.log_user = user;
    /* PoCL by default so results and run times do not depend on which GPU the CI machine
     * happens to have; CLPSA_DEVICE (read by the library when device_spec is NULL) points
     * the same suites at a GPU. */
    const char *env = getenv("CLPSA_DEVICE");
    desc.device_spec = env && *env ? NULL : "Portable Computing Language";
    desc.log_level = level; /* 0: $CLPSA_LOG, else warn; without `log` it goes to stderr */
    clpsa_context *ctx = NULL;
    const clpsa_status status = clpsa_context_create(&desc, &ctx);
    if (status != CLPSA_OK) {
        fprintf(stderr, "test_support: no context for device \"%s\": %s\n",
                desc.device_spec ? desc.device_spec : env, clpsa_status_name(status));
        return NULL;
    }
    fprintf(stderr, "test_support: device %s (%s)\n", clpsa_context_device_name(ctx),
            clpsa_context_device_reason(ctx));
    return ctx;
}

int ts_variants_available(clpsa_context *ctx, const char *family, int *ids, int max) {
    static char text[8192];
    if (clpsa_context_describe_variants(ctx, text, sizeof text) != CLPSA_OK)
        return 0;
    char key[64];
    snprintf(key, sizeof key, "(%s.VARIANT=", family);
    int count = 0;
    for (const char *at = strstr(text, key); at && count < max; at = strstr(at + 1, key)) {
        int id = 0, used = 0;
        if (sscanf(at + strlen(key), "%d) %n", &id, &used) == 1 && used > 0 &&
            strncmp(at + strlen(key) + used, "runs here", 9) == 0)
            ids[count++] = id;
    }
    return count;
}

static bool strides_multiple_of(const clpsa_strides *s, int64_t m) {
    return s->batch % m == 0 && s->head % m == 0 && s->seq % m == 0;
}

bool ts_variant_takes(int id, const clpsa_plan_desc *desc) {
    const int d = desc->head_dim;
    const bool d_fits = d % 32 == 0 && d <= 128;
    switch (id) {
    case 2: /* nvidia-mma: 16-bit storage; Q pairs, K and V rows of 16-byte pieces */
        return (desc->dtype == CLPSA_DTYPE_FP16 || desc->dtype == CLPSA_DTYPE_BF16) && d_fits &&
               strides_multiple_of(&desc->q_strides, 2) &&
               strides_multiple_of(&desc->k_strides, 8) && strides_multiple_of(&desc->v_strides, 8);
    case 5: /* nvidia-wgmma: nvidia-mma's rules, D 64 or 128 */
        return (d == 64 || d == 128) && ts_variant_takes(2, desc);
    case 4: /* portable-simt */
        return d_fits;
    default:
        return true;
    }
}

void ts_apply_test_filter(void) {
    const char *filter = getenv("CLPSA_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
}

/* ---- Shapes and strides ---- */

const char *ts_layout_name(ts_layout layout) {
    return layout == TS_BNHD ? "bnhd" : "bhnd";
}

clpsa_strides ts_strides(ts_layout layout, ts_dims dims, int64_t row_pad) {
    const int64_t row = dims.dim + row_pad;
    clpsa_strides s;
    s.dim = 1;
    if (layout == TS_BNHD) {
        s.head = row;
        s.seq = dims.heads * row;
        s.batch = dims.seq * s.seq;
    } else {
        s.seq = row;
        s.head = dims.seq * row;
        s.batch = dims.heads * s.head;
    }
    return s;
}

size_t ts_extent(ts_dims dims, clpsa_strides s) {
    return (size_t)(ts_offset(s, dims.batch - 1, dims.heads - 1, dims.seq - 1, dims.dim - 1) + 1);
}

int64_t ts_offset(clpsa_strides s, int64_t b, int64_t h, int64_t n, int64_t d) {
    return b * s.batch + h * s.head + n * s.seq + d * s.dim;
}

void ts_fill_tensor_normal(ts_rng *rng, float *dst, ts_dims dims, clpsa_strides strides,
                           float stddev) {
    const size_t extent = ts_extent(dims, strides);
    for (size_t i = 0; i < extent; ++i)
        dst[i] = NAN;
    /* Visits elements in [B, H, N, D] order whatever the layout, so the values of a case do
     * not depend on its strides: a layout test sees the same numbers as the contiguous one. */
    for (int64_t b = 0; b < dims.batch; ++b)
        for (int64_t h = 0; h < dims.heads; ++h)
            for (int64_t n = 0; n < dims.seq; ++n)
                for (int64_t d = 0; d < dims.dim; ++d)
                    dst[ts_offset(strides, b, h, n, d)] = (float)(stddev * ts_rng_normal(rng));
}

void ts_gather(const float *src, ts_dims dims, clpsa_strides strides, float *dst) {
    size_t i = 0;
    for (int64_t b = 0; b < dims.batch; ++b)
        for (int64_t h = 0; h < dims.heads; ++h)
            for (int64_t n = 0; n < dims.seq; ++n)
                for (int64_t d = 0; d < dims.dim; ++d)
                    dst[i++] = src[ts_offset(strides, b, h, n, d)];
}

void ts_round_to_dtype(clpsa_dtype dtype, float *values, size_t count) {
    if (dtype == CLPSA_DTYPE_FP32 || dtype == CLPSA_DTYPE_DEFAULT)
        return;
    void *raw = malloc(count * clpsa_dtype_size(dtype));
    if (!raw)
        ts_fail("out of host memory rounding %zu values", count);
    clpsa_status status = clpsa_convert_from_float(dtype, values, raw, count);
    if (status == CLPSA_OK)
        status = clpsa_convert_to_float(dtype, raw, values, count);
    free(raw);
    if (status != CLPSA_OK)
        ts_fail("rounding to %s failed: %s", clpsa_dtype_name(dtype), clpsa_status_name(status));
}

/* ---- Guarded device buffers ---- */

static unsigned char canary_byte(size_t i) {
    /* Varies byte to byte (a shifted or partial overwrite cannot match it) and is never a
     * NaN or zero run, the values a stray kernel write most likely produces. */
    return (unsigned char)(0xA7u ^ (i * 0x3Bu + (i >> 8) * 0x11u));
}

static cl_command_queue buffer_queue(const ts_buffer *buf) {
    cl_command_queue queue = clpsa_context_queue(buf->ctx);
    if (!queue)
        ts_fail("buffer %s: the test context has no queue", buf->name);
    return queue;
}

static void write_bytes(const ts_buffer *buf, size_t offset, size_t bytes, const void *src) {
    const cl_int err = clEnqueueWriteBuffer(buffer_queue(buf), buf->mem, CL_TRUE, offset, bytes,
                                            src, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        ts_fail("buffer %s: clEnqueueWriteBuffer(%zu bytes at %zu) failed with OpenCL error %d",
                buf->name, bytes, offset, (int)err);
}

static void read_bytes(const ts_buffer *buf, size_t offset, size_t bytes, void *dst) {
    const cl_int err = clEnqueueReadBuffer(buffer_queue(buf), buf->mem, CL_TRUE, offset, bytes, dst,
                                           0, NULL, NULL);
    if (err != CL_SUCCESS)
        ts_fail("buffer %s: clEnqueueReadBuffer(%zu bytes at %zu) failed with OpenCL error %d",
                buf->name, bytes, offset, (int)err);
}

void ts_buffer_create(ts_buffer *buf, clpsa_context *ctx, const char *name, clpsa_dtype dtype,
                      size_t elements) {
    memset(buf, 0, sizeof *buf);
    buf->ctx = ctx;
    buf->name = name;
    buf->dtype = dtype;
    buf->elements = elements;
    buf->bytes = elements * clpsa_dtype_size(dtype);
    if (buf->bytes == 0)
        ts_fail("buffer %s: empty region (%zu elements of dtype %d)", name, elements, (int)dtype);
    buf->shadow = malloc(buf->bytes);
    if (!buf->shadow)
        ts_fail("buffer %s: out of host memory for %zu bytes", name, buf->bytes);
    ts_check(ctx, clpsa_context_alloc(ctx, buf->bytes + TS_CANARY_BYTES, &buf->mem));
    ts_buffer_poison(buf);
}

void ts_buffer_release(ts_buffer *buf) {
    if (buf->mem)
        clReleaseMemObject(buf->mem);
    free(buf->shadow);
    memset(buf, 0, sizeof *buf);
}

void ts_buffer_poison(ts_buffer *buf) {
    if (buf->dtype == CLPSA_DTYPE_FP32) {
        uint32_t *words = buf->shadow;
        for (size_t i = 0; i < buf->elements; ++i)
            words[i] = 0x7FC0DEADu;
    } else {
        const uint16_t pattern = buf->dtype == CLPSA_DTYPE_FP16 ? 0x7E00u : 0x7FC0u;
        uint16_t *halves = buf->shadow;
        for (size_t i = 0; i < buf->elements; ++i)
            halves[i] = pattern;
    }
    unsigned char canary[TS_CANARY_BYTES];
    for (size_t i = 0; i < sizeof canary; ++i)
        canary[i] = canary_byte(i);
    write_bytes(buf, 0, buf->bytes, buf->shadow);
    write_bytes(buf, buf->bytes, sizeof canary, canary);
}

void ts_buffer_upload(ts_buffer *buf, const float *host) {
    const clpsa_status status =
        clpsa_convert_from_float(buf->dtype, host, buf->shadow, buf->elements);
    if (status != CLPSA_OK)
        ts_fail("buffer %s: converting to %s failed: %s", buf->name, clpsa_dtype_name(buf->dtype),
                clpsa_status_name(status));
    write_bytes(buf, 0, buf->bytes, buf->shadow);
}

void ts_buffer_download(const ts_buffer *buf, float *host) {
    void *raw = malloc(buf->bytes);
    if (!raw)
        ts_fail("buffer %s: out of host memory for %zu bytes", buf->name, buf->bytes);
    read_bytes(buf, 0, buf->bytes, raw);
    const clpsa_status status = clpsa_convert_to_float(buf->dtype, raw, host, buf->elements);
    free(raw);
    if (status != CLPSA_OK)
        ts_fail("buffer %s: converting from %s failed: %s", buf->name, clpsa_dtype_name(buf->dtype),
                clpsa_status_name(status));
}

void ts_buffer_check_canary(const ts_buffer *buf) {
    unsigned char canary[TS_CANARY_BYTES];
    read_bytes(buf, buf->bytes, sizeof canary, canary);
    size_t first = sizeof canary, last = 0, damaged = 0;
    for (size_t i = 0; i < sizeof canary; ++i)
        if (canary[i] != canary_byte(i)) {
            first = damaged == 0 ? i : first;
            last = i;
            ++damaged;
        }
    if (damaged)
        ts_fail("buffer %s: %zu canary bytes after the %zu-byte tensor were overwritten "
                "(bytes %zu..%zu past the end): a kernel wrote out of bounds",
                buf->name, damaged, buf->bytes, first, last);
}

void ts_buffer_check_unchanged(const ts_buffer *buf) {
    unsigned char *raw = malloc(buf->bytes);
    if (!raw)
        ts_fail("buffer %s: out of host memory for %zu bytes", buf->name, buf->bytes);
    read_bytes(buf, 0, buf->bytes, raw);
    const unsigned char *want = buf->shadow;
    size_t first = buf->bytes, damaged = 0;
    for (size_t i = 0; i < buf->bytes; ++i)
        if (raw[i] != want[i]) {
            first = damaged == 0 ? i : first;
            ++damaged;
        }
    free(raw);
    if (damaged)
        ts_fail("buffer %s: %zu bytes of the tensor changed (first at byte %zu), but it is "
                "an input",
                buf->name, damaged, first);
}

/* ---- Comparisons ---- */

ts_compare_result ts_compare(const float *got, const double *ref, size_t count, ts_tolerance tol) {
    ts_compare_result r;
    memset(&r, 0, sizeof r);
    r.first_nan = count;
    double diff2 = 0.0, ref2 = 0.0, got2 = 0.0;
    for (size_t i = 0; i < count; ++i) {
        if (!isfinite(got[i])) {
            r.first_nan = r.nans == 0 ? i : r.first_nan;
            ++r.nans;
            continue;
        }
        const double d = fabs((double)got[i] - ref[i]);
        const double allowed = tol.atol + tol.rtol * fabs(ref[i]);
        /* With zero tolerance only exact equality passes (ratio 0 or infinite). */
        const double ratio = allowed > 0.0 ? d / allowed : (d > 0.0 ? INFINITY : 0.0);
        if (ratio > 1.0)
            ++r.failures;
        if (ratio > r.worst_ratio || i == 0) {
            r.worst_ratio = ratio;
            r.worst = i;
        }
        diff2 += d * d;
        ref2 += ref[i] * ref[i];
        got2 += (double)got[i] * got[i];
    }
    r.rel_l2 = ref2 > 0.0 ? sqrt(diff2 / ref2) : sqrt(got2);
    return r;
}

static void index_to_bhnd(size_t i, ts_dims dims, long long out[4]) {
    out[3] = (long long)(i % (size_t)dims.dim);
    i /= (size_t)dims.dim;
    out[2] = (long long)(i % (size_t)dims.seq);
    i /= (size_t)dims.seq;
    out[1] = (long long)(i % (size_t)dims.heads);
    out[0] = (long long)(i / (size_t)dims.heads);
}

void ts_assert_close(const char *what, const float *got, const double *ref, ts_dims dims,
                     ts_tolerance tol) {
    const size_t count = (size_t)(dims.batch * dims.heads * dims.seq * dims.dim);
    const ts_compare_result r = ts_compare(got, ref, count, tol);
    long long at[4];
    if (r.nans) {
        index_to_bhnd(r.first_nan, dims, at);
        ts_fail("%s: %zu of %zu elements are NaN or infinite, the first at (b=%lld, h=%lld, "
                "n=%lld, d=%lld) = %g (reference %.9g)",
                what, r.nans, count, at[0], at[1], at[2], at[3], (double)got[r.first_nan],
                ref[r.first_nan]);
    }
    index_to_bhnd(r.worst, dims, at);
    const char *verbose = getenv("CLPSA_TEST_VERBOSE");
    if (verbose && *verbose && strcmp(verbose, "0") != 0)
        fprintf(stderr, "  %s [%s]: rel L2 %.3g (limit %.3g), worst |d| %.3g = %.3f x allowed\n",
                what, case_name, r.rel_l2, tol.rel_l2, fabs((double)got[r.worst] - ref[r.worst]),
                r.worst_ratio);
    if (r.failures || r.rel_l2 > tol.rel_l2)
        ts_fail("%s: rel L2 %.3g (limit %.3g); %zu of %zu elements outside |d| <= %g + %g*|ref|, "
                "worst (b=%lld, h=%lld, n=%lld, d=%lld): got %.9g, reference %.9g, |d| %.3g "
                "= %.3g x allowed",
                what, r.rel_l2, tol.rel_l2, r.failures, count, tol.atol, tol.rtol, at[0], at[1],
                at[2], at[3], (double)got[r.worst], ref[r.worst],
                fabs((double)got[r.worst] - ref[r.worst]), r.worst_ratio);
}

void ts_log_callback(void *user, clpsa_log_level level, const char *message) {
    ts_log *log = user;
    log->count++;
    snprintf(log->last, sizeof log->last, "%s", message);
    if (level <= CLPSA_LOG_WARN) {
        log->warnings++;
        snprintf(log->last_warning, sizeof log->last_warning, "%s", message);
    }
}

bool ts_temp_dir_create(char *path, size_t size, const char *prefix) {
    snprintf(path, size, "/tmp/%s-XXXXXX", prefix);
    if (mkdtemp(path))
        return true;
    fprintf(stderr, "mkdtemp(%s): %s\n", path, strerror(errno));
    return false;
}

bool ts_temp_dir_remove(const char *path) {
    bool ok = true;
    DIR *dir = opendir(path);
    if (dir) {
        for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char file[1024];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            if (remove(file) != 0) {
                fprintf(stderr, "cannot remove %s: %s\n", file, strerror(errno));
                ok = false;
            }
        }
        closedir(dir);
    }
    if (rmdir(path) != 0) {
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
        ok = false;
    }
    return ok;
}

ts_tolerance ts_tolerance_for_variant(ts_tolerance tol, const clpsa_plan *plan, const char *family,
                                      clpsa_dtype storage) {
    const char *variant = clpsa_plan_kernel_variant(plan, family);
    if (!variant || strncmp(variant, "nvidia-", 7) != 0 || storage == CLPSA_DTYPE_FP32)
        return tol;
    const double u = storage == CLPSA_DTYPE_BF16 ? 0x1p-9 : 0x1p-12;
    const double rel_l2 = storage == CLPSA_DTYPE_BF16 ? 1e-2 : 2e-3;
    tol.atol += 4.0 * u;
    tol.rtol += 2.0 * u;
    if (tol.rel_l2 < rel_l2)
        tol.rel_l2 = rel_l2;
    return tol;
}
