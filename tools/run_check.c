/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa run`: how outputs are judged. Dense attention is spot-checked against a double-
 * precision computation done here (so the report's reference is itself verified on this
 * device); PSA and the binary baseline are measured against dense by relative L2 error. */
#include "run_internal.h"

#include <math.h>
#include <stdlib.h>

static int64_t offset(const clpsa_strides *s, int b, int h, int n) {
    return (int64_t)b * s->batch + (int64_t)h * s->head + (int64_t)n * s->seq;
}

double clpsa__run_check_tolerance(clpsa_dtype dtype) {
    /* Inputs are rounded on the host exactly as stored, so what remains is the kernel's own
     * rounding: fp32 accumulation, and probabilities rounded to the storage type for P·V. */
    return dtype == CLPSA_DTYPE_FP32 ? 2e-5 : dtype == CLPSA_DTYPE_FP16 ? 4e-3 : 3e-2;
}

double clpsa__run_check_rows(const run_problem *p, float scale, bool causal, const float *out) {
    double *weights = malloc((size_t)p->seq_k * sizeof(double));
    if (!weights)
        return -1.0;
    uint64_t state = 0x5DEECE66Dull;
    const int group = p->heads_q / p->heads_kv;
    double worst = 0.0;
    for (int r = 0; r < CLPSA__RUN_CHECK_ROWS; ++r) {
        const int b = (int)(clpsa__tool_random(&state) % (uint64_t)p->batch);
        const int h = (int)(clpsa__tool_random(&state) % (uint64_t)p->heads_q);
        const int t = (int)(clpsa__tool_random(&state) % (uint64_t)p->seq_q);
        const int hk = h / group;
        const float *q = p->host[0] + offset(&p->strides[0], b, h, t);
        /* Bottom-right aligned: key c is visible to row t iff c <= t + (Nk - Nq). */
        long long visible = causal ? (long long)t + p->seq_k - p->seq_q + 1 : p->seq_k;
        visible = visible < 0 ? 0 : visible > p->seq_k ? p->seq_k : visible;
        double max = -INFINITY, sum = 0.0;
        for (int c = 0; c < (int)visible; ++c) {
            const float *k = p->host[1] + offset(&p->strides[1], b, hk, c);
            double dot = 0.0;
            for (int d = 0; d < p->dim; ++d)
                dot += (double)q[d] * (double)k[d];
            weights[c] = dot * (double)scale;
            max = weights[c] > max ? weights[c] : max;
        }
        for (int c = 0; c < (int)visible; ++c)
            sum += (weights[c] = exp(weights[c] - max));
        const float *o = out + offset(&p->strides[3], b, h, t);
        for (int d = 0; d < p->dim; ++d) {
            double acc = 0.0;
            for (int c = 0; c < (int)visible; ++c)
                acc += weights[c] * (double)p->host[2][offset(&p->strides[2], b, hk, c) + d];
            const double reference = visible > 0 ? acc / sum : 0.0;
            const double error = fabs((double)o[d] - reference);
            if (!isfinite(o[d]) || isnan(error)) {
                free(weights);
                return NAN;
            }
            worst = error > worst ? error : worst;
        }
    }
    free(weights);
    return worst;
}

double clpsa__run_rel_l2(const float *a, const float *ref, size_t count) {
    double err2 = 0.0, ref2 = 0.0;
    for (size_t i = 0; i < count; ++i) {
        if (!isfinite(a[i]))
            return NAN;
        const double d = (double)a[i] - (double)ref[i];
        err2 += d * d;
        ref2 += (double)ref[i] * (double)ref[i];
    }
    return ref2 > 0.0 ? sqrt(err2 / ref2) : sqrt(err2);
}
