/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded video-like workload: Q, K, V for a procedurally generated token grid of
 * frames x height x width, in raster order (frame, row, column), batch 1.
 *
 * Each token's queries and keys carry random Fourier features of its space-time position
 * (frequencies drawn with correlation lengths length_time / length_space), so q.k is large for
 * nearby tokens and decays with distance: attention is local, and neighbouring keys are
 * similar, as in the latents of video models (which is what makes pooling them work). Per-head
 * content features and noise keep it from being trivially so: some far tokens matter too, and no
 * two heads agree. Values are a smooth space-time field plus noise. The same desc and seed give the
 * same tensors on every machine.
 */
#ifndef CLPSA_CLPSA_WORKLOAD_H
#define CLPSA_CLPSA_WORKLOAD_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clpsa_video_workload_desc {
    int frames, height, width; /* the latent grid; tokens N = frames * height * width */
    int heads_q, heads_kv;     /* heads_q a multiple of heads_kv */
    int head_dim;              /* D, even */
    float length_time;         /* correlation length along frames, in tokens (0: 4) */
    float length_space;        /* correlation length along rows and columns (0: 8) */
    float sharpness;           /* positional logit of a token with itself (0: 24) */
    float content;             /* weight of the per-head content part (0: 1) */
    float noise;               /* standard deviation of the noise (0: 0.1) */
    uint64_t seed;
} clpsa_video_workload_desc;

/* Defaults: 8 x 16 x 16 tokens (2048), 2 heads, D = 64: a second or two on 2 CPU cores. */
CLPSA_API void clpsa_video_workload_desc_init(clpsa_video_workload_desc *desc);

/* Fills q [1, heads_q, N, D] and k, v [1, heads_kv, N, D], contiguous fp32. */
CLPSA_API clpsa_status clpsa_video_workload_generate(const clpsa_video_workload_desc *desc,
                                                     float *q, float *k, float *v);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_WORKLOAD_H */
