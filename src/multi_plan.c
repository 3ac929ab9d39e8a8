/* SPDX-License-Identifier: Apache-2.0 */
/* Multi-device plans (clpsa_multi.h): the heads split over devices, one clpsa_plan per device,
 * slices moved by rectangular copies (same cl_context), sub-buffers (an aligned contiguous
 * slice) or host staging chained with user events (another cl_context). */
#include "plan_internal.h"

#include <clpsa/clpsa_multi.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { T_Q, T_K, T_V, T_OUT, T_COUNT };
static const char *const tensor_names[T_COUNT] = {"q", "k", "v", "out"};

typedef struct multi_device {
    clpsa_context *ctx;
    cl_command_queue queue; /* retained */
    clpsa_plan *plan;
    clpsa_multi_shard shard;
    bool same_context;            /* ctx's cl_context is the home device's */
    cl_mem staging[T_COUNT];      /* slice buffers in ctx when the tensor is not used in place */
    unsigned char *host[T_COUNT]; /* host staging when not same_context */
    cl_event last;                /* last command of the last whole-tensor run (home cl_context) */
} multi_device;

struct clpsa_multi_plan {
    int count, home;
    multi_device *dev;
    clpsa__tensor whole[T_COUNT]; /* the whole tensors of clpsa_multi_plan_run() */
    bool in_place[T_COUNT];       /* every device reads/writes this tensor via a sub-buffer */
    char last_error[CLPSA__THREAD_ERROR_CAPACITY];
};

/* Failure detail goes to the plan, or to the thread's record while there is no plan yet. */
__attribute__((format(printf, 3, 4))) static clpsa_status
mfail(clpsa_multi_plan *mp, clpsa_status status, const char *fmt, ...) {
    char message[CLPSA__THREAD_ERROR_CAPACITY];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    if (mp)
        snprintf(mp->last_error, sizeof mp->last_error, "%s", message);
    else
        clpsa__set_thread_error(message);
    return status;
}

static clpsa_status mfail_ctx(clpsa_multi_plan *mp, int index, clpsa_status status,
                              const clpsa_context *ctx) {
    return mfail(mp, status, "device %d (%s): %s", index, clpsa_context_device_name(ctx),
                 clpsa_context_last_error(ctx));
}

static clpsa_status mfail_cl(clpsa_multi_plan *mp, int index, cl_int err, const char *what) {
    return mfail(mp, clpsa__status_from_cl(err), "device %d: %s failed with OpenCL error %d (%s)",
                 index, what, (int)err, clpsa__cl_error_name(err));
}

void clpsa_multi_desc_init(clpsa_multi_desc *desc) {
    if (desc)
        memset(desc, 0, sizeof *desc);
}

clpsa_status clpsa_split_heads(int groups, int parts, const double *weights, int *counts) {
    if (!counts)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_split_heads: counts is NULL");
    if (groups < 1 || parts < 1 || parts > groups)
        return mfail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                     "%d parts of %d kv-head groups: every part needs at least one whole group, "
                     "so 1 <= parts <= groups (heads_kv)",
                     parts, groups);
    double sum = 0.0;
    for (int i = 0; i < parts; ++i) {
        const double w = weights ? weights[i] : 1.0;
        if (!isfinite(w) || !(w > 0.0))
            return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                         "weight %d = %g: weights must be finite and > 0", i, w);
        sum += w;
    }
    /* One group each, then the rest by largest remainder of the ideal shares. */
    const int rest = groups - parts;
    int given = 0;
    double remainders[parts];
    for (int i = 0; i < parts; ++i) {
        const double w = weights ? weights[i] : 1.0;
        const double ideal = fmax(0.0, groups * w / sum - 1.0);
        int whole = (int)floor(ideal);
        if (whole > rest - given)
            whole = rest - given;
        counts[i] = 1 + whole;
        given += whole;
        remainders[i] = ideal - whole;
    }
    while (given < rest) {
        int best = 0;
        for (int i = 1; i < parts; ++i)
            if (remainders[i] > remainders[best])
                best = i;
        counts[best] += 1;
        remainders[best] = -1.0;
        given += 1;
    }
    return CLPSA_OK;
}

/* Strides of a device's slice: the whole tensor's nesting of heads and tokens, contiguous. */
static clpsa_strides slice_strides(const clpsa__tensor *whole, int heads) {
    return whole->strides.head > whole->strides.seq
               ? clpsa_strides_bhnd(heads, whole->seq, whole->dim)
               : clpsa_strides_bnhd(heads, whole->seq, whole->dim);
}

static void shard_tensor(const clpsa__tensor *whole, int heads, clpsa__tensor *out) {
    *out = *whole;
    out->heads = heads;
    out->strides = slice_strides(whole, heads);
}

/* ---- Rectangular copies between a head slice of a whole tensor and its slice buffer ---- */
typedef enum copy_kind {
    COPY_TO_SLICE,   /* device copy whole -> slice buffer */
    COPY_FROM_SLICE, /* device copy slice buffer -> whole */
    READ_TO_HOST,    /* whole -> host slice */
    WRITE_FROM_HOST, /* host slice -> whole */
} copy_kind;

typedef struct copy_dim {
    int64_t count, whole, slice; /* count, and byte strides on each side */
} copy_dim;

/* The slice's byte layout as nested loops: a contiguous row of `row` bytes, then up to three
 * dimensions, innermost first. */
static int copy_dims(const clpsa__tensor *whole, int heads, size_t *row, copy_dim dims[3]) {
    const int64_t e = (int64_t)clpsa_dtype_size(whole->dtype);
    const bool heads_inner = whole->strides.head <= whole->strides.seq;
    const int64_t inner_count = heads_inner ? heads : whole->seq;
    const int64_t outer_count = heads_inner ? whole->seq : heads;
    const int64_t inner_stride = heads_inner ? whole->strides.head : whole->strides.seq;
    const int64_t outer_stride = heads_inner ? whole->strides.seq : whole->strides.head;
    const int64_t d = whole->dim;
    copy_dim all[3] = {{inner_count, inner_stride * e, d * e},
                       {outer_count, outer_stride * e, inner_count * d * e},
                       {whole->batch, whole->strides.batch * e, outer_count * inner_count * d * e}};
    int n = 0, first = 0;
    *row = (size_t)(d * e);
    if (inner_stride == d) { /* rows of the inner dimension are contiguous: one longer row */
        *row = (size_t)(inner_count * d * e);
        first = 1;
    }
    for (int i = first; i < 3; ++i)
        dims[n++] = all[i];
    return n;
}

static cl_int enqueue_rect(copy_kind kind, cl_command_queue queue, cl_mem whole, cl_mem slice,
                           unsigned char *host, size_t whole_offset, size_t slice_offset,
                           const size_t region[3], const copy_dim *d1, const copy_dim *d2,
                           cl_uint num_events, const cl_event *wait, cl_event *event) {
    const size_t w_row = d1 ? (size_t)d1->whole : 0, s_row = d1 ? (size_t)d1->slice : 0;
    const size_t w_slice = d2 ? (size_t)d2->whole : 0, s_slice = d2 ? (size_t)d2->slice : 0;
    const size_t w_origin[3] = {whole_offset, 0, 0}, s_origin[3] = {slice_offset, 0, 0};
    switch (kind) {
    case COPY_TO_SLICE:
        return clEnqueueCopyBufferRect(queue, whole, slice, w_origin, s_origin, region, w_row,
                                       w_slice, s_row, s_slice, num_events, wait, event);
    case COPY_FROM_SLICE:
        return clEnqueueCopyBufferRect(queue, slice, whole, s_origin, w_origin, region, s_row,
                                       s_slice, w_row, w_slice, num_events, wait, event);
    case READ_TO_HOST:
        return clEnqueueReadBufferRect(queue, whole, CL_FALSE, w_origin, s_origin, region, w_row,
                                       w_slice, s_row, s_slice, host, num_events, wait, event);
    case WRITE_FROM_HOST:
        return clEnqueueWriteBufferRect(queue, whole, CL_FALSE, w_origin, s_origin, region, w_row,
                                        w_slice, s_row, s_slice, host, num_events, wait, event);
    }
    return CL_INVALID_VALUE;
}

/* Joins the events of several commands into one (a marker), releasing them. */
static cl_int join_events(cl_command_queue queue, cl_event *events, cl_uint count, cl_event *out) {
    if (count == 1) {
        *out = events[0];
        return CL_SUCCESS;
    }
    const cl_int err = clEnqueueMarkerWithWaitList(queue, count, events, out);
    for (cl_uint i = 0; i < count; ++i)
        clReleaseEvent(events[i]);
    return err;
}

/* Enqueues the copy of the head slice [first, first + heads) of a whole tensor, as one
 * rectangular command where the pitches allow it, else one per batch entry (or per row of
 * rows); *event completes when all of them have. */
static cl_int copy_slice(copy_kind kind, cl_command_queue queue, const clpsa__tensor *whole,
                         cl_mem whole_buffer, int first, int heads, cl_mem slice,
                         unsigned char *host, cl_uint num_events, const cl_event *wait,
                         cl_event *event) {
    *event = NULL;
    size_t row = 0;
    copy_dim dims[3];
    const int n = copy_dims(whole, heads, &row, dims);
    const size_t base =
        (size_t)((int64_t)first * whole->strides.head * (int64_t)clpsa_dtype_size(whole->dtype));
    /* The first two dimensions go into one command when OpenCL's pitch rules hold (a slice
     * pitch a multiple of the row pitch and at least rows times it), else only the first. */
    int in_command = n >= 1 ? 1 : 0;
    if (n >= 2 && dims[1].whole % dims[0].whole == 0 &&
        dims[1].whole >= dims[0].count * dims[0].whole && dims[1].slice % dims[0].slice == 0 &&
        dims[1].slice >= dims[0].count * dims[0].slice)
        in_command = 2;
    size_t region[3] = {row, in_command >= 1 ? (size_t)dims[0].count : 1,
                        in_command >= 2 ? (size_t)dims[1].count : 1};
    int64_t loops = 1;
    for (int i = in_command; i < n; ++i)
        loops *= dims[i].count;
    cl_event stack_events[8];
    cl_event *events = loops <= 8 ? stack_events : malloc((size_t)loops * sizeof *events);
    if (!events)
        return CL_OUT_OF_HOST_MEMORY;
    cl_int err = CL_SUCCESS;
    int64_t done = 0;
    for (; done < loops && err == CL_SUCCESS; ++done) {
        int64_t rem = done, w_off = 0, s_off = 0;
        for (int i = in_command; i < n; ++i) {
            const int64_t idx = rem % dims[i].count;
            rem /= dims[i].count;
            w_off += idx * dims[i].whole;
            s_off += idx * dims[i].slice;
        }
        err = enqueue_rect(kind, queue, whole_buffer, slice, host, base + (size_t)w_off,
                           (size_t)s_off, region, in_command >= 1 ? &dims[0] : NULL,
                           in_command >= 2 ? &dims[1] : NULL, num_events, wait, &events[done]);
    }
    if (err != CL_SUCCESS)
        done -= 1; /* the failed command produced no event */
    if (err == CL_SUCCESS)
        err = join_events(queue, events, (cl_uint)done, event);
    else
        for (int64_t i = 0; i < done; ++i)
            clReleaseEvent(events[i]);
    if (events != stack_events)
        free(events);
    return err;
}

/* ---- Creation ---- */
static clpsa_status check_devices(const clpsa_multi_desc *multi) {
    if (!multi->devices)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_multi_desc.devices is NULL");
    if (multi->num_devices < 1)
        return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                     "clpsa_multi_desc.num_devices = %d: the device list must not be empty",
                     multi->num_devices);
    if (multi->home < 0 || multi->home >= multi->num_devices)
        return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                     "clpsa_multi_desc.home = %d: it must index the device list [0, %d)",
                     multi->home, multi->num_devices);
    if (multi->weights && multi->timed_weights)
        return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                     "clpsa_multi_desc: weights and timed_weights are both set; give weights or "
                     "ask for timed ones, not both");
    for (int i = 0; i < multi->num_devices; ++i) {
        const clpsa_multi_device *dv = &multi->devices[i];
        if (!dv->ctx)
            return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "device %d: ctx is NULL", i);
        for (int j = 0; j < i; ++j)
            if (multi->devices[j].ctx == dv->ctx)
                return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                             "devices %d and %d are the same clpsa_context: each device of a "
                             "multi-device plan needs its own context",
                             j, i);
        if (multi->weights && (!isfinite(multi->weights[i]) || !(multi->weights[i] > 0.0)))
            return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                         "device %d: weight = %g; weights must be finite and > 0 (weights = "
                         "NULL gives equal shares)",
                         i, multi->weights[i]);
        cl_command_queue queue = dv->queue ? dv->queue : clpsa_context_queue(dv->ctx);
        if (!queue)
            return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                         "device %d: queue is NULL and its context has no queue of its own", i);
        cl_context owner = NULL;
        cl_device_id device = NULL;
        cl_int err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof owner, &owner, NULL);
        if (err == CL_SUCCESS)
            err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device, &device, NULL);
        /* Only CL_INVALID_COMMAND_QUEUE blames the handle; running out of memory is not its
         * fault. */
        if (err != CL_SUCCESS && err != CL_INVALID_COMMAND_QUEUE)
            return mfail(NULL, clpsa__status_from_cl(err),
                         "device %d: clGetCommandQueueInfo failed with OpenCL error %d (%s)", i,
                         (int)err, clpsa__cl_error_name(err));
        if (err != CL_SUCCESS)
            return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                         "device %d: queue %p is not a valid command queue: OpenCL error %d (%s)",
                         i, (void *)queue, (int)err, clpsa__cl_error_name(err));
        if (owner != clpsa_context_cl_context(dv->ctx))
            return mfail(NULL, CLPSA_ERROR_WRONG_CONTEXT,
                         "device %d: queue %p belongs to cl_context %p, but its clpsa_context "
                         "wraps cl_context %p",
                         i, (void *)queue, (void *)owner,
                         (void *)clpsa_context_cl_context(dv->ctx));
        if (device != clpsa_context_device(dv->ctx))
            return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                         "device %d: queue %p is a queue of device %p, but its clpsa_context "
                         "uses device %p",
                         i, (void *)queue, (void *)device, (void *)clpsa_context_device(dv->ctx));
    }
    return CLPSA_OK;
}

static bool strides_unset(const clpsa_strides *s) {
    return s->batch == 0 && s->head == 0 && s->seq == 0 && s->dim == 0;
}

/* The whole tensors of desc, with the defaults clpsa_plan_create() would resolve. */
static clpsa_status whole_tensors(const clpsa_plan_desc *desc, clpsa_plan_desc *d,
                                  clpsa__tensor t[T_COUNT]) {
    *d = *desc;
    if (d->heads_kv == 0)
        d->heads_kv = d->heads_q;
    if (d->seq_k == 0)
        d->seq_k = d->seq_q;
    if (d->dtype == CLPSA_DTYPE_DEFAULT)
        d->dtype = CLPSA_DTYPE_FP32;
    if (d->out_dtype == CLPSA_DTYPE_DEFAULT)
        d->out_dtype = d->dtype;
    if (d->batch < 1 || d->heads_q < 1 || d->heads_kv < 1 || d->seq_q < 1 || d->seq_k < 1 ||
        d->head_dim < 1 || d->heads_q % d->heads_kv != 0)
        return mfail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                     "batch = %d, heads_q = %d, heads_kv = %d, seq_q = %d, seq_k = %d, head_dim "
                     "= %d: sizes must be >= 1 and heads_q a multiple of heads_kv",
                     d->batch, d->heads_q, d->heads_kv, d->seq_q, d->seq_k, d->head_dim);
    if (d->kv_capacity != 0 && d->kv_capacity != d->seq_k)
        return mfail(NULL, CLPSA_ERROR_UNSUPPORTED,
                     "kv_capacity = %d differs from seq_k = %d: multi-device plans have a fixed "
                     "key length (a growing key/value cache is for single-device dense plans)",
                     d->kv_capacity, d->seq_k);
    if (clpsa_dtype_size(d->dtype) == 0 || clpsa_dtype_size(d->out_dtype) == 0)
        return mfail(NULL, CLPSA_ERROR_INVALID_VALUE,
                     "dtype = %d, out_dtype = %d: they must be CLPSA_DTYPE_FP32, _FP16 or _BF16",
                     (int)d->dtype, (int)d->out_dtype);
    if (d->shard_heads_q == 0 && d->shard_head_first == 0)
        d->shard_heads_q = d->heads_q;
    const int heads[T_COUNT] = {d->heads_q, d->heads_kv, d->heads_kv, d->heads_q};
    const int seq[T_COUNT] = {d->seq_q, d->seq_k, d->seq_k, d->seq_q};
    clpsa_strides *strides[T_COUNT] = {&d->q_strides, &d->k_strides, &d->v_strides,
                                       &d->out_strides};
    for (int i = 0; i < T_COUNT; ++i) {
        if (strides_unset(strides[i]))
            *strides[i] = clpsa_strides_bhnd(heads[i], seq[i], d->head_dim);
        const clpsa__tensor x = {tensor_names[i],
                                 d->batch,
                                 heads[i],
                                 seq[i],
                                 d->head_dim,
                                 *strides[i],
                                 i == T_OUT ? d->out_dtype : d->dtype};
        t[i] = x;
    }
    return CLPSA_OK;
}

/* Largest CL_DEVICE_MEM_BASE_ADDR_ALIGN (bytes) over the devices of a cl_context: a
 * sub-buffer's origin must satisfy every device that may use it. */
static size_t context_alignment(cl_context cl_ctx) {
    cl_uint count = 0;
    if (clGetContextInfo(cl_ctx, CL_CONTEXT_NUM_DEVICES, sizeof count, &count, NULL) !=
            CL_SUCCESS ||
        count == 0 || count > 64)
        return 0;
    cl_device_id devices[64];
    if (clGetContextInfo(cl_ctx, CL_CONTEXT_DEVICES, count * sizeof devices[0], devices, NULL) !=
        CL_SUCCESS)
        return 0;
    size_t align = 1;
    for (cl_uint i = 0; i < count; ++i) {
        cl_uint bits = 0;
        if (clGetDeviceInfo(devices[i], CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof bits, &bits, NULL) !=
            CL_SUCCESS)
            return 0;
        if (bits / 8 > align)
            align = bits / 8;
    }
    return align;
}

/* A tensor is used in place when every device shares the home cl_context and its slice is one
 * contiguous range laid out as the slice buffer would be, at an aligned origin. */
static bool tensor_in_place(const clpsa_multi_plan *mp, int t, size_t align) {
    const clpsa__tensor *w = &mp->whole[t];
    if (align == 0 || w->batch != 1)
        return false;
    for (int i = 0; i < mp->count; ++i) {
        const multi_device *dv = &mp->dev[i];
        if (!dv->same_context)
            return false;
        const int first = t == T_Q || t == T_OUT ? dv->shard.head_first : dv->shard.kv_first;
        const int heads = t == T_Q || t == T_OUT ? dv->shard.heads_q : dv->shard.heads_kv;
        const clpsa_strides s = slice_strides(w, heads);
        if (s.head != w->strides.head || s.seq != w->strides.seq)
            return false;
        const size_t origin =
            (size_t)((int64_t)first * w->strides.head * (int64_t)clpsa_dtype_size(w->dtype));
        if (origin % align != 0)
            return false;
    }
    return true;
}

static void fill_host(unsigned char *dst, size_t bytes, clpsa_dtype dtype) {
    /* Deterministic values in [-1, 1) for the timing runs (their results are discarded). */
    const size_t e = clpsa_dtype_size(dtype), count = bytes / e;
    float chunk[256];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < count; i += 256) {
        const size_t n = count - i < 256 ? count - i : 256;
        for (size_t j = 0; j < n; ++j) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            chunk[j] = (float)((x >> 40) & 0xffff) / 32768.0f - 1.0f;
        }
        clpsa_convert_from_float(dtype, chunk, dst + i * e, n);
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Weight of a device: 1 / ms of one kv-head group's plan (warm-up run, then two timed). */
static clpsa_status time_device(int index, clpsa_context *ctx, cl_command_queue queue,
                                const clpsa_plan_desc *d, const clpsa__tensor whole[T_COUNT],
                                double *weight) {
    clpsa_plan_desc one = *d;
    const int group = d->heads_q / d->heads_kv;
    one.heads_q = group;
    one.heads_kv = 1;
    one.shard_head_first = 0;
    one.shard_heads_q = 0;
    clpsa__tensor t[T_COUNT];
    for (int i = 0; i < T_COUNT; ++i)
        shard_tensor(&whole[i], i == T_Q || i == T_OUT ? group : 1, &t[i]);
    one.q_strides = t[T_Q].strides;
    one.k_strides = t[T_K].strides;
    one.v_strides = t[T_V].strides;
    one.out_strides = t[T_OUT].strides;
    clpsa_plan *plan = NULL;
    cl_mem buffers[T_COUNT] = {NULL};
    unsigned char *host = NULL;
    clpsa_status status = clpsa_plan_create(ctx, &one, &plan);
    for (int i = 0; i < T_COUNT && status == CLPSA_OK; ++i) {
        const size_t bytes = clpsa__tensor_bytes(&t[i]);
        status = clpsa_context_alloc(ctx, bytes, &buffers[i]);
        if (status == CLPSA_OK && i != T_OUT) {
            host = malloc(bytes);
            if (!host) {
                status = CLPSA_ERROR_OUT_OF_MEMORY;
                break;
            }
            fill_host(host, bytes, t[i].dtype);
            const cl_int err =
                clEnqueueWriteBuffer(queue, buffers[i], CL_TRUE, 0, bytes, host, 0, NULL, NULL);
            free(host);
            host = NULL;
            if (err != CL_SUCCESS)
                status = clpsa__fail_cl(ctx, err, "clEnqueueWriteBuffer(timing input)");
        }
    }
    double t0 = 0.0;
    for (int run = 0; run < 3 && status == CLPSA_OK; ++run) {
        if (run == 1)
            t0 = now_ms();
        status = clpsa_plan_run(plan, queue, buffers[T_Q], buffers[T_K], buffers[T_V],
                                buffers[T_OUT], 0, NULL, NULL);
        if (status == CLPSA_OK && run != 1) {
            const cl_int err = clFinish(queue);
            if (err != CL_SUCCESS)
                status = clpsa__fail_cl(ctx, err, "clFinish(timing run)");
        }
    }
    if (status == CLPSA_OK) {
        const double ms = (now_ms() - t0) / 2.0;
        *weight = 1.0 / (ms > 1e-3 ? ms : 1e-3);
    }
    for (int i = 0; i < T_COUNT; ++i)
        if (buffers[i])
            clReleaseMemObject(buffers[i]);
    clpsa_plan_destroy(plan);
    if (status != CLPSA_OK)
        return mfail_ctx(NULL, index, status, ctx);
    return CLPSA_OK;
}

static clpsa_status create_device(clpsa_multi_plan *mp, int index, const clpsa_plan_desc *d) {
    multi_device *dv = &mp->dev[index];
    clpsa_plan_desc sd = *d;
    sd.heads_q = dv->shard.heads_q;
    sd.heads_kv = dv->shard.heads_kv;
    sd.shard_head_first = d->shard_head_first + dv->shard.head_first;
    sd.shard_heads_q = d->shard_heads_q;
    clpsa__tensor t[T_COUNT];
    for (int i = 0; i < T_COUNT; ++i)
        shard_tensor(&mp->whole[i], i == T_Q || i == T_OUT ? sd.heads_q : sd.heads_kv, &t[i]);
    sd.q_strides = dv->shard.q_strides = t[T_Q].strides;
    sd.k_strides = dv->shard.k_strides = t[T_K].strides;
    sd.v_strides = dv->shard.v_strides = t[T_V].strides;
    sd.out_strides = dv->shard.out_strides = t[T_OUT].strides;
    dv->shard.q_bytes = clpsa__tensor_bytes(&t[T_Q]);
    dv->shard.k_bytes = clpsa__tensor_bytes(&t[T_K]);
    dv->shard.v_bytes = clpsa__tensor_bytes(&t[T_V]);
    dv->shard.out_bytes = clpsa__tensor_bytes(&t[T_OUT]);
    clpsa_status status = clpsa_plan_create(dv->ctx, &sd, &dv->plan);
    if (status != CLPSA_OK)
        return mfail_ctx(NULL, index, status, dv->ctx);
    return CLPSA_OK;
}

static clpsa_status create_staging(clpsa_multi_plan *mp, int index) {
    multi_device *dv = &mp->dev[index];
    const size_t bytes[T_COUNT] = {dv->shard.q_bytes, dv->shard.k_bytes, dv->shard.v_bytes,
                                   dv->shard.out_bytes};
    for (int t = 0; t < T_COUNT; ++t) {
        if (mp->in_place[t])
            continue;
        const clpsa_status status = clpsa_context_alloc(dv->ctx, bytes[t], &dv->staging[t]);
        if (status != CLPSA_OK)
            return mfail_ctx(NULL, index, status, dv->ctx);
        if (!dv->same_context) {
            dv->host[t] = malloc(bytes[t]);
            if (!dv->host[t])
                return mfail(NULL, CLPSA_ERROR_OUT_OF_MEMORY,
                             "device %d: host staging of %s (%zu bytes): out of memory", index,
                             tensor_names[t], bytes[t]);
        }
    }
    return CLPSA_OK;
}

clpsa_status clpsa_multi_plan_create(const clpsa_multi_desc *multi, const clpsa_plan_desc *desc,
                                     clpsa_multi_plan **out) {
    if (out)
        *out = NULL;
    if (!multi || !desc || !out)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                     "clpsa_multi_plan_create: multi (%p), desc (%p) and out (%p) must not be "
                     "NULL",
                     (const void *)multi, (const void *)desc, (void *)out);
    clpsa__set_thread_error("");
    clpsa_status status = check_devices(multi);
    clpsa_plan_desc d;
    clpsa__tensor whole[T_COUNT];
    if (status == CLPSA_OK)
        status = whole_tensors(desc, &d, whole);
    if (status != CLPSA_OK)
        return status;
    const int n = multi->num_devices;
    if (n > d.heads_kv)
        return mfail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                     "%d devices but heads_kv = %d kv-head groups: each device needs at least "
                     "one whole group (a kv head with the heads_q / heads_kv query heads that "
                     "share it)",
                     n, d.heads_kv);
    clpsa_context *home_ctx = multi->devices[multi->home].ctx;
    for (int i = 0; i < T_COUNT; ++i) {
        status = clpsa__tensor_check_strides(home_ctx, &whole[i]);
        if (status != CLPSA_OK)
            return mfail_ctx(NULL, multi->home, status, home_ctx);
    }

    clpsa_multi_plan *mp = calloc(1, sizeof *mp);
    int *groups = calloc((size_t)n, sizeof *groups);
    double *weights = calloc((size_t)n, sizeof *weights);
    if (mp)
        mp->dev = calloc((size_t)n, sizeof *mp->dev);
    if (!mp || !mp->dev || !groups || !weights) {
        status = mfail(NULL, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_multi_plan_create: out of memory");
        goto fail;
    }
    mp->count = n;
    mp->home = multi->home;
    memcpy(mp->whole, whole, sizeof whole);
    const cl_context home_cl = clpsa_context_cl_context(home_ctx);
    for (int i = 0; i < n; ++i) {
        multi_device *dv = &mp->dev[i];
        dv->ctx = multi->devices[i].ctx;
        dv->queue =
            multi->devices[i].queue ? multi->devices[i].queue : clpsa_context_queue(dv->ctx);
        clRetainCommandQueue(dv->queue);
        dv->same_context = clpsa_context_cl_context(dv->ctx) == home_cl;
        weights[i] = multi->weights ? multi->weights[i] : 1.0;
    }
    for (int i = 0; i < n && multi->timed_weights; ++i) {
        status = time_device(i, mp->dev[i].ctx, mp->dev[i].queue, &d, whole, &weights[i]);
        if (status != CLPSA_OK)
            goto fail;
    }
    status = clpsa_split_heads(d.heads_kv, n, weights, groups);
    if (status != CLPSA_OK)
        goto fail;
    const int group = d.heads_q / d.heads_kv;
    for (int i = 0, g = 0; i < n; g += groups[i], ++i) {
        clpsa_multi_shard *s = &mp->dev[i].shard;
        s->kv_first = g;
        s->heads_kv = groups[i];
        s->head_first = g * group;
        s->heads_q = groups[i] * group;
        s->weight = weights[i];
        status = create_device(mp, i, &d);
        if (status != CLPSA_OK)
            goto fail;
    }
    const size_t align = context_alignment(home_cl);
    for (int t = 0; t < T_COUNT; ++t)
        mp->in_place[t] = tensor_in_place(mp, t, align);
    for (int i = 0; i < n; ++i) {
        const multi_device *dv = &mp->dev[i];
        clpsa__log(home_ctx, CLPSA_LOG_INFO,
                   "multi-device plan: device %d (%s): query heads [%d, %d), kv heads [%d, %d), "
                   "weight %g; q %s, k %s, v %s, out %s",
                   i, clpsa_context_device_name(dv->ctx), dv->shard.head_first,
                   dv->shard.head_first + dv->shard.heads_q, dv->shard.kv_first,
                   dv->shard.kv_first + dv->shard.heads_kv, dv->shard.weight,
                   mp->in_place[T_Q]  ? "in place"
                   : dv->same_context ? "copied"
                                      : "via host",
                   mp->in_place[T_K]  ? "in place"
                   : dv->same_context ? "copied"
                                      : "via host",
                   mp->in_place[T_V]  ? "in place"
                   : dv->same_context ? "copied"
                                      : "via host",
                   mp->in_place[T_OUT] ? "in place"
                   : dv->same_context  ? "copied"
                                       : "via host");
    }
    for (int i = 0; i < n; ++i) {
        status = create_staging(mp, i);
        if (status != CLPSA_OK)
            goto fail;
    }
    free(groups);
    free(weights);
    *out = mp;
    return CLPSA_OK;
fail:
    free(groups);
    free(weights);
    clpsa_multi_plan_destroy(mp);
    return status;
}

void clpsa_multi_plan_destroy(clpsa_multi_plan *mp) {
    if (!mp)
        return;
    for (int i = 0; mp->dev && i < mp->count; ++i)
        if (mp->dev[i].queue)
            clFinish(mp->dev[i].queue);
    for (int i = 0; mp->dev && i < mp->count; ++i) {
        multi_device *dv = &mp->dev[i];
        clpsa_plan_destroy(dv->plan);
        for (int t = 0; t < T_COUNT; ++t) {
            if (dv->staging[t])
                clReleaseMemObject(dv->staging[t]);
            free(dv->host[t]);
        }
        if (dv->last)
            clReleaseEvent(dv->last);
        if (dv->queue)
            clReleaseCommandQueue(dv->queue);
    }
    free(mp->dev);
    free(mp);
}

const char *clpsa_multi_plan_last_error(const clpsa_multi_plan *mp) {
    return mp ? mp->last_error : "";
}

int clpsa_multi_plan_device_count(const clpsa_multi_plan *mp) {
    return mp ? mp->count : 0;
}

clpsa_status clpsa_multi_plan_shard(const clpsa_multi_plan *mp, int index, clpsa_multi_shard *out) {
    if (!mp || !out)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                     "clpsa_multi_plan_shard: mp (%p) and out (%p) must not be NULL",
                     (const void *)mp, (void *)out);
    if (index < 0 || index >= mp->count)
        return mfail((clpsa_multi_plan *)mp, CLPSA_ERROR_INVALID_VALUE,
                     "clpsa_multi_plan_shard: index = %d is outside the device list [0, %d)", index,
                     mp->count);
    *out = mp->dev[index].shard;
    return CLPSA_OK;
}

clpsa_plan *clpsa_multi_plan_device_plan(const clpsa_multi_plan *mp, int index) {
    return mp && index >= 0 && index < mp->count ? mp->dev[index].plan : NULL;
}

/* ---- Runs ---- */
static clpsa_status check_wait_list(clpsa_multi_plan *mp, cl_uint num_events,
                                    const cl_event *wait_list) {
    if (num_events > 0 && !wait_list)
        return mfail(mp, CLPSA_ERROR_NULL_ARGUMENT, "num_events = %u but wait_list is NULL",
                     num_events);
    if (num_events == 0 && wait_list)
        return mfail(mp, CLPSA_ERROR_INVALID_VALUE,
                     "wait_list is set but num_events = 0 (OpenCL requires both or neither)");
    return CLPSA_OK;
}

static void release_events(cl_event *events, int count) {
    for (int i = 0; events && i < count; ++i)
        if (events[i]) {
            clReleaseEvent(events[i]);
            events[i] = NULL;
        }
}

/* Completes a user event from the callback of the command it stands for (another cl_context),
 * passing an error on; the callback holds its own reference. */
static void CL_CALLBACK forward_status(cl_event event, cl_int status, void *user) {
    (void)event;
    cl_event target = (cl_event)user;
    clSetUserEventStatus(target, status < 0 ? status : CL_COMPLETE);
    clReleaseEvent(target);
}

/* Makes `user` (a user event) complete when `source` does. On failure the user event is failed
 * at once, so commands waiting for it do not hang. */
static cl_int forward_event(cl_event source, cl_event user) {
    clRetainEvent(user);
    const cl_int err = clSetEventCallback(source, CL_COMPLETE, forward_status, user);
    if (err != CL_SUCCESS) {
        clSetUserEventStatus(user, -1);
        clReleaseEvent(user);
    }
    return err;
}

typedef struct run_state {
    cl_mem slice[T_COUNT]; /* what the device plan reads and writes */
    cl_mem sub[T_COUNT];   /* sub-buffers created for this run (released at the end) */
    cl_event inputs_ready; /* device cl_context: every input slice is in place */
    cl_event ran;          /* device cl_context: the device plan's last command */
    cl_event host_in_done; /* home cl_context: host staging filled (another cl_context) */
    cl_event user_in;      /* device cl_context: stands for host_in_done */
} run_state;

static clpsa_status stage_inputs(clpsa_multi_plan *mp, int i, cl_mem const whole_buffers[T_COUNT],
                                 cl_uint num_events, const cl_event *wait_list, run_state *rs) {
    multi_device *dv = &mp->dev[i];
    multi_device *home = &mp->dev[mp->home];
    cl_event waits[64];
    cl_uint nw = 0;
    if (num_events + 1 > 64)
        return mfail(mp, CLPSA_ERROR_INVALID_VALUE, "num_events = %u: at most 63 events",
                     num_events);
    for (cl_uint e = 0; e < num_events; ++e)
        waits[nw++] = wait_list[e];
    if (dv->last)
        waits[nw++] = dv->last; /* the staging buffers are free again */
    cl_event ready[3] = {NULL};
    int nready = 0;
    cl_int err = CL_SUCCESS;
    for (int t = 0; t < T_COUNT; ++t) {
        const int first = t == T_Q || t == T_OUT ? dv->shard.head_first : dv->shard.kv_first;
        const int heads = t == T_Q || t == T_OUT ? dv->shard.heads_q : dv->shard.heads_kv;
        if (mp->in_place[t]) {
            const clpsa__tensor *w = &mp->whole[t];
            cl_buffer_region region;
            region.origin =
                (size_t)((int64_t)first * w->strides.head * (int64_t)clpsa_dtype_size(w->dtype));
            clpsa__tensor s;
            shard_tensor(w, heads, &s);
            region.size = clpsa__tensor_bytes(&s);
            /* flags 0: the parent's access flags, whatever the caller created it with */
            rs->sub[t] =
                clCreateSubBuffer(whole_buffers[t], 0, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
            if (err != CL_SUCCESS)
                return mfail_cl(mp, i, err, "clCreateSubBuffer(head slice)");
            rs->slice[t] = rs->sub[t];
            continue;
        }
        rs->slice[t] = dv->staging[t];
        if (t == T_OUT)
            continue;
        if (dv->same_context)
            err = copy_slice(COPY_TO_SLICE, dv->queue, &mp->whole[t], whole_buffers[t], first,
                             heads, dv->staging[t], NULL, nw, nw ? waits : NULL, &ready[nready]);
        else
            err = copy_slice(READ_TO_HOST, home->queue, &mp->whole[t], whole_buffers[t], first,
                             heads, NULL, dv->host[t], nw, nw ? waits : NULL, &ready[nready]);
        if (err != CL_SUCCESS) {
            release_events(ready, nready);
            return mfail_cl(mp, i, err, "copying an input slice");
        }
        ++nready;
    }
    if (nready == 0) {
        /* every input in place: the plan waits for the caller's list directly */
        if (nw > 0) {
            err = clEnqueueMarkerWithWaitList(dv->queue, nw, waits, &rs->inputs_ready);
            if (err != CL_SUCCESS)
                return mfail_cl(mp, i, err, "clEnqueueMarkerWithWaitList");
        }
        return CLPSA_OK;
    }
    if (dv->same_context) {
        err = join_events(dv->queue, ready, (cl_uint)nready, &rs->inputs_ready);
        return err == CL_SUCCESS ? CLPSA_OK : mfail_cl(mp, i, err, "joining input copies");
    }
    err = join_events(home->queue, ready, (cl_uint)nready, &rs->host_in_done);
    if (err != CL_SUCCESS)
        return mfail_cl(mp, i, err, "joining input reads");
    rs->user_in = clCreateUserEvent(clpsa_context_cl_context(dv->ctx), &err);
    if (err != CL_SUCCESS)
        return mfail_cl(mp, i, err, "clCreateUserEvent");
    cl_event writes[3];
    int nwrites = 0;
    for (int t = 0; t < T_OUT && err == CL_SUCCESS; ++t) {
        if (mp->in_place[t])
            continue;
        const size_t bytes = t == T_Q   ? dv->shard.q_bytes
                             : t == T_K ? dv->shard.k_bytes
                                        : dv->shard.v_bytes;
        err = clEnqueueWriteBuffer(dv->queue, dv->staging[t], CL_FALSE, 0, bytes, dv->host[t], 1,
                                   &rs->user_in, &writes[nwrites]);
        if (err == CL_SUCCESS)
            ++nwrites;
    }
    if (err == CL_SUCCESS)
        err = join_events(dv->queue, writes, (cl_uint)nwrites, &rs->inputs_ready);
    else
        release_events(writes, nwrites);
    if (err != CL_SUCCESS) {
        clSetUserEventStatus(rs->user_in, -1);
        return mfail_cl(mp, i, err, "writing input slices");
    }
    err = forward_event(rs->host_in_done, rs->user_in);
    return err == CL_SUCCESS ? CLPSA_OK : mfail_cl(mp, i, err, "clSetEventCallback");
}

/* Output slice back into the whole tensor, on the home queue (one device writes the whole
 * buffer, so no two devices write one cl_mem concurrently); *done is in the home context. */
static clpsa_status unstage_output(clpsa_multi_plan *mp, int i, cl_mem whole_out, run_state *rs,
                                   cl_event *done) {
    multi_device *dv = &mp->dev[i];
    multi_device *home = &mp->dev[mp->home];
    cl_int err = CL_SUCCESS;
    if (mp->in_place[T_OUT]) {
        *done = rs->ran;
        clRetainEvent(*done);
        return CLPSA_OK;
    }
    if (dv->same_context) {
        err = copy_slice(COPY_FROM_SLICE, home->queue, &mp->whole[T_OUT], whole_out,
                         dv->shard.head_first, dv->shard.heads_q, dv->staging[T_OUT], NULL, 1,
                         &rs->ran, done);
        return err == CL_SUCCESS ? CLPSA_OK : mfail_cl(mp, i, err, "copying the output slice");
    }
    cl_event read = NULL;
    err = clEnqueueReadBuffer(dv->queue, dv->staging[T_OUT], CL_FALSE, 0, dv->shard.out_bytes,
                              dv->host[T_OUT], 1, &rs->ran, &read);
    if (err != CL_SUCCESS)
        return mfail_cl(mp, i, err, "clEnqueueReadBuffer(output slice)");
    cl_event user = clCreateUserEvent(clpsa_context_cl_context(home->ctx), &err);
    if (err != CL_SUCCESS) {
        clReleaseEvent(read);
        return mfail_cl(mp, i, err, "clCreateUserEvent");
    }
    err =
        copy_slice(WRITE_FROM_HOST, home->queue, &mp->whole[T_OUT], whole_out, dv->shard.head_first,
                   dv->shard.heads_q, NULL, dv->host[T_OUT], 1, &user, done);
    if (err != CL_SUCCESS) {
        clSetUserEventStatus(user, -1);
        clReleaseEvent(user);
        clReleaseEvent(read);
        return mfail_cl(mp, i, err, "writing the output slice");
    }
    err = forward_event(read, user);
    clReleaseEvent(user);
    clReleaseEvent(read);
    if (err != CL_SUCCESS) {
        /* the write waits for a failed user event: it will not run, and the caller gets no
         * event for it */
        clReleaseEvent(*done);
        *done = NULL;
        return mfail_cl(mp, i, err, "clSetEventCallback");
    }
    return CLPSA_OK;
}

static void release_run_state(run_state *rs) {
    for (int t = 0; t < T_COUNT; ++t)
        if (rs->sub[t])
            clReleaseMemObject(rs->sub[t]);
    cl_event *events[] = {&rs->inputs_ready, &rs->ran, &rs->host_in_done, &rs->user_in};
    for (size_t e = 0; e < sizeof events / sizeof events[0]; ++e)
        if (*events[e])
            clReleaseEvent(*events[e]);
    memset(rs, 0, sizeof *rs);
}

static void flush_all(clpsa_multi_plan *mp) {
    for (int i = 0; i < mp->count; ++i)
        clFlush(mp->dev[i].queue);
}

clpsa_status clpsa_multi_plan_run(clpsa_multi_plan *mp, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                                  cl_uint num_events, const cl_event *wait_list, cl_event *events) {
    if (!mp)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_multi_plan_run: mp is NULL");
    for (int i = 0; events && i < mp->count; ++i)
        events[i] = NULL;
    mp->last_error[0] = '\0';
    clpsa_status status = check_wait_list(mp, num_events, wait_list);
    if (status != CLPSA_OK)
        return status;
    const cl_mem buffers[T_COUNT] = {q, k, v, out};
    clpsa_context *home_ctx = mp->dev[mp->home].ctx;
    for (int t = 0; t < T_COUNT; ++t) {
        status = clpsa__check_buffer(home_ctx, &mp->whole[t], buffers[t]);
        if (status != CLPSA_OK)
            return mfail(mp, status, "home device %d: %s", mp->home,
                         clpsa_context_last_error(home_ctx));
        if (t < T_OUT && buffers[t] == out)
            return mfail(mp, CLPSA_ERROR_INVALID_VALUE,
                         "buffer out is the same cl_mem as input %s: the output must not alias "
                         "an input",
                         tensor_names[t]);
    }
    run_state *rs = calloc((size_t)mp->count, sizeof *rs);
    if (!rs)
        return mfail(mp, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_multi_plan_run: out of memory");
    /* Phase order keeps in-order queues concurrent: every input transfer first (the home
     * queue's host reads do not wait behind a device's run), then the runs, then the outputs. */
    int i = 0;
    for (; i < mp->count && status == CLPSA_OK; ++i)
        status = stage_inputs(mp, i, buffers, num_events, wait_list, &rs[i]);
    for (i = 0; i < mp->count && status == CLPSA_OK; ++i) {
        multi_device *dv = &mp->dev[i];
        const cl_uint nw = rs[i].inputs_ready ? 1 : 0;
        status = clpsa_plan_run(dv->plan, dv->queue, rs[i].slice[T_Q], rs[i].slice[T_K],
                                rs[i].slice[T_V], rs[i].slice[T_OUT], nw,
                                nw ? &rs[i].inputs_ready : NULL, &rs[i].ran);
        if (status != CLPSA_OK)
            status = mfail_ctx(mp, i, status, dv->ctx);
    }
    for (i = 0; i < mp->count && status == CLPSA_OK; ++i) {
        cl_event done = NULL;
        status = unstage_output(mp, i, out, &rs[i], &done);
        if (status == CLPSA_OK) {
            multi_device *dv = &mp->dev[i];
            if (dv->last)
                clReleaseEvent(dv->last);
            dv->last = done;
            if (events) {
                clRetainEvent(done);
                events[i] = done;
            }
        }
    }
    flush_all(mp);
    for (i = 0; i < mp->count; ++i)
        release_run_state(&rs[i]);
    free(rs);
    if (status != CLPSA_OK && events)
        release_events(events, mp->count);
    return status;
}

clpsa_status clpsa_multi_plan_run_sliced(clpsa_multi_plan *mp, const cl_mem *q, const cl_mem *k,
                                         const cl_mem *v, const cl_mem *out, cl_uint num_events,
                                         const cl_event *wait_list, cl_event *events) {
    if (!mp)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_multi_plan_run_sliced: mp is NULL");
    for (int i = 0; events && i < mp->count; ++i)
        events[i] = NULL;
    mp->last_error[0] = '\0';
    if (!q || !k || !v || !out)
        return mfail(mp, CLPSA_ERROR_NULL_ARGUMENT,
                     "clpsa_multi_plan_run_sliced: the arrays q (%p), k (%p), v (%p) and out "
                     "(%p) must not be NULL",
                     (const void *)q, (const void *)k, (const void *)v, (const void *)out);
    clpsa_status status = check_wait_list(mp, num_events, wait_list);
    if (status != CLPSA_OK)
        return status;
    for (int i = 1; i < mp->count && num_events > 0; ++i)
        if (clpsa_context_cl_context(mp->dev[i].ctx) != clpsa_context_cl_context(mp->dev[0].ctx))
            return mfail(mp, CLPSA_ERROR_WRONG_CONTEXT,
                         "a wait list is given to every device, but devices 0 and %d belong to "
                         "different cl_contexts; wait on the host or pass no wait list",
                         i);
    for (int i = 0; i < mp->count && status == CLPSA_OK; ++i) {
        multi_device *dv = &mp->dev[i];
        status = clpsa_plan_run(dv->plan, dv->queue, q[i], k[i], v[i], out[i], num_events,
                                wait_list, events ? &events[i] : NULL);
        if (status != CLPSA_OK)
            status = mfail_ctx(mp, i, status, dv->ctx);
    }
    flush_all(mp);
    if (status != CLPSA_OK && events)
        release_events(events, mp->count);
    return status;
}

clpsa_status clpsa_multi_plan_finish(clpsa_multi_plan *mp) {
    if (!mp)
        return mfail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_multi_plan_finish: mp is NULL");
    for (int i = 0; i < mp->count; ++i) {
        const cl_int err = clFinish(mp->dev[i].queue);
        if (err != CL_SUCCESS)
            return mfail_cl(mp, i, err, "clFinish");
    }
    return CLPSA_OK;
}
