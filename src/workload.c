/* SPDX-License-Identifier: Apache-2.0 */
/* The embedded video-like workload (clpsa_workload.h). */
#include <clpsa/clpsa_workload.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.14159265358979323846

typedef struct rng {
    uint64_t state;
} rng;

static uint64_t next_u64(rng *r) {
    r->state += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(rng *r) {
    return ((next_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double normal(rng *r) {
    return sqrt(-2.0 * log(uniform01(r))) * cos(2.0 * PI * uniform01(r));
}

void clpsa_video_workload_desc_init(clpsa_video_workload_desc *desc) {
    if (!desc)
        return;
    memset(desc, 0, sizeof *desc);
    desc->frames = 8;
    desc->height = 16;
    desc->width = 16;
    desc->heads_q = 2;
    desc->heads_kv = 2;
    desc->head_dim = 64;
}

/* Random Fourier features: phi(p) . phi(p') = mean_i cos(w_i . (p - p')), a smooth kernel that
 * is 1 at p = p' and decays over the correlation lengths. */
typedef struct features {
    int count;
    double *w;     /* count x 3 frequencies (time, row, column) */
    double *phase; /* count */
} features;

static void draw_features(rng *r, int count, double lt, double ls, features *f) {
    f->count = count;
    for (int i = 0; i < count; ++i) {
        f->w[3 * i + 0] = normal(r) / lt;
        f->w[3 * i + 1] = normal(r) / ls;
        f->w[3 * i + 2] = normal(r) / ls;
        f->phase[i] = 2.0 * PI * uniform01(r);
    }
}

static double feature(const features *f, int i, int t, int y, int x) {
    return cos(f->w[3 * i] * t + f->w[3 * i + 1] * y + f->w[3 * i + 2] * x + f->phase[i]);
}

/* The text tokens of kv head hk and its query heads, rows [video, N) of each head. A text key
 * is a shared text direction plus its own random one, at the norm of a video key; a text
 * query is the positional query of ANCHORS random places of the video at half a video
 * query's norm, so it reads wide regions (the correlation lengths) of the whole video at once,
 * plus the text direction, so it reads the text before it too (a text key scores ~6, a video
 * token at most 12, mostly far less, but the video has far more tokens). */
#define ANCHORS 6
static void text_rows(rng *r, const clpsa_video_workload_desc *desc, const features *pos,
                      double pos_amp, double noise, int hk, size_t video, size_t N,
                      double *dir /* 3 * D: the direction, scratch, the mean */, float *q, float *k,
                      float *v) {
    const int D = desc->head_dim, T = desc->frames, H = desc->height, W = desc->width;
    const int group = desc->heads_q / desc->heads_kv;
    double norm = 0.0;
    for (int d = 0; d < D; ++d) {
        dir[d] = normal(r);
        norm += dir[d] * dir[d];
    }
    for (int d = 0; d < D; ++d)
        dir[d] /= sqrt(norm);
    /* The video keys' mean direction (their long-wavelength features are nearly constant over
     * the grid): text queries are kept orthogonal to it, else a chance alignment would add
     * one offset to every video logit and drown the text, or the regions, seed by seed. */
    double *mean = dir + 2 * D, mean2 = 0.0;
    for (int d = 0; d < D; ++d)
        mean[d] = 0.0;
    for (size_t n = 0; n < video; ++n)
        for (int d = 0; d < D; ++d)
            mean[d] += k[((size_t)hk * N + n) * D + d];
    for (int d = 0; d < D; ++d)
        mean2 += mean[d] * mean[d];
    for (int d = 0; d < D; ++d)
        mean[d] = mean2 > 0.0 ? mean[d] / sqrt(mean2) : 0.0;
    /* |positional key| = pos_amp * sqrt(D / 2): the mean of cos^2 is 1/2. */
    const double key_norm = pos_amp * sqrt(D / 2.0);
    for (size_t n = video; n < N; ++n) {
        float *k_row = k + ((size_t)hk * N + n) * D;
        float *v_row = v + ((size_t)hk * N + n) * D;
        for (int d = 0; d < D; ++d) {
            k_row[d] = (float)(key_norm * (0.6 * dir[d] + 0.8 * normal(r) / sqrt((double)D)));
            v_row[d] = (float)(0.5 * normal(r));
        }
    }
    /* q . k_text * scale ~ 6 for the text direction's part. */
    const double text_amp = 6.0 * sqrt((double)D) / (0.6 * key_norm);
    for (int g = 0; g < group; ++g) {
        const int hq = hk * group + g;
        for (size_t n = video; n < N; ++n) {
            int at[ANCHORS][3];
            for (int a = 0; a < ANCHORS; ++a) {
                at[a][0] = (int)(uniform01(r) * T);
                at[a][1] = (int)(uniform01(r) * H);
                at[a][2] = (int)(uniform01(r) * W);
            }
            float *q_row = q + ((size_t)hq * N + n) * D;
            double *x = dir + D, along = 0.0, norm2 = 0.0;
            for (int d = 0; d < D; ++d) {
                x[d] = 0.0;
                for (int a = 0; a < ANCHORS; ++a)
                    x[d] += feature(pos, d, at[a][0], at[a][1], at[a][2]);
                along += x[d] * dir[d];
            }
            /* The anchors' part leaves the text direction alone, so every text query scores the
             * text alike, and has half a video key's norm whether the anchors' features add up
             * or cancel (long wavelengths are nearly constant over the grid): no video token
             * scores more than half its own logit. */
            for (int d = 0; d < D; ++d) {
                x[d] -= along * dir[d];
                norm2 += x[d] * x[d];
            }
            const double to = norm2 > 0.0 ? 0.5 * key_norm / sqrt(norm2) : 0.0;
            double off = 0.0;
            for (int d = 0; d < D; ++d) {
                x[d] = to * x[d] + text_amp * dir[d];
                off += x[d] * mean[d];
            }
            for (int d = 0; d < D; ++d)
                q_row[d] = (float)(x[d] - off * mean[d] + noise * normal(r));
        }
    }
}

clpsa_status clpsa_video_workload_generate(const clpsa_video_workload_desc *desc, float *q,
                                           float *k, float *v) {
    if (!desc || !q || !k || !v)
        return CLPSA_ERROR_NULL_ARGUMENT;
    const int T = desc->frames, H = desc->height, W = desc->width, D = desc->head_dim;
    if (T < 1 || H < 1 || W < 1 || desc->heads_q < 1 || desc->heads_kv < 1 || D < 2 || D % 2 != 0 ||
        desc->heads_q % desc->heads_kv != 0 || desc->text_tokens < 0)
        return CLPSA_ERROR_INVALID_SHAPE;
    const double lt = desc->length_time > 0 ? desc->length_time : 4.0;
    const double ls = desc->length_space > 0 ? desc->length_space : 8.0;
    const double sharpness = desc->sharpness > 0 ? desc->sharpness : 24.0;
    const double content = desc->content > 0 ? desc->content : 1.0;
    const double noise = desc->noise > 0 ? desc->noise : 0.1;
    const size_t video = (size_t)T * H * W;
    const size_t N = video + (size_t)desc->text_tokens; /* rows per head */
    const int group = desc->heads_q / desc->heads_kv;

    rng r = {desc->seed * 0x2545F4914F6CDD1Dull + 17};
    /* The text has its own stream, so the video tokens do not depend on text_tokens. */
    rng rt = {desc->seed * 0x9E6C63D0676A9A99ull + 29};
    features pos = {0, malloc(sizeof(double) * 3 * D), malloc(sizeof(double) * D)};
    features field = {0, malloc(sizeof(double) * 3 * D), malloc(sizeof(double) * D)};
    double *mix = malloc(sizeof(double) * (size_t)D * D);
    double *text_dir = malloc(sizeof(double) * 3 * (size_t)D); /* text_rows' tables */
    if (!pos.w || !pos.phase || !field.w || !field.phase || !mix || !text_dir) {
        free(pos.w), free(pos.phase), free(field.w), free(field.phase), free(mix), free(text_dir);
        return CLPSA_ERROR_OUT_OF_MEMORY;
    }
    /* q.k = scale * sum_d q_d k_d with scale = 1/sqrt(D): positional parts sized so the
     * positional logit of a token with itself is `sharpness` * sqrt(D) * scale = sharpness. */
    const double pos_amp = sqrt(sharpness * 2.0 / sqrt((double)D));
    const double content_amp = sqrt(content / sqrt((double)D));
    for (int hk = 0; hk < desc->heads_kv; ++hk) {
        draw_features(&r, D, lt, ls, &pos);
        draw_features(&r, D, lt * 2.0, ls * 2.0, &field);
        for (size_t x = 0; x < (size_t)D * D; ++x)
            mix[x] = normal(&r) / sqrt((double)D);
        for (size_t n = 0; n < video; ++n) {
            const int t = (int)(n / ((size_t)H * W));
            const int y = (int)(n / W % H);
            const int xx = (int)(n % W);
            float *k_row = k + ((size_t)hk * N + n) * D;
            float *v_row = v + ((size_t)hk * N + n) * D;
            for (int d = 0; d < D; ++d) {
                const double content_k = content_amp * feature(&field, d, t, y, xx);
                k_row[d] =
                    (float)(pos_amp * feature(&pos, d, t, y, xx) + content_k + noise * normal(&r));
                double value = 0.0;
                for (int e = 0; e < (D < 8 ? D : 8); ++e) /* a few smooth modes */
                    value += mix[(size_t)d * D + e] * feature(&field, e, t, y, xx);
                v_row[d] = (float)(value + noise * normal(&r));
            }
        }
        for (int g = 0; g < group; ++g) {
            const int hq = hk * group + g;
            /* Each query head weighs the content differently (a random sign per feature), so
             * heads disagree about which far tokens matter. */
            double sign[256];
            for (int d = 0; d < D && d < 256; ++d)
                sign[d] = uniform01(&r) < 0.5 ? -1.0 : 1.0;
            for (size_t n = 0; n < video; ++n) {
                const int t = (int)(n / ((size_t)H * W));
                const int y = (int)(n / W % H);
                const int xx = (int)(n % W);
                float *q_row = q + ((size_t)hq * N + n) * D;
                for (int d = 0; d < D; ++d)
                    q_row[d] = (float)(pos_amp * feature(&pos, d, t, y, xx) +
                                       content_amp * sign[d % 256] * feature(&field, d, t, y, xx) +
                                       noise * normal(&r));
            }
        }
        if (desc->text_tokens > 0)
            text_rows(&rt, desc, &pos, pos_amp, noise, hk, video, N, text_dir, q, k, v);
    }
    free(pos.w), free(pos.phase), free(field.w), free(field.phase), free(mix), free(text_dir);
    return CLPSA_OK;
}
