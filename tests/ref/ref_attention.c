/* SPDX-License-Identifier: Apache-2.0 */
/* Double-precision dense attention: the straightforward O(Nq * Nk * D) loops, written for
 * obviousness rather than speed so that a disagreement points at the kernel. */
#include "ref/ref_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ref_visible_keys(const ref_attention_problem *p, int t) {
    if (!p->causal)
        return p->seq_k;
    /* 64-bit so that extreme Nk - Nq differences cannot overflow. */
    const int64_t last = (int64_t)t + ((int64_t)p->seq_k - p->seq_q);
    if (last < 0)
        return 0;
    return last + 1 < p->seq_k ? (int)(last + 1) : p->seq_k;
}

double ref_dot(const float *a, const float *b, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; ++i)
        sum += (double)a[i] * (double)b[i];
    return sum;
}

void ref_softmax_combine(const double *logits, const float *const *values, size_t count, int dim,
                         double *out) {
    for (int d = 0; d < dim; ++d)
        out[d] = 0.0;
    if (count == 0)
        return;
    /* IEEE propagation as the kernels (docs/api.md, "NaN and infinity"): the maximum skips NaN
     * (whose weight is NaN anyway); 0 stands in for it while every logit is -inf, so such a
     * row weighs nothing and is zero (times its values) instead of exp(-inf + inf). */
    double max = -INFINITY;
    for (size_t i = 0; i < count; ++i)
        max = logits[i] > max ? logits[i] : max;
    if (max == -INFINITY)
        max = 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < count; ++i) {
        const double w = exp(logits[i] - max);
        sum += w;
        for (int d = 0; d < dim; ++d)
            out[d] += w * (double)values[i][d];
    }
    /* sum >= 1 when the maximum is finite (it contributes exp(0)); 0 or NaN otherwise. */
    const double inv = sum == 0.0 ? 0.0 : sum;
    for (int d = 0; d < dim; ++d)
        out[d] = sum > 0.0 ? out[d] / sum : out[d] * inv;
}

static int problem_valid(const ref_attention_problem *p) {
    return p->batch > 0 && p->heads_q > 0 && p->heads_kv > 0 && p->seq_q > 0 && p->seq_k > 0 &&
           p->head_dim > 0 && p->heads_q % p->heads_kv == 0 && p->q_strides.dim == 1 &&
           p->k_strides.dim == 1 && p->v_strides.dim == 1;
}

int ref_attention_dense(const ref_attention_problem *p, const float *q, const float *k,
                        const float *v, double *out) {
    if (!p || !q || !k || !v || !out || !problem_valid(p))
        return -1;
    const int dim = p->head_dim;
    double *logits = malloc((size_t)p->seq_k * sizeof *logits);
    const float **rows = malloc((size_t)p->seq_k * sizeof *rows);
    if (!logits || !rows) {
        free(logits);
        free(rows);
        return -1;
    }
    for (int b = 0; b < p->batch; ++b)
        for (int h = 0; h < p->heads_q; ++h) {
            const int kvh = ref_kv_head(p, h);
            for (int c = 0; c < p->seq_k; ++c)
                rows[c] = v + ref_offset(&p->v_strides, b, kvh, c);
            for (int t = 0; t < p->seq_q; ++t) {
                const float *q_row = q + ref_offset(&p->q_strides, b, h, t);
                const int visible = ref_visible_keys(p, t);
                for (int c = 0; c < visible; ++c)
                    logits[c] =
                        p->scale * ref_dot(q_row, k + ref_offset(&p->k_strides, b, kvh, c), dim);
                double *o = out + (((size_t)b * p->heads_q + h) * p->seq_q + t) * dim;
                ref_softmax_combine(logits, rows, (size_t)visible, dim, o);
            }
        }
    free(logits);
    free(rows);
    return 0;
}
