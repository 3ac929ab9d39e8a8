/* SPDX-License-Identifier: Apache-2.0 */
/* Ulysses sequence parallelism (clpsa_mpi.h): two MPI_Alltoallv exchanges on host buffers
 * around a local head-shard plan. Uses only the public clpsa API. */
#include "clpsa_mpi.h"

#include <clpsa/clpsa_multi.h>

#include <limits.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { T_Q, T_K, T_V, T_OUT, T_COUNT };

struct clpsa_mpi_plan {
    MPI_Comm comm;
    clpsa_context *ctx;
    clpsa_plan *plan;
    clpsa_mpi_layout layout;
    int batch, heads_q, heads_kv, seq_q, seq_k, dim;
    size_t elem_in, elem_out;
    /* per rank: tokens of Q/out, tokens of K/V, query heads, kv heads (first, count) */
    int *seq_first, *seq_count, *seqk_first, *seqk_count, *head_first, *head_count, *kv_first,
        *kv_count;
    int *send_counts, *send_displs, *recv_counts, *recv_displs;
    MPI_Datatype row_in, row_out; /* one head's D elements */
    cl_mem local[T_COUNT];        /* [B, N, h_r, D] on the device */
    unsigned char *local_host[T_COUNT];
    unsigned char *send, *recv;
    char last_error[1024];
};

static _Thread_local char create_error[1024];

__attribute__((format(printf, 3, 4))) static clpsa_status
fail(clpsa_mpi_plan *mp, clpsa_status status, const char *fmt, ...) {
    char *dst = mp ? mp->last_error : create_error;
    va_list args;
    va_start(args, fmt);
    vsnprintf(dst, sizeof create_error, fmt, args);
    va_end(args);
    return status;
}

static clpsa_status fail_mpi(clpsa_mpi_plan *mp, int err, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "unknown MPI error");
    return fail(mp, CLPSA_ERROR_OPENCL, "%s failed with MPI error %d (%s)", what, err, text);
}

const char *clpsa_mpi_plan_last_error(const clpsa_mpi_plan *mp) {
    return mp ? mp->last_error : create_error;
}

static void split_even(int total, int parts, int *first, int *count) {
    for (int r = 0, at = 0; r < parts; ++r) {
        count[r] = total / parts + (r < total % parts ? 1 : 0);
        first[r] = at;
        at += count[r];
    }
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void clpsa_mpi_plan_destroy(clpsa_mpi_plan *mp) {
    if (!mp)
        return;
    clpsa_plan_destroy(mp->plan);
    for (int t = 0; t < T_COUNT; ++t) {
        if (mp->local[t])
            clReleaseMemObject(mp->local[t]);
        free(mp->local_host[t]);
    }
    if (mp->row_in != MPI_DATATYPE_NULL)
        MPI_Type_free(&mp->row_in);
    if (mp->row_out != MPI_DATATYPE_NULL)
        MPI_Type_free(&mp->row_out);
    int **arrays[] = {&mp->seq_first,   &mp->seq_count,   &mp->seqk_first,  &mp->seqk_count,
                      &mp->head_first,  &mp->head_count,  &mp->kv_first,    &mp->kv_count,
                      &mp->send_counts, &mp->send_displs, &mp->recv_counts, &mp->recv_displs};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; ++i)
        free(*arrays[i]);
    free(mp->send);
    free(mp->recv);
    free(mp);
}

static bool strides_set(const clpsa_strides *s) {
    return s->batch || s->head || s->seq || s->dim;
}

clpsa_status clpsa_mpi_plan_create(MPI_Comm comm, clpsa_context *ctx, const clpsa_plan_desc *desc,
                                   clpsa_mpi_plan **out) {
    if (out)
        *out = NULL;
    if (!ctx || !desc || !out)
        return fail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                    "clpsa_mpi_plan_create: ctx (%p), desc (%p) and out (%p) must not be NULL",
                    (void *)ctx, (const void *)desc, (void *)out);
    create_error[0] = '\0';
    if (!clpsa_context_queue(ctx))
        return fail(NULL, CLPSA_ERROR_NULL_ARGUMENT,
                    "clpsa_mpi_plan_create: ctx has no queue of its own (wrap one with "
                    "clpsa_context_desc.queue)");
    if (strides_set(&desc->q_strides) || strides_set(&desc->k_strides) ||
        strides_set(&desc->v_strides) || strides_set(&desc->out_strides))
        return fail(NULL, CLPSA_ERROR_INVALID_STRIDES,
                    "clpsa_mpi_plan_create: strides are set, but the rank's tensors are always "
                    "[B, n, H, D] host arrays; leave them 0");
    int ranks = 0, rank = 0, err = MPI_Comm_size(comm, &ranks);
    if (err == MPI_SUCCESS)
        err = MPI_Comm_rank(comm, &rank);
    if (err != MPI_SUCCESS)
        return fail_mpi(NULL, err, "MPI_Comm_size/rank");
    const int heads_kv = desc->heads_kv ? desc->heads_kv : desc->heads_q;
    const int seq_k = desc->seq_k ? desc->seq_k : desc->seq_q;
    if (desc->heads_q < 1 || heads_kv < 1 || desc->heads_q % heads_kv != 0 || desc->seq_q < 1 ||
        desc->batch < 1 || desc->head_dim < 1)
        return fail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                    "batch = %d, heads_q = %d, heads_kv = %d, seq_q = %d, head_dim = %d: sizes "
                    "must be >= 1 and heads_q a multiple of heads_kv",
                    desc->batch, desc->heads_q, heads_kv, desc->seq_q, desc->head_dim);
    if (ranks > heads_kv || ranks > desc->seq_q || ranks > seq_k)
        return fail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                    "%d ranks for heads_kv = %d, seq_q = %d, seq_k = %d: every rank needs at "
                    "least one kv-head group and one token of each sequence",
                    ranks, heads_kv, desc->seq_q, seq_k);
    const clpsa_dtype in = desc->dtype ? desc->dtype : CLPSA_DTYPE_FP32;
    const clpsa_dtype outt = desc->out_dtype ? desc->out_dtype : in;
    if (!clpsa_dtype_size(in) || !clpsa_dtype_size(outt))
        return fail(NULL, CLPSA_ERROR_INVALID_VALUE, "dtype = %d, out_dtype = %d: unknown type",
                    (int)desc->dtype, (int)desc->out_dtype);

    clpsa_mpi_plan *mp = calloc(1, sizeof *mp);
    if (!mp)
        return fail(NULL, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_mpi_plan_create: out of memory");
    clpsa_status status = CLPSA_OK;
    mp->row_in = mp->row_out = MPI_DATATYPE_NULL;
    mp->comm = comm;
    mp->ctx = ctx;
    mp->batch = desc->batch;
    mp->heads_q = desc->heads_q;
    mp->heads_kv = heads_kv;
    mp->seq_q = desc->seq_q;
    mp->seq_k = seq_k;
    mp->dim = desc->head_dim;
    mp->elem_in = clpsa_dtype_size(in);
    mp->elem_out = clpsa_dtype_size(outt);
    int **arrays[] = {&mp->seq_first,   &mp->seq_count,   &mp->seqk_first,  &mp->seqk_count,
                      &mp->head_first,  &mp->head_count,  &mp->kv_first,    &mp->kv_count,
                      &mp->send_counts, &mp->send_displs, &mp->recv_counts, &mp->recv_displs};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; ++i) {
        *arrays[i] = calloc((size_t)ranks, sizeof(int));
        if (!*arrays[i]) {
            status = fail(NULL, CLPSA_ERROR_OUT_OF_MEMORY, "clpsa_mpi_plan_create: out of memory");
            goto fail;
        }
    }
    split_even(desc->seq_q, ranks, mp->seq_first, mp->seq_count);
    split_even(seq_k, ranks, mp->seqk_first, mp->seqk_count);
    status = clpsa_split_heads(heads_kv, ranks, NULL, mp->kv_count);
    if (status != CLPSA_OK) {
        status = fail(NULL, status, "%s", clpsa_context_last_error(NULL));
        goto fail;
    }
    const int group = desc->heads_q / heads_kv;
    for (int r = 0, at = 0; r < ranks; at += mp->kv_count[r], ++r) {
        mp->kv_first[r] = at;
        mp->head_first[r] = at * group;
        mp->head_count[r] = mp->kv_count[r] * group;
    }
    /* Counts are in rows of D elements; they must fit MPI's int counts. */
    const long long rows_max =
        (long long)desc->batch * (desc->seq_q > seq_k ? desc->seq_q : seq_k) * desc->heads_q;
    if (rows_max > INT_MAX) {
        status = fail(NULL, CLPSA_ERROR_INVALID_SHAPE,
                      "batch * seq * heads_q = %lld rows of head_dim elements exceeds MPI's int "
                      "counts (%d)",
                      rows_max, INT_MAX);
        goto fail;
    }
    err = MPI_Type_contiguous((int)(desc->head_dim * mp->elem_in), MPI_BYTE, &mp->row_in);
    if (err == MPI_SUCCESS)
        err = MPI_Type_commit(&mp->row_in);
    if (err == MPI_SUCCESS)
        err = MPI_Type_contiguous((int)(desc->head_dim * mp->elem_out), MPI_BYTE, &mp->row_out);
    if (err == MPI_SUCCESS)
        err = MPI_Type_commit(&mp->row_out);
    if (err != MPI_SUCCESS) {
        status = fail_mpi(NULL, err, "MPI_Type_contiguous");
        goto fail;
    }

    clpsa_mpi_layout *l = &mp->layout;
    l->ranks = ranks;
    l->rank = rank;
    l->seq_first = mp->seq_first[rank];
    l->seq_count = mp->seq_count[rank];
    l->seq_k_first = mp->seqk_first[rank];
    l->seq_k_count = mp->seqk_count[rank];
    l->head_first = mp->head_first[rank];
    l->heads_q = mp->head_count[rank];
    l->kv_first = mp->kv_first[rank];
    l->heads_kv = mp->kv_count[rank];
    const size_t row_in = (size_t)desc->head_dim * mp->elem_in;
    const size_t row_out = (size_t)desc->head_dim * mp->elem_out;
    l->q_bytes = (size_t)desc->batch * l->seq_count * desc->heads_q * row_in;
    l->k_bytes = l->v_bytes = (size_t)desc->batch * l->seq_k_count * heads_kv * row_in;
    l->out_bytes = (size_t)desc->batch * l->seq_count * desc->heads_q * row_out;

    clpsa_plan_desc local = *desc;
    local.heads_q = l->heads_q;
    local.heads_kv = l->heads_kv;
    local.seq_k = seq_k;
    local.shard_head_first = desc->shard_head_first + l->head_first;
    local.shard_heads_q = desc->shard_heads_q ? desc->shard_heads_q : desc->heads_q;
    local.q_strides = local.out_strides =
        clpsa_strides_bnhd(l->heads_q, desc->seq_q, desc->head_dim);
    local.k_strides = local.v_strides = clpsa_strides_bnhd(l->heads_kv, seq_k, desc->head_dim);
    status = clpsa_plan_create(ctx, &local, &mp->plan);
    if (status != CLPSA_OK) {
        status = fail(NULL, status, "rank %d: local plan: %s", rank, clpsa_context_last_error(ctx));
        goto fail;
    }
    const size_t local_bytes[T_COUNT] = {(size_t)desc->batch * desc->seq_q * l->heads_q * row_in,
                                         (size_t)desc->batch * seq_k * l->heads_kv * row_in,
                                         (size_t)desc->batch * seq_k * l->heads_kv * row_in,
                                         (size_t)desc->batch * desc->seq_q * l->heads_q * row_out};
    size_t staging = 0;
    for (int t = 0; t < T_COUNT; ++t) {
        status = clpsa_context_alloc(ctx, local_bytes[t], &mp->local[t]);
        mp->local_host[t] = malloc(local_bytes[t]);
        if (status != CLPSA_OK || !mp->local_host[t]) {
            status = fail(NULL, status != CLPSA_OK ? status : CLPSA_ERROR_OUT_OF_MEMORY,
                          "rank %d: local buffers of %zu bytes: %s", rank, local_bytes[t],
                          clpsa_context_last_error(ctx));
            goto fail;
        }
        if (local_bytes[t] > staging)
            staging = local_bytes[t];
    }
    const size_t own[3] = {l->q_bytes, l->k_bytes, l->out_bytes};
    for (int i = 0; i < 3; ++i)
        if (own[i] > staging)
            staging = own[i];
    mp->send = malloc(staging);
    mp->recv = malloc(staging);
    if (!mp->send || !mp->recv) {
        status =
            fail(NULL, CLPSA_ERROR_OUT_OF_MEMORY, "rank %d: %zu bytes of staging", rank, staging);
        goto fail;
    }
    *out = mp;
    return CLPSA_OK;
fail:
    clpsa_mpi_plan_destroy(mp);
    return status;
}

clpsa_status clpsa_mpi_plan_layout(const clpsa_mpi_plan *mp, clpsa_mpi_layout *out) {
    if (!mp || !out)
        return CLPSA_ERROR_NULL_ARGUMENT;
    *out = mp->layout;
    return CLPSA_OK;
}

clpsa_plan *clpsa_mpi_plan_local(const clpsa_mpi_plan *mp) {
    return mp ? mp->plan : NULL;
}

/* The all-to-all of the send buffer into the receive buffer, with the counts and
 * displacements the caller set, in rows of `type`. */
static clpsa_status exchange(clpsa_mpi_plan *mp, MPI_Datatype type, const char *what) {
    const int err = MPI_Alltoallv(mp->send, mp->send_counts, mp->send_displs, type, mp->recv,
                                  mp->recv_counts, mp->recv_displs, type, mp->comm);
    return err == MPI_SUCCESS ? CLPSA_OK : fail_mpi(mp, err, what);
}

/* First all-to-all of one input: the rank's [B, n_r, H, D] tokens -> [B, N, h_r, D] of its
 * heads. heads_first/count are per rank (query or kv heads); seq_first/count the split of
 * this tensor's sequence. */
static clpsa_status scatter_heads(clpsa_mpi_plan *mp, const unsigned char *src, int heads, int seq,
                                  const int *seq_first, const int *seq_count, const int *h_first,
                                  const int *h_count, unsigned char *dst) {
    const int P = mp->layout.ranks, me = mp->layout.rank, B = mp->batch;
    const size_t row = (size_t)mp->dim * mp->elem_in;
    const int n_me = seq_count[me], h_me = h_count[me];
    size_t at = 0;
    for (int s = 0; s < P; ++s) { /* block for s: [B, n_me, h_s, D] */
        mp->send_displs[s] = (int)(at / row);
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < n_me; ++t) {
                const size_t bytes = (size_t)h_count[s] * row;
                memcpy(mp->send + at, src + (((size_t)b * n_me + t) * heads + h_first[s]) * row,
                       bytes);
                at += bytes;
            }
        mp->send_counts[s] = (int)(at / row) - mp->send_displs[s];
    }
    for (int s = 0, r = 0; s < P; ++s) {
        mp->recv_displs[s] = r;
        mp->recv_counts[s] = B * seq_count[s] * h_me;
        r += mp->recv_counts[s];
    }
    const clpsa_status status = exchange(mp, mp->row_in, "MPI_Alltoallv (tokens to heads)");
    if (status != CLPSA_OK)
        return status;
    for (int s = 0; s < P; ++s) /* from s: [B, n_s, h_me, D] -> tokens [first_s, +n_s) */
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < seq_count[s]; ++t)
                memcpy(dst + (((size_t)b * seq + seq_first[s] + t) * h_me) * row,
                       mp->recv + ((size_t)mp->recv_displs[s] + (size_t)b * seq_count[s] * h_me +
                                   (size_t)t * h_me) *
                                      row,
                       (size_t)h_me * row);
    return CLPSA_OK;
}

/* Second all-to-all: the local output [B, N, h_r, D] -> the rank's [B, n_r, Hq, D]. */
static clpsa_status gather_heads(clpsa_mpi_plan *mp, const unsigned char *src, unsigned char *dst) {
    const int P = mp->layout.ranks, me = mp->layout.rank, B = mp->batch;
    const size_t row = (size_t)mp->dim * mp->elem_out;
    const int h_me = mp->head_count[me], n_me = mp->seq_count[me];
    size_t at = 0;
    for (int s = 0; s < P; ++s) { /* block for s: its tokens of my heads, [B, n_s, h_me, D] */
        mp->send_displs[s] = (int)(at / row);
        for (int b = 0; b < B; ++b) {
            const size_t bytes = (size_t)mp->seq_count[s] * h_me * row;
            memcpy(mp->send + at, src + (((size_t)b * mp->seq_q + mp->seq_first[s]) * h_me) * row,
                   bytes);
            at += bytes;
        }
        mp->send_counts[s] = (int)(at / row) - mp->send_displs[s];
    }
    for (int s = 0, r = 0; s < P; ++s) {
        mp->recv_displs[s] = r;
        mp->recv_counts[s] = B * n_me * mp->head_count[s];
        r += mp->recv_counts[s];
    }
    const clpsa_status status = exchange(mp, mp->row_out, "MPI_Alltoallv (heads to tokens)");
    if (status != CLPSA_OK)
        return status;
    for (int s = 0; s < P; ++s) /* from s: [B, n_me, h_s, D] -> heads [first_s, +h_s) */
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < n_me; ++t)
                memcpy(dst + (((size_t)b * n_me + t) * mp->heads_q + mp->head_first[s]) * row,
                       mp->recv + ((size_t)mp->recv_displs[s] +
                                   ((size_t)b * n_me + t) * mp->head_count[s]) *
                                      row,
                       (size_t)mp->head_count[s] * row);
    return CLPSA_OK;
}

clpsa_status clpsa_mpi_plan_run(clpsa_mpi_plan *mp, const void *q, const void *k, const void *v,
                                void *out, clpsa_mpi_times *times) {
    if (!mp)
        return fail(NULL, CLPSA_ERROR_NULL_ARGUMENT, "clpsa_mpi_plan_run: mp is NULL");
    mp->last_error[0] = '\0';
    if (!q || !k || !v || !out)
        return fail(mp, CLPSA_ERROR_NULL_ARGUMENT,
                    "clpsa_mpi_plan_run: q (%p), k (%p), v (%p) and out (%p) must not be NULL", q,
                    k, v, out);
    const double t0 = now_ms();
    const int *kv_first = mp->kv_first, *kv_count = mp->kv_count;
    clpsa_status status = scatter_heads(mp, q, mp->heads_q, mp->seq_q, mp->seq_first, mp->seq_count,
                                        mp->head_first, mp->head_count, mp->local_host[T_Q]);
    if (status == CLPSA_OK)
        status = scatter_heads(mp, k, mp->heads_kv, mp->seq_k, mp->seqk_first, mp->seqk_count,
                               kv_first, kv_count, mp->local_host[T_K]);
    if (status == CLPSA_OK)
        status = scatter_heads(mp, v, mp->heads_kv, mp->seq_k, mp->seqk_first, mp->seqk_count,
                               kv_first, kv_count, mp->local_host[T_V]);
    if (status != CLPSA_OK)
        return status;
    const double t1 = now_ms();
    cl_command_queue queue = clpsa_context_queue(mp->ctx);
    clpsa_buffer_sizes sizes;
    clpsa_plan_buffer_sizes(mp->plan, &sizes);
    const size_t bytes[T_COUNT] = {sizes.q, sizes.k, sizes.v, sizes.out};
    cl_int err = CL_SUCCESS;
    cl_event writes[3] = {NULL, NULL, NULL}, ran = NULL;
    for (int t = 0; t < T_OUT && err == CL_SUCCESS; ++t)
        err = clEnqueueWriteBuffer(queue, mp->local[t], CL_FALSE, 0, bytes[t], mp->local_host[t], 0,
                                   NULL, &writes[t]);
    if (err == CL_SUCCESS)
        status = clpsa_plan_run(mp->plan, queue, mp->local[T_Q], mp->local[T_K], mp->local[T_V],
                                mp->local[T_OUT], 3, writes, &ran);
    if (err == CL_SUCCESS && status == CLPSA_OK)
        err = clEnqueueReadBuffer(queue, mp->local[T_OUT], CL_TRUE, 0, bytes[T_OUT],
                                  mp->local_host[T_OUT], 1, &ran, NULL);
    if (err != CL_SUCCESS || status != CLPSA_OK)
        clFinish(queue); /* the host staging may be in use by what was enqueued */
    for (int t = 0; t < 3; ++t)
        if (writes[t])
            clReleaseEvent(writes[t]);
    if (ran)
        clReleaseEvent(ran);
    if (status != CLPSA_OK)
        return fail(mp, status, "local plan: %s", clpsa_context_last_error(mp->ctx));
    if (err != CL_SUCCESS)
        return fail(mp, CLPSA_ERROR_OPENCL, "device transfer: OpenCL error %d (%s)", (int)err,
                    clpsa_opencl_error_name(err));
    const double t2 = now_ms();
    status = gather_heads(mp, mp->local_host[T_OUT], out);
    const double t3 = now_ms();
    if (times) {
        times->alltoall_ms = (t1 - t0) + (t3 - t2);
        times->compute_ms = t2 - t1;
        times->total_ms = t3 - t0;
    }
    return status;
}
