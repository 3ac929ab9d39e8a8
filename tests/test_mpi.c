/* SPDX-License-Identifier: Apache-2.0 */
/* libclpsa_mpi on 3 ranks (tests/check_mpi.sh): the split of tokens and heads that do not
 * divide by the rank count, and every rejected input with its status and sentence. The
 * results themselves are checked by examples/mpi_ulysses.c --check. Exit status 0 when every
 * check passed on every rank. */
#include "clpsa_mpi.h"

#include <stdio.h>
#include <string.h>

static int rank_id, failures;

static void expect(int ok, const char *what, const char *detail) {
    if (ok)
        return;
    fprintf(stderr, "test_mpi: rank %d: %s (%s)\n", rank_id, what, detail ? detail : "");
    failures += 1;
}

static void expect_error(clpsa_status got, clpsa_status want, const char *needle,
                         const char *what) {
    const char *detail = clpsa_mpi_plan_last_error(NULL);
    expect(got == want, what, clpsa_status_name(got));
    expect(strstr(detail, needle) != NULL, what, detail);
}

static void base_desc(clpsa_plan_desc *d) {
    clpsa_plan_desc_init(d);
    d->batch = 1;
    d->heads_q = 10;
    d->heads_kv = 5;
    d->seq_q = 301;
    d->head_dim = 32;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int ranks = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_id);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    if (ranks != 3) {
        if (rank_id == 0)
            fprintf(stderr, "test_mpi: run it on 3 ranks (got %d)\n", ranks);
        MPI_Finalize();
        return 1;
    }
    clpsa_context *ctx = NULL;
    if (clpsa_context_create(NULL, &ctx) != CLPSA_OK) {
        fprintf(stderr, "test_mpi: no context: %s\n", clpsa_context_last_error(NULL));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    clpsa_plan_desc d;
    base_desc(&d);
    clpsa_mpi_plan *mp = NULL;

    /* 5 kv-head groups of 2 query heads and 301 tokens over 3 ranks: 2/2/1 groups, 101/100/100
     * tokens */
    clpsa_status status = clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &d, &mp);
    expect(status == CLPSA_OK, "create", clpsa_mpi_plan_last_error(NULL));
    if (status == CLPSA_OK) {
        clpsa_mpi_layout l;
        expect(clpsa_mpi_plan_layout(mp, &l) == CLPSA_OK, "layout", NULL);
        const int kv[3] = {2, 2, 1}, kv_first[3] = {0, 2, 4};
        const int tokens[3] = {101, 100, 100}, first[3] = {0, 101, 201};
        expect(l.ranks == 3 && l.rank == rank_id, "layout rank", NULL);
        expect(l.heads_kv == kv[rank_id] && l.kv_first == kv_first[rank_id], "kv split", NULL);
        expect(l.heads_q == 2 * kv[rank_id] && l.head_first == 2 * kv_first[rank_id], "query split",
               NULL);
        expect(l.seq_count == tokens[rank_id] && l.seq_first == first[rank_id], "token split",
               NULL);
        expect(l.seq_k_count == tokens[rank_id], "key token split", NULL);
        expect(l.q_bytes == (size_t)tokens[rank_id] * 10 * 32 * 4, "q bytes", NULL);
        expect(l.k_bytes == (size_t)tokens[rank_id] * 5 * 32 * 4, "k bytes", NULL);
        clpsa_plan_desc local;
        expect(clpsa_plan_get_desc(clpsa_mpi_plan_local(mp), &local) == CLPSA_OK &&
                   local.heads_q == l.heads_q && local.shard_head_first == l.head_first &&
                   local.shard_heads_q == 10,
               "local plan is the rank's head shard", NULL);
        float x = 0.0f;
        status = clpsa_mpi_plan_run(mp, &x, NULL, &x, &x, NULL);
        expect(status == CLPSA_ERROR_NULL_ARGUMENT &&
                   strstr(clpsa_mpi_plan_last_error(mp), "must not be NULL"),
               "run with a NULL buffer", clpsa_mpi_plan_last_error(mp));
        clpsa_mpi_plan_destroy(mp);
    }

    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, NULL, &d, &mp), CLPSA_ERROR_NULL_ARGUMENT,
                 "must not be NULL", "NULL ctx");
    clpsa_plan_desc bad = d;
    bad.heads_q = 4;
    bad.heads_kv = 2; /* 2 groups for 3 ranks */
    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &bad, &mp), CLPSA_ERROR_INVALID_SHAPE,
                 "at least one kv-head group", "too many ranks for the heads");
    bad = d;
    bad.seq_q = 2;
    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &bad, &mp), CLPSA_ERROR_INVALID_SHAPE,
                 "one token of each sequence", "too many ranks for the tokens");
    bad = d;
    bad.q_strides = clpsa_strides_bnhd(10, 301, 32);
    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &bad, &mp), CLPSA_ERROR_INVALID_STRIDES,
                 "leave them 0", "strides set");
    bad = d;
    bad.heads_q = 7;
    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &bad, &mp), CLPSA_ERROR_INVALID_SHAPE,
                 "multiple of heads_kv", "ragged groups");
    bad = d;
    bad.head_dim = 12; /* rejected by the local plan, which names the rank */
    expect_error(clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &bad, &mp), CLPSA_ERROR_UNSUPPORTED,
                 "local plan", "local plan failure");
    expect(mp == NULL, "failed creation leaves *out NULL", NULL);

    int total = 0;
    MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank_id == 0)
        printf("test_mpi: %s (%d failed checks over 3 ranks)\n", total ? "FAIL" : "PASS", total);
    clpsa_context_destroy(ctx);
    MPI_Finalize();
    return total ? 1 : 0;
}
