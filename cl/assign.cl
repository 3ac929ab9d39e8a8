/* SPDX-License-Identifier: Apache-2.0 */
/* Level assignment (docs/algorithm.md section 6) and the per-query-block work list. Built after
 * common.cl. One work-group per row (bh, i) of S. The sort is parallel (bitonic, in local
 * memory); the assignment rules are a short sequential walk over the sorted row, done by
 * work-item 0 exactly as docs/algorithm.md writes them.
 * Parameters: SORT_N (power of two >= nk), ASSIGN_WG (work-items, power of two). */
#ifndef SORT_N
#define SORT_N 1024 /* padded row length for the sort */
#endif
#ifndef ASSIGN_WG
#define ASSIGN_WG 64 /* work-items per row */
#endif

#define MODE_THRESHOLD 1
#define MODE_QUANTILE 2
#define MODE_ENERGY 3
#define MODE_BINARY 4

/* True when (va, ia) sorts before (vb, ib): larger score first, then lower block index. */
inline bool sorts_before(float va, int ia, float vb, int ib) {
    return va > vb || (va == vb && ia < ib);
}

inline int level_code(int index) { /* index 0..3 -> level 1, 2, 4, 8 */
    return 1 << index;
}

inline int align_of(int f, int align_tile, int block_k) {
    if (f < 2 || align_tile <= 0)
        return 1;
    return max(1, (f * align_tile + block_k - 1) / block_k);
}

/* Gives sorted positions [prev, end) level f after alignment; returns the new prev. */
inline int give_range(__local char *by_position, int prev, int end, int f, int nk, int align,
                      int min_full_blocks) {
    if (align > 1) {
        const int len = ((max(0, end - prev) + align - 1) / align) * align;
        end = min(prev + len, nk);
        if (end == nk)
            end = prev + ((end - prev) / align) * align;
    } else {
        end = clamp(end, prev, nk);
        if (f == 1)
            end = max(end, min_full_blocks);
    }
    for (int p = prev; p < end; ++p)
        by_position[p] = (char)f;
    return max(prev, end);
}

__kernel __attribute__((reqd_work_group_size(ASSIGN_WG, 1, 1))) void
assign_levels(__global const float *scores, __global const float *similarity, __global char *levels,
              const int heads_q, const int group, const int seq_q, const int seq_k,
              const int block_q, const int block_k, const int blocks_q, const int blocks_k,
              const int mode, const float tau1, const float tau2, const float tau4,
              const float tau8, const int align_tile, const int min_full_blocks,
              const int text_blocks, const int text_row_first, const int causal, const int cap_on,
              const float t2, const float t4, const float t8, const int binary_keep,
              const int quantile_end1, const int quantile_end2, const int quantile_end4,
              const int quantile_end8) {
    __local float value[SORT_N];
    __local int index[SORT_N];
    __local char by_position[SORT_N];
    __local char by_block[SORT_N];
    __local int non_finite;
    const int lid = get_local_id(0);
    const long row = get_group_id(0); /* bh * blocks_q + i */
    const int i = (int)(row % blocks_q);
    const int bh = (int)(row / blocks_q);
    const int nk = blocks_k;
    __global const float *s_row = scores + row * nk;

    if (lid == 0)
        non_finite = 0;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = lid; p < SORT_N; p += ASSIGN_WG) {
        value[p] = p < nk ? s_row[p] : -INFINITY;
        index[p] = p < nk ? p : SORT_N + p; /* padding sorts last */
        by_position[p] = 0;
        if (p < nk && !isfinite(value[p]))
            atomic_or(&non_finite, 1);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int size = 2; size <= SORT_N; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int p = lid; p < SORT_N; p += ASSIGN_WG) {
                const int partner = p ^ stride;
                if (partner > p) {
                    const bool ascending_run = (p & size) == 0;
                    const bool in_order =
                        sorts_before(value[p], index[p], value[partner], index[partner]);
                    if (in_order != ascending_run) {
                        const float v = value[p];
                        value[p] = value[partner];
                        value[partner] = v;
                        const int x = index[p];
                        index[p] = index[partner];
                        index[partner] = x;
                    }
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }

    if (lid == 0) {
        /* Row sum and cumulative E with compensated fp32 sums (error ~ 1e-7, well inside the
         * 1e-5 band where implementations may differ). */
        float total = 0.0f, carry = 0.0f;
        for (int p = 0; p < nk; ++p) {
            const float y = value[p] - carry;
            const float t = total + y;
            carry = (t - total) - y;
            total = t;
        }
        const float taus[4] = {tau1, tau2, tau4, tau8};
        if (mode == MODE_BINARY) {
            /* The top binary_keep blocks the row can see: a block wholly in the causal future
             * is never visited, so it would only lower the baseline's real density. */
            const int last_key = min((i + 1) * block_q, seq_q) - 1 + seq_k - seq_q;
            int kept = 0;
            for (int p = 0; p < nk && kept < binary_keep; ++p)
                if (!causal || index[p] * block_k <= last_key) {
                    by_position[p] = 1;
                    ++kept;
                }
        } else if (mode == MODE_ENERGY) {
            float cumulative = 0.0f, c2 = 0.0f;
            for (int p = 0; p < nk; ++p) {
                const float y = value[p] - c2;
                const float t = cumulative + y;
                c2 = (t - cumulative) - y;
                cumulative = t;
                const float e = total > 0.0f ? cumulative / total : 1.0f;
                char level = 0;
                for (int l = 3; l >= 0; --l)
                    if (e <= taus[l] + 1e-6f)
                        level = (char)level_code(l);
                by_position[p] = level;
            }
        } else if (mode == MODE_QUANTILE) {
            /* end_f = min(nk, floor(nk * tau_f)), computed by the host in double. */
            const int ends[4] = {quantile_end1, quantile_end2, quantile_end4, quantile_end8};
            int prev = 0;
            for (int l = 0; l < 4; ++l) {
                const int f = level_code(l);
                if (ends[l] > prev)
                    prev = give_range(by_position, prev, ends[l], f, nk,
                                      align_of(f, align_tile, block_k), 0);
            }
        } else { /* threshold */
            int prev = 0;
            /* Levels 1, 2, 4, 8, then 0 (tau0 = 1): taus are non-decreasing and <= 1, so
             * ascending tau with a stable order is exactly this order. */
            for (int l = 0; l < 5; ++l) {
                const int f = l < 4 ? level_code(l) : 0;
                const float tau = l < 4 ? taus[l] : 1.0f;
                float cumulative = 0.0f, c2 = 0.0f;
                int c = 0;
                for (int p = 0; p < nk; ++p) {
                    const float y = value[p] - c2;
                    const float t = cumulative + y;
                    c2 = (t - cumulative) - y;
                    cumulative = t;
                    const float e = total > 0.0f ? cumulative / total : 1.0f;
                    c += e <= tau + 1e-6f;
                }
                const int end = c > 0 ? c + 1 : prev;
                /* min_full_blocks = min(nk, floor(min_full * nk) + 1), from the host in
                 * double (0 when min_full is off). */
                prev = give_range(by_position, prev, end, f, nk,
                                  f == 0 ? 1 : align_of(f, align_tile, block_k), min_full_blocks);
            }
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int p = lid; p < nk; p += ASSIGN_WG)
        by_block[index[p]] = by_position[p];
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Forced blocks (not in binary mode), then the similarity cap, then the causal future. */
    const int shift = seq_k - seq_q;
    const int last_row = min((i + 1) * block_q, seq_q) - 1;
    const int diagonal_key = last_row + shift;
    const int diagonal = diagonal_key >= 0 ? min(diagonal_key, seq_k - 1) / block_k : -1;
    /* A query block holding a text row (the last text_tokens rows; text_row_first = seq_q
     * without text) reads every key block it can see at level 1. */
    const bool text_row = last_row >= text_row_first;
    const int kvh_row = (bh % heads_q) / group + (bh / heads_q) * (heads_q / group);
    __global char *m_row = levels + row * nk;
    for (int j = lid; j < nk; j += ASSIGN_WG) {
        int level = by_block[j];
        if (mode != MODE_BINARY) {
            if (j >= nk - text_blocks || text_row)
                level = 1;
            if (causal && (j == 0 || j == diagonal))
                level = 1;
            if (cap_on && level > 0) {
                __global const float *sim = similarity + ((long)kvh_row * nk + j) * 3;
                const int cap = sim[2] > t8 ? 8 : sim[1] > t4 ? 4 : sim[0] > t2 ? 2 : 1;
                level = min(level, cap);
            }
        }
        /* A row of S holding NaN or infinity (the estimate met a non-finite logit) ranks
         * nothing: every block at level 1, as dense attention, whatever the mode, so the
         * output rows read every key and IEEE propagation decides which of them are NaN
         * (docs/api.md, "NaN and infinity"). Other rows keep their own levels. */
        if (non_finite)
            level = 1;
        /* A key block wholly in the future is never visited: level 0 whatever the rules gave
         * it, so the map and its density say what the attend does. */
        if (causal && j * block_k > diagonal_key)
            level = 0;
        m_row[j] = (char)level;
    }
}

/* The work list of one query block: its key blocks grouped by level (1, 2, 4, 8), ascending
 * within a level, skipping blocks wholly in the future under the causal mask.
 * counts[row * 4 + l] = blocks at level 2^l; list[row * nk ...] = the block indices. */
__kernel void build_work_list(__global const char *levels, __global int *counts, __global int *list,
                              const int seq_q, const int seq_k, const int block_q,
                              const int block_k, const int blocks_q, const int blocks_k,
                              const int causal, const long rows) {
    const long row = get_global_id(0);
    if (row >= rows)
        return;
    const int i = (int)(row % blocks_q);
    const int last_row = min((i + 1) * block_q, seq_q) - 1;
    const int last_key = causal ? last_row + (seq_k - seq_q) : seq_k - 1;
    __global const char *m_row = levels + row * blocks_k;
    __global int *out = list + row * blocks_k;
    int written = 0;
    for (int l = 0; l < 4; ++l) {
        const int f = 1 << l;
        int count = 0;
        for (int j = 0; j < blocks_k; ++j) {
            if (m_row[j] == f && j * block_k <= last_key) {
                out[written++] = j;
                count++;
            }
        }
        counts[row * 4 + l] = count;
    }
}
