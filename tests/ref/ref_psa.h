/* SPDX-License-Identifier: Apache-2.0 */
/* Double-precision host reference of the whole PSA pipeline (docs/algorithm.md §3-§8): the
 * key/value pyramid, the sampled and antidiagonal block-importance estimates, level
 * assignment (threshold, quantile, energy, binary) with forced blocks and the similarity cap,
 * attention over a level map, level statistics and the presets.
 *
 * It is written from docs/algorithm.md alone, as plain loops, so that a disagreement with the
 * device points at the kernels. Inputs are float arrays holding values already rounded to the
 * storage type, addressed with the device's element strides (ref_attention_problem). Every pipeline
 * stage is its own function so a test can feed one stage the device's output of the previous
 * one (for example assign the device's S) and compare stage by stage.
 *
 * Conventions docs/algorithm.md leaves open, resolved here (and by the library the same way):
 * - A row of S that sums to 0 (antidiagonal estimate of a query block that sees no key) has
 *   E[p] = 1 at every sorted position.
 * - The diagonal block of query block i: r = min((i+1)*bm, Nq) - 1 (its last row),
 *   c = r + (Nk - Nq); if c >= 0 it is min(c, Nk - 1) / bn, otherwise there is none.
 * - Level 0 is never aligned (align() is defined for f >= 1 only).
 * - Thresholds, min_full and binary_density are used as the caller's numbers (the API
 *   stores them as float; a test passes (double)the_float). */
#ifndef CLPSA_TESTS_REF_PSA_H
#define CLPSA_TESTS_REF_PSA_H

#include "ref/ref_attention.h"

#include <clpsa/clpsa.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Levels are stored by index l = 0..3 for f = 1, 2, 4, 8 wherever a table is per level. */
#define REF_PSA_LEVELS 4

/* Tolerance on the thresholds in docs/algorithm.md §6 ("E[p] <= tau + 1e-6"). */
#define REF_PSA_TAU_SLACK 1e-6
/* Width of the band around a threshold where implementations may legitimately differ. */
#define REF_PSA_NEAR 1e-5

/* ---- Section 3: the key/value pyramid ---- */

/* Pooled K and V of every (batch, kv head) for f = 2, 4, 8, contiguous
 * [B, Hkv, npool_f, D] in double. Level 1 is not stored: it is K and V themselves. */
typedef struct ref_psa_pyramid {
    int batch, heads_kv, seq_k, head_dim;
    int npool[REF_PSA_LEVELS]; /* ceil(Nk / f); npool[0] = Nk */
    double *k[REF_PSA_LEVELS]; /* k[0] and v[0] are NULL */
    double *v[REF_PSA_LEVELS];
} ref_psa_pyramid;

/* Number of real tokens pooled into pooled token p of level f: |[p*f, p*f+f) ∩ [0, Nk)|. */
int ref_psa_pool_count(int seq_k, int f, int p);

/* Builds the pyramid from K and V (strided as in p). round_to: CLPSA_DTYPE_DEFAULT keeps the
 * exact double means; FP32/FP16/BF16 round each mean once to that type, as the device stores
 * its pyramid in the storage type. Returns 0, or -1 on bad arguments / out of memory. */
int ref_psa_pyramid_build(const ref_attention_problem *p, const float *k, const float *v,
                          clpsa_dtype round_to, ref_psa_pyramid *out);
void ref_psa_pyramid_free(ref_psa_pyramid *pyr);
/* Row p of K^f (or V^f) of (b, kvh); f in {2, 4, 8}. */
const double *ref_psa_pyramid_k(const ref_psa_pyramid *pyr, int f, int b, int kvh, int p);
const double *ref_psa_pyramid_v(const ref_psa_pyramid *pyr, int f, int b, int kvh, int p);

/* ---- Section 4: attention over a level map ---- */

/* out (contiguous double [B, Hq, Nq, D]) = attention of every query row over the pooled
 * tokens its query block's level map row selects. levels is int8 [B, Hq, nq, nk] with
 * nq = ceil(Nq / bm), nk = ceil(Nk / bn); values other than 0, 1, 2, 4, 8 are an error.
 * round_to as for ref_psa_pyramid_build. Returns 0 or -1. */
int ref_psa_attention(const ref_attention_problem *p, int block_q, int block_k,
                      const int8_t *levels, const float *q, const float *k, const float *v,
                      clpsa_dtype round_to, double *out);

/* ---- Section 5: block importance estimates ---- */

/* One splitmix64 step exactly as docs/algorithm.md writes it: *x is advanced first, then mixed. */
uint64_t ref_psa_splitmix64(uint64_t *x);

/* s distinct offsets of [0, n) from stream start x0 by the partial Fisher-Yates draw of
 * docs/algorithm.md §5 (1 <= s <= n). out receives a[0..s). Returns 0, or -1 on bad arguments. */
int ref_psa_draw_offsets(uint64_t x0, int n, int s, int *out);

/* Stream starts of (b, h): rows use seed + 2*(b*Hq + h), keys that plus 1 (mod 2^64). */
uint64_t ref_psa_row_stream(uint64_t seed, int heads_q, int b, int h);
uint64_t ref_psa_key_stream(uint64_t seed, int heads_q, int b, int h);

/* Sampled estimate: scores (contiguous double [B, Hq, nq, nk]), every row summing to 1.
 * sample_q in [1, bm], sample_k in [1, bn]. p->causal is not used (the estimate is unmasked).
 * Returns 0 or -1. */
int ref_psa_estimate_sampled(const ref_attention_problem *p, int block_q, int block_k, int sample_q,
                             int sample_k, uint64_t seed, const float *q, const float *k,
                             double *scores);

/* Antidiagonal estimate with stride s (bm and bn multiples of s); p->causal masks stride
 * columns. Rows that see nothing stay all zero. Returns 0 or -1. */
int ref_psa_estimate_antidiagonal(const ref_attention_problem *p, int block_q, int block_k,
                                  int stride, const float *q, const float *k, double *scores);

/* ---- Section 6: level assignment ---- */

typedef struct ref_psa_params {
    int block_q, block_k;            /* bm, bn */
    clpsa_mode mode;                 /* threshold, quantile or energy */
    double thresholds[4];            /* tau1, tau2, tau4, tau8, non-decreasing in [0, 1] */
    int align_tile;                  /* 0: no alignment */
    double min_full;                 /* threshold mode; negative: none (0 still keeps one block) */
    int text_tokens;                 /* tokens at the end forced to level 1 */
    int causal;                      /* forces key block 0 and the diagonal block to level 1 */
    int similarity_cap;              /* non-zero: cap levels by block self-similarity */
    double similarity_thresholds[3]; /* t2, t4, t8 */
    int binary;                      /* non-zero: the binary baseline instead of mode */
    double binary_density;           /* binary: keep ceil(density * nk) blocks per row (causal:
                                        of those it can see, in ref_psa_assign) */
} ref_psa_params;

/* Parameters with docs/algorithm.md's defaults: bm 128, bn 64, threshold mode, 0.5/0.6/0.7/0.8,
 * align_tile 32, min_full 0.06 (as float), no text tokens, not causal, no cap. */
void ref_psa_params_default(ref_psa_params *params);

/* align(f) of docs/algorithm.md §6 (align_tile 0: 1 for every f). */
int ref_psa_align(int f, int align_tile, int block_k);

/* The key blocks of a row ordered by score descending, ties by lower index first. */
void ref_psa_sort_row(const double *scores, int nk, int *order);

/* The mode's rule for one row of scores, nothing forced, no cap: levels[j] for key block j.
 * energy (optional, nk doubles) receives E[p] per sorted position and order (optional, nk
 * ints) the sorted block indices. Binary params give the binary rule. Returns 0 or -1. */
int ref_psa_assign_row_rule(const double *scores, int nk, const ref_psa_params *params, int *levels,
                            double *energy, int *order);

/* Whether any E[p] of a row lies within eps of tau1..tau8 (tau0 = 1 is not a threshold for
 * this purpose: E[nk-1] is always 1). Rows for which this holds may differ between
 * implementations. Quantile and binary rows never depend on E: the caller skips the check. */
int ref_psa_energy_near_threshold(const double *energy, int nk, const double thresholds[4],
                                  double eps);

/* The diagonal key block of query block i (see the header comment), or -1. */
int ref_psa_diagonal_block(int i, int block_q, int block_k, int seq_q, int seq_k);

/* Whether query block i holds a text row: one of the last text_tokens query rows (query row
 * r stands at key position r + Nk - Nq, and text tokens are the last text_tokens keys). */
int ref_psa_text_query_block(int i, int block_q, int seq_q, int text_tokens);

/* Whether key block j lies wholly in the future of query block i under the causal mask: its
 * first key is after the last key the block's last row sees. Never with causal = 0. */
int ref_psa_future_block(int i, int j, int block_q, int block_k, int seq_q, int seq_k, int causal);

/* What the forced-block rules of docs/algorithm.md §6 make of key block j of query block i,
 * for the modes that have them (not binary). */
#define REF_PSA_FREE 0 /* the mode decides */
#define REF_PSA_FORCED                                                                             \
    1                    /* level 1: a text key block, a text query block, or (causal) key         \
                            block 0 or the diagonal block */
#define REF_PSA_FUTURE 2 /* wholly in the future (causal): level 0, whatever else holds */
/* forced[j] for the nk key blocks of query block i. */
void ref_psa_forced_row(int i, int block_q, int block_k, int seq_q, int seq_k, int text_tokens,
                        int causal, int *forced);

/* Block self-similarity: sims (contiguous double [B, Hkv, nk, 3]) = sim_2, sim_4, sim_8 of
 * every key block, -INFINITY where the block has no complete group. Returns 0 or -1. */
int ref_psa_block_similarity(const ref_attention_problem *p, int block_k, const float *k,
                             double *sims);
/* L_j of docs/algorithm.md §6 from one block's (sim_2, sim_4, sim_8). */
int ref_psa_similarity_cap(const double sim[3], const double thresholds[3]);
/* Whether any sim_f of a block lies within eps of its threshold t_f. */
int ref_psa_similarity_near(const double sim[3], const double thresholds[3], double eps);

/* The whole assignment of every row: the mode (or binary) rule, then (not binary) the text
 * and causal forced blocks, then (not binary, when params->similarity_cap) the cap, then (in
 * every mode, also on a non-finite row) level 0 on the key blocks wholly in the future.
 * scores: [B, Hq, nq, nk] doubles; k is only read when the cap is on. levels: int8
 * [B, Hq, nq, nk]. near_row (optional, B*Hq*nq ints) is set non-zero for rows whose result
 * may legitimately differ elsewhere: an E within REF_PSA_NEAR of a threshold (threshold and
 * energy modes), or a selected block whose similarity lies within REF_PSA_NEAR of its cap
 * threshold. p->causal is ignored in favour of params->causal. Returns 0 or -1. */
int ref_psa_assign(const ref_attention_problem *p, const ref_psa_params *params,
                   const double *scores, const float *k, int8_t *levels, int *near_row);

/* ---- Section 8: statistics of a level map ---- */

/* density = mean over rows of sum_j (1/f_j) / nk; histogram of levels 0, 1, 2, 4, 8.
 * Returns 0, or -1 if a value is not a level. */
int ref_psa_level_stats(const int8_t *levels, size_t rows, int blocks_k, double *density,
                        uint64_t histogram[5]);

/* ---- Section 7: presets ---- */

typedef struct ref_psa_preset {
    const char *name;
    float thresholds[4]; /* float, as the API's desc stores them */
    clpsa_mode mode;
    int block_q, block_k;
    int similarity_cap;
    float similarity_thresholds[3]; /* meaningful when similarity_cap */
    int causal;
    clpsa_estimator estimator;
} ref_psa_preset;

/* The preset of that name, or NULL. */
const ref_psa_preset *ref_psa_find_preset(const char *name);
/* Number of presets and the i-th one (for iterating). */
int ref_psa_preset_count(void);
const ref_psa_preset *ref_psa_preset_at(int i);
/* params := defaults overridden by the preset (bm/bn, thresholds, mode, cap, causal). */
void ref_psa_params_from_preset(const ref_psa_preset *preset, ref_psa_params *params);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_TESTS_REF_PSA_H */
