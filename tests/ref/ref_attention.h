/* SPDX-License-Identifier: Apache-2.0 */
/* Double-precision host reference of attention (docs/algorithm.md §4), the oracle every kernel
 * test compares against. Inputs are float arrays that already hold values rounded to the
 * storage type, addressed with the same element strides as the device tensors, so the
 * reference reads exactly the numbers the device reads and only the device's fp32
 * accumulation and output rounding remain as differences.
 *
 * The row-level pieces (visibility, softmax over a gathered list of tokens) are exposed so the
 * PSA reference (pooled levels, its own file beside this one) builds on the same arithmetic:
 * a pooled token is just one more (logit, value row) pair with ln(cnt) added to its logit. */
#ifndef CLPSA_TESTS_REF_ATTENTION_H
#define CLPSA_TESTS_REF_ATTENTION_H

#include <clpsa/clpsa.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Shapes and strides of one attention problem. Q is [B, Hq, Nq, D]; K and V are
 * [B, Hkv, Nk, D]; strides are in elements with dim == 1. */
typedef struct ref_attention_problem {
    int batch;
    int heads_q;
    int heads_kv; /* divides heads_q: query head h reads kv head h / (heads_q / heads_kv) */
    int seq_q;
    int seq_k;
    int head_dim;
    clpsa_strides q_strides;
    clpsa_strides k_strides;
    clpsa_strides v_strides;
    double scale; /* used as given: the caller resolves the 1/sqrt(D) default */
    int causal;   /* non-zero: bottom-right aligned mask */
} ref_attention_problem;

/* Element offset of row (b, h, n) of a strided tensor. */
static inline int64_t ref_offset(const clpsa_strides *s, int64_t b, int64_t h, int64_t n) {
    return b * s->batch + h * s->head + n * s->seq;
}

/* The kv head that query head h reads under grouped-query attention. */
static inline int ref_kv_head(const ref_attention_problem *p, int h) {
    return h / (p->heads_q / p->heads_kv);
}

/* Number of keys visible to query row t: keys [0, result) are visible. Causal masks are
 * bottom-right aligned (key c visible iff c <= t + (Nk - Nq)), so the result may be 0. */
int ref_visible_keys(const ref_attention_problem *p, int t);

/* Dot product of two float vectors of length n, accumulated in double. */
double ref_dot(const float *a, const float *b, int n);

/* out[0..dim) = sum_i softmax(logits)_i * values[i][0..dim), in double with the maximum
 * subtracted first. count == 0 writes zeros, the result docs/algorithm.md §4 requires for a row
 * that sees nothing. */
void ref_softmax_combine(const double *logits, const float *const *values, size_t count, int dim,
                         double *out);

/* Dense attention with every block at level 1. out is contiguous double [B, Hq, Nq, D].
 * Returns 0 on success, -1 if the problem is malformed or memory runs out. */
int ref_attention_dense(const ref_attention_problem *p, const float *q, const float *k,
                        const float *v, double *out);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_TESTS_REF_ATTENTION_H */
