/* SPDX-License-Identifier: Apache-2.0 */
/* Flash-attention tile step shaped for CPUs (PoCL), shared by portable/dense_cpu.cl and
 * portable/attend_cpu.cl; built after common.cl.
 *
 * One work-item owns CPU_ROWS query rows and keeps every per-row quantity transposed, rows
 * along the vector lanes: the scaled queries qt[d][rows], the accumulator acc[d][rows], the
 * logits s[key][rows] and the softmax state m, l. Then
 *   S^T = K Q^T    acc[8 keys][2 row vectors] += broadcast(K[key][d]) * Q^T[d][row vector]
 *   O^T += V^T P^T acc[8 dims][2 row vectors] += broadcast(V[key][d]) * P^T[key][row vector]
 * are register-blocked outer products: each loaded vector feeds 8 FMAs, each broadcast key or
 * value element 2, and the online softmax is element-wise across lanes (no horizontal
 * reductions, no divisions). Keys and values are staged per tile as fp32 rows, so the inner
 * loops never convert storage types. The vectors are float16 (AVX-512 on x86; the compiler
 * splits them on narrower units); PoCL runs one work-item per group with no work-item loop.
 *
 * Tunables (speed only, never the result):
 *   CPU_ROWS    query rows per work-item (a multiple of 16)
 *   CPU_TILE_N  keys per staged tile (a multiple of 8)
 */
#ifndef CPU_ROWS
#define CPU_ROWS 64 /* query rows per work-item */
#endif
#ifndef CPU_TILE_N
#define CPU_TILE_N 32 /* keys per staged tile */
#endif

#define CPU_LANES 16                  /* rows per vector */
#define CPU_RV (CPU_ROWS / CPU_LANES) /* row vectors per work-item */
#define CPU_RB (CPU_RV % 2 ? 1 : 2)   /* row vectors per register block */
#define CPU_KB 8                      /* keys (S) or head dims (O) per register block */
typedef float16 rowv;                 /* one value of CPU_LANES consecutive rows */
typedef int16 rowi;

#if CPU_ROWS % CPU_LANES != 0
#error "CPU_ROWS must be a multiple of 16"
#endif
#if CPU_TILE_N % CPU_KB != 0 || HEAD_DIM % CPU_KB != 0
#error "CPU_TILE_N and HEAD_DIM must be multiples of 8"
#endif

#if IN_TYPE == 1
#define CPU_LOAD8(p, i) vload8(0, (p) + (i))
#elif IN_TYPE == 2
#define CPU_LOAD8(p, i) vload_half8(0, (p) + (i))
#else
#define CPU_LOAD8(p, i) as_float8(convert_uint8(vload8(0, (p) + (i))) << 16)
#endif

/* A key or value row of storage into fp32; NULL stages zeros (a padding slot). */
inline void cpu_stage_row(float *dst, __global const in_t *src) {
    for (int d = 0; d < HEAD_DIM; d += 8)
        vstore8(src ? CPU_LOAD8(src, d) : (float8)(0.0f), 0, dst + d);
}

/* Query row r (NULL: a padding row) into qt, scaled so logits are in base 2 (common.cl). */
inline void cpu_load_query(rowv (*qt)[CPU_RV], int r, __global const in_t *src, float q_scale) {
    float *column = (float *)qt + r;
    for (int d = 0; d < HEAD_DIM; d += 8) {
        const float8 x = src ? CPU_LOAD8(src, d) * q_scale : (float8)(0.0f);
        column[(d + 0) * CPU_ROWS] = x.s0;
        column[(d + 1) * CPU_ROWS] = x.s1;
        column[(d + 2) * CPU_ROWS] = x.s2;
        column[(d + 3) * CPU_ROWS] = x.s3;
        column[(d + 4) * CPU_ROWS] = x.s4;
        column[(d + 5) * CPU_ROWS] = x.s5;
        column[(d + 6) * CPU_ROWS] = x.s6;
        column[(d + 7) * CPU_ROWS] = x.s7;
    }
}

inline void cpu_state_init(rowv (*acc)[CPU_RV], rowv *m, rowv *l) {
    for (int d = 0; d < HEAD_DIM; ++d)
        for (int v = 0; v < CPU_RV; ++v)
            acc[d][v] = (rowv)(0.0f);
    for (int v = 0; v < CPU_RV; ++v) {
        m[v] = (rowv)(-INFINITY);
        l[v] = (rowv)(0.0f);
    }
}

/* Writes row r of acc / l, or zeros for a row that saw nothing (a NaN l comes with a NaN
 * accumulator, so a NaN row stays NaN). */
inline void cpu_store_row(__global out_t *dst, const rowv (*acc)[CPU_RV], const rowv *l, int r) {
    const float *column = (const float *)acc + r;
    const float sum = ((const float *)l)[r];
    const float inv_l = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int d = 0; d < HEAD_DIM; ++d)
        STORE_OUT(dst, d, column[d * CPU_ROWS] * inv_l);
}

/* acc += V^T P^T for a masked tile: key j adds nothing to rows with last[j] > limit, not even
 * 0 * v (a NaN or infinite value would reach rows that do not see it). Kept out of line so
 * the unmasked loop in cpu_tile_step stays exactly as fast as without it. */
__attribute__((noinline)) void cpu_tile_pv_masked(rowv (*acc)[CPU_RV], const rowv (*s)[CPU_RV],
                                                  const float (*vt)[HEAD_DIM], const rowi *limit,
                                                  const int *last) {
    for (int d0 = 0; d0 < HEAD_DIM; d0 += CPU_KB)
        for (int v0 = 0; v0 < CPU_RV; v0 += CPU_RB) {
            rowv a[CPU_KB][CPU_RB];
#pragma unroll
            for (int e = 0; e < CPU_KB; ++e)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    a[e][b] = acc[d0 + e][v0 + b];
            for (int j = 0; j < CPU_TILE_N; ++j) {
                rowv pv[CPU_RB];
                rowi hidden[CPU_RB];
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b) {
                    pv[b] = s[j][v0 + b];
                    hidden[b] = (rowi)(last[j]) > limit[v0 + b];
                }
#pragma unroll
                for (int e = 0; e < CPU_KB; ++e) {
                    const rowv vv = (rowv)(vt[j][d0 + e]);
#pragma unroll
                    for (int b = 0; b < CPU_RB; ++b)
                        a[e][b] = select(fma(vv, pv[b], a[e][b]), a[e][b], hidden[b]);
                }
            }
#pragma unroll
            for (int e = 0; e < CPU_KB; ++e)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    acc[d0 + e][v0 + b] = a[e][b];
        }
}

/* One online-softmax step of every row over a staged tile: kt, vt hold CPU_TILE_N fp32 rows,
 * bias[j] is added to key j's logits (base 2), and key j is visible to row r iff
 * last[j] <= limit[r] (so a padding slot carries INT_MAX). masked == 0 promises that every key
 * is visible to every row. A row that sees no key of the tile keeps its state. */
inline void cpu_tile_step(const rowv (*qt)[CPU_RV], rowv (*acc)[CPU_RV], rowv *m, rowv *l,
                          rowv (*s)[CPU_RV], const rowi *limit, const float (*kt)[HEAD_DIM],
                          const float (*vt)[HEAD_DIM], const float *bias, const int *last,
                          bool masked) {
    /* S^T = K Q^T + bias */
    for (int j0 = 0; j0 < CPU_TILE_N; j0 += CPU_KB)
        for (int v0 = 0; v0 < CPU_RV; v0 += CPU_RB) {
            rowv a[CPU_KB][CPU_RB];
#pragma unroll
            for (int k = 0; k < CPU_KB; ++k)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    a[k][b] = (rowv)(bias[j0 + k]);
            for (int d = 0; d < HEAD_DIM; ++d) {
                rowv qv[CPU_RB];
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    qv[b] = qt[d][v0 + b];
#pragma unroll
                for (int k = 0; k < CPU_KB; ++k) {
                    const rowv kv = (rowv)(kt[j0 + k][d]);
#pragma unroll
                    for (int b = 0; b < CPU_RB; ++b)
                        a[k][b] = fma(kv, qv[b], a[k][b]);
                }
            }
#pragma unroll
            for (int k = 0; k < CPU_KB; ++k)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    s[j0 + k][v0 + b] = a[k][b];
        }
    if (masked)
        for (int j = 0; j < CPU_TILE_N; ++j)
            for (int v = 0; v < CPU_RV; ++v)
                s[j][v] = select(s[j][v], (rowv)(-INFINITY), (rowi)(last[j]) > limit[v]);

    /* Online softmax, element-wise over the lanes. */
    for (int v = 0; v < CPU_RV; ++v) {
        rowv tile_max = s[0][v];
        for (int j = 1; j < CPU_TILE_N; ++j)
            tile_max = fmax(tile_max, s[j][v]);
        const rowv m_new = fmax(m[v], tile_max);
        /* A row that has seen nothing yet subtracts 0, not -inf: exp2(-inf) = 0, no NaN. */
        const rowv m_use = select(m_new, (rowv)(0.0f), m_new == (rowv)(-INFINITY));
        const rowv correction = exp2(m[v] - m_use);
        rowv sum = l[v] * correction;
        for (int j = 0; j < CPU_TILE_N; ++j) {
            const rowv p = exp2(s[j][v] - m_use);
            s[j][v] = p;
            sum += p;
        }
        l[v] = sum;
        m[v] = m_new;
        for (int d = 0; d < HEAD_DIM; ++d)
            acc[d][v] *= correction;
    }

    /* O^T += V^T P^T (a masked tile: cpu_tile_pv_masked) */
    if (masked) {
        cpu_tile_pv_masked(acc, (const rowv(*)[CPU_RV])s, vt, limit, last);
        return;
    }
    for (int d0 = 0; d0 < HEAD_DIM; d0 += CPU_KB)
        for (int v0 = 0; v0 < CPU_RV; v0 += CPU_RB) {
            rowv a[CPU_KB][CPU_RB];
#pragma unroll
            for (int e = 0; e < CPU_KB; ++e)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    a[e][b] = acc[d0 + e][v0 + b];
            for (int j = 0; j < CPU_TILE_N; ++j) {
                rowv pv[CPU_RB];
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    pv[b] = s[j][v0 + b];
#pragma unroll
                for (int e = 0; e < CPU_KB; ++e) {
                    const rowv vv = (rowv)(vt[j][d0 + e]);
#pragma unroll
                    for (int b = 0; b < CPU_RB; ++b)
                        a[e][b] = fma(vv, pv[b], a[e][b]);
                }
            }
#pragma unroll
            for (int e = 0; e < CPU_KB; ++e)
#pragma unroll
                for (int b = 0; b < CPU_RB; ++b)
                    acc[d0 + e][v0 + b] = a[e][b];
        }
}
