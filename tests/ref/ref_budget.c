/* SPDX-License-Identifier: Apache-2.0 */
/* Budget mode in double precision (ref_budget.h). */
#include "ref/ref_budget.h"

#include "ref/ref_psa.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ceil_div(int a, int b) {
    return (a + b - 1) / b;
}

/* Whether key c is visible to query row t (docs/algorithm.md §4). */
static int visible(const ref_attention_problem *p, int t, int c) {
    return !p->causal || (int64_t)c <= (int64_t)t + p->seq_k - p->seq_q;
}

int ref_budget_measure(const ref_attention_problem *p, int block_q, int block_k, int sample_q,
                       uint64_t seed, const float *q, const float *k, clpsa_dtype round_to,
                       double *w, double *loss) {
    if (!p || !q || !k || !w || !loss || block_q < 1 || block_k < 1 || sample_q < 1 ||
        sample_q > block_q || block_k % 8 != 0)
        return -1;
    const int nq = ceil_div(p->seq_q, block_q), nk = ceil_div(p->seq_k, block_k);
    const int dim = p->head_dim;
    ref_psa_pyramid pyr;
    if (ref_psa_pyramid_build(p, k, k, round_to, &pyr) != 0)
        return -1;
    int *rows = malloc((size_t)sample_q * sizeof *rows);
    double *x = malloc((size_t)p->seq_k * sizeof *x);
    double *full = malloc((size_t)nk * sizeof *full);
    double *pooled = malloc((size_t)nk * 3 * sizeof *pooled);
    double *mass = malloc((size_t)nk * sizeof *mass);     /* sum_t a_t[j] */
    double *kept = malloc((size_t)nk * 3 * sizeof *kept); /* sum_t a_t[j] pooled / full */
    int status = rows && x && full && pooled && mass && kept ? 0 : -1;
    for (int b = 0; status == 0 && b < p->batch; ++b)
        for (int h = 0; status == 0 && h < p->heads_q; ++h) {
            const int kvh = ref_kv_head(p, h);
            if (ref_psa_draw_offsets(ref_psa_row_stream(seed, p->heads_q, b, h), block_q, sample_q,
                                     rows) != 0) {
                status = -1;
                break;
            }
            for (int i = 0; i < nq; ++i) {
                memset(mass, 0, (size_t)nk * sizeof *mass);
                memset(kept, 0, (size_t)nk * 3 * sizeof *kept);
                int seen = 0;
                for (int r = 0; r < sample_q; ++r) {
                    int t = i * block_q + rows[r];
                    t = t < p->seq_q ? t : p->seq_q - 1; /* replicate padding */
                    const float *qt = q + ref_offset(&p->q_strides, b, h, t);
                    double m = -INFINITY;
                    for (int c = 0; c < p->seq_k; ++c) {
                        x[c] = visible(p, t, c)
                                   ? p->scale *
                                         ref_dot(qt, k + ref_offset(&p->k_strides, b, kvh, c), dim)
                                   : -INFINITY;
                        m = x[c] > m ? x[c] : m;
                    }
                    if (m == -INFINITY)
                        continue; /* the row sees no key */
                    ++seen;
                    double total = 0.0;
                    for (int j = 0; j < nk; ++j) {
                        full[j] = 0.0;
                        for (int c = j * block_k; c < (j + 1) * block_k && c < p->seq_k; ++c)
                            full[j] += x[c] == -INFINITY ? 0.0 : exp(x[c] - m);
                        total += full[j];
                        for (int l = 1; l <= 3; ++l) {
                            const int f = 1 << l;
                            double sum = 0.0;
                            for (int pp = j * (block_k / f); pp < (j + 1) * (block_k / f); ++pp) {
                                const int cnt = ref_psa_pool_count(p->seq_k, f, pp);
                                if (cnt == 0 || !visible(p, t, pp * f + cnt - 1))
                                    continue;
                                const double *kp = ref_psa_pyramid_k(&pyr, f, b, kvh, pp);
                                double dot = 0.0;
                                for (int d = 0; d < dim; ++d)
                                    dot += (double)qt[d] * kp[d];
                                sum += cnt * exp(p->scale * dot - m);
                            }
                            pooled[j * 3 + l - 1] = sum;
                        }
                    }
                    for (int j = 0; j < nk; ++j) {
                        const double a = full[j] / total;
                        mass[j] += a;
                        for (int l = 0; l < 3 && full[j] > 0.0; ++l)
                            kept[j * 3 + l] += a * pooled[j * 3 + l] / full[j];
                    }
                }
                const size_t row = ((size_t)b * p->heads_q + h) * nq + i;
                for (int j = 0; j < nk; ++j) {
                    w[row * nk + j] = seen > 0 ? mass[j] / seen : 0.0;
                    for (int l = 0; l < 3; ++l) {
                        double lost = mass[j] > 0.0 ? 1.0 - kept[j * 3 + l] / mass[j] : 0.0;
                        lost = lost < 0.0 ? 0.0 : lost > 1.0 ? 1.0 : lost;
                        loss[(row * nk + j) * 3 + l] = lost;
                    }
                }
            }
        }
    free(rows);
    free(x);
    free(full);
    free(pooled);
    free(mass);
    free(kept);
    ref_psa_pyramid_free(&pyr);
    return status;
}

double ref_budget_blocks(double density, int nk) {
    return density * nk * (1.0 + 1e-6);
}

typedef struct upgrade {
    double ratio, spread; /* error decrease per block of cost, and how uncertain it is */
    int block, step, level;
    double cost;
} upgrade;

static int upgrade_order(const void *pa, const void *pb) {
    const upgrade *a = pa, *b = pb;
    if (a->ratio != b->ratio)
        return a->ratio > b->ratio ? -1 : 1;
    if (a->block != b->block)
        return a->block < b->block ? -1 : 1;
    return a->step < b->step ? -1 : a->step > b->step;
}

static int close_to(double a, double b, double slack) {
    return a != b && fabs(a - b) <= slack;
}

int ref_budget_allocate_row(const double *w, const double *loss, int nk, const int *forced,
                            double budget, ref_budget_tolerance tol, int *levels, int *near) {
    if (!w || !loss || !levels || nk < 1)
        return -1;
    upgrade *ups = malloc((size_t)nk * 4 * sizeof *ups);
    int *next = malloc((size_t)nk * sizeof *next);
    if (!ups || !next) {
        free(ups);
        free(next);
        return -1;
    }
    int count = 0, is_near = 0;
    double left = budget;
    for (int j = 0; j < nk; ++j) {
        next[j] = 0;
        levels[j] = 0;
        if (forced && forced[j] == REF_PSA_FUTURE)
            continue; /* level 0, no cost, no upgrade */
        if (forced && forced[j] == REF_PSA_FORCED) {
            levels[j] = 1;
            left -= 1.0;
            continue;
        }
        static const int point_level[5] = {0, 8, 4, 2, 1};
        static const double point_cost[5] = {0.0, 0.125, 0.25, 0.5, 1.0};
        const double e[5] = {w[j], w[j] * loss[j * 3 + 2], w[j] * loss[j * 3 + 1],
                             w[j] * loss[j * 3], 0.0};
        /* how far an fp32 implementation's error of one point may be from this one */
        const double slack_e = tol.loss_atol * w[j];
        int hull[5], n = 0;
        for (int x = 0; x < 5; ++x) {
            if (n > 0) {
                const double prev = e[hull[n - 1]];
                is_near |= close_to(e[x], prev, tol.rtol * fabs(prev) + 2 * slack_e);
                if (!(e[x] < prev))
                    continue;
            }
            while (n >= 2) {
                const int a = hull[n - 2], m = hull[n - 1];
                const double lhs = (e[m] - e[a]) * (point_cost[x] - point_cost[a]);
                const double rhs = (e[x] - e[a]) * (point_cost[m] - point_cost[a]);
                is_near |= close_to(lhs, rhs, tol.rtol * fmax(fabs(lhs), fabs(rhs)) + 4 * slack_e);
                if (lhs >= rhs)
                    --n; /* m lies on or above the chord from a to x */
                else
                    break;
            }
            hull[n++] = x;
        }
        for (int s = 0; s + 1 < n; ++s) {
            upgrade *u = &ups[count++];
            u->block = j;
            u->step = s;
            u->level = point_level[hull[s + 1]];
            u->cost = point_cost[hull[s + 1]] - point_cost[hull[s]];
            u->ratio = (e[hull[s]] - e[hull[s + 1]]) / u->cost;
            u->spread = tol.rtol * u->ratio + 2 * slack_e / u->cost;
        }
    }
    qsort(ups, (size_t)count, sizeof *ups, upgrade_order);
    for (int x = 0; x + 1 < count; ++x)
        if (ups[x].block != ups[x + 1].block &&
            ups[x].ratio - ups[x + 1].ratio <= ups[x].spread + ups[x + 1].spread)
            is_near = 1;
    for (int x = 0; x < count; ++x) {
        const upgrade *u = &ups[x];
        if (next[u->block] != u->step || u->cost > left + 1e-9)
            continue;
        left -= u->cost;
        levels[u->block] = u->level;
        next[u->block] = u->step + 1;
    }
    if (near)
        *near = is_near;
    free(ups);
    free(next);
    return 0;
}

int ref_budget_assign(const ref_attention_problem *p, int block_q, int block_k, int text_tokens,
                      int causal, double density, const double *w, const double *loss,
                      ref_budget_tolerance tol, int8_t *levels, int *near_row) {
    if (!p || !w || !loss || !levels || block_q < 1 || block_k < 1)
        return -1;
    const int nq = ceil_div(p->seq_q, block_q), nk = ceil_div(p->seq_k, block_k);
    int *forced = malloc((size_t)nk * sizeof *forced);
    int *row_levels = malloc((size_t)nk * sizeof *row_levels);
    int status = forced && row_levels ? 0 : -1;
    const size_t rows = (size_t)p->batch * p->heads_q * nq;
    for (size_t row = 0; status == 0 && row < rows; ++row) {
        const int i = (int)(row % nq);
        ref_psa_forced_row(i, block_q, block_k, p->seq_q, p->seq_k, text_tokens, causal, forced);
        int near = 0;
        status = ref_budget_allocate_row(w + row * nk, loss + row * nk * 3, nk, forced,
                                         ref_budget_blocks(density, nk), tol, row_levels, &near);
        for (int j = 0; status == 0 && j < nk; ++j)
            levels[row * nk + j] = (int8_t)row_levels[j];
        if (near_row)
            near_row[row] = near;
    }
    free(forced);
    free(row_levels);
    return status;
}
