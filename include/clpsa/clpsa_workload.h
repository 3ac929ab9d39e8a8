/* SPDX-License-Identifier: Apache-2.0 */
/**
 * @file clpsa_workload.h
 * @brief The embedded video-like workload: Q, K, V for a procedurally generated token grid of
 * frames x height x width, in raster order (frame, row, column), batch 1.
 *
 * Each token's queries and keys carry random Fourier features of its space-time position
 * (frequencies drawn with correlation lengths length_time / length_space), so q.k is large for
 * nearby tokens and decays with distance: attention is local, and neighbouring keys are
 * similar, as in the latents of video models (which is what makes pooling them work). Per-head
 * content features and noise keep it from being trivially so: some far tokens matter too, and no
 * two heads agree. Values are a smooth space-time field plus noise. The same desc and seed give the
 * same tensors on every machine. Host only: any thread, no context.
 */
#ifndef CLPSA_CLPSA_WORKLOAD_H
#define CLPSA_CLPSA_WORKLOAD_H

#include <clpsa/clpsa.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @brief Size and character of the workload; fill with clpsa_video_workload_desc_init(). */
typedef struct clpsa_video_workload_desc {
    int frames;         /**< latent frames T; tokens N = frames * height * width */
    int height;         /**< latent rows per frame */
    int width;          /**< latent columns per frame */
    int heads_q;        /**< query heads, a multiple of heads_kv */
    int heads_kv;       /**< key/value heads */
    int head_dim;       /**< D, even */
    float length_time;  /**< correlation length along frames, in tokens (0: 4) */
    float length_space; /**< correlation length along rows and columns (0: 8) */
    float sharpness;    /**< positional logit of a token with itself (0: 24) */
    float content;      /**< weight of the per-head content part (0: 1) */
    float noise;        /**< standard deviation of the noise (0: 0.1) */
    uint64_t seed;      /**< the same seed gives the same tensors */
    /** Text tokens after the video (0: none), N = frames * height * width + text_tokens: a
     * prompt about the video. Each text query attends broadly, to a few wide regions of the
     * whole video at once and to the text before it, unlike the local video queries; use
     * it with a causal mask (text follows the video it reads). Video tokens are the same
     * with or without text. */
    int text_tokens;
} clpsa_video_workload_desc;

/** @brief Defaults: 8 x 16 x 16 tokens (2048), 2 heads, D = 64: a second or two on 2 CPU cores.
 * NULL is ignored. */
CLPSA_API void clpsa_video_workload_desc_init(clpsa_video_workload_desc *desc);

/**
 * @brief Fills q [1, heads_q, N, D] and k, v [1, heads_kv, N, D], contiguous fp32 host arrays
 * of the caller (N = frames * height * width + text_tokens).
 *
 * Blocks for the computation (host only).
 * @return CLPSA_OK; CLPSA_ERROR_NULL_ARGUMENT when desc, q, k or v is NULL;
 *         CLPSA_ERROR_INVALID_SHAPE for sizes below 1, negative text_tokens, an odd head_dim
 *         or heads_q not a multiple of heads_kv; CLPSA_ERROR_OUT_OF_MEMORY for its temporary
 * tables.
 */
CLPSA_API clpsa_status clpsa_video_workload_generate(const clpsa_video_workload_desc *desc,
                                                     float *q, float *k, float *v);

#ifdef __cplusplus
}
#endif
#endif /* CLPSA_CLPSA_WORKLOAD_H */
