/* SPDX-License-Identifier: Apache-2.0 */
/* Double-precision host reference of budget mode (docs/algorithm.md §6, mode budget): the
 * measurement on sampled query rows (each block's mass w and its pooling loss at levels 2, 4,
 * 8) and the per-row allocation of a density budget over the lower convex hull of each
 * block's (cost, predicted error) points. Written from docs/algorithm.md alone, as plain loops
 * over every key, independent of the kernels' per-block maxima and integer budget.
 *
 * Conventions docs/algorithm.md leaves open, resolved here (and by the library the same way):
 * - w is the mean of a_t over the sampled rows that see at least one key (every row, unless
 *   causal with Nk < Nq); a query block none of whose sampled rows sees a key has w = 0.
 * - The row budget is density * nk * (1 + 1e-6): the API stores the density as a float, and
 *   the relative slack makes 0.7f (a little below 0.7) count as 0.7 at every nk. An upgrade
 *   fits when its cost is at most what is left plus 1e-9. */
#ifndef CLPSA_TESTS_REF_BUDGET_H
#define CLPSA_TESTS_REF_BUDGET_H

#include "ref/ref_attention.h"

#include <clpsa/clpsa.h>

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How far two quantities of the allocation may differ between this reference and an fp32
 * implementation before the row counts as a near-tie: relative, and absolute on a pooling
 * loss (scaled by the block's w). */
typedef struct ref_budget_tolerance {
    double rtol;      /* relative, on errors, chord tests and upgrade ratios */
    double loss_atol; /* absolute, on a pooling loss (its fp32 cancellation) */
} ref_budget_tolerance;

/* The measurement of every query block: w (contiguous [B, Hq, nq, nk]) and loss (contiguous
 * [B, Hq, nq, nk, 3], levels 2, 4, 8). Rows are the sample_q offsets of the sampled estimate's
 * row stream of (b, h) (seed + 2 (b Hq + h)), replicate-padded; p->causal masks keys and pooled
 * tokens. round_to: the storage type the device keeps its pyramid in (as
 * ref_psa_pyramid_build). Returns 0, or -1 on bad arguments / out of memory. */
int ref_budget_measure(const ref_attention_problem *p, int block_q, int block_k, int sample_q,
                       uint64_t seed, const float *q, const float *k, clpsa_dtype round_to,
                       double *w, double *loss);

/* The allocation of one row: forced[j] (optional) REF_PSA_FORCED gives block j level 1 (its
 * cost taken first), REF_PSA_FUTURE level 0 (no cost, no upgrade: never visited);
 * budget in blocks (density * nk, slack included by the caller). levels[j] receives the level.
 * When near is not NULL it is set non-zero if some decision lies within tol of going the other
 * way (a hull test, or two upgrades' ratios). Returns 0 or -1. */
int ref_budget_allocate_row(const double *w, const double *loss, int nk, const int *forced,
                            double budget, ref_budget_tolerance tol, int *levels, int *near);

/* The row budget in blocks for a density the API stores as a float. */
double ref_budget_blocks(double density, int nk);

/* Every row: the forced blocks of ref_psa_forced_row (text key blocks, text query blocks, with
 * causal key block 0 and the diagonal block; the future left out), then
 * ref_budget_allocate_row. near_row optional (B Hq nq ints). */
int ref_budget_assign(const ref_attention_problem *p, int block_q, int block_k, int text_tokens,
                      int causal, double density, const double *w, const double *loss,
                      ref_budget_tolerance tol, int8_t *levels, int *near_row);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_TESTS_REF_BUDGET_H */
