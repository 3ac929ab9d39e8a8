/* SPDX-License-Identifier: Apache-2.0 */
/* Double-precision PSA reference: straightforward loops over docs/algorithm.md §3-§8, written for
 * obviousness rather than speed so that a disagreement points at the kernels. */
#include "ref/ref_psa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int level_index(int f) {
    switch (f) {
    case 1:
        return 0;
    case 2:
        return 1;
    case 4:
        return 2;
    case 8:
        return 3;
    default:
        return -1;
    }
}

static int problem_valid(const ref_attention_problem *p) {
    return p && p->batch > 0 && p->heads_q > 0 && p->heads_kv > 0 && p->seq_q > 0 && p->seq_k > 0 &&
           p->head_dim > 0 && p->heads_q % p->heads_kv == 0 && p->q_strides.dim == 1 &&
           p->k_strides.dim == 1 && p->v_strides.dim == 1;
}

static int ceil_div(int a, int b) {
    return (a + b - 1) / b;
}

/* ---- Section 3 ---- */

int ref_psa_pool_count(int seq_k, int f, int p) {
    const int64_t first = (int64_t)p * f;
    const int64_t end = first + f < seq_k ? first + f : seq_k;
    return end > first ? (int)(end - first) : 0;
}

/* The value the device stores for a mean computed in fp32: one rounding to the storage type. */
static double round_value(double x, clpsa_dtype round_to) {
    if (round_to == CLPSA_DTYPE_DEFAULT)
        return x;
    float value = (float)x;
    if (round_to == CLPSA_DTYPE_FP32)
        return value;
    uint16_t raw = 0;
    if (clpsa_convert_from_float(round_to, &value, &raw, 1) != CLPSA_OK ||
        clpsa_convert_to_float(round_to, &raw, &value, 1) != CLPSA_OK)
        return NAN; /* an unknown dtype poisons the comparison instead of passing silently */
    return value;
}

void ref_psa_pyramid_free(ref_psa_pyramid *pyr) {
    if (!pyr)
        return;
    for (int l = 0; l < REF_PSA_LEVELS; ++l) {
        free(pyr->k[l]);
        free(pyr->v[l]);
        pyr->k[l] = pyr->v[l] = NULL;
    }
}

int ref_psa_pyramid_build(const ref_attention_problem *p, const float *k, const float *v,
                          clpsa_dtype round_to, ref_psa_pyramid *out) {
    if (!out)
        return -1;
    memset(out, 0, sizeof *out);
    if (!problem_valid(p) || !k || !v)
        return -1;
    out->batch = p->batch;
    out->heads_kv = p->heads_kv;
    out->seq_k = p->seq_k;
    out->head_dim = p->head_dim;
    out->npool[0] = p->seq_k;
    const int dim = p->head_dim;
    for (int l = 1; l < REF_PSA_LEVELS; ++l) {
        const int f = 1 << l;
        const int np = ceil_div(p->seq_k, f);
        out->npool[l] = np;
        const size_t count = (size_t)p->batch * p->heads_kv * np * dim;
        out->k[l] = malloc(count * sizeof(double));
        out->v[l] = malloc(count * sizeof(double));
        if (!out->k[l] || !out->v[l]) {
            ref_psa_pyramid_free(out);
            return -1;
        }
        for (int b = 0; b < p->batch; ++b)
            for (int h = 0; h < p->heads_kv; ++h)
                for (int pt = 0; pt < np; ++pt) {
                    const size_t at = (((size_t)b * p->heads_kv + h) * np + pt) * dim;
                    const int cnt = ref_psa_pool_count(p->seq_k, f, pt);
                    for (int d = 0; d < dim; ++d) {
                        double ks = 0.0, vs = 0.0;
                        for (int c = pt * f; c < pt * f + cnt; ++c) {
                            ks += k[ref_offset(&p->k_strides, b, h, c) + d];
                            vs += v[ref_offset(&p->v_strides, b, h, c) + d];
                        }
                        out->k[l][at + d] = round_value(ks / cnt, round_to);
                        out->v[l][at + d] = round_value(vs / cnt, round_to);
                    }
                }
    }
    return 0;
}

static const double *pyramid_row(const ref_psa_pyramid *pyr, double *const *table, int f, int b,
                                 int kvh, int p) {
    const int l = level_index(f);
    if (l < 1 || p < 0 || p >= pyr->npool[l])
        return NULL;
    return table[l] + (((size_t)b * pyr->heads_kv + kvh) * pyr->npool[l] + p) * pyr->head_dim;
}

const double *ref_psa_pyramid_k(const ref_psa_pyramid *pyr, int f, int b, int kvh, int p) {
    return pyramid_row(pyr, pyr->k, f, b, kvh, p);
}

const double *ref_psa_pyramid_v(const ref_psa_pyramid *pyr, int f, int b, int kvh, int p) {
    return pyramid_row(pyr, pyr->v, f, b, kvh, p);
}

/* ---- Section 4 ---- */

int ref_psa_attention(const ref_attention_problem *p, int block_q, int block_k,
                      const int8_t *levels, const float *q, const float *k, const float *v,
                      clpsa_dtype round_to, double *out) {
    if (!problem_valid(p) || !levels || !q || !k || !v || !out || block_q < 1 || block_k < 8 ||
        block_k % 8 != 0)
        return -1;
    const int nq = ceil_div(p->seq_q, block_q), nk = ceil_div(p->seq_k, block_k);
    const size_t cells = (size_t)p->batch * p->heads_q * nq * nk;
    for (size_t x = 0; x < cells; ++x)
        if (levels[x] != 0 && level_index(levels[x]) < 0)
            return -1;
    ref_psa_pyramid pyr;
    if (ref_psa_pyramid_build(p, k, v, round_to, &pyr) != 0)
        return -1;
    const int dim = p->head_dim;
    /* At most every key of every block at level 1: Nk rounded up to whole blocks. */
    const size_t max_tokens = (size_t)nk * block_k;
    double *logits = malloc(max_tokens * sizeof *logits);
    double *weights = malloc(max_tokens * sizeof *weights);
    const double **vrows = malloc(max_tokens * sizeof *vrows);
    double *vbuf = malloc((size_t)p->seq_k * dim * sizeof *vbuf); /* level-1 V in double */
    if (!logits || !weights || !vrows || !vbuf) {
        free(logits);
        free(weights);
        free(vrows);
        free(vbuf);
        ref_psa_pyramid_free(&pyr);
        return -1;
    }
    for (int b = 0; b < p->batch; ++b)
        for (int h = 0; h < p->heads_q; ++h) {
            const int kvh = ref_kv_head(p, h);
            for (int c = 0; c < p->seq_k; ++c)
                for (int d = 0; d < dim; ++d)
                    vbuf[(size_t)c * dim + d] = v[ref_offset(&p->v_strides, b, kvh, c) + d];
            for (int t = 0; t < p->seq_q; ++t) {
                const int i = t / block_q;
                const int8_t *m_row = levels + (((size_t)b * p->heads_q + h) * nq + i) * nk;
                const float *q_row = q + ref_offset(&p->q_strides, b, h, t);
                /* Last visible key index (bottom-right aligned mask). */
                const int64_t last_visible =
                    p->causal ? (int64_t)t + ((int64_t)p->seq_k - p->seq_q) : p->seq_k - 1;
                size_t count = 0;
                for (int j = 0; j < nk; ++j) {
                    const int f = m_row[j];
                    if (f == 0)
                        continue;
                    const int l = level_index(f);
                    const int first = j * block_k / f, end = (j + 1) * block_k / f;
                    for (int pt = first; pt < end && pt < pyr.npool[l]; ++pt) {
                        const int cnt = ref_psa_pool_count(p->seq_k, f, pt);
                        const int64_t last_member = (int64_t)pt * f + cnt - 1;
                        if (last_member > last_visible)
                            continue;
                        double dot = 0.0;
                        if (f == 1) {
                            const float *k_row = k + ref_offset(&p->k_strides, b, kvh, pt);
                            for (int d = 0; d < dim; ++d)
                                dot += (double)q_row[d] * k_row[d];
                            vrows[count] = vbuf + (size_t)pt * dim;
                        } else {
                            const double *k_row = ref_psa_pyramid_k(&pyr, f, b, kvh, pt);
                            for (int d = 0; d < dim; ++d)
                                dot += (double)q_row[d] * k_row[d];
                            vrows[count] = ref_psa_pyramid_v(&pyr, f, b, kvh, pt);
                        }
                        logits[count++] = p->scale * dot + log((double)cnt);
                    }
                }
                double *o = out + (((size_t)b * p->heads_q + h) * p->seq_q + t) * dim;
                for (int d = 0; d < dim; ++d)
                    o[d] = 0.0;
                if (count == 0)
                    continue; /* docs/algorithm.md §4: a row that sees nothing is zero */
                /* IEEE propagation as the kernels (docs/api.md, "NaN and infinity"): the
                 * maximum skips NaN; 0 stands in for it while every logit is -inf, so such a
                 * row weighs nothing and is zero (times its values). */
                double max = -INFINITY, sum = 0.0;
                for (size_t x = 0; x < count; ++x)
                    max = logits[x] > max ? logits[x] : max;
                if (max == -INFINITY)
                    max = 0.0;
                for (size_t x = 0; x < count; ++x) {
                    weights[x] = exp(logits[x] - max);
                    sum += weights[x];
                }
                for (size_t x = 0; x < count; ++x)
                    for (int d = 0; d < dim; ++d)
                        o[d] += weights[x] * vrows[x][d];
                const double inv = sum == 0.0 ? 0.0 : sum; /* 0 or NaN when not positive */
                for (int d = 0; d < dim; ++d)
                    o[d] = sum > 0.0 ? o[d] / sum : o[d] * inv;
            }
        }
    free(logits);
    free(weights);
    free(vrows);
    free(vbuf);
    ref_psa_pyramid_free(&pyr);
    return 0;
}

/* ---- Section 5 ---- */

uint64_t ref_psa_splitmix64(uint64_t *x) {
    *x += 0x9E3779B97F4A7C15ull;
    uint64_t z = *x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int ref_psa_draw_offsets(uint64_t x0, int n, int s, int *out) {
    if (!out || n < 1 || s < 1 || s > n)
        return -1;
    int *a = malloc((size_t)n * sizeof *a);
    if (!a)
        return -1;
    for (int i = 0; i < n; ++i)
        a[i] = i;
    uint64_t x = x0;
    for (int i = 0; i < s; ++i) {
        const int j = i + (int)(ref_psa_splitmix64(&x) % (uint64_t)(n - i));
        const int swap = a[i];
        a[i] = a[j];
        a[j] = swap;
    }
    memcpy(out, a, (size_t)s * sizeof *a);
    free(a);
    return 0;
}

uint64_t ref_psa_row_stream(uint64_t seed, int heads_q, int b, int h) {
    return seed + 2u * ((uint64_t)b * (uint64_t)heads_q + (uint64_t)h);
}

uint64_t ref_psa_key_stream(uint64_t seed, int heads_q, int b, int h) {
    return ref_psa_row_stream(seed, heads_q, b, h) + 1u;
}

static double scaled_dot(const ref_attention_problem *p, const float *q, const float *k, int b,
                         int h, int kvh, int t, int c) {
    const float *qr = q + ref_offset(&p->q_strides, b, h, t);
    const float *kr = k + ref_offset(&p->k_strides, b, kvh, c);
    double dot = 0.0;
    for (int d = 0; d < p->head_dim; ++d)
        dot += (double)qr[d] * kr[d];
    return p->scale * dot;
}

int ref_psa_estimate_sampled(const ref_attention_problem *p, int block_q, int block_k, int sample_q,
                             int sample_k, uint64_t seed, const float *q, const float *k,
                             double *scores) {
    if (!problem_valid(p) || !q || !k || !scores || block_q < 1 || block_k < 1 || sample_q < 1 ||
        sample_q > block_q || sample_k < 1 || sample_k > block_k)
        return -1;
    const int nq = ceil_div(p->seq_q, block_q), nk = ceil_div(p->seq_k, block_k);
    int *rows = malloc((size_t)sample_q * sizeof *rows);
    int *cols = malloc((size_t)sample_k * sizeof *cols);
    double *m = malloc((size_t)sample_q * nk * sizeof *m);
    double *prob = malloc((size_t)nk * sizeof *prob);
    int status = rows && cols && m && prob ? 0 : -1;
    for (int b = 0; status == 0 && b < p->batch; ++b)
        for (int h = 0; status == 0 && h < p->heads_q; ++h) {
            const int kvh = ref_kv_head(p, h);
            if (ref_psa_draw_offsets(ref_psa_row_stream(seed, p->heads_q, b, h), block_q, sample_q,
                                     rows) != 0 ||
                ref_psa_draw_offsets(ref_psa_key_stream(seed, p->heads_q, b, h), block_k, sample_k,
                                     cols) != 0) {
                status = -1;
                break;
            }
            for (int i = 0; i < nq; ++i) {
                int finite = 1; /* every sampled logit of the block; else its row of S is NaN */
                for (int r = 0; r < sample_q; ++r) {
                    int t = i * block_q + rows[r];
                    t = t < p->seq_q ? t : p->seq_q - 1; /* replicate padding */
                    for (int j = 0; j < nk; ++j) {
                        double best = -INFINITY;
                        for (int x = 0; x < sample_k; ++x) {
                            int c = j * block_k + cols[x];
                            c = c < p->seq_k ? c : p->seq_k - 1;
                            const double z = scaled_dot(p, q, k, b, h, kvh, t, c);
                            best = z > best ? z : best;
                            finite &= isfinite(z) != 0;
                        }
                        m[(size_t)r * nk + j] = best;
                    }
                }
                for (int j = 0; j < nk; ++j)
                    prob[j] = 0.0;
                for (int r = 0; r < sample_q; ++r) {
                    double row_max = -INFINITY;
                    for (int j = 0; j < nk; ++j)
                        row_max = m[(size_t)r * nk + j] > row_max ? m[(size_t)r * nk + j] : row_max;
                    for (int j = 0; j < nk; ++j) {
                        const double e = exp(m[(size_t)r * nk + j] - row_max);
                        prob[j] = e > prob[j] ? e : prob[j];
                    }
                }
                double total = 0.0;
                for (int j = 0; j < nk; ++j)
                    total += prob[j];
                double *s_row = scores + (((size_t)b * p->heads_q + h) * nq + i) * nk;
                /* total >= 1: each sampled row contributes exp(0) at its own maximum. */
                for (int j = 0; j < nk; ++j)
                    s_row[j] = finite ? prob[j] / total : NAN;
            }
        }
    free(rows);
    free(cols);
    free(m);
    free(prob);
    return status;
}

int ref_psa_estimate_antidiagonal(const ref_attention_problem *p, int block_q, int block_k,
                                  int stride, const float *q, const float *k, double *scores) {
    if (!problem_valid(p) || !q || !k || !scores || stride < 1 || block_q < stride ||
        block_k < stride || block_q % stride != 0 || block_k % stride != 0)
        return -1;
    const int s = stride;
    const int nq = ceil_div(p->seq_q, block_q), nk = ceil_div(p->seq_k, block_k);
    const int stride_rows = ceil_div(p->seq_q, s), stride_cols = ceil_div(p->seq_k, s);
    const int64_t shift = (int64_t)p->seq_k - p->seq_q;
    double *z = malloc((size_t)stride_cols * sizeof *z);
    int *finite = malloc((size_t)nq * sizeof *finite); /* per query block: every z finite */
    if (!z || !finite) {
        free(z);
        free(finite);
        return -1;
    }
    memset(scores, 0, (size_t)p->batch * p->heads_q * nq * nk * sizeof *scores);
    for (int b = 0; b < p->batch; ++b)
        for (int h = 0; h < p->heads_q; ++h) {
            const int kvh = ref_kv_head(p, h);
            double *s_head = scores + ((size_t)b * p->heads_q + h) * nq * nk;
            for (int i = 0; i < nq; ++i)
                finite[i] = 1;
            for (int a = 0; a < stride_rows; ++a) {
                int visible = 0;
                double max = -INFINITY;
                for (int c = 0; c < stride_cols; ++c) {
                    z[c] = -INFINITY;
                    if (p->causal && (int64_t)c * s > (int64_t)a * s + shift)
                        continue;
                    double sum = 0.0;
                    for (int u = 0; u < s; ++u) {
                        int t = a * s + s - 1 - u, key = c * s + u;
                        t = t < p->seq_q ? t : p->seq_q - 1; /* replicate padding */
                        key = key < p->seq_k ? key : p->seq_k - 1;
                        sum += scaled_dot(p, q, k, b, h, kvh, t, key);
                    }
                    z[c] = sum / s;
                    finite[a * s / block_q] &= isfinite(z[c]) != 0;
                    max = z[c] > max ? z[c] : max;
                    ++visible;
                }
                if (visible == 0)
                    continue; /* w = 0 everywhere */
                double total = 0.0;
                for (int c = 0; c < stride_cols; ++c)
                    total += z[c] == -INFINITY ? 0.0 : exp(z[c] - max);
                const int i = a * s / block_q;
                for (int c = 0; c < stride_cols; ++c)
                    if (z[c] != -INFINITY)
                        s_head[(size_t)i * nk + (size_t)c * s / block_k] += exp(z[c] - max) / total;
            }
            for (int i = 0; i < nq; ++i) {
                double *row = s_head + (size_t)i * nk;
                double total = 0.0;
                for (int j = 0; j < nk; ++j)
                    total += row[j];
                if (!finite[i])
                    for (int j = 0; j < nk; ++j)
                        row[j] = NAN;
                else if (total > 0.0)
                    for (int j = 0; j < nk; ++j)
                        row[j] /= total;
            }
        }
    free(z);
    free(finite);
    return 0;
}

/* ---- Section 6 ---- */

void ref_psa_params_default(ref_psa_params *params) {
    memset(params, 0, sizeof *params);
    params->block_q = 128;
    params->block_k = 64;
    params->mode = CLPSA_MODE_THRESHOLD;
    const float taus[4] = {0.5f, 0.6f, 0.7f, 0.8f};
    const float sims[3] = {0.7f, 0.65f, 0.6f};
    for (int l = 0; l < 4; ++l)
        params->thresholds[l] = taus[l];
    for (int l = 0; l < 3; ++l)
        params->similarity_thresholds[l] = sims[l];
    params->align_tile = 32;
    params->min_full = 0.06f;
}

int ref_psa_align(int f, int align_tile, int block_k) {
    if (f < 2 || align_tile <= 0)
        return 1;
    const int a = ceil_div(f * align_tile, block_k);
    return a > 1 ? a : 1;
}

void ref_psa_sort_row(const double *scores, int nk, int *order) {
    /* Insertion sort: stable, and rows are short. */
    for (int j = 0; j < nk; ++j) {
        int x = j;
        while (x > 0 && scores[order[x - 1]] < scores[j]) {
            order[x] = order[x - 1];
            --x;
        }
        order[x] = j;
    }
}

/* Sorted positions [prev, end) get level f after docs/algorithm.md's alignment; returns the new
 * prev. */
static int give_range(int *by_position, int prev, int end, int f, int nk, int align,
                      int min_full_blocks) {
    if (align > 1) {
        const int want = end - prev > 0 ? end - prev : 0;
        const int len = ceil_div(want, align) * align;
        end = prev + len < nk ? prev + len : nk;
        if (end == nk)
            end = prev + (end - prev) / align * align;
    } else {
        end = end < prev ? prev : end > nk ? nk : end;
        if (f == 1 && end < min_full_blocks)
            end = min_full_blocks;
    }
    for (int x = prev; x < end; ++x)
        by_position[x] = f;
    return end > prev ? end : prev;
}

int ref_psa_assign_row_rule(const double *scores, int nk, const ref_psa_params *params, int *levels,
                            double *energy, int *order) {
    if (!scores || nk < 1 || !params || !levels)
        return -1;
    int *sorted = malloc((size_t)nk * sizeof *sorted);
    int *by_position = malloc((size_t)nk * sizeof *by_position);
    double *e = malloc((size_t)nk * sizeof *e);
    if (!sorted || !by_position || !e) {
        free(sorted);
        free(by_position);
        free(e);
        return -1;
    }
    ref_psa_sort_row(scores, nk, sorted);
    double total = 0.0;
    for (int x = 0; x < nk; ++x)
        total += scores[sorted[x]];
    double cumulative = 0.0;
    for (int x = 0; x < nk; ++x) {
        cumulative += scores[sorted[x]];
        e[x] = total > 0.0 ? cumulative / total : 1.0;
        by_position[x] = 0;
    }
    static const int level_of[4] = {1, 2, 4, 8};
    const double *tau = params->thresholds;
    if (params->binary) {
        const double want = ceil(params->binary_density * nk - 1e-6);
        const int keep = want < nk ? (int)want : nk;
        for (int x = 0; x < keep; ++x)
            by_position[x] = 1;
    } else if (params->mode == CLPSA_MODE_ENERGY) {
        for (int x = 0; x < nk; ++x)
            for (int l = 0; l < 4; ++l)
                if (e[x] <= tau[l] + REF_PSA_TAU_SLACK) {
                    by_position[x] = level_of[l];
                    break;
                }
    } else if (params->mode == CLPSA_MODE_QUANTILE) {
        int prev = 0;
        for (int l = 0; l < 4; ++l) {
            const double want = floor(nk * tau[l] + 1e-6);
            const int end = want < nk ? (int)want : nk;
            if (end > prev)
                prev =
                    give_range(by_position, prev, end, level_of[l], nk,
                               ref_psa_align(level_of[l], params->align_tile, params->block_k), 0);
        }
    } else {
        int min_full_blocks = 0;
        if (params->min_full >= 0.0) {
            const double want = floor(params->min_full * nk + 1e-6) + 1.0;
            min_full_blocks = want < nk ? (int)want : nk;
        }
        /* Ascending tau, stable, with tau0 = 1 last: tau1..tau8 are non-decreasing and
         * at most 1, so the order is always 1, 2, 4, 8, 0. */
        int prev = 0;
        for (int l = 0; l < 5; ++l) {
            const int f = l < 4 ? level_of[l] : 0;
            const double t = l < 4 ? tau[l] : 1.0;
            int c = 0;
            for (int x = 0; x < nk; ++x)
                c += e[x] <= t + REF_PSA_TAU_SLACK;
            const int end = c > 0 ? c + 1 : prev;
            prev = give_range(by_position, prev, end, f, nk,
                              f == 0 ? 1 : ref_psa_align(f, params->align_tile, params->block_k),
                              min_full_blocks);
        }
    }
    for (int x = 0; x < nk; ++x)
        levels[sorted[x]] = by_position[x];
    if (energy)
        memcpy(energy, e, (size_t)nk * sizeof *e);
    if (order)
        memcpy(order, sorted, (size_t)nk * sizeof *sorted);
    free(sorted);
    free(by_position);
    free(e);
    return 0;
}

int ref_psa_energy_near_threshold(const double *energy, int nk, const double thresholds[4],
                                  double eps) {
    for (int x = 0; x < nk; ++x)
        for (int l = 0; l < 4; ++l)
            if (fabs(energy[x] - thresholds[l]) <= eps)
                return 1;
    return 0;
}

int ref_psa_diagonal_block(int i, int block_q, int block_k, int seq_q, int seq_k) {
    const int64_t end = (int64_t)(i + 1) * block_q < seq_q ? (int64_t)(i + 1) * block_q : seq_q;
    const int64_t c = end - 1 + ((int64_t)seq_k - seq_q);
    if (c < 0)
        return -1;
    return (int)((c < seq_k - 1 ? c : seq_k - 1) / block_k);
}

int ref_psa_text_query_block(int i, int block_q, int seq_q, int text_tokens) {
    const int64_t end = (int64_t)(i + 1) * block_q < seq_q ? (int64_t)(i + 1) * block_q : seq_q;
    return text_tokens > 0 && end - 1 >= (int64_t)seq_q - text_tokens;
}

int ref_psa_future_block(int i, int j, int block_q, int block_k, int seq_q, int seq_k, int causal) {
    if (!causal)
        return 0;
    const int64_t end = (int64_t)(i + 1) * block_q < seq_q ? (int64_t)(i + 1) * block_q : seq_q;
    const int64_t last_key = end - 1 + ((int64_t)seq_k - seq_q);
    return (int64_t)j * block_k > last_key;
}

void ref_psa_forced_row(int i, int block_q, int block_k, int seq_q, int seq_k, int text_tokens,
                        int causal, int *forced) {
    const int nk = ceil_div(seq_k, block_k), text_blocks = ceil_div(text_tokens, block_k);
    const int text_row = ref_psa_text_query_block(i, block_q, seq_q, text_tokens);
    const int diagonal = causal ? ref_psa_diagonal_block(i, block_q, block_k, seq_q, seq_k) : -1;
    for (int j = 0; j < nk; ++j) {
        if (ref_psa_future_block(i, j, block_q, block_k, seq_q, seq_k, causal))
            forced[j] = REF_PSA_FUTURE;
        else if (text_row || j >= nk - text_blocks || (causal && (j == 0 || j == diagonal)))
            forced[j] = REF_PSA_FORCED;
        else
            forced[j] = REF_PSA_FREE;
    }
}

static double cosine(const float *a, const float *b, int dim) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int d = 0; d < dim; ++d) {
        ab += (double)a[d] * b[d];
        aa += (double)a[d] * a[d];
        bb += (double)b[d] * b[d];
    }
    return aa > 0.0 && bb > 0.0 ? ab / (sqrt(aa) * sqrt(bb)) : 0.0;
}

int ref_psa_block_similarity(const ref_attention_problem *p, int block_k, const float *k,
                             double *sims) {
    if (!problem_valid(p) || !k || !sims || block_k < 1)
        return -1;
    const int nk = ceil_div(p->seq_k, block_k);
    for (int b = 0; b < p->batch; ++b)
        for (int h = 0; h < p->heads_kv; ++h)
            for (int j = 0; j < nk; ++j)
                for (int l = 0; l < 3; ++l) {
                    const int f = 2 << l;
                    const int start = j * block_k;
                    const int end = start + block_k < p->seq_k ? start + block_k : p->seq_k;
                    double total = 0.0;
                    int groups = 0;
                    for (int first = start; first + f - 1 < end; first += f) {
                        total +=
                            cosine(k + ref_offset(&p->k_strides, b, h, first),
                                   k + ref_offset(&p->k_strides, b, h, first + f - 1), p->head_dim);
                        ++groups;
                    }
                    sims[(((size_t)b * p->heads_kv + h) * nk + j) * 3 + l] =
                        groups ? total / groups : -INFINITY;
                }
    return 0;
}

int ref_psa_similarity_cap(const double sim[3], const double thresholds[3]) {
    if (sim[2] > thresholds[2])
        return 8;
    if (sim[1] > thresholds[1])
        return 4;
    if (sim[0] > thresholds[0])
        return 2;
    return 1;
}

int ref_psa_similarity_near(const double sim[3], const double thresholds[3], double eps) {
    for (int l = 0; l < 3; ++l)
        if (fabs(sim[l] - thresholds[l]) <= eps)
            return 1;
    return 0;
}

int ref_psa_assign(const ref_attention_problem *p, const ref_psa_params *params,
                   const double *scores, const float *k, int8_t *levels, int *near_row) {
    if (!problem_valid(p) || !params || !scores || !levels || params->block_q < 1 ||
        params->block_k < 1)
        return -1;
    const int bm = params->block_q, bn = params->block_k;
    const int nq = ceil_div(p->seq_q, bm), nk = ceil_div(p->seq_k, bn);
    const int cap = params->similarity_cap && !params->binary;
    double *sims = NULL;
    if (cap) {
        if (!k)
            return -1;
        sims = malloc((size_t)p->batch * p->heads_kv * nk * 3 * sizeof *sims);
        if (!sims || ref_psa_block_similarity(p, bn, k, sims) != 0) {
            free(sims);
            return -1;
        }
    }
    int *row_levels = malloc((size_t)nk * sizeof *row_levels);
    double *energy = malloc((size_t)nk * sizeof *energy);
    int *forced = malloc((size_t)nk * sizeof *forced);
    int *order = malloc((size_t)nk * sizeof *order);
    int status = row_levels && energy && forced && order ? 0 : -1;
    for (int b = 0; status == 0 && b < p->batch; ++b)
        for (int h = 0; status == 0 && h < p->heads_q; ++h)
            for (int i = 0; status == 0 && i < nq; ++i) {
                const size_t row = ((size_t)b * p->heads_q + h) * nq + i;
                ref_psa_forced_row(i, bm, bn, p->seq_q, p->seq_k, params->text_tokens,
                                   params->causal, forced);
                /* docs/api.md, "NaN and infinity": a row of S that is not all finite ranks
                 * nothing and gets level 1 everywhere, whatever the mode (but the future). */
                int finite = 1;
                for (int j = 0; j < nk; ++j)
                    finite &= isfinite(scores[row * nk + j]) != 0;
                if (!finite) {
                    for (int j = 0; j < nk; ++j)
                        levels[row * nk + j] = forced[j] == REF_PSA_FUTURE ? 0 : 1;
                    if (near_row)
                        near_row[row] = 0;
                    continue;
                }
                status = ref_psa_assign_row_rule(scores + row * nk, nk, params, row_levels, energy,
                                                 order);
                if (status != 0)
                    break;
                if (params->binary && params->causal) {
                    /* The top ceil(density * nk) blocks among those the row can see. */
                    const double want = ceil(params->binary_density * nk - 1e-6);
                    const int keep = want < nk ? (int)want : nk;
                    int kept = 0;
                    for (int x = 0; x < nk; ++x) {
                        const int j = order[x];
                        row_levels[j] = kept < keep && forced[j] != REF_PSA_FUTURE;
                        kept += row_levels[j];
                    }
                }
                int near = 0;
                if (!params->binary && params->mode != CLPSA_MODE_QUANTILE)
                    near =
                        ref_psa_energy_near_threshold(energy, nk, params->thresholds, REF_PSA_NEAR);
                if (!params->binary)
                    for (int j = 0; j < nk; ++j)
                        if (forced[j] == REF_PSA_FORCED)
                            row_levels[j] = 1;
                if (cap) {
                    const int kvh = ref_kv_head(p, h);
                    for (int j = 0; j < nk; ++j) {
                        if (row_levels[j] == 0 || forced[j] == REF_PSA_FUTURE)
                            continue;
                        const double *sim = sims + (((size_t)b * p->heads_kv + kvh) * nk + j) * 3;
                        const int limit =
                            ref_psa_similarity_cap(sim, params->similarity_thresholds);
                        near |= ref_psa_similarity_near(sim, params->similarity_thresholds,
                                                        REF_PSA_NEAR);
                        row_levels[j] = row_levels[j] < limit ? row_levels[j] : limit;
                    }
                }
                /* Never visited, so level 0 in every mode (binary too). */
                for (int j = 0; j < nk; ++j)
                    levels[row * nk + j] = forced[j] == REF_PSA_FUTURE ? 0 : (int8_t)row_levels[j];
                if (near_row)
                    near_row[row] = near;
            }
    free(row_levels);
    free(energy);
    free(forced);
    free(order);
    free(sims);
    return status;
}

/* ---- Section 8 ---- */

int ref_psa_level_stats(const int8_t *levels, size_t rows, int blocks_k, double *density,
                        uint64_t histogram[5]) {
    if (!levels || rows == 0 || blocks_k < 1 || !density || !histogram)
        return -1;
    memset(histogram, 0, 5 * sizeof histogram[0]);
    double sum = 0.0;
    for (size_t r = 0; r < rows; ++r) {
        double row = 0.0;
        for (int j = 0; j < blocks_k; ++j) {
            const int f = levels[r * (size_t)blocks_k + (size_t)j];
            if (f == 0) {
                histogram[0]++;
                continue;
            }
            const int l = level_index(f);
            if (l < 0)
                return -1;
            histogram[1 + l]++;
            row += 1.0 / f;
        }
        sum += row / blocks_k;
    }
    *density = sum / (double)rows;
    return 0;
}

/* ---- Section 7 ---- */

static const ref_psa_preset presets[] = {
    {"wan21-14b",
     {0.4f, 0.5f, 0.6f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     128,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"wan21-1.3b",
     {0.5f, 0.6f, 0.7f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     128,
     1,
     {0.7f, 0.65f, 0.6f},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"wan22-5b",
     {0.6f, 0.7f, 0.7f, 0.8f},
     CLPSA_MODE_THRESHOLD,
     128,
     32,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"cogvideox",
     {0.1f, 0.15f, 0.15f, 0.35f},
     CLPSA_MODE_QUANTILE,
     128,
     128,
     0,
     {0},
     0,
     CLPSA_ESTIMATOR_SAMPLED},
    {"understanding",
     {0.7f, 0.8f, 0.9f, 0.9f},
     CLPSA_MODE_ENERGY,
     128,
     128,
     1,
     {0.75f, 0.7f, 0.7f},
     1,
     CLPSA_ESTIMATOR_ANTIDIAGONAL},
};

int ref_psa_preset_count(void) {
    return (int)(sizeof presets / sizeof presets[0]);
}

const ref_psa_preset *ref_psa_preset_at(int i) {
    return i >= 0 && i < ref_psa_preset_count() ? &presets[i] : NULL;
}

const ref_psa_preset *ref_psa_find_preset(const char *name) {
    for (int i = 0; name && i < ref_psa_preset_count(); ++i)
        if (strcmp(presets[i].name, name) == 0)
            return &presets[i];
    return NULL;
}

void ref_psa_params_from_preset(const ref_psa_preset *preset, ref_psa_params *params) {
    ref_psa_params_default(params);
    params->block_q = preset->block_q;
    params->block_k = preset->block_k;
    params->mode = preset->mode;
    for (int l = 0; l < 4; ++l)
        params->thresholds[l] = preset->thresholds[l];
    params->similarity_cap = preset->similarity_cap;
    if (preset->similarity_cap)
        for (int l = 0; l < 3; ++l)
            params->similarity_thresholds[l] = preset->similarity_thresholds[l];
    params->causal = preset->causal;
}
