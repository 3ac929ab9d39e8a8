/* SPDX-License-Identifier: Apache-2.0 */
/* The key/value pyramid (docs/algorithm.md section 3) and the block self-similarity behind the
 * similarity cap (section 6). Built after common.cl.
 *
 * Pyramid layout, per (batch, kv head) bh: P = np2 + np4 + np8 pooled tokens of D values,
 * level 2 first, then 4, then 8: element (bh * P + level_offset + p) * D + d. */

/* One work-item per (d, group of 8 tokens, bh): reads the 8 keys and values once and writes
 * their means at levels 2, 4 and 8, each over the tokens that exist (count-aware at the end).
 * Sums are fp32; each mean is rounded to the storage type once. */
__kernel void pool_pyramid(__global const in_t *k, __global const in_t *v, __global in_t *k_pyr,
                           __global in_t *v_pyr, __global const int *perm, const int heads_kv,
                           const int seq_k, const int np2, const int np4, const int np8,
                           const long k_sb, const long k_sh, const long k_sn, const long v_sb,
                           const long v_sh, const long v_sn) {
    const int d = get_global_id(0);
    const int p8 = get_global_id(1);
    const int bh = get_global_id(2);
    if (d >= HEAD_DIM || p8 >= np8)
        return;
    const int b = bh / heads_kv;
    const int h = bh - b * heads_kv;
    __global const in_t *k_head = k + b * k_sb + h * k_sh + d;
    __global const in_t *v_head = v + b * v_sb + h * v_sh + d;
    const int first = p8 * 8;
    const int present = min(8, seq_k - first);
    float ks[8], vs[8];
    for (int i = 0; i < 8; ++i) {
        const int token = TOKEN(perm, first + min(i, present - 1));
        ks[i] = i < present ? LOAD_IN(k_head, (long)token * k_sn) : 0.0f;
        vs[i] = i < present ? LOAD_IN(v_head, (long)token * v_sn) : 0.0f;
    }
    const long P = (long)np2 + np4 + np8;
    __global in_t *k_out = k_pyr + (long)bh * P * HEAD_DIM + d;
    __global in_t *v_out = v_pyr + (long)bh * P * HEAD_DIM + d;
    /* Level 2: pooled tokens 4*p8 .. 4*p8+3 */
    for (int g = 0; g < 4; ++g) {
        const int count = clamp(present - 2 * g, 0, 2);
        if (count == 0)
            break;
        const float ksum = ks[2 * g] + ks[2 * g + 1];
        const float vsum = vs[2 * g] + vs[2 * g + 1];
        const long at = (long)(4 * p8 + g) * HEAD_DIM;
        STORE_IN(k_out, at, ksum / (float)count);
        STORE_IN(v_out, at, vsum / (float)count);
    }
    /* Level 4 */
    for (int g = 0; g < 2; ++g) {
        const int count = clamp(present - 4 * g, 0, 4);
        if (count == 0)
            break;
        float ksum = 0.0f, vsum = 0.0f;
        for (int i = 0; i < 4; ++i) {
            ksum += ks[4 * g + i];
            vsum += vs[4 * g + i];
        }
        const long at = ((long)np2 + 2 * p8 + g) * HEAD_DIM;
        STORE_IN(k_out, at, ksum / (float)count);
        STORE_IN(v_out, at, vsum / (float)count);
    }
    /* Level 8 */
    float ksum = 0.0f, vsum = 0.0f;
    for (int i = 0; i < 8; ++i) {
        ksum += ks[i];
        vsum += vs[i];
    }
    const long at = ((long)np2 + np4 + p8) * HEAD_DIM;
    STORE_IN(k_out, at, ksum / (float)present);
    STORE_IN(v_out, at, vsum / (float)present);
}

inline float cosine(__global const in_t *a, __global const in_t *b) {
    float ab = 0.0f, aa = 0.0f, bb = 0.0f;
    for (int d = 0; d < HEAD_DIM; ++d) {
        const float x = LOAD_IN(a, d);
        const float y = LOAD_IN(b, d);
        ab = fma(x, y, ab);
        aa = fma(x, x, aa);
        bb = fma(y, y, bb);
    }
    const float norms = sqrt(aa) * sqrt(bb);
    return norms > 0.0f ? ab / norms : 0.0f;
}

/* One work-item per (key block j, bh): sim[(bh * nk + j) * 3 + {0,1,2}] = mean cosine
 * similarity of (first, last) token pairs of each complete group of 2, 4, 8 tokens of the
 * block; -inf when the block has no complete group of that size. */
__kernel void block_similarity(__global const in_t *k, __global const int *perm,
                               __global float *sim, const int heads_kv, const int seq_k,
                               const int block_k, const int blocks_k, const long k_sb,
                               const long k_sh, const long k_sn) {
    const int j = get_global_id(0);
    const int bh = get_global_id(1);
    if (j >= blocks_k)
        return;
    const int b = bh / heads_kv;
    const int h = bh - b * heads_kv;
    __global const in_t *k_head = k + b * k_sb + h * k_sh;
    const int start = j * block_k;
    const int end = min(start + block_k, seq_k);
    for (int level = 0; level < 3; ++level) {
        const int f = 2 << level;
        float total = 0.0f;
        int groups = 0;
        for (int first = start; first + f - 1 < end; first += f) {
            total += cosine(k_head + (long)TOKEN(perm, first) * k_sn,
                            k_head + (long)TOKEN(perm, first + f - 1) * k_sn);
            groups++;
        }
        sim[((long)bh * blocks_k + j) * 3 + level] = groups ? total / (float)groups : -INFINITY;
    }
}
