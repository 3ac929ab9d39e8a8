/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: the .npy files it reads besides Q, K, V (a level map or block scores to use) and
 * the ones it writes (output, level map, scores, token permutation). Every problem with a file
 * is reported with its path, the dimension or element at fault and the rule. */
#include "run_internal.h"

#include <clpsa/clpsa_npy.h>

#include <stdlib.h>
#include <string.h>

#define COMMAND CLPSA__RUN_COMMAND
#define MESSAGE 1024

static const char *type_name(clpsa_npy_type type) {
    switch (type) {
    case CLPSA_NPY_FLOAT32:
        return "float32";
    case CLPSA_NPY_FLOAT16:
        return "float16";
    case CLPSA_NPY_INT8:
        return "int8";
    case CLPSA_NPY_INT32:
        return "int32";
    }
    return "unknown";
}

static void map_shape(const run_problem *p, const clpsa_block_grid *g, int64_t shape[4]) {
    shape[0] = p->batch;
    shape[1] = p->heads_q;
    shape[2] = g->blocks_q;
    shape[3] = g->blocks_k;
}

/* Reads a [B, Hq, nq, nk] map of `type`; on a wrong shape names the first wrong dimension and
 * where its expected size comes from. */
static int read_map(const char *path, const run_problem *p, const clpsa_block_grid *g,
                    clpsa_npy_type type, const char *what, clpsa_npy_array *a) {
    char message[MESSAGE];
    if (clpsa_npy_read(path, a, message, sizeof message) != CLPSA_OK)
        return clpsa__tool_fail(COMMAND, "%s", message);
    if (a->type != type)
        return clpsa__tool_fail(COMMAND, "%s: holds %s data; %s must be %s", path,
                                type_name(a->type), what, type_name(type));
    int64_t expected[4];
    map_shape(p, g, expected);
    const char *rule = "[B, Hq, nq, nk]";
    if (a->ndim != 4)
        return clpsa__tool_fail(COMMAND,
                                "%s: has %d dimensions; %s must be 4-d %s = [%lld, %lld, "
                                "%lld, %lld]",
                                path, a->ndim, what, rule, (long long)expected[0],
                                (long long)expected[1], (long long)expected[2],
                                (long long)expected[3]);
    for (int i = 0; i < 4; ++i) {
        if (a->shape[i] == expected[i])
            continue;
        char why[160];
        if (i == 0)
            snprintf(why, sizeof why, "the batch of the inputs");
        else if (i == 1)
            snprintf(why, sizeof why, "the query heads of the inputs");
        else if (i == 2)
            snprintf(why, sizeof why, "query blocks: ceil(Nq = %d / bm = %d)", p->seq_q,
                     g->block_q);
        else
            snprintf(why, sizeof why, "key blocks: ceil(Nk = %d / bn = %d)", p->seq_k, g->block_k);
        static const char *const names[4] = {"B", "Hq", "nq", "nk"};
        return clpsa__tool_fail(COMMAND,
                                "%s: dimension %d (%s) is %lld, expected %lld (%s); %s must be "
                                "%s",
                                path, i, names[i], (long long)a->shape[i], (long long)expected[i],
                                why, what, rule);
    }
    return CLPSA__EXIT_OK;
}

int clpsa__run_read_levels(const char *path, const run_problem *p, const clpsa_block_grid *g,
                           int8_t **data) {
    clpsa_npy_array a;
    memset(&a, 0, sizeof a);
    int rc = read_map(path, p, g, CLPSA_NPY_INT8, "a level map", &a);
    const int8_t *levels = a.data;
    const size_t nk = (size_t)g->blocks_k, nq = (size_t)g->blocks_q, h = (size_t)p->heads_q;
    for (size_t x = 0; rc == CLPSA__EXIT_OK && x < a.count; ++x) {
        const int f = levels[x];
        if (f != 0 && f != 1 && f != 2 && f != 4 && f != 8)
            rc = clpsa__tool_fail(COMMAND,
                                  "%s: value %d at [%zu, %zu, %zu, %zu]: levels must be 0, 1, 2, "
                                  "4 or 8",
                                  path, f, x / (nk * nq * h), x / (nk * nq) % h, x / nk % nq,
                                  x % nk);
    }
    if (rc == CLPSA__EXIT_OK) {
        *data = a.data;
        a.data = NULL;
    }
    clpsa_npy_free(&a);
    return rc;
}

int clpsa__run_read_scores(const char *path, const run_problem *p, const clpsa_block_grid *g,
                           float **data) {
    clpsa_npy_array a;
    memset(&a, 0, sizeof a);
    const int rc = read_map(path, p, g, CLPSA_NPY_FLOAT32, "block scores", &a);
    if (rc == CLPSA__EXIT_OK) {
        *data = a.data;
        a.data = NULL;
    }
    clpsa_npy_free(&a);
    return rc;
}

static int write_npy(const char *path, clpsa_npy_type type, int ndim, const int64_t *shape,
                     const void *data) {
    char message[MESSAGE];
    if (clpsa_npy_write(path, type, ndim, shape, data, message, sizeof message) != CLPSA_OK)
        return clpsa__tool_fail(COMMAND, "%s", message);
    return CLPSA__EXIT_OK;
}

int clpsa__run_write_map(const char *path, const run_problem *p, const clpsa_block_grid *g,
                         bool scores, const void *data) {
    int64_t shape[4];
    map_shape(p, g, shape);
    return write_npy(path, scores ? CLPSA_NPY_FLOAT32 : CLPSA_NPY_INT8, 4, shape, data);
}

int clpsa__run_write_output(const char *path, const run_problem *p, const float *out) {
    const int64_t shape[4] = {p->batch, p->bnhd ? p->seq_q : p->heads_q,
                              p->bnhd ? p->heads_q : p->seq_q, p->dim};
    return write_npy(path, CLPSA_NPY_FLOAT32, 4, shape, out);
}

int clpsa__run_write_permutation(const char *path, const run_problem *p, clpsa_ordering order,
                                 const int tile[3]) {
    const int64_t tokens = p->seq_k;
    int32_t *perm = malloc((size_t)tokens * sizeof *perm);
    if (!perm)
        return clpsa__tool_fail(COMMAND, "%s: out of memory for the permutation", path);
    const clpsa_status status = clpsa_ordering_permutation(order, p->grid[0], p->grid[1],
                                                           p->grid[2], tile, p->text_tokens, perm);
    int rc = status == CLPSA_OK
                 ? CLPSA__EXIT_OK
                 : clpsa__tool_library_error(COMMAND, "clpsa_ordering_permutation", status, NULL);
    if (rc == CLPSA__EXIT_OK)
        rc = write_npy(path, CLPSA_NPY_INT32, 1, &tokens, perm);
    free(perm);
    return rc;
}
