/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench`: the inputs of one case, on the host as fp32 rounded to the storage type (so the
 * fp32 CLBlast baseline reads exactly the values the clpsa kernels read). */
#include "bench_internal.h"

#include <clpsa/clpsa_npy.h>
#include <clpsa/clpsa_workload.h>

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COMMAND CLPSA__BENCH_COMMAND
#define MESSAGE 1024

const char *clpsa__bench_workload_name(bench_workload workload) {
    switch (workload) {
    case BENCH_WORKLOAD_RANDOM:
        return "random";
    case BENCH_WORKLOAD_VIDEO:
        return "video";
    case BENCH_WORKLOAD_HILBERT:
        return "video-hilbert";
    case BENCH_WORKLOAD_VIDEO_TEXT:
        return "video-text";
    case BENCH_WORKLOAD_FILES:
        return "npy";
    case BENCH_WORKLOAD_COUNT:
        break;
    }
    return "?";
}

bool clpsa__bench_workload_default(bench_workload workload) {
    return workload == BENCH_WORKLOAD_RANDOM || workload == BENCH_WORKLOAD_VIDEO ||
           workload == BENCH_WORKLOAD_HILBERT;
}

bool clpsa__bench_video_grid(int n, int grid[3]) {
    /* Frames of S x S tokens with at least S/4 frames, S as large as that allows: the shapes of
     * video latents (4096 = 16 x 16 x 16, 16384 = 16 x 32 x 32); failing that, any S. */
    for (int pass = 0; pass < 2; ++pass) {
        for (int side = 128; side >= 8; side /= 2) {
            const int frame = side * side;
            if (n % frame == 0 && (pass == 1 || n / frame >= side / 4)) {
                grid[0] = n / frame;
                grid[1] = grid[2] = side;
                return true;
            }
        }
    }
    grid[0] = grid[1] = grid[2] = 0;
    return false;
}

bool clpsa__bench_grid_for(const bench_options *o, int n, int grid[3]) {
    if (!o->grid[0])
        return clpsa__bench_video_grid(n, grid);
    if ((long long)o->grid[0] * o->grid[1] * o->grid[2] != n) {
        grid[0] = grid[1] = grid[2] = 0;
        return false;
    }
    memcpy(grid, o->grid, 3 * sizeof *grid);
    return true;
}

void clpsa__bench_case_free(bench_case *c) {
    for (int t = 0; t < 3; ++t)
        free(c->host[t]);
    memset(c->host, 0, sizeof c->host);
}

static size_t tensor_count(const bench_shape *s, int t) {
    return (size_t)s->batch * (size_t)(t == 0 ? s->heads_q : s->heads_kv) *
           (size_t)(t == 0 ? s->seq_q : s->seq_k) * (size_t)s->dim;
}

/* Standard normal by Box-Muller on the tool's seeded generator. */
static float gaussian(uint64_t *state) {
    const double u1 = ((double)(clpsa__tool_random(state) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = (double)(clpsa__tool_random(state) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static int make_random(const bench_options *o, bench_case *c) {
    for (int t = 0; t < 3; ++t) {
        uint64_t state = o->seed * 3u + (uint64_t)t + 0x5EEDull;
        const size_t count = tensor_count(&c->shape, t);
        for (size_t i = 0; i < count; ++i)
            c->host[t][i] = gaussian(&state);
    }
    return CLPSA__EXIT_OK;
}

static int make_video(bench_case *c) {
    const bench_shape *s = &c->shape;
    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w);
    w.frames = c->grid[0];
    w.height = c->grid[1];
    w.width = c->grid[2];
    w.heads_q = s->heads_q;
    w.heads_kv = s->heads_kv;
    w.head_dim = s->dim;
    w.text_tokens = c->text_tokens;
    const uint64_t seed = w.seed;
    /* Each batch is a different clip: the generator makes batch 1, seeded per batch. */
    for (int b = 0; b < s->batch; ++b) {
        w.seed = seed + (uint64_t)b;
        const size_t q_at = (size_t)b * (size_t)s->heads_q * s->seq_q * s->dim;
        const size_t kv_at = (size_t)b * (size_t)s->heads_kv * s->seq_k * s->dim;
        const clpsa_status status = clpsa_video_workload_generate(
            &w, c->host[0] + q_at, c->host[1] + kv_at, c->host[2] + kv_at);
        if (status != CLPSA_OK)
            return clpsa__tool_library_error(COMMAND, "clpsa_video_workload_generate", status,
                                             NULL);
    }
    return CLPSA__EXIT_OK;
}

/* Reads one input: float32 or float16, 4 dimensions; dims = [B, H, N, D]. */
static int read_input(const char *path, clpsa_npy_array *a, int64_t dims[4]) {
    char message[MESSAGE];
    const clpsa_status status = clpsa_npy_read(path, a, message, sizeof message);
    if (status != CLPSA_OK)
        return clpsa__tool_fail(COMMAND, "%s", message);
    if (a->type != CLPSA_NPY_FLOAT32 && a->type != CLPSA_NPY_FLOAT16)
        return clpsa__tool_fail(COMMAND, "%s: holds %s data; inputs must be float32 or float16",
                                path, a->type == CLPSA_NPY_INT8 ? "int8" : "int32");
    if (a->ndim != 4)
        return clpsa__tool_fail(COMMAND, "%s: has %d dimensions; inputs must be 4-d [B, H, N, D]",
                                path, a->ndim);
    for (int i = 0; i < 4; ++i) {
        if (a->shape[i] < 1 || a->shape[i] > INT_MAX)
            return clpsa__tool_fail(COMMAND, "%s: dimension %d is %lld; sizes must be 1 to %d",
                                    path, i, (long long)a->shape[i], INT_MAX);
        dims[i] = a->shape[i];
    }
    return CLPSA__EXIT_OK;
}

static int load_files(const bench_options *o, bench_case *c, clpsa_npy_array arrays[3]) {
    const char *paths[3] = {o->q, o->k, o->v};
    int64_t dims[3][4];
    for (int t = 0; t < 3; ++t) {
        const int rc = read_input(paths[t], &arrays[t], dims[t]);
        if (rc != CLPSA__EXIT_OK)
            return rc;
    }
    if (memcmp(dims[1], dims[2], sizeof dims[1]) != 0)
        return clpsa__tool_fail(COMMAND, "%s and %s: K and V must have the same shape", o->k, o->v);
    if (dims[0][0] != dims[1][0] || dims[0][3] != dims[1][3])
        return clpsa__tool_fail(COMMAND, "%s and %s: batch and head dim must be equal", o->q, o->k);
    if (dims[0][1] % dims[1][1] != 0)
        return clpsa__tool_fail(COMMAND,
                                "%s has %lld heads, not a multiple of the %lld heads of %s", o->q,
                                (long long)dims[0][1], (long long)dims[1][1], o->k);
    c->shape = (bench_shape){(int)dims[0][0], (int)dims[0][1], (int)dims[1][1],
                             (int)dims[0][2], (int)dims[1][2], (int)dims[0][3]};
    for (int t = 0; t < 3; ++t) {
        c->host[t] = malloc(arrays[t].count * sizeof(float));
        if (!c->host[t])
            return clpsa__tool_fail(COMMAND, "%s: out of memory", paths[t]);
        if (arrays[t].type == CLPSA_NPY_FLOAT32) {
            memcpy(c->host[t], arrays[t].data, arrays[t].count * sizeof(float));
        } else {
            const clpsa_status status = clpsa_convert_to_float(CLPSA_DTYPE_FP16, arrays[t].data,
                                                               c->host[t], arrays[t].count);
            if (status != CLPSA_OK)
                return clpsa__tool_library_error(COMMAND, "clpsa_convert_to_float", status, NULL);
        }
    }
    return CLPSA__EXIT_OK;
}

/* Rounds the inputs to the storage type, as the device will hold them. */
static int round_to_dtype(bench_case *c) {
    if (c->dtype == CLPSA_DTYPE_FP32)
        return CLPSA__EXIT_OK;
    size_t largest = 0;
    for (int t = 0; t < 3; ++t)
        largest = tensor_count(&c->shape, t) > largest ? tensor_count(&c->shape, t) : largest;
    void *stored = malloc(largest * sizeof(uint16_t));
    if (!stored)
        return clpsa__tool_fail(COMMAND, "out of memory rounding the inputs");
    clpsa_status status = CLPSA_OK;
    for (int t = 0; t < 3 && status == CLPSA_OK; ++t) {
        const size_t count = tensor_count(&c->shape, t);
        status = clpsa_convert_from_float(c->dtype, c->host[t], stored, count);
        if (status == CLPSA_OK)
            status = clpsa_convert_to_float(c->dtype, stored, c->host[t], count);
    }
    free(stored);
    return status == CLPSA_OK
               ? CLPSA__EXIT_OK
               : clpsa__tool_library_error(COMMAND, "clpsa_convert_from_float", status, NULL);
}

int clpsa__bench_case_load(const bench_options *o, bench_case *c) {
    memset(c->host, 0, sizeof c->host);
    int rc = CLPSA__EXIT_OK;
    if (c->workload == BENCH_WORKLOAD_FILES) {
        clpsa_npy_array arrays[3];
        memset(arrays, 0, sizeof arrays);
        rc = load_files(o, c, arrays);
        for (int t = 0; t < 3; ++t)
            clpsa_npy_free(&arrays[t]);
    } else {
        for (int t = 0; t < 3 && rc == CLPSA__EXIT_OK; ++t) {
            const size_t count = tensor_count(&c->shape, t);
            c->host[t] = malloc(count * sizeof(float));
            if (!c->host[t])
                rc = clpsa__tool_fail(COMMAND, "out of memory for %zu input values", count);
        }
        if (rc == CLPSA__EXIT_OK)
            rc = c->workload == BENCH_WORKLOAD_RANDOM ? make_random(o, c) : make_video(c);
    }
    if (rc == CLPSA__EXIT_OK)
        rc = round_to_dtype(c);
    if (rc != CLPSA__EXIT_OK)
        clpsa__bench_case_free(c);
    return rc;
}
