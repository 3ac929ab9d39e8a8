/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa_mpi.h
 * @brief Ulysses sequence parallelism over MPI ranks around a local clpsa plan (libclpsa_mpi,
 * built when CMake finds MPI; not part of libclpsa itself).
 *
 * Each of the P ranks of a communicator holds a slice of the sequence for all heads: tokens
 * [seq_first, seq_first + seq_count) of Q, K, V as host tensors [B, n_r, H, D] in the
 * plan's storage type. A run does the first all-to-all (MPI_Alltoallv: every rank sends each
 * other rank its tokens of that rank's heads), so each rank holds the whole sequence for a
 * slice of the kv-head groups; runs PSA on it with a local clpsa plan (a head shard, so the
 * sampled estimate matches one plan over all heads); and does the second all-to-all, which
 * returns the output to the sequence split: out [B, n_r, Hq, D] on every rank. Tokens and
 * kv-head groups that do not divide by P are split as evenly as possible (the first ranks get
 * one more), which Alltoallv's per-rank counts carry. Buffers are host memory; the device
 * transfers are blocking writes and reads on the rank's queue.
 *
 * A run sends (P - 1) / P of every tensor over the network: (2 Hq + 2 Hkv) * B * N * D * bytes
 * over all ranks, Q and K, V in the first all-to-all and the output in the second
 * (bench/NOTES.md has the scaling model).
 *
 * Threads: MPI's rules for the communicator, and clpsa's for the context.
 */
#ifndef CLPSA_CLPSA_MPI_H
#define CLPSA_CLPSA_MPI_H

#include <clpsa/clpsa.h>
#include <mpi.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief A rank's part of a Ulysses-parallel attention. Opaque. */
typedef struct clpsa_mpi_plan clpsa_mpi_plan;

/** @brief The rank's slices: its tokens before and after attention, its heads during it. */
typedef struct clpsa_mpi_layout {
    int ranks, rank;
    int seq_first, seq_count;                    /**< query tokens (Q, out) this rank holds */
    int seq_k_first, seq_k_count;                /**< key/value tokens (K, V) this rank holds */
    int head_first, heads_q;                     /**< query heads this rank attends over */
    int kv_first, heads_kv;                      /**< kv heads this rank attends over */
    size_t q_bytes, k_bytes, v_bytes, out_bytes; /**< host buffer sizes of a run */
} clpsa_mpi_layout;

/** @brief Milliseconds of the last run on this rank. */
typedef struct clpsa_mpi_times {
    double alltoall_ms; /**< both all-to-alls, with packing and unpacking */
    double compute_ms;  /**< device upload, the local plan, read-back */
    double total_ms;
} clpsa_mpi_times;

/**
 * @brief Creates this rank's plan: collective over comm (every rank calls it with the same
 * desc). desc is the whole attention (global seq_q, seq_k, heads); its strides must be unset:
 * tensors are [B, n, H, D] host arrays. The local plan is created on ctx.
 *
 * On failure *out is NULL and clpsa_mpi_plan_last_error(NULL) has the detail (for the calling
 * thread; it quotes ctx's last_error when the local plan failed). A rank whose creation fails does
 * not wait for the others, so callers should agree on success (e.g. MPI_Allreduce of the status)
 * before running.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT for a NULL ctx, desc or out;
 *   CLPSA_ERROR_INVALID_SHAPE for more ranks than kv-head groups or than tokens;
 *   CLPSA_ERROR_INVALID_STRIDES for strides that are set; CLPSA_ERROR_OPENCL when an MPI
 *   call fails (its error string in last_error); any status of clpsa_plan_create().
 */
clpsa_status clpsa_mpi_plan_create(MPI_Comm comm, clpsa_context *ctx, const clpsa_plan_desc *desc,
                                   clpsa_mpi_plan **out);
/** @brief Destroys the plan (not collective). NULL is a no-op. */
void clpsa_mpi_plan_destroy(clpsa_mpi_plan *mp);
/** @brief The rank's slices, in *out. @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT. */
clpsa_status clpsa_mpi_plan_layout(const clpsa_mpi_plan *mp, clpsa_mpi_layout *out);
/** @brief The local plan (head shard), owned by mp; NULL for NULL. */
clpsa_plan *clpsa_mpi_plan_local(const clpsa_mpi_plan *mp);

/**
 * @brief Collective: attention of this rank's token slices q, k, v ([B, n_r, H, D] host
 * arrays, layout bytes each) into out; blocks until the rank's output is complete. times may
 * be NULL.
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT for NULL buffers; CLPSA_ERROR_OPENCL when an
 *   MPI call or a transfer fails; any status of clpsa_plan_run().
 */
clpsa_status clpsa_mpi_plan_run(clpsa_mpi_plan *mp, const void *q, const void *k, const void *v,
                                void *out, clpsa_mpi_times *times);

/** @brief Detail of the plan's last failure ("" if none); for NULL, of the calling thread's
 * last failed clpsa_mpi_plan_create(). */
const char *clpsa_mpi_plan_last_error(const clpsa_mpi_plan *mp);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_MPI_H */
