/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the cmocka suites: reproducible random data, a test context, guarded
 * device buffers (poisoned tensor region, canary after it), dtype-rounded uploads and
 * comparisons against the double-precision reference.
 *
 * Failures go through cmocka's fail_msg, so a test must include <cmocka.h> (after <stdarg.h>,
 * <stddef.h>, <setjmp.h>, <stdint.h>) and call these helpers from inside a test. Every failure
 * message names the current case and its seed. */
#ifndef CLPSA_TESTS_TEST_SUPPORT_H
#define CLPSA_TESTS_TEST_SUPPORT_H

#include <clpsa/clpsa.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Random numbers ---- */

/* splitmix64: tiny, fast, statistically fine for test data, and the same generator
 * docs/algorithm.md uses for sampled offsets, so one implementation is understood everywhere. */
typedef struct ts_rng {
    uint64_t state;
    bool has_spare; /* Box-Muller yields pairs; the second one is kept for the next call */
    double spare;
} ts_rng;

void ts_rng_init(ts_rng *rng, uint64_t seed);
uint64_t ts_rng_next(ts_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double ts_rng_uniform(ts_rng *rng);
/* Standard normal. */
double ts_rng_normal(ts_rng *rng);
void ts_fill_uniform(ts_rng *rng, float *dst, size_t count, float lo, float hi);
void ts_fill_normal(ts_rng *rng, float *dst, size_t count, float mean, float stddev);

/* ---- Seeds and case labels ----
 * ts_case_begin(name) names the case that runs next and returns its seed: a hash of the name
 * mixed with a base seed, so each case gets its own data, independent of which other cases
 * run. The base is fixed (deterministic CI) unless CLPSA_TEST_SEED is set to a number (to
 * reproduce a failure printed by another run) or to "random" (fresh data on every run). */
uint64_t ts_case_begin(const char *name);
const char *ts_case_name(void);
uint64_t ts_case_seed(void);
uint64_t ts_base_seed(void);

/* fail_msg with the case name, its seed and how to reproduce it appended. */
#define ts_fail(...) ts_fail_impl(__FILE__, __LINE__, __VA_ARGS__)
void ts_fail_impl(const char *file, int line, const char *format, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Fails with the status name and the context's last_error unless status is CLPSA_OK. */
#define ts_check(ctx, call) ts_check_impl(__FILE__, __LINE__, (ctx), (call), #call)
void ts_check_impl(const char *file, int line, const clpsa_context *ctx, clpsa_status status,
                   const char *what);
/* Fails with the OpenCL error unless err is CL_SUCCESS. */
#define ts_check_cl(err, what) ts_check_cl_impl(__FILE__, __LINE__, (err), (what))
void ts_check_cl_impl(const char *file, int line, cl_int err, const char *what);

/* ---- Context ----
 * The PoCL CPU device unless CLPSA_DEVICE names another (so the suites also run on a GPU);
 * log lines at $CLPSA_LOG (default warn) to stderr; the on-disk cache at $CLPSA_CACHE_DIR.
 * Returns NULL (after printing why to stderr) if no context can be made. */
clpsa_context *ts_context_create(void);
/* The same device with the log going to log(user, ...) from `level` up instead. */
clpsa_context *ts_context_create_logged(clpsa_log_fn log, void *user, clpsa_log_level level);

/* The kernel variants of `family` ("dense", "attend") that the context's device can run, from
 * clpsa_context_describe_variants: their family.VARIANT ids in preference order, at most `max`;
 * returns how many. The suites run their cases once per variant through these overrides. */
int ts_variants_available(clpsa_context *ctx, const char *family, int *ids, int max);

/* Whether kernel variant `id` of the dense or attend family takes a plan of `desc` on a device
 * that runs it (the variants' published rules: docs/api.md, "Kernel variants"). A suite that
 * walks the variants runs a case the variant does not take with the plan's own choice instead,
 * since an override naming such a variant is rejected (that rejection has its own test). */
bool ts_variant_takes(int id, const clpsa_plan_desc *desc);

/* Runs only the tests whose names match $CLPSA_TEST_FILTER (cmocka wildcards), so one
 * failing case can be rerun alone. Call before cmocka_run_group_tests. */
void ts_apply_test_filter(void);

/* ---- Log capture and temporary directories ---- */
/* A clpsa_log_fn target (pass ts_log_callback as desc.log and a ts_log as desc.log_user). */
typedef struct ts_log {
    int count;               /* lines at any level */
    int warnings;            /* lines at warn or error */
    char last[1024];         /* the last line */
    char last_warning[1024]; /* the last warn or error line */
} ts_log;
void ts_log_callback(void *user, clpsa_log_level level, const char *message);

/* Creates a fresh directory /tmp/<prefix>-XXXXXX, its name in path; false (and a line on
 * stderr) on error. Usable from group setups, where a test failure cannot be raised. */
bool ts_temp_dir_create(char *path, size_t size, const char *prefix);
/* Removes the directory's files, then the directory (the suites' directories hold no
 * subfolders); false (and a line on stderr) if something could not be removed. */
bool ts_temp_dir_remove(const char *path);

/* ---- Shapes and strides ---- */
typedef struct ts_dims {
    int64_t batch, heads, seq, dim;
} ts_dims;

typedef enum ts_layout {
    TS_BHND = 0, /* [B, H, N, D] */
    TS_BNHD = 1, /* [B, N, H, D] */
} ts_layout;

const char *ts_layout_name(ts_layout layout);
/* Strides of a tensor in `layout` whose D-vectors are followed by `row_pad` unused elements
 * (row_pad = 0: the contiguous clpsa_strides_bhnd / _bnhd). */
clpsa_strides ts_strides(ts_layout layout, ts_dims dims, int64_t row_pad);
/* Elements from the tensor's first to one past its last element: what a buffer must hold. */
size_t ts_extent(ts_dims dims, clpsa_strides strides);
/* Element offset of (b, h, n, d). */
int64_t ts_offset(clpsa_strides strides, int64_t b, int64_t h, int64_t n, int64_t d);

/* Fills the tensor's elements of a host array of ts_extent() floats with normal(0, stddev)
 * values and everything between them (padding) with NaN, so a kernel reading padding is
 * caught by the NaN check of its output. */
void ts_fill_tensor_normal(ts_rng *rng, float *dst, ts_dims dims, clpsa_strides strides,
                           float stddev);
/* Copies a strided tensor into contiguous [B, H, N, D] order. */
void ts_gather(const float *src, ts_dims dims, clpsa_strides strides, float *dst);
/* Rounds values in place to what `dtype` stores (via clpsa_convert_from/to_float). */
void ts_round_to_dtype(clpsa_dtype dtype, float *values, size_t count);

/* ---- Guarded device buffers ----
 * A cl_mem of the tensor's bytes plus TS_CANARY_BYTES. The canary, a known pattern after the
 * tensor region, is written at creation and by every poison; a kernel writing past the end
 * of its tensor damages it. Poisoning fills the tensor region with a quiet-NaN bit pattern
 * (0x7FC0DEAD for fp32, 0x7E00 for fp16, 0x7FC0 for bf16): an element a kernel should have
 * written but did not reads back as NaN. */
#define TS_CANARY_BYTES 65536

typedef struct ts_buffer {
    clpsa_context *ctx;
    cl_mem mem;
    clpsa_dtype dtype;
    size_t elements; /* tensor region in elements */
    size_t bytes;    /* tensor region in bytes; the canary follows */
    void *shadow;    /* host copy of the region's last written bytes */
    const char *name;
} ts_buffer;

/* Creates the buffer (on the context's queue, blocking) with the canary written and the
 * region poisoned. Fails the test on error. */
void ts_buffer_create(ts_buffer *buf, clpsa_context *ctx, const char *name, clpsa_dtype dtype,
                      size_t elements);
void ts_buffer_release(ts_buffer *buf);
/* Region := NaN pattern, canary rewritten. */
void ts_buffer_poison(ts_buffer *buf);
/* Converts `elements` host floats to the buffer's dtype and writes them to the region. */
void ts_buffer_upload(ts_buffer *buf, const float *host);
/* Reads the region and converts it to floats. */
void ts_buffer_download(const ts_buffer *buf, float *host);
/* Fails unless the canary is intact. */
void ts_buffer_check_canary(const ts_buffer *buf);
/* Fails unless the region still holds what was last uploaded or poisoned (inputs must be
 * left alone). */
void ts_buffer_check_unchanged(const ts_buffer *buf);

/* ---- Comparisons ---- */
typedef struct ts_tolerance {
    double atol, rtol; /* elementwise: |got - ref| <= atol + rtol * |ref| */
    double rel_l2;     /* ||got - ref|| / ||ref|| */
} ts_tolerance;

typedef struct ts_compare_result {
    double rel_l2;      /* ||got - ref|| / ||ref||; ||got|| if ref is all zero */
    size_t failures;    /* elements outside atol + rtol * |ref| */
    size_t nans;        /* elements of got that are NaN or infinite */
    size_t worst;       /* index with the largest |d| / (atol + rtol * |ref|) */
    double worst_ratio; /* that ratio (> 1 means failing) */
    size_t first_nan;   /* index of the first non-finite element */
} ts_compare_result;

/* Compares contiguous arrays of `count` elements. */
ts_compare_result ts_compare(const float *got, const double *ref, size_t count, ts_tolerance tol);
/* Compares and fails (naming `what`, the worst element as (b, h, n, d) of `dims`, and the
 * case) if anything is NaN, any element is outside tolerance or rel_l2 is exceeded.
 * CLPSA_TEST_VERBOSE=1 prints the errors of passing comparisons too (to tune tolerances). */
void ts_assert_close(const char *what, const float *got, const double *ref, ts_dims dims,
                     ts_tolerance tol);

/* tol widened by the rounding of a matrix-unit variant (clpsa_plan_kernel_variant of the
 * family is "nvidia-mma" or "nvidia-wgmma"): probabilities rounded to the 16-bit storage type
 * before P.V move an output by at most u * sum_j p_j |v_j| <= u * max |v| (u = 2^-9 for bf16, 2^-12
 * for fp16; normal inputs keep |v| under ~4): atol 4u and rtol 2u beside the output's own rounding;
 * the relative L2 limit becomes 1e-2 (bf16) or 2e-3 (fp16). Unchanged for other variants. */
ts_tolerance ts_tolerance_for_variant(ts_tolerance tol, const clpsa_plan *plan, const char *family,
                                      clpsa_dtype storage);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_TESTS_TEST_SUPPORT_H */
