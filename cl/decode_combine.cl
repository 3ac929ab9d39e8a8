/* SPDX-License-Identifier: Apache-2.0 */
/* The second kernel of every decode variant (decode.cl, portable/decode_cpu.cl): merges the
 * partial softmax states (max in base 2, sum, accumulator) that the splits of the keys wrote
 * for one query row, rescaling each by exp2(m_s - max_s m_s), and writes acc / sum (zeros for
 * a row that saw nothing). Built after common.cl.
 * Shape (set by the host):
 *   DEC_COMBINE_WG   work-items per work-group (they share the head dimension)
 */
#ifndef DEC_COMBINE_WG
#define DEC_COMBINE_WG 64 /* work-items per work-group */
#endif

/* One work-group per query row (b, h, t), rows in [B, Hq, Nq] order. */
__kernel __attribute__((reqd_work_group_size(DEC_COMBINE_WG, 1, 1))) void
decode_combine(__global const float *part_acc, __global const float *part_ml, __global out_t *out,
               const int heads_q, const int seq_q, const int splits, const int max_splits,
               const long o_sb, const long o_sh, const long o_sn) {
    const int lid = get_local_id(0);
    const long row = get_group_id(0);
    const int t = (int)(row % seq_q);
    const long bh = row / seq_q;
    const int h = (int)(bh % heads_q);
    const int b = (int)(bh / heads_q);
    __global const float *ml = part_ml + row * max_splits * 2;
    __global const float *acc = part_acc + row * max_splits * HEAD_DIM;

    float m = -INFINITY;
    for (int s = 0; s < splits; ++s)
        m = fmax(m, ml[2 * s]);
    float l = 0.0f;
    if (m != -INFINITY)
        for (int s = 0; s < splits; ++s)
            if (ml[2 * s] != -INFINITY)
                l += ml[2 * s + 1] * exp2(ml[2 * s] - m);
    const float inv_l = l > 0.0f ? 1.0f / l : 0.0f;
    __global out_t *o_row = out + b * o_sb + h * o_sh + (long)t * o_sn;
    for (int d = lid; d < HEAD_DIM; d += DEC_COMBINE_WG) {
        float x = 0.0f;
        if (l > 0.0f)
            for (int s = 0; s < splits; ++s)
                if (ml[2 * s] != -INFINITY)
                    x = fma(acc[s * HEAD_DIM + d], exp2(ml[2 * s] - m), x);
        STORE_OUT(o_row, d, x * inv_l);
    }
}
