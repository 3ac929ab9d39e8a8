/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: the problem it runs, either Q, K, V from .npy files or the embedded video-like
 * workload, on the host in the layout the device reads. */
#include "run_internal.h"

#include <clpsa/clpsa_npy.h>
#include <clpsa/clpsa_workload.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define COMMAND CLPSA__RUN_COMMAND
#define MESSAGE 1024

void clpsa__run_problem_free(run_problem *p) {
    for (int t = 0; t < 3; ++t)
        free(p->host[t]);
    memset(p, 0, sizeof *p);
}

size_t clpsa__run_out_count(const run_problem *p) {
    return (size_t)p->batch * p->heads_q * p->seq_q * p->dim;
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

static int check_pair(const run_options *o, const clpsa_npy_array arrays[3], int dims[3][4]) {
    char ks[128], vs[128];
    format_shape(ks, sizeof ks, &arrays[1]);
    format_shape(vs, sizeof vs, &arrays[2]);
    if (strcmp(ks, vs) != 0)
        return clpsa__tool_fail(COMMAND,
                                "%s: shape %s differs from %s's %s; K and V must have "
                                "the same shape",
                                o->v, vs, o->k, ks);
    if (dims[1][0] != dims[0][0])
        return clpsa__tool_fail(COMMAND, "%s: batch %d differs from %s's batch %d", o->k,
                                dims[1][0], o->q, dims[0][0]);
    if (dims[1][3] != dims[0][3])
        return clpsa__tool_fail(COMMAND, "%s: head dim %d differs from %s's head dim %d", o->k,
                                dims[1][3], o->q, dims[0][3]);
    if (dims[0][1] % dims[1][1] != 0)
        return clpsa__tool_fail(COMMAND,
                                "%s has %d heads, not a multiple of the %d heads of "
                                "%s (each key/value head serves a whole group of query heads)",
                                o->q, dims[0][1], dims[1][1], o->k);
    return CLPSA__EXIT_OK;
}

/* A video grid over file inputs must cover exactly the tokens of both sequences. */
static int check_grid(const run_options *o, const run_problem *p) {
    const long long tokens =
        (long long)o->grid[0] * o->grid[1] * o->grid[2] + (long long)o->text_tokens;
    if (tokens != p->seq_q || tokens != p->seq_k)
        return clpsa__tool_fail(COMMAND,
                                "--grid %d,%d,%d: %d x %d x %d tokens plus %d text tokens make "
                                "%lld, but %s has %d tokens and %s has %d; all must agree",
                                o->grid[0], o->grid[1], o->grid[2], o->grid[0], o->grid[1],
                                o->grid[2], o->text_tokens, tokens, o->q, p->seq_q, o->k, p->seq_k);
    return CLPSA__EXIT_OK;
}

static int load_files(const run_options *o, run_problem *p) {
    const char *paths[3] = {o->q, o->k, o->v};
    clpsa_npy_array arrays[3];
    memset(arrays, 0, sizeof arrays);
    int dims[3][4];
    int rc = CLPSA__EXIT_OK;
    for (int t = 0; t < 3 && rc == CLPSA__EXIT_OK; ++t)
        rc = load_input(paths[t], o->bnhd, &arrays[t], dims[t]);
    if (rc == CLPSA__EXIT_OK)
        rc = check_pair(o, arrays, dims);
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
        if (o->grid_given) {
            rc = check_grid(o, p);
            memcpy(p->grid, o->grid, sizeof p->grid);
        }
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

/* The workload on its grid, with the text tokens after the video: queries that read the whole
 * video (clpsa_workload.h), the prompt of a video-language model. */
static int make_workload(const run_options *o, run_problem *p) {
    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w);
    if (o->grid_given) {
        w.frames = o->grid[0];
        w.height = o->grid[1];
        w.width = o->grid[2];
    }
    w.text_tokens = o->text_tokens;
    const long long video = (long long)w.frames * w.height * w.width;
    if (video + o->text_tokens > INT_MAX / 2)
        return clpsa__tool_usage_error(COMMAND, "--grid %d,%d,%d: %lld tokens is too many",
                                       w.frames, w.height, w.width, video + o->text_tokens);
    p->batch = 1;
    p->heads_q = w.heads_q;
    p->heads_kv = w.heads_kv;
    p->seq_q = p->seq_k = (int)video + o->text_tokens;
    p->dim = w.head_dim;
    p->workload = true;
    p->grid[0] = w.frames;
    p->grid[1] = w.height;
    p->grid[2] = w.width;
    p->dtype = o->dtype != CLPSA_DTYPE_DEFAULT ? o->dtype : CLPSA_DTYPE_FP32;

    const int heads[3] = {p->heads_q, p->heads_kv, p->heads_kv};
    for (int t = 0; t < 3; ++t) {
        p->count[t] = (size_t)heads[t] * p->seq_q * p->dim;
        p->host[t] = malloc(p->count[t] * sizeof(float));
        if (!p->host[t])
            return clpsa__tool_fail(COMMAND, "out of memory for the built-in workload");
    }
    const clpsa_status status =
        clpsa_video_workload_generate(&w, p->host[0], p->host[1], p->host[2]);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(COMMAND, "clpsa_video_workload_generate", status, NULL);
    return CLPSA__EXIT_OK;
}

int clpsa__run_problem_load(const run_options *o, run_problem *p) {
    memset(p, 0, sizeof *p);
    p->bnhd = o->bnhd && o->q;
    p->text_tokens = o->text_tokens;
    const int rc = o->q ? load_files(o, p) : make_workload(o, p);
    if (rc != CLPSA__EXIT_OK)
        return rc;
    const int heads[4] = {p->heads_q, p->heads_kv, p->heads_kv, p->heads_q};
    const int seqs[4] = {p->seq_q, p->seq_k, p->seq_k, p->seq_q};
    for (int t = 0; t < 4; ++t)
        p->strides[t] = p->bnhd ? clpsa_strides_bnhd(heads[t], seqs[t], p->dim)
                                : clpsa_strides_bhnd(heads[t], seqs[t], p->dim);
    return CLPSA__EXIT_OK;
}
