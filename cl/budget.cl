/* SPDX-License-Identifier: Apache-2.0 */
/* Budget mode (docs/algorithm.md section 6, mode budget): the measurement on sampled query
 * rows and the per-row allocation of a density budget. Built after common.cl.
 * Tunables:
 *   BUDGET_WG   work-items of one query block's measurement (each owns key blocks)
 * Parameters: BLOCK_Q, BLOCK_K (bm, bn), SAMPLE_Q (sampled rows per query block), and for the
 * allocation UPGRADE_N (power of two >= 4 nk) and ASSIGN_WG (work-items per row).
 *
 * budget_measure runs one work-group per (query block i, head bh of this launch). For each
 * sampled row t it computes the full-resolution logits against every visible key and against
 * every pooled token of levels 2, 4, 8, and reduces them per key block j to
 *   full_t[j]      = sum over keys c of j of exp(x_c - m_t)
 *   pooled_t[j][f] = sum over pooled tokens p of j at f of cnt * exp(x^f_p - m_t)
 * then to the block's mass w[j] (mean over rows of full_t[j] / F_t, F_t = sum_j full_t[j]) and
 * its pooling loss at each level. Each work-item keeps, per (row, owned block), the block's
 * own logit maximum and the sums relative to it in a global scratch that only it reads back,
 * so the row maxima m_t need one reduction and no second pass over the keys (a pooled logit
 * is a mean of full ones, so it never exceeds its block's maximum). */
#ifndef BUDGET_WG
#define BUDGET_WG 64 /* work-items per query block's measurement */
#endif
#ifndef BLOCK_Q
#define BLOCK_Q 128 /* bm */
#endif
#ifndef BLOCK_K
#define BLOCK_K 64 /* bn */
#endif
#ifndef SAMPLE_Q
#define SAMPLE_Q (BLOCK_Q / 16) /* sampled rows per query block */
#endif
#ifndef UPGRADE_N
#define UPGRADE_N 1024 /* padded length of a row's upgrade list (>= 4 nk) */
#endif
#ifndef ASSIGN_WG
#define ASSIGN_WG 64 /* work-items per row of the allocation */
#endif

/* dot(a, b) over HEAD_DIM (a multiple of 8) with float8 arithmetic. */
inline float budget_dot(const float8 *a, __local const float *b) {
    float8 sum = (float8)(0.0f);
    for (int d = 0; d < HEAD_DIM; d += 8)
        sum = fma(a[d / 8], vload8(0, b + d), sum);
    const float4 half_sum = sum.lo + sum.hi;
    return (half_sum.x + half_sum.y) + (half_sum.z + half_sum.w);
}

inline void budget_load_row(float8 *out, __global const in_t *row) {
    for (int d = 0; d < HEAD_DIM; d += 8)
        out[d / 8] = (float8)(LOAD_IN4(row, d), LOAD_IN4(row, d + 4));
}

__kernel __attribute__((reqd_work_group_size(BUDGET_WG, 1, 1))) void
budget_measure(__global const in_t *q, __global const in_t *k, __global const in_t *k_pyr,
               __global const int *perm, __global const int *row_offsets, __global float *scratch,
               __global float *scores, __global float *loss, const int bh_first, const int heads_q,
               const int group, const int seq_q, const int seq_k, const int blocks_q,
               const int blocks_k, const int np2, const int np4, const int np8, const float scale,
               const int causal, const long q_sb, const long q_sh, const long q_sn, const long k_sb,
               const long k_sh, const long k_sn) {
    __local float q_tile[SAMPLE_Q][HEAD_DIM];
    __local int row_pos[SAMPLE_Q];
    __local float partial[BUDGET_WG][SAMPLE_Q];
    __local float row_max[SAMPLE_Q], row_total[SAMPLE_Q];
    const int lid = get_local_id(0);
    const int i = get_group_id(0);
    const int bh_local = get_group_id(1);
    const int bh = bh_first + bh_local;
    const int b = bh / heads_q;
    const int h = bh - b * heads_q;
    const int kvh = h / group;
    const int heads_kv = heads_q / group;
    const int nk = blocks_k;
    __global const in_t *q_head = q + b * q_sb + h * q_sh;
    __global const in_t *k_head = k + b * k_sb + kvh * k_sh;
    const long pyramid_head = ((long)b * heads_kv + kvh) * ((long)np2 + np4 + np8);
    __global const int *rows = row_offsets + (long)bh * SAMPLE_Q;
    __global float *cells = scratch + ((long)bh_local * blocks_q + i) * nk * SAMPLE_Q * BUDGET_CELL;
    /* Causal: key c is visible to the row at position t iff c <= t + shift (positions equal
     * tokens here: a reordering is never causal). */
    const int shift = causal ? seq_k - seq_q : seq_k;
    const float q_scale = scale * LOG2E;

    for (int idx = lid; idx < SAMPLE_Q * HEAD_DIM; idx += BUDGET_WG) {
        const int r = idx / HEAD_DIM, d = idx - r * HEAD_DIM;
        const int pos = min(i * BLOCK_Q + rows[r], seq_q - 1); /* replicate padding */
        q_tile[r][d] = LOAD_IN(q_head, (long)TOKEN(perm, pos) * q_sn + d) * q_scale;
        if (d == 0)
            row_pos[r] = pos;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    float best[SAMPLE_Q];
    /* The last key any sampled row sees: keys and pooled tokens after it are skipped by every
     * row, so the loops stop there (under the causal mask, about half of the keys) and give
     * the same sums as walking them. */
    int last_seen = -1;
    for (int r = 0; r < SAMPLE_Q; ++r) {
        best[r] = -INFINITY;
        last_seen = max(last_seen, min(row_pos[r] + shift, seq_k - 1));
    }
    for (int j = lid; j < nk; j += BUDGET_WG) {
        __global float *cell = cells + (long)j * SAMPLE_Q * BUDGET_CELL;
        float mx[SAMPLE_Q], sm[SAMPLE_Q];
        for (int r = 0; r < SAMPLE_Q; ++r) {
            mx[r] = -INFINITY;
            sm[r] = 0.0f;
        }
        const int last = min((j + 1) * BLOCK_K, last_seen + 1);
        for (int c = j * BLOCK_K; c < last; ++c) {
            float8 k_reg[HEAD_DIM / 8];
            budget_load_row(k_reg, k_head + (long)TOKEN(perm, c) * k_sn);
            for (int r = 0; r < SAMPLE_Q; ++r) {
                if (c > row_pos[r] + shift)
                    continue;
                const float x = budget_dot(k_reg, q_tile[r]);
                if (x > mx[r]) { /* online sum relative to the block maximum */
                    sm[r] = sm[r] * exp2(mx[r] - x) + 1.0f;
                    mx[r] = x;
                } else {
                    sm[r] += exp2(x - mx[r]);
                }
            }
        }
        for (int r = 0; r < SAMPLE_Q; ++r) {
            cell[r * BUDGET_CELL] = mx[r];
            cell[r * BUDGET_CELL + 1] = sm[r];
            best[r] = fmax(best[r], mx[r]);
        }
        for (int l = 1; l <= 3; ++l) {
            const int f = 1 << l;
            const int pooled = l == 1 ? np2 : l == 2 ? np4 : np8;
            const long level_row = pyramid_head + (l == 1 ? 0 : l == 2 ? np2 : np2 + np4);
            float pl[SAMPLE_Q];
            for (int r = 0; r < SAMPLE_Q; ++r)
                pl[r] = 0.0f;
            /* pooled tokens starting after last_seen have their last member after it too */
            const int p_end =
                min(min((j + 1) * (BLOCK_K / f), pooled), last_seen >= 0 ? last_seen / f + 1 : 0);
            for (int p = j * (BLOCK_K / f); p < p_end; ++p) {
                const int cnt = min(f, seq_k - p * f);
                const int last_member = p * f + cnt - 1;
                float8 k_reg[HEAD_DIM / 8];
                budget_load_row(k_reg, k_pyr + (level_row + p) * HEAD_DIM);
                for (int r = 0; r < SAMPLE_Q; ++r) {
                    /* visible iff its last member is; then mx[r] is finite */
                    if (last_member > row_pos[r] + shift)
                        continue;
                    pl[r] += (float)cnt * exp2(budget_dot(k_reg, q_tile[r]) - mx[r]);
                }
            }
            for (int r = 0; r < SAMPLE_Q; ++r)
                cell[r * BUDGET_CELL + 1 + l] = pl[r];
        }
    }

    /* Row maxima m_t, then row totals F_t, over every work-item's blocks. */
    for (int r = 0; r < SAMPLE_Q; ++r)
        partial[lid][r] = best[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < SAMPLE_Q; r += BUDGET_WG) {
        float m = -INFINITY;
        for (int w = 0; w < BUDGET_WG; ++w)
            m = fmax(m, partial[w][r]);
        row_max[r] = m;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float total[SAMPLE_Q];
    for (int r = 0; r < SAMPLE_Q; ++r)
        total[r] = 0.0f;
    for (int j = lid; j < nk; j += BUDGET_WG) {
        __global const float *cell = cells + (long)j * SAMPLE_Q * BUDGET_CELL;
        for (int r = 0; r < SAMPLE_Q; ++r)
            if (row_max[r] > -INFINITY) /* a block no key of which is visible adds 0 */
                total[r] += cell[r * BUDGET_CELL + 1] * exp2(cell[r * BUDGET_CELL] - row_max[r]);
    }
    for (int r = 0; r < SAMPLE_Q; ++r)
        partial[lid][r] = total[r];
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int r = lid; r < SAMPLE_Q; r += BUDGET_WG) {
        float t = 0.0f;
        for (int w = 0; w < BUDGET_WG; ++w)
            t += partial[w][r];
        row_total[r] = t;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    const int seen = budget_rows_seen(row_total, SAMPLE_Q);
    const long row = (long)bh * blocks_q + i;
    for (int j = lid; j < nk; j += BUDGET_WG)
        budget_fold_block(cells + (long)j * SAMPLE_Q * BUDGET_CELL, row_max, row_total, SAMPLE_Q,
                          seen, scores + row * nk + j, loss + (row * nk + j) * 3);
}

/* A row's upgrades in the order the allocation takes them, as one integer each: the ratio
 * (error decrease per unit of cost) descending, then the key (block * 4 + hull step)
 * ascending. The ratio's bits are mapped to an unsigned integer that grows with the float
 * and then inverted, so smaller numbers come first. */
inline ulong budget_order_key(uint inverted_ratio, int key) {
    return ((ulong)inverted_ratio << 32) | (ulong)(uint)key;
}

/* Whether upgrade u is live (a non-zero cost) and its order key, *key, lies in the selection's
 * window [lo, hi]: the filter of every pass of the selection. */
inline bool budget_in_window(__local const uint *inv_ratio, __local const uchar *up_cost,
                             const int u, const ulong lo, const ulong hi, ulong *key) {
    if (up_cost[u] == 0)
        return false;
    *key = budget_order_key(inv_ratio[u], u);
    return *key >= lo && *key <= hi;
}

inline uint budget_inverted_ratio(float ratio) {
    const uint bits = as_uint(ratio);
    return ~(bits ^ ((bits & 0x80000000u) ? 0xffffffffu : 0x80000000u));
}

#define BUDGET_BUCKETS 256 /* buckets of one selection pass */
#ifndef BUDGET_CANDIDATES
#define BUDGET_CANDIDATES 128 /* entries a bucket may hold to be ranked one against another */
#endif

/* The allocation of one row (bh, i): forced blocks at level 1 first, then, for every other
 * block, the lower convex hull of its (cost, predicted error) points for levels 0, 8, 4, 2, 1
 * and the upgrades between consecutive hull points; the row's upgrades in order of error
 * decrease per unit of cost (ties: lower block, then earlier step), walked once, each taken
 * when it is its block's next step and fits in what is left of the budget. Costs are in
 * eighths of a block (level f costs 8 / f), so the budget is walked in integers.
 *
 * The walk is not done one upgrade after another. Along one block's hull the ratios decrease,
 * so in any prefix of the order a block's upgrades are its first steps: the walk takes every
 * upgrade until the first one whose cost no longer fits (T). An upgrade whose ratio exceeds
 * its block's previous one (fp32 rounding) is met before that step and skipped, and so are
 * its block's later steps: such upgrades are dropped up front ("dead"), which leaves the walk
 * unchanged. T is found by a selection on the order keys: each pass narrows a window of keys
 * to the bucket (of 256) in which the cumulative cost first exceeds the budget, from a
 * histogram of costs built with local atomics, until the bucket holds at most
 * BUDGET_CANDIDATES upgrades, which are then ranked pairwise. After T less than 8 units are
 * left: the walk goes on from one taken upgrade to the next, each the first (in the order)
 * that is its block's next step and fits, found by a minimum over the row; at most 8 such
 * steps. The result equals the serial walk's exactly, ties included. */
__kernel __attribute__((reqd_work_group_size(ASSIGN_WG, 1, 1))) void
budget_allocate(__global const float *scores, __global const float *loss, __global char *levels,
                const int heads_q, const int seq_q, const int seq_k, const int block_q,
                const int block_k, const int blocks_q, const int blocks_k, const int text_blocks,
                const int text_row_first, const int causal, const int budget_units) {
    __local uint inv_ratio[UPGRADE_N]; /* by key */
    __local uchar up_cost[UPGRADE_N];  /* 0: no upgrade (or a dead one) */
    __local char up_level[UPGRADE_N];
    __local char level_of[UPGRADE_N / 4], next_step[UPGRADE_N / 4];
    __local int hist_cost[BUDGET_BUCKETS], hist_count[BUDGET_BUCKETS];
    __local ulong part_lo[ASSIGN_WG], part_hi[ASSIGN_WG];
    __local int part_sum[ASSIGN_WG];
    __local ulong cand_key[BUDGET_CANDIDATES];
    __local uchar cand_cost[BUDGET_CANDIDATES];
    __local int sel_found, sel_bucket, sel_before, sel_count, forced_units, cand_n;
    __local ulong threshold_key;
    __local int threshold_left;
    const int lid = get_local_id(0);
    const long row = get_group_id(0); /* bh * blocks_q + i */
    const int i = (int)(row % blocks_q);
    const int nk = blocks_k;
    const int n_up = 4 * nk;
    __global const float *w_row = scores + row * nk;
    __global const float *loss_row = loss + row * nk * 3;
    const int shift = seq_k - seq_q;
    const int last_row = min((i + 1) * block_q, seq_q) - 1;
    const int diagonal_key = last_row + shift;
    const int diagonal = diagonal_key >= 0 ? min(diagonal_key, seq_k - 1) / block_k : -1;
    /* A query block holding a text row (the last text_tokens rows) reads every key block it
     * can see at level 1; text_row_first = seq_q without text. */
    const bool text_row = last_row >= text_row_first;

    if (lid == 0)
        forced_units = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    int my_forced = 0;
    for (int j = lid; j < nk; j += ASSIGN_WG) {
        for (int s = 0; s < 4; ++s)
            up_cost[j * 4 + s] = 0; /* steps that do not exist are never taken */
        /* A key block wholly in the future is never visited: level 0, no cost, no upgrade
         * (even where a rule below would force it). */
        const bool future = causal && j * block_k > diagonal_key;
        const bool forced =
            !future && (j >= nk - text_blocks || text_row || (causal && (j == 0 || j == diagonal)));
        level_of[j] = forced ? 1 : 0;
        next_step[j] = 0;
        my_forced += forced ? 8 : 0;
        if (forced || future)
            continue;
        const float w = w_row[j];
        const char point_level[5] = {0, 8, 4, 2, 1};
        const int point_cost[5] = {0, 1, 2, 4, 8};
        const float point_error[5] = {w, w * loss_row[j * 3 + 2], w * loss_row[j * 3 + 1],
                                      w * loss_row[j * 3], 0.0f};
        int hull[5], n = 0;
        for (int x = 0; x < 5; ++x) {
            if (n > 0 && !(point_error[x] < point_error[hull[n - 1]]))
                continue;
            while (n >= 2) {
                const int a = hull[n - 2], m = hull[n - 1];
                /* m on or above the chord from a to x */
                if ((point_error[m] - point_error[a]) * (float)(point_cost[x] - point_cost[a]) >=
                    (point_error[x] - point_error[a]) * (float)(point_cost[m] - point_cost[a]))
                    --n;
                else
                    break;
            }
            hull[n++] = x;
        }
        float previous = INFINITY;
        for (int s = 0; s + 1 < n; ++s) {
            const int from = hull[s], to = hull[s + 1];
            const int u = j * 4 + s;
            const int cost = point_cost[to] - point_cost[from];
            const float ratio = (point_error[from] - point_error[to]) / (float)cost;
            if (ratio > previous)
                break; /* dead: met before its previous step (see above), and so are the rest */
            previous = ratio;
            inv_ratio[u] = budget_inverted_ratio(ratio);
            up_level[u] = point_level[to];
            up_cost[u] = (uchar)cost;
        }
    }
    if (my_forced)
        atomic_add(&forced_units, my_forced);
    barrier(CLK_LOCAL_MEM_FENCE);
    const int left0 = budget_units - forced_units; /* only forced blocks are set yet */

    /* The selection of T: the window [lo, hi] of order keys holds T; before = the cost of the
     * upgrades ahead of the window. threshold_key stays ULONG_MAX when everything fits. */
    ulong lo = 0, hi = ULONG_MAX;
    int before = 0;
    ulong t_key = ULONG_MAX;
    int t_left = left0;
    bool selecting = left0 > 0; /* else nothing fits */
    while (selecting) {
        barrier(CLK_LOCAL_MEM_FENCE); /* the previous pass's sel_* are read */
        /* the window's smallest and largest keys */
        ulong my_lo = ULONG_MAX, my_hi = 0;
        for (int u = lid; u < n_up; u += ASSIGN_WG) {
            ulong kk;
            if (budget_in_window(inv_ratio, up_cost, u, lo, hi, &kk)) {
                my_lo = min(my_lo, kk);
                my_hi = max(my_hi, kk);
            }
        }
        part_lo[lid] = my_lo;
        part_hi[lid] = my_hi;
        for (int b = lid; b < BUDGET_BUCKETS; b += ASSIGN_WG) {
            hist_cost[b] = 0;
            hist_count[b] = 0;
        }
        if (lid == 0)
            sel_found = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        ulong w_lo = ULONG_MAX, w_hi = 0;
        for (int x = 0; x < ASSIGN_WG; ++x) {
            w_lo = min(w_lo, part_lo[x]);
            w_hi = max(w_hi, part_hi[x]);
        }
        if (w_lo > w_hi)
            break; /* no upgrade at all (first pass only): nothing to take */
        lo = w_lo;
        hi = w_hi;
        const ulong range = hi - lo;
        const int width = range == 0 ? 0 : 64 - (int)clz(range);
        const int bucket_shift = max(width - 8, 0);
        for (int u = lid; u < n_up; u += ASSIGN_WG) {
            ulong kk;
            if (budget_in_window(inv_ratio, up_cost, u, lo, hi, &kk)) {
                const int b = (int)((kk - lo) >> bucket_shift);
                atomic_add(&hist_cost[b], up_cost[u]);
                atomic_inc(&hist_count[b]);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* the bucket where the cumulative cost first exceeds what is left */
        const int per_item = (BUDGET_BUCKETS + ASSIGN_WG - 1) / ASSIGN_WG;
        const int b0 = lid * per_item, b1 = min(b0 + per_item, BUDGET_BUCKETS);
        int mine = 0;
        for (int b = b0; b < b1; ++b)
            mine += hist_cost[b];
        part_sum[lid] = mine;
        barrier(CLK_LOCAL_MEM_FENCE);
        int cum = before, total = before;
        for (int x = 0; x < ASSIGN_WG; ++x) {
            cum += x < lid ? part_sum[x] : 0;
            total += part_sum[x];
        }
        for (int b = b0; b < b1; ++b) {
            const int next = cum + hist_cost[b];
            if (cum <= left0 && next > left0) {
                sel_found = 1;
                sel_bucket = b;
                sel_before = cum;
                sel_count = hist_count[b];
            }
            cum = next;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!sel_found) {
            /* everything in the window fits (first pass only: later windows hold T) */
            t_left = left0 - total;
            break;
        }
        const ulong bucket_lo = lo + ((ulong)sel_bucket << bucket_shift);
        const ulong bucket_hi = bucket_lo + (((ulong)1 << bucket_shift) - 1);
        lo = bucket_lo;
        hi = min(hi, bucket_hi < bucket_lo ? ULONG_MAX : bucket_hi);
        before = sel_before;
        if (sel_count > BUDGET_CANDIDATES && bucket_shift > 0)
            continue;
        /* Rank the bucket's upgrades: T is the one at which the cumulative cost first
         * exceeds what is left. */
        if (lid == 0)
            cand_n = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = lid; u < n_up; u += ASSIGN_WG) {
            ulong kk;
            if (budget_in_window(inv_ratio, up_cost, u, lo, hi, &kk)) {
                const int slot = atomic_inc(&cand_n);
                cand_key[slot] = kk;
                cand_cost[slot] = up_cost[u];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const int count = cand_n;
        for (int x = lid; x < count; x += ASSIGN_WG) {
            const ulong kx = cand_key[x];
            int ahead = before;
            for (int y = 0; y < count; ++y)
                ahead += cand_key[y] < kx ? cand_cost[y] : 0;
            if (ahead <= left0 && ahead + cand_cost[x] > left0) {
                threshold_key = kx;
                threshold_left = left0 - ahead;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        t_key = threshold_key;
        t_left = threshold_left;
        selecting = false;
    }

    /* Every upgrade ahead of T is taken: a prefix of each block's steps. */
    if (left0 > 0) {
        for (int j = lid; j < nk; j += ASSIGN_WG) {
            for (int s = 0; s < 4; ++s) {
                const int u = j * 4 + s;
                if (up_cost[u] == 0 || budget_order_key(inv_ratio[u], u) >= t_key)
                    break;
                level_of[j] = up_level[u];
                next_step[j] = (char)(s + 1);
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* The walk after T: from one taken upgrade to the next. */
    int left = t_left;
    ulong after = t_key; /* T itself does not fit */
    while (left > 0 && after != ULONG_MAX) {
        ulong best = ULONG_MAX;
        for (int u = lid; u < n_up; u += ASSIGN_WG) {
            const int c = up_cost[u];
            if (c == 0 || c > left || next_step[u >> 2] != (u & 3))
                continue;
            const ulong kk = budget_order_key(inv_ratio[u], u);
            if (kk > after)
                best = min(best, kk);
        }
        part_lo[lid] = best;
        barrier(CLK_LOCAL_MEM_FENCE);
        best = ULONG_MAX;
        for (int x = 0; x < ASSIGN_WG; ++x)
            best = min(best, part_lo[x]);
        if (best == ULONG_MAX)
            break;
        const int u = (int)(uint)best;
        left -= up_cost[u];
        after = best;
        /* no one reads next_step before the barrier, which also keeps part_lo until read */
        if (lid == 0) {
            level_of[u >> 2] = up_level[u];
            next_step[u >> 2] = (char)((u & 3) + 1);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    __global char *m_row = levels + row * nk;
    for (int j = lid; j < nk; j += ASSIGN_WG)
        m_row[j] = level_of[j];
}
