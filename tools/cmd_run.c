/* `clpsa run`: times attention on Q, K, V read from .npy files, or on a built-in random
 * problem whose output is checked against a double-precision computation done here, so one
 * command answers both "how fast is it on this device" and "is it right on this device". */
#include "tool_common.h"

#include <clpsa/clpsa_npy.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMMAND "run"
#define DEFAULT_REPS 5
#define CHECK_ROWS 16
#define MESSAGE 1024

static void usage(FILE *out) {
    fprintf(out,
            "usage: clpsa run [options]\n"
            "\n"
            "Times attention (median device time of several runs after a warm-up). Without\n"
            "--q/--k/--v it runs a built-in random problem (B=1, H=4, N=1024, D=64) and checks\n"
            "%d output rows against a double-precision computation.\n"
            "\n"
            "options:\n"
            "  --device SPEC     device index (see `clpsa devices`) or part of its name\n"
            "  --q F --k F --v F  inputs: .npy float32 or float16, shape [B, H, N, D]; K and V\n"
            "                    share one shape; B and D equal Q's; Q's heads a multiple of\n"
            "                    K's; the key length may differ from the query length\n"
            "  --bnhd            the inputs (and --out) are [B, N, H, D] instead\n"
            "  --out F           write the output as a float32 .npy in the inputs' layout\n"
            "  --dtype T         storage of Q, K, V on the device: fp32, fp16 or bf16\n"
            "                    (default: fp16 for float16 inputs, else fp32)\n"
            "  --causal          bottom-right aligned causal mask\n"
            "  --scale X         logit scale (default 1/sqrt(D))\n"
            "  --dense           exact dense attention (the only method for now)\n"
            "  --reps N          timed runs (default %d)\n"
            "  --seed N          seed of the built-in problem (default 1)\n"
            "  --json            print one JSON object on stdout instead of text\n"
            "\n"
            "exit status: 0 success, 1 failure (bad input file, library error, failed check),\n"
            "2 wrong command line\n",
            CHECK_ROWS, DEFAULT_REPS);
}

typedef struct run_options {
    const char *device, *q, *k, *v, *out;
    bool bnhd, causal, json;
    clpsa_dtype dtype; /* DEFAULT: from the inputs */
    double scale;      /* 0: the library's default */
    int reps;
    uint64_t seed;
} run_options;

static int parse_options(int argc, char **argv, run_options *o, bool *help) {
    memset(o, 0, sizeof *o);
    o->reps = DEFAULT_REPS;
    o->seed = 1;
    *help = false;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const char *value = NULL;
        const char **path_slot = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return CLPSA__EXIT_OK;
        } else if (!strcmp(a, "--bnhd")) {
            o->bnhd = true;
        } else if (!strcmp(a, "--causal")) {
            o->causal = true;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--dense")) {
            /* The default and, until PSA lands in the tool, the only method. */
        } else if (clpsa__tool_option(argc, argv, &i, "--device", &value)) {
            path_slot = &o->device;
        } else if (clpsa__tool_option(argc, argv, &i, "--q", &value)) {
            path_slot = &o->q;
        } else if (clpsa__tool_option(argc, argv, &i, "--k", &value)) {
            path_slot = &o->k;
        } else if (clpsa__tool_option(argc, argv, &i, "--v", &value)) {
            path_slot = &o->v;
        } else if (clpsa__tool_option(argc, argv, &i, "--out", &value)) {
            path_slot = &o->out;
        } else if (clpsa__tool_option(argc, argv, &i, "--dtype", &value)) {
            if (!value)
                return clpsa__tool_usage_error(COMMAND, "--dtype needs a value");
            if (!strcmp(value, "fp32"))
                o->dtype = CLPSA_DTYPE_FP32;
            else if (!strcmp(value, "fp16"))
                o->dtype = CLPSA_DTYPE_FP16;
            else if (!strcmp(value, "bf16"))
                o->dtype = CLPSA_DTYPE_BF16;
            else
                return clpsa__tool_usage_error(COMMAND, "--dtype '%s': use fp32, fp16, bf16",
                                               value);
        } else if (clpsa__tool_option(argc, argv, &i, "--scale", &value)) {
            if (!clpsa__tool_parse_double(value, &o->scale) || o->scale == 0.0)
                return clpsa__tool_usage_error(COMMAND, "--scale '%s': need a non-zero number",
                                               value ? value : "");
        } else if (clpsa__tool_option(argc, argv, &i, "--reps", &value)) {
            long reps = 0;
            if (!clpsa__tool_parse_int(value, 1, 100000, &reps))
                return clpsa__tool_usage_error(COMMAND, "--reps '%s': need 1 to 100000",
                                               value ? value : "");
            o->reps = (int)reps;
        } else if (clpsa__tool_option(argc, argv, &i, "--seed", &value)) {
            long seed = 0;
            if (!clpsa__tool_parse_int(value, 0, LONG_MAX, &seed))
                return clpsa__tool_usage_error(COMMAND, "--seed '%s': need an integer >= 0",
                                               value ? value : "");
            o->seed = (uint64_t)seed;
        } else {
            return clpsa__tool_usage_error(COMMAND, "unknown option '%s'", a);
        }
        if (path_slot) {
            if (!value || !*value)
                return clpsa__tool_usage_error(COMMAND, "%s needs a value", a);
            *path_slot = value;
        }
    }
    const int given = (o->q != NULL) + (o->k != NULL) + (o->v != NULL);
    if (given != 0 && given != 3)
        return clpsa__tool_usage_error(COMMAND, "--q, --k and --v go together (missing:%s%s%s)",
                                       o->q ? "" : " --q", o->k ? "" : " --k", o->v ? "" : " --v");
    return CLPSA__EXIT_OK;
}

/* ---- The problem: sizes, layout and host copies of the inputs ---- */

typedef struct problem {
    int batch, heads_q, heads_kv, seq_q, seq_k, dim;
    bool bnhd;
    clpsa_dtype dtype;
    float *host[3];  /* Q, K, V in the inputs' layout, as the device stores them (rounded) */
    size_t count[3]; /* elements of each */
    clpsa_strides strides[4]; /* Q, K, V, output */
} problem;

static void problem_free(problem *p) {
    for (int t = 0; t < 3; ++t)
        free(p->host[t]);
    memset(p, 0, sizeof *p);
}

static void format_shape(char *text, size_t size, const clpsa_npy_array *a) {
    size_t used = 0;
    int n = snprintf(text, size, "(");
    for (int i = 0; i < a->ndim && n >= 0 && (used += (size_t)n) < size; ++i)
        n = snprintf(text + used, size - used, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (n >= 0 && (used += (size_t)n) < size)
        snprintf(text + used, size - used, a->ndim == 1 ? ",)" : ")");
}

/* Reads one input and checks what can be checked alone: float type, 4 dimensions, sizes
 * that fit the plan's int fields. dims gets [B, H, N, D] whatever the file layout. */
static int load_input(const char *path, bool bnhd, clpsa_npy_array *a, int dims[4]) {
    char message[MESSAGE];
    const clpsa_status status = clpsa_npy_read(path, a, message, sizeof message);
    if (status != CLPSA_OK)
        return clpsa__tool_fail(COMMAND, "%s", message);
    char shape[128];
    format_shape(shape, sizeof shape, a);
    if (a->type != CLPSA_NPY_FLOAT32 && a->type != CLPSA_NPY_FLOAT16)
        return clpsa__tool_fail(COMMAND, "%s: holds %s data; inputs must be float32 or float16",
                                path, a->type == CLPSA_NPY_INT8 ? "int8" : "int32");
    const char *layout = bnhd ? "[B, N, H, D] (--bnhd)" : "[B, H, N, D]";
    if (a->ndim != 4)
        return clpsa__tool_fail(COMMAND, "%s: shape %s has %d dimensions; inputs must be 4-d %s",
                                path, shape, a->ndim, layout);
    for (int i = 0; i < 4; ++i)
        if (a->shape[i] < 1 || a->shape[i] > INT_MAX)
            return clpsa__tool_fail(COMMAND,
                                    "%s: shape %s has dimension %d = %lld; every size "
                                    "must be from 1 to %d",
                                    path, shape, i, (long long)a->shape[i], INT_MAX);
    dims[0] = (int)a->shape[0];
    dims[1] = (int)a->shape[bnhd ? 2 : 1];
    dims[2] = (int)a->shape[bnhd ? 1 : 2];
    dims[3] = (int)a->shape[3];
    return CLPSA__EXIT_OK;
}

static int load_files(const run_options *o, problem *p) {
    const char *paths[3] = {o->q, o->k, o->v};
    clpsa_npy_array arrays[3];
    memset(arrays, 0, sizeof arrays);
    int dims[3][4];
    int rc = CLPSA__EXIT_OK;
    for (int t = 0; t < 3 && rc == CLPSA__EXIT_OK; ++t)
        rc = load_input(paths[t], o->bnhd, &arrays[t], dims[t]);
    if (rc == CLPSA__EXIT_OK) {
        char ks[128], vs[128];
        format_shape(ks, sizeof ks, &arrays[1]);
        format_shape(vs, sizeof vs, &arrays[2]);
        if (strcmp(ks, vs) != 0)
            rc = clpsa__tool_fail(COMMAND,
                                  "%s: shape %s differs from %s's %s; K and V must have "
                                  "the same shape",
                                  o->v, vs, o->k, ks);
        else if (dims[1][0] != dims[0][0])
            rc = clpsa__tool_fail(COMMAND, "%s: batch %d differs from %s's batch %d", o->k,
                                  dims[1][0], o->q, dims[0][0]);
        else if (dims[1][3] != dims[0][3])
            rc = clpsa__tool_fail(COMMAND, "%s: head dim %d differs from %s's head dim %d", o->k,
                                  dims[1][3], o->q, dims[0][3]);
        else if (dims[0][1] % dims[1][1] != 0)
            rc = clpsa__tool_fail(COMMAND,
                                  "%s has %d heads, not a multiple of the %d heads of "
                                  "%s (each key/value head serves a whole group of query heads)",
                                  o->q, dims[0][1], dims[1][1], o->k);
    }
    if (rc == CLPSA__EXIT_OK) {
        p->batch = dims[0][0];
        p->heads_q = dims[0][1];
        p->seq_q = dims[0][2];
        p->dim = dims[0][3];
        p->heads_kv = dims[1][1];
        p->seq_k = dims[1][2];
        bool all_half = true;
        for (int t = 0; t < 3; ++t)
            all_half = all_half && arrays[t].type == CLPSA_NPY_FLOAT16;
        p->dtype = o->dtype != CLPSA_DTYPE_DEFAULT ? o->dtype
                   : all_half                      ? CLPSA_DTYPE_FP16
                                                   : CLPSA_DTYPE_FP32;
    }
    for (int t = 0; t < 3 && rc == CLPSA__EXIT_OK; ++t) {
        p->count[t] = arrays[t].count;
        p->host[t] = malloc(arrays[t].count * sizeof(float));
        if (!p->host[t]) {
            rc = clpsa__tool_fail(COMMAND, "%s: out of memory converting to float", paths[t]);
        } else if (arrays[t].type == CLPSA_NPY_FLOAT32) {
            memcpy(p->host[t], arrays[t].data, arrays[t].count * sizeof(float));
        } else {
            const clpsa_status status = clpsa_convert_to_float(CLPSA_DTYPE_FP16, arrays[t].data,
                                                               p->host[t], arrays[t].count);
            if (status != CLPSA_OK)
                rc = clpsa__tool_library_error(COMMAND, "clpsa_convert_to_float", status, NULL);
        }
    }
    for (int t = 0; t < 3; ++t)
        clpsa_npy_free(&arrays[t]);
    return rc;
}

static int make_random(const run_options *o, problem *p) {
    p->batch = 1;
    p->heads_q = p->heads_kv = 4;
    p->seq_q = p->seq_k = 1024;
    p->dim = 64;
    p->dtype = o->dtype != CLPSA_DTYPE_DEFAULT ? o->dtype : CLPSA_DTYPE_FP32;
    uint64_t state = o->seed;
    const size_t count = (size_t)p->batch * p->heads_q * p->seq_q * p->dim;
    for (int t = 0; t < 3; ++t) {
        p->count[t] = count;
        p->host[t] = malloc(count * sizeof(float));
        if (!p->host[t])
            return clpsa__tool_fail(COMMAND, "out of memory for the built-in problem");
        for (size_t i = 0; i < count; ++i)
            p->host[t][i] = clpsa__tool_random_signed(&state);
    }
    return CLPSA__EXIT_OK;
}

static int64_t offset(const clpsa_strides *s, int b, int h, int n) {
    return (int64_t)b * s->batch + (int64_t)h * s->head + (int64_t)n * s->seq;
}

/* ---- The double-precision check of sampled rows ---- */

static double tolerance(clpsa_dtype dtype) {
    /* Inputs are rounded on the host exactly as stored, so what remains is the kernel's own
     * rounding: fp32 accumulation, and probabilities rounded to the storage type for P·V. */
    return dtype == CLPSA_DTYPE_FP32 ? 2e-5 : dtype == CLPSA_DTYPE_FP16 ? 4e-3 : 3e-2;
}

/* Largest |out - reference| over CHECK_ROWS rows picked at random (NaN if any output is not
 * finite), or -1 when out of memory. */
static double check_rows(const problem *p, float scale, bool causal, const float *out,
                         uint64_t seed) {
    double *weights = malloc((size_t)p->seq_k * sizeof(double));
    if (!weights)
        return -1.0;
    uint64_t state = seed ^ 0x5DEECE66Dull;
    const int group = p->heads_q / p->heads_kv;
    double worst = 0.0;
    for (int r = 0; r < CHECK_ROWS; ++r) {
        const int b = (int)(clpsa__tool_random(&state) % (uint64_t)p->batch);
        const int h = (int)(clpsa__tool_random(&state) % (uint64_t)p->heads_q);
        const int t = (int)(clpsa__tool_random(&state) % (uint64_t)p->seq_q);
        const int hk = h / group;
        const float *q = p->host[0] + offset(&p->strides[0], b, h, t);
        /* Bottom-right aligned: key c is visible to row t iff c <= t + (Nk - Nq). */
        long long visible = causal ? (long long)t + p->seq_k - p->seq_q + 1 : p->seq_k;
        visible = visible < 0 ? 0 : visible > p->seq_k ? p->seq_k : visible;
        double max = -INFINITY, sum = 0.0;
        for (int c = 0; c < (int)visible; ++c) {
            const float *k = p->host[1] + offset(&p->strides[1], b, hk, c);
            double dot = 0.0;
            for (int d = 0; d < p->dim; ++d)
                dot += (double)q[d] * (double)k[d];
            weights[c] = dot * (double)scale;
            max = weights[c] > max ? weights[c] : max;
        }
        for (int c = 0; c < (int)visible; ++c)
            sum += (weights[c] = exp(weights[c] - max));
        const float *o = out + offset(&p->strides[3], b, h, t);
        for (int d = 0; d < p->dim; ++d) {
            double acc = 0.0;
            for (int c = 0; c < (int)visible; ++c)
                acc += weights[c] * (double)p->host[2][offset(&p->strides[2], b, hk, c) + d];
            const double reference = visible > 0 ? acc / sum : 0.0;
            const double error = fabs((double)o[d] - reference);
            if (!isfinite(o[d]) || isnan(error)) {
                free(weights);
                return NAN;
            }
            worst = error > worst ? error : worst;
        }
    }
    free(weights);
    return worst;
}

/* ---- Device work ---- */

typedef struct device_state {
    clpsa_context *ctx;
    clpsa_plan *plan;
    cl_mem buffers[4];
} device_state;

static void device_release(device_state *s) {
    for (int i = 0; i < 4; ++i)
        if (s->buffers[i])
            clReleaseMemObject(s->buffers[i]);
    clpsa_plan_destroy(s->plan);
    clpsa_context_destroy(s->ctx);
    memset(s, 0, sizeof *s);
}

static double wall_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e3 + (double)now.tv_nsec * 1e-6;
}

/* One run, waited for; its device time from profiling, or the host's wall time when the
 * queue has no profiling. */
static int timed_run(device_state *s, cl_command_queue queue, double *ms) {
    cl_event event = NULL;
    const double start = wall_ms();
    const clpsa_status status = clpsa_plan_run(s->plan, queue, s->buffers[0], s->buffers[1],
                                               s->buffers[2], s->buffers[3], 0, NULL, &event);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_run", status, s->ctx);
    const cl_int err = event ? clWaitForEvents(1, &event) : clFinish(queue);
    const double host = wall_ms() - start;
    if (err != CL_SUCCESS) {
        if (event)
            clReleaseEvent(event);
        return clpsa__tool_cl_error(COMMAND, "waiting for clpsa_plan_run", err);
    }
    *ms = event ? clpsa__tool_event_ms(event) : -1.0;
    if (*ms < 0.0)
        *ms = host;
    if (event)
        clReleaseEvent(event);
    return CLPSA__EXIT_OK;
}

typedef struct run_result {
    const char *device;
    double time_ms, tflops, max_abs_err; /* max_abs_err < 0: not checked */
    float scale;
    bool checked, check_ok;
} run_result;

static int run_on_device(const run_options *o, problem *p, device_state *s, run_result *r,
                         float **out_host) {
    clpsa_context_desc cdesc;
    clpsa__tool_context_desc_init(&cdesc, o->device);
    clpsa_status status = clpsa_context_create(&cdesc, &s->ctx);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_context_create", status, NULL);
    r->device = clpsa_context_device_name(s->ctx);

    clpsa_plan_desc d;
    clpsa_plan_desc_init(&d);
    d.method = CLPSA_METHOD_DENSE;
    d.batch = p->batch;
    d.heads_q = p->heads_q;
    d.heads_kv = p->heads_kv;
    d.seq_q = p->seq_q;
    d.seq_k = p->seq_k;
    d.head_dim = p->dim;
    d.dtype = p->dtype;
    d.out_dtype = CLPSA_DTYPE_FP32;
    d.scale = (float)o->scale;
    d.causal = o->causal;
    if (p->bnhd) {
        d.q_strides = p->strides[0];
        d.k_strides = p->strides[1];
        d.v_strides = p->strides[2];
        d.out_strides = p->strides[3];
    }
    status = clpsa_plan_create(s->ctx, &d, &s->plan);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_create", status, s->ctx);
    clpsa_plan_desc resolved;
    clpsa_plan_get_desc(s->plan, &resolved);
    r->scale = resolved.scale != 0.0f ? resolved.scale : (float)(1.0 / sqrt((double)p->dim));
    clpsa_buffer_sizes sizes;
    status = clpsa_plan_buffer_sizes(s->plan, &sizes);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_plan_buffer_sizes", status, s->ctx);

    cl_command_queue queue = clpsa_context_queue(s->ctx);
    const size_t element = clpsa_dtype_size(p->dtype);
    const size_t needed[4] = {sizes.q, sizes.k, sizes.v, sizes.out};
    const size_t out_count = (size_t)p->batch * p->heads_q * p->seq_q * p->dim;
    for (int t = 0; t < 4; ++t) {
        const size_t data_bytes = t < 3 ? p->count[t] * element : out_count * sizeof(float);
        const size_t bytes = needed[t] > data_bytes ? needed[t] : data_bytes;
        status = clpsa_context_alloc(s->ctx, bytes, &s->buffers[t]);
        if (status != CLPSA_OK)
            return clpsa__tool_library_error(COMMAND, "clpsa_context_alloc", status, s->ctx);
        if (t == 3)
            break;
        /* Stored as the device stores it; the host copy is rounded the same way so the check
         * compares against exactly the inputs the kernel saw. */
        void *stored = malloc(data_bytes ? data_bytes : 1);
        if (!stored)
            return clpsa__tool_fail(COMMAND, "out of memory staging an input");
        status = clpsa_convert_from_float(p->dtype, p->host[t], stored, p->count[t]);
        if (status == CLPSA_OK)
            status = clpsa_convert_to_float(p->dtype, stored, p->host[t], p->count[t]);
        if (status != CLPSA_OK) {
            free(stored);
            return clpsa__tool_library_error(COMMAND, "clpsa_convert_from_float", status, NULL);
        }
        const cl_int err = clEnqueueWriteBuffer(queue, s->buffers[t], CL_TRUE, 0, data_bytes,
                                                stored, 0, NULL, NULL);
        free(stored);
        if (err != CL_SUCCESS)
            return clpsa__tool_cl_error(COMMAND, "clEnqueueWriteBuffer", err);
    }
    /* NaN everywhere first: an output element the kernel never writes cannot pass the check. */
    const float nan_fill = NAN;
    cl_int err = clEnqueueFillBuffer(queue, s->buffers[3], &nan_fill, sizeof nan_fill, 0,
                                     out_count * sizeof(float), 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return clpsa__tool_cl_error(COMMAND, "clEnqueueFillBuffer", err);

    double warm_up = 0.0;
    int rc = timed_run(s, queue, &warm_up);
    double *times = malloc((size_t)o->reps * sizeof(double));
    if (!times)
        return clpsa__tool_fail(COMMAND, "out of memory");
    for (int i = 0; i < o->reps && rc == CLPSA__EXIT_OK; ++i)
        rc = timed_run(s, queue, &times[i]);
    if (rc == CLPSA__EXIT_OK) {
        r->time_ms = clpsa__tool_median(times, (size_t)o->reps);
        r->tflops =
            r->time_ms > 0.0 ? clpsa_plan_flops(s->plan) / (r->time_ms * 1e-3) * 1e-12 : 0.0;
    }
    free(times);
    if (rc != CLPSA__EXIT_OK)
        return rc;

    *out_host = malloc(out_count * sizeof(float));
    if (!*out_host)
        return clpsa__tool_fail(COMMAND, "out of memory reading the output");
    err = clEnqueueReadBuffer(queue, s->buffers[3], CL_TRUE, 0, out_count * sizeof(float),
                              *out_host, 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return clpsa__tool_cl_error(COMMAND, "clEnqueueReadBuffer", err);
    return CLPSA__EXIT_OK;
}

static void print_number(const char *key, double value, bool last) {
    printf("  \"%s\": ", key);
    if (isfinite(value))
        printf("%.6g", value);
    else
        printf("null");
    printf(last ? "\n" : ",\n");
}

static void print_result(const run_options *o, const problem *p, const run_result *r) {
    const char *dtype = clpsa_dtype_name(p->dtype);
    if (o->json) {
        printf("{\n  \"device\": ");
        clpsa__tool_json_string(stdout, r->device);
        printf(",\n  \"method\": \"dense\",\n");
        printf("  \"layout\": \"%s\",\n", p->bnhd ? "bnhd" : "bhnd");
        printf("  \"shape\": [%d, %d, %d, %d, %d, %d],\n", p->batch, p->heads_q, p->heads_kv,
               p->seq_q, p->seq_k, p->dim);
        printf("  \"dtype\": \"%s\",\n", dtype);
        printf("  \"causal\": %s,\n", o->causal ? "true" : "false");
        print_number("scale", r->scale, false);
        printf("  \"runs\": %d,\n", o->reps);
        print_number("time_ms", r->time_ms, false);
        print_number("tflops", r->tflops, false);
        if (r->checked)
            print_number("max_abs_err", r->max_abs_err, false);
        else
            printf("  \"max_abs_err\": null,\n");
        printf("  \"check\": %s,\n", !r->checked ? "null" : r->check_ok ? "\"ok\"" : "\"failed\"");
        printf("  \"out\": ");
        if (o->out)
            clpsa__tool_json_string(stdout, o->out);
        else
            printf("null");
        printf("\n}\n");
        return;
    }
    printf("device   %s\n", r->device);
    printf("shape    B=%d Hq=%d Hkv=%d Nq=%d Nk=%d D=%d (%s)%s\n", p->batch, p->heads_q,
           p->heads_kv, p->seq_q, p->seq_k, p->dim, p->bnhd ? "[B, N, H, D]" : "[B, H, N, D]",
           o->q ? "" : ", built-in random problem");
    printf("dtype    %s (output fp32)\n", dtype);
    printf("causal   %s\n", o->causal ? "yes" : "no");
    printf("scale    %.6g\n", r->scale);
    printf("time     %.3f ms (median of %d runs)\n", r->time_ms, o->reps);
    printf("speed    %.4f TFLOP/s\n", r->tflops);
    if (r->checked)
        printf("check    %s: max abs error %.3g over %d rows (tolerance %.0e)\n",
               r->check_ok ? "ok" : "FAILED", r->max_abs_err, CHECK_ROWS, tolerance(p->dtype));
    else
        printf("check    not run (inputs from files)\n");
    if (o->out)
        printf("output   %s\n", o->out);
}

int clpsa__cmd_run(int argc, char **argv) {
    run_options o;
    bool help = false;
    int rc = parse_options(argc, argv, &o, &help);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    if (help) {
        usage(stdout);
        return CLPSA__EXIT_OK;
    }

    problem p;
    memset(&p, 0, sizeof p);
    p.bnhd = o.bnhd;
    rc = o.q ? load_files(&o, &p) : make_random(&o, &p);
    if (rc != CLPSA__EXIT_OK) {
        problem_free(&p);
        return rc;
    }
    const int heads[4] = {p.heads_q, p.heads_kv, p.heads_kv, p.heads_q};
    const int seqs[4] = {p.seq_q, p.seq_k, p.seq_k, p.seq_q};
    for (int t = 0; t < 4; ++t)
        p.strides[t] = p.bnhd ? clpsa_strides_bnhd(heads[t], seqs[t], p.dim)
                              : clpsa_strides_bhnd(heads[t], seqs[t], p.dim);

    device_state s;
    memset(&s, 0, sizeof s);
    run_result r;
    memset(&r, 0, sizeof r);
    float *out = NULL;
    rc = run_on_device(&o, &p, &s, &r, &out);
    if (rc == CLPSA__EXIT_OK && !o.q) {
        r.checked = true;
        r.max_abs_err = check_rows(&p, r.scale, o.causal, out, o.seed);
        if (r.max_abs_err < 0.0)
            rc = clpsa__tool_fail(COMMAND, "out of memory checking the output");
        r.check_ok = r.max_abs_err <= tolerance(p.dtype); /* false for NaN */
    }
    if (rc == CLPSA__EXIT_OK && o.out) {
        const int64_t shape[4] = {p.batch, p.bnhd ? p.seq_q : p.heads_q,
                                  p.bnhd ? p.heads_q : p.seq_q, p.dim};
        char message[MESSAGE];
        if (clpsa_npy_write(o.out, CLPSA_NPY_FLOAT32, 4, shape, out, message, sizeof message) !=
            CLPSA_OK)
            rc = clpsa__tool_fail(COMMAND, "%s", message);
    }
    if (rc == CLPSA__EXIT_OK) {
        print_result(&o, &p, &r);
        fflush(stdout);
        if (r.checked && !r.check_ok)
            rc = clpsa__tool_fail(COMMAND, "check FAILED: max abs error %g exceeds %g",
                                  r.max_abs_err, tolerance(p.dtype));
    }
    free(out);
    device_release(&s);
    problem_free(&p);
    return rc;
}
