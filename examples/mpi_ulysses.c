/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example: Ulysses sequence parallelism over MPI ranks (clpsa_mpi.h).
 *
 * Every rank builds the same whole Q, K, V from a seed, keeps its slice of the tokens
 * ([B, n_r, H, D], as the layer before attention would leave it on that rank), and calls
 * clpsa_mpi_plan_run: an all-to-all to whole sequences of a slice of the heads, PSA on the
 * rank's device, an all-to-all back. With --check each rank also runs one plan over all heads
 * and tokens on its device and compares its output slice with it; with --repeat R it times R
 * runs after a warm-up and prints the slowest rank's best times, the all-to-all part apart.
 *
 *   mpirun -np 2 clpsa_example_mpi_ulysses --check
 *   mpirun -np 3 clpsa_example_mpi_ulysses --heads 5 --kv-heads 5 --seq 301 --check
 *
 * Options: --batch B --heads Hq --kv-heads Hkv --seq N --dim D --method psa|dense
 *          --repeat R --seed S --check
 * Exit status (every rank): 0 when the run (and the check) passed, 1 otherwise.
 */
#include "clpsa_mpi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rank_id;

static void die(const char *what, clpsa_status status, const char *detail) {
    fprintf(stderr, "mpi_ulysses: rank %d: %s: %s: %s\n", rank_id, what, clpsa_status_name(status),
            detail);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static float *random_tensor(size_t count, unsigned long long seed) {
    float *x = malloc(count * sizeof *x);
    if (!x)
        die("host memory", CLPSA_ERROR_OUT_OF_MEMORY, "malloc");
    unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < count; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    return x;
}

/* The rank's tokens [first, first + count) of a whole [B, N, H, D] tensor. */
static float *token_slice(const float *whole, int batch, int seq, int heads, int dim, int first,
                          int count) {
    const size_t row = (size_t)heads * dim;
    float *x = malloc((size_t)batch * count * row * sizeof *x);
    if (!x)
        die("host memory", CLPSA_ERROR_OUT_OF_MEMORY, "malloc");
    for (int b = 0; b < batch; ++b)
        memcpy(x + (size_t)b * count * row, whole + ((size_t)b * seq + first) * row,
               (size_t)count * row * sizeof *x);
    return x;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int ranks = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_id);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    int batch = 1, heads = 4, kv_heads = 0, seq = 256, dim = 64, repeat = 0, check = 0;
    unsigned long long seed = 1;
    clpsa_method method = CLPSA_METHOD_PSA;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int *target = !strcmp(a, "--batch")      ? &batch
                      : !strcmp(a, "--heads")    ? &heads
                      : !strcmp(a, "--kv-heads") ? &kv_heads
                      : !strcmp(a, "--seq")      ? &seq
                      : !strcmp(a, "--dim")      ? &dim
                      : !strcmp(a, "--repeat")   ? &repeat
                                                 : NULL;
        if (target && val) {
            *target = atoi(val);
            ++i;
        } else if (!strcmp(a, "--seed") && val) {
            seed = strtoull(val, NULL, 10);
            ++i;
        } else if (!strcmp(a, "--method") && val) {
            method = !strcmp(val, "dense") ? CLPSA_METHOD_DENSE : CLPSA_METHOD_PSA;
            ++i;
        } else if (!strcmp(a, "--check")) {
            check = 1;
        } else {
            if (rank_id == 0)
                fprintf(stderr, "mpi_ulysses: unknown or incomplete option %s\n", a);
            MPI_Finalize();
            return 2;
        }
    }
    if (kv_heads == 0)
        kv_heads = heads;

    clpsa_context *ctx = NULL;
    clpsa_status status = clpsa_context_create(NULL, &ctx);
    if (status != CLPSA_OK)
        die("clpsa_context_create", status, clpsa_context_last_error(NULL));
    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.method = method;
    desc.batch = batch;
    desc.heads_q = heads;
    desc.heads_kv = kv_heads;
    desc.seq_q = seq;
    desc.head_dim = dim;
    clpsa_mpi_plan *mp = NULL;
    status = clpsa_mpi_plan_create(MPI_COMM_WORLD, ctx, &desc, &mp);
    int ok = status == CLPSA_OK, all_ok = 0;
    if (!ok)
        fprintf(stderr, "mpi_ulysses: rank %d: clpsa_mpi_plan_create: %s: %s\n", rank_id,
                clpsa_status_name(status), clpsa_mpi_plan_last_error(NULL));
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        clpsa_context_destroy(ctx);
        MPI_Finalize();
        return 1;
    }
    clpsa_mpi_layout l;
    clpsa_mpi_plan_layout(mp, &l);

    const size_t nq = (size_t)batch * seq * heads * dim, nk = (size_t)batch * seq * kv_heads * dim;
    float *q = random_tensor(nq, seed), *k = random_tensor(nk, seed + 1),
          *v = random_tensor(nk, seed + 2);
    float *my_q = token_slice(q, batch, seq, heads, dim, l.seq_first, l.seq_count);
    float *my_k = token_slice(k, batch, seq, kv_heads, dim, l.seq_k_first, l.seq_k_count);
    float *my_v = token_slice(v, batch, seq, kv_heads, dim, l.seq_k_first, l.seq_k_count);
    float *my_out = malloc(l.out_bytes);
    if (!my_out)
        die("host memory", CLPSA_ERROR_OUT_OF_MEMORY, "malloc");

    clpsa_mpi_times best = {0, 0, 0}, t;
    for (int r = 0; r <= repeat; ++r) {
        MPI_Barrier(MPI_COMM_WORLD);
        status = clpsa_mpi_plan_run(mp, my_q, my_k, my_v, my_out, &t);
        if (status != CLPSA_OK)
            die("clpsa_mpi_plan_run", status, clpsa_mpi_plan_last_error(mp));
        if (r == 1 || (r > 1 && t.total_ms < best.total_ms))
            best = t;
    }
    int failed = 0;
    if (check) {
        /* one plan over everything on this rank's device, [B, N, H, D] */
        clpsa_plan_desc whole = desc;
        whole.q_strides = whole.out_strides = clpsa_strides_bnhd(heads, seq, dim);
        whole.k_strides = whole.v_strides = clpsa_strides_bnhd(kv_heads, seq, dim);
        clpsa_plan *plan = NULL;
        status = clpsa_plan_create(ctx, &whole, &plan);
        if (status != CLPSA_OK)
            die("reference plan", status, clpsa_context_last_error(ctx));
        cl_mem buf[4];
        const size_t sizes[4] = {nq, nk, nk, nq};
        const float *host[3] = {q, k, v};
        cl_command_queue queue = clpsa_context_queue(ctx);
        for (int i = 0; i < 4; ++i) {
            status = clpsa_context_alloc(ctx, sizes[i] * sizeof(float), &buf[i]);
            if (status != CLPSA_OK)
                die("clpsa_context_alloc", status, clpsa_context_last_error(ctx));
            if (i < 3 && clEnqueueWriteBuffer(queue, buf[i], CL_TRUE, 0, sizes[i] * sizeof(float),
                                              host[i], 0, NULL, NULL) != CL_SUCCESS)
                die("clEnqueueWriteBuffer", CLPSA_ERROR_OPENCL, "");
        }
        status = clpsa_plan_run(plan, NULL, buf[0], buf[1], buf[2], buf[3], 0, NULL, NULL);
        if (status != CLPSA_OK)
            die("reference run", status, clpsa_context_last_error(ctx));
        float *ref = malloc(nq * sizeof *ref);
        if (!ref || clEnqueueReadBuffer(queue, buf[3], CL_TRUE, 0, nq * sizeof(float), ref, 0, NULL,
                                        NULL) != CL_SUCCESS)
            die("reference read-back", CLPSA_ERROR_OPENCL, "");
        float *ref_slice = token_slice(ref, batch, seq, heads, dim, l.seq_first, l.seq_count);
        double worst = 0.0;
        const size_t mine = l.out_bytes / sizeof(float);
        for (size_t i = 0; i < mine; ++i) {
            const double d = fabs((double)my_out[i] - ref_slice[i]);
            if (!(d <= 1e-6 + 1e-6 * fabs((double)ref_slice[i])))
                failed = 1;
            if (!(d <= worst))
                worst = d;
        }
        double worst_all = 0.0;
        MPI_Reduce(&worst, &worst_all, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (rank_id == 0)
            printf("check: %d ranks, B=%d Hq=%d Hkv=%d N=%d D=%d %s: max |ulysses - single| = "
                   "%.3g\n",
                   ranks, batch, heads, kv_heads, seq, dim,
                   method == CLPSA_METHOD_DENSE ? "dense" : "psa", worst_all);
        free(ref);
        free(ref_slice);
        for (int i = 0; i < 4; ++i)
            clReleaseMemObject(buf[i]);
        clpsa_plan_destroy(plan);
    }
    if (repeat > 0) {
        double mine[3] = {best.total_ms, best.alltoall_ms, best.compute_ms}, worst[3];
        MPI_Reduce(mine, worst, 3, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        const double bytes = 2.0 * (heads + kv_heads) * (double)batch * seq * dim * sizeof(float) *
                             (ranks - 1) / ranks;
        if (rank_id == 0)
            printf("time: %d ranks, B=%d Hq=%d Hkv=%d N=%d D=%d: total %.2f ms, all-to-all %.2f "
                   "ms, compute %.2f ms (slowest rank, best of %d); %.1f MB through the "
                   "all-to-alls\n",
                   ranks, batch, heads, kv_heads, seq, dim, worst[0], worst[1], worst[2], repeat,
                   bytes / 1e6);
    }
    int any_failed = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank_id == 0 && check)
        printf("check: %s\n", any_failed ? "FAIL" : "PASS");
    free(q);
    free(k);
    free(v);
    free(my_q);
    free(my_k);
    free(my_v);
    free(my_out);
    clpsa_mpi_plan_destroy(mp);
    clpsa_context_destroy(ctx);
    MPI_Finalize();
    return any_failed ? 1 : 0;
}
