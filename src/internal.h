/* SPDX-License-Identifier: Apache-2.0 */
/* Declarations shared by the library's source files; never installed. */
#ifndef CLPSA_INTERNAL_H
#define CLPSA_INTERNAL_H

#include <clpsa/clpsa.h>

#include "params.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#define CLPSA__ERROR_CAPACITY 16384
#define CLPSA__NAME_CAPACITY 256

/* Facts about a device, queried once when the context is created. */
typedef struct clpsa__device_info {
    char platform_name[CLPSA__NAME_CAPACITY];
    char platform_version[CLPSA__NAME_CAPACITY];
    char device_name[CLPSA__NAME_CAPACITY];
    char device_vendor[CLPSA__NAME_CAPACITY];
    char driver_version[CLPSA__NAME_CAPACITY];
    char device_version[CLPSA__NAME_CAPACITY];
    cl_uint vendor_id;
    cl_device_type type;
    cl_uint compute_units;
    size_t max_work_group_size;
    cl_ulong local_mem_size;
    cl_ulong global_mem_size;
    cl_ulong max_mem_alloc_size;
    cl_uint mem_base_addr_align_bits;
    bool has_fp16;
    bool has_fp64;
    int nv_compute_major; /* 0 unless cl_nv_device_attribute_query answers */
    int nv_compute_minor;
} clpsa__device_info;

clpsa_status clpsa__device_info_query(cl_device_id device, clpsa__device_info *out,
                                      cl_int *cl_error);

/* A cached compiled program; the cache owns it. */
typedef struct clpsa__program_entry {
    char *key;
    cl_program program;
    bool from_disk; /* loaded from a cached binary, not yet proven by a kernel made from it */
} clpsa__program_entry;

struct clpsa_context {
    /* cl_ctx and queue: created by clpsa, or the caller's retained at creation; released on
     * destroy either way. */
    cl_context cl_ctx;
    cl_device_id device;
    cl_command_queue queue;
    clpsa__device_info info;
    char device_label[3 * CLPSA__NAME_CAPACITY + 16];
    char device_reason[CLPSA__NAME_CAPACITY];

    clpsa_log_fn log;
    void *log_user;
    clpsa_log_level log_level;

    char cache_dir[4096]; /* "" when the disk cache is off */
    char device_vendor_key[64], device_arch[128];
    char device_key[3 * CLPSA__NAME_CAPACITY];
    clpsa__param_set params;           /* generic < table < tuned cache, looked up once */
    int overrides[CLPSA__PARAM_COUNT]; /* 0: none */
    /* Set when a plan was refused because an overridden VARIANT cannot run it (so the tuner
     * can tell a candidate that does not apply from one that failed); written and read under
     * the context's lock. */
    bool override_refused;
    clpsa__program_entry *programs;
    size_t program_count, program_capacity;
    clpsa_cache_stats cache_stats;

    /* Threads may share a context (docs/api.md, "Threads"): lock guards what it shares and
     * changes after creation, the program list and its statistics and the parameter
     * overrides. Recursive, as a cache miss reports its failure while holding it. */
    pthread_mutex_t lock;
    /* Failures are recorded per thread (log.c) under this context's id, unique in the
     * process, so a thread reads its own last failure even while others fail. */
    unsigned long id;
};

void clpsa__lock(const clpsa_context *ctx);
void clpsa__unlock(const clpsa_context *ctx);
/* The calling thread's last failure on ctx ("" if none), what clpsa_context_last_error(ctx)
 * returns. */
const char *clpsa__context_error(const clpsa_context *ctx);

/* Records the failure detail in ctx->last_error (and logs it), returns status. */
clpsa_status clpsa__fail(clpsa_context *ctx, clpsa_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same with the raw OpenCL error code and its name appended. */
clpsa_status clpsa__fail_cl(clpsa_context *ctx, cl_int cl_error, const char *what);
/* Maps an OpenCL error to the closest clpsa status (out-of-memory codes map to OOM). */
clpsa_status clpsa__status_from_cl(cl_int cl_error);
const char *clpsa__cl_error_name(cl_int cl_error);
void clpsa__clear_error(clpsa_context *ctx);
/* The calling thread's record of failures that had no context (clpsa_context_last_error(NULL)). */
#define CLPSA__THREAD_ERROR_CAPACITY 4096
const char *clpsa__thread_error(void);
void clpsa__set_thread_error(const char *message);

void clpsa__log(const clpsa_context *ctx, clpsa_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
clpsa_log_level clpsa__log_level_from_env(void);
void clpsa__log_to_stderr(void *user, clpsa_log_level level, const char *message);

/* 64-bit FNV-1a, for cache keys and file names (not for security). */
uint64_t clpsa__hash64(const void *data, size_t size, uint64_t seed);
#define CLPSA__HASH_SEED 0xcbf29ce484222325ull

/* Device selection by spec (index or name substring) or default policy. */
clpsa_status clpsa__select_device(clpsa_context *ctx, const char *spec, cl_platform_id *platform,
                                  cl_device_id *device);

/* Kernel sources: embedded at build time, or read from $CLPSA_KERNEL_DIR. */
typedef struct clpsa__kernel_source {
    const char *name;
    const char *text;
    size_t size;
} clpsa__kernel_source;

/* Returns the text of cl/<name> (malloc'ed, NUL-terminated) in *text. */
clpsa_status clpsa__kernel_source_load(clpsa_context *ctx, const char *name, char **text,
                                       size_t *size);

/* Creates kernel `name` of the program made of the kernel files, joined in order, with the
 * options; the program is built or fetched from the memory/disk caches and owned by the
 * context, the kernel by the caller. A cached binary that cannot make the kernel is rebuilt
 * from source. */
clpsa_status clpsa__program_kernel(clpsa_context *ctx, const char *const *files, size_t count,
                                   const char *options, const char *name, cl_kernel *out);
void clpsa__program_cache_release(clpsa_context *ctx);

/* On-disk binary cache. A miss, a corrupt or a stale file returns false (with a log line for
 * the last two); a failed store is logged and otherwise ignored. */
bool clpsa__disk_cache_load(clpsa_context *ctx, const char *key, unsigned char **binary,
                            size_t *size);
void clpsa__disk_cache_store(clpsa_context *ctx, const char *key, const unsigned char *binary,
                             size_t size);
/* Checks a whole program cache file read into memory against the key it should hold: NULL
 * when every byte is as written (*binary then points into data), else why it is refused. */
const char *clpsa__disk_cache_check(const unsigned char *data, size_t size, const char *key,
                                    const unsigned char **binary, size_t *binary_size);
void clpsa__disk_cache_resolve_dir(const char *requested, char *out, size_t capacity);
/* Reads a file the library wrote for itself into memory (NUL-terminated, malloc'ed) when it is
 * a regular file of at most max_size bytes; never blocks on a FIFO or device. REJECTED says
 * why in `why`. */
typedef enum clpsa__file_result {
    CLPSA__FILE_MISSING,
    CLPSA__FILE_READ,
    CLPSA__FILE_REJECTED,
} clpsa__file_result;
clpsa__file_result clpsa__file_read_regular(const char *path, size_t max_size, unsigned char **data,
                                            size_t *size, char *why, size_t why_size);
/* mkdir -p; false (errno set) on failure. */
bool clpsa__make_dirs(const char *dir);

/* Kernel parameters of the context's device (param_lookup.c, param_cache.c). */
void clpsa__params_init(clpsa_context *ctx);
/* The effective value of a parameter for the next plan: override, else the looked-up one. */
int clpsa__param_value(const clpsa_context *ctx, clpsa__param_id id, clpsa__param_source *source);
void clpsa__params_cache_path(const clpsa_context *ctx, char *out, size_t size);
/* Reads the tuned cache of the device into values (0 = absent); false when absent or ignored
 * (a damaged or stale file is logged). */
bool clpsa__params_cache_load(clpsa_context *ctx, int *values);
/* Checks the text of a tuned-parameter file (NUL-terminated, size bytes) written for this
 * device and driver and fills values; false with the reason in `why`. */
bool clpsa__params_cache_parse(const char *text, size_t size, const char *device_key,
                               const char *driver, int *values, char *why, size_t why_size);
clpsa_status clpsa__params_cache_store(clpsa_context *ctx, const int *values);

/* Tensor description checks shared by plan creation and run. */
typedef struct clpsa__tensor {
    const char *name; /* "q", "k", "v", "out" */
    int64_t batch, heads, seq, dim;
    clpsa_strides strides;
    clpsa_dtype dtype;
} clpsa__tensor;

clpsa_status clpsa__tensor_check_strides(clpsa_context *ctx, const clpsa__tensor *t);
/* Bytes spanned from element 0 to the last element, inclusive. */
size_t clpsa__tensor_bytes(const clpsa__tensor *t);
clpsa_status clpsa__check_buffer(clpsa_context *ctx, const clpsa__tensor *t, cl_mem buffer);

#endif /* CLPSA_INTERNAL_H */
