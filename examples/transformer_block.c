/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example 2: the attention of a video transformer block, on activations laid out
 * [batch, tokens, heads, head_dim] as a QKV projection writes them, for a latent video grid
 * followed by text tokens.
 *
 * A video diffusion transformer sees frames x height x width latent tokens in raster order
 * (frame, row, column), then the prompt's text tokens. Pyramid Sparse Attention groups tokens
 * into blocks, so it works best when a block holds space-time neighbours: the plan reorders
 * the video tokens along a 3-D Hilbert curve inside its kernels (the activations stay in raster
 * order, no copy) and keeps every text token's key block at full resolution. The [B, N, H, D]
 * layout is described with strides, so no transpose is needed either. Storage is fp16, as in
 * such models; the arithmetic is fp32.
 *
 * The activations here come from clpsa's procedural video workload (queries and keys that carry
 * features of their space-time position) for two clips, with random text tokens appended. The
 * program compares PSA's output with exact attention on the same plan shapes and prints the
 * error, the density and the time of each.
 *
 * Build: cc transformer_block.c $(pkg-config --cflags --libs clpsa) -lm
 * Exit status: 0 when the checks pass, 1 otherwise.
 */
#include <clpsa/clpsa.h>
#include <clpsa/clpsa_workload.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 2, FRAMES = 4, HEIGHT = 16, WIDTH = 16, TEXT = 64, HEADS = 2, DIM = 64 };
#define VIDEO (FRAMES * HEIGHT * WIDTH)
#define TOKENS (VIDEO + TEXT)

static void check(clpsa_status status, const clpsa_context *ctx, const char *what) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "transformer_block: %s: %s: %s\n", what, clpsa_status_name(status),
            clpsa_context_last_error(ctx));
    exit(1);
}

/* Index of element (b, token, head, d) in a [B, N, H, D] tensor. */
static size_t bnhd(int b, int token, int head, int d) {
    return (((size_t)b * TOKENS + token) * HEADS + head) * DIM + d;
}

/* One clip's Q, K, V, rearranged from the workload's [H, N, D] into the block's [N, H, D]. */
static void make_clip(int b, float *q, float *k, float *v) {
    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w);
    w.frames = FRAMES;
    w.height = HEIGHT;
    w.width = WIDTH;
    w.heads_q = HEADS;
    w.heads_kv = HEADS;
    w.head_dim = DIM;
    w.seed = 1000 + (uint64_t)b;
    const size_t count = (size_t)HEADS * VIDEO * DIM;
    float *wq = malloc(count * sizeof *wq), *wk = malloc(count * sizeof *wk);
    float *wv = malloc(count * sizeof *wv);
    if (!wq || !wk || !wv) {
        fprintf(stderr, "transformer_block: out of host memory\n");
        exit(1);
    }
    check(clpsa_video_workload_generate(&w, wq, wk, wv), NULL, "clpsa_video_workload_generate");
    srand(77 + (unsigned)b);
    for (int h = 0; h < HEADS; ++h)
        for (int t = 0; t < TOKENS; ++t)
            for (int d = 0; d < DIM; ++d) {
                const size_t from = ((size_t)h * VIDEO + t) * DIM + d, to = bnhd(b, t, h, d);
                if (t < VIDEO) {
                    q[to] = wq[from];
                    k[to] = wk[from];
                    v[to] = wv[from];
                } else { /* text tokens */
                    q[to] = (float)rand() / (float)RAND_MAX - 0.5f;
                    k[to] = (float)rand() / (float)RAND_MAX - 0.5f;
                    v[to] = (float)rand() / (float)RAND_MAX - 0.5f;
                }
            }
    free(wq);
    free(wk);
    free(wv);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Runs a plan once to warm up, then once timed, and returns the output as floats. */
static double run(clpsa_context *ctx, clpsa_plan *plan, cl_mem q, cl_mem k, cl_mem v, cl_mem out,
                  uint16_t *staging, float *result, size_t count) {
    cl_command_queue queue = clpsa_context_queue(ctx);
    double ms = 0;
    for (int rep = 0; rep < 2; ++rep) {
        const double t0 = now_ms();
        cl_event done = NULL;
        check(clpsa_plan_run(plan, queue, q, k, v, out, 0, NULL, &done), ctx, "clpsa_plan_run");
        clWaitForEvents(1, &done);
        clReleaseEvent(done);
        ms = now_ms() - t0;
    }
    if (clEnqueueReadBuffer(queue, out, CL_TRUE, 0, count * sizeof *staging, staging, 0, NULL,
                            NULL) != CL_SUCCESS) {
        fprintf(stderr, "transformer_block: reading the output failed\n");
        exit(1);
    }
    check(clpsa_convert_to_float(CLPSA_DTYPE_FP16, staging, result, count), ctx,
          "clpsa_convert_to_float");
    return ms;
}

static cl_mem upload(clpsa_context *ctx, const float *x, uint16_t *staging, size_t count) {
    cl_mem buffer = NULL;
    check(clpsa_context_alloc(ctx, count * sizeof *staging, &buffer), ctx, "clpsa_context_alloc");
    check(clpsa_convert_from_float(CLPSA_DTYPE_FP16, x, staging, count), ctx,
          "clpsa_convert_from_float");
    if (clEnqueueWriteBuffer(clpsa_context_queue(ctx), buffer, CL_TRUE, 0, count * sizeof *staging,
                             staging, 0, NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "transformer_block: upload failed\n");
        exit(1);
    }
    return buffer;
}

int main(void) {
    clpsa_context *ctx = NULL; /* clpsa picks the device ($CLPSA_DEVICE, else a GPU, else any) */
    check(clpsa_context_create(NULL, &ctx), NULL, "clpsa_context_create");
    printf("device: %s\n", clpsa_context_device_name(ctx));

    const size_t count = (size_t)BATCH * TOKENS * HEADS * DIM;
    float *q = malloc(count * sizeof *q), *k = malloc(count * sizeof *k);
    float *v = malloc(count * sizeof *v), *psa_out = malloc(count * sizeof *psa_out);
    float *dense_out = malloc(count * sizeof *dense_out);
    uint16_t *staging = malloc(count * sizeof *staging);
    if (!q || !k || !v || !psa_out || !dense_out || !staging) {
        fprintf(stderr, "transformer_block: out of host memory\n");
        return 1;
    }
    for (int b = 0; b < BATCH; ++b)
        make_clip(b, q, k, v);

    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.batch = BATCH;
    desc.heads_q = HEADS;
    desc.seq_q = TOKENS;
    desc.head_dim = DIM;
    desc.dtype = CLPSA_DTYPE_FP16;
    const clpsa_strides layout = clpsa_strides_bnhd(HEADS, TOKENS, DIM);
    desc.q_strides = desc.k_strides = desc.v_strides = desc.out_strides = layout;
    desc.grid[0] = FRAMES;
    desc.grid[1] = HEIGHT;
    desc.grid[2] = WIDTH;
    desc.ordering = CLPSA_ORDER_HILBERT;
    desc.text_tokens = TEXT; /* their key blocks always at level 1 */
    desc.thresholds[0] = 0.4f; /* the wan21-14b thresholds: a density near 0.2 here */
    desc.thresholds[1] = 0.5f;
    desc.thresholds[2] = 0.6f;
    desc.thresholds[3] = 0.8f;
    clpsa_plan *psa = NULL, *dense = NULL;
    check(clpsa_plan_create(ctx, &desc, &psa), ctx, "clpsa_plan_create (PSA)");
    desc.method = CLPSA_METHOD_DENSE;
    check(clpsa_plan_create(ctx, &desc, &dense), ctx, "clpsa_plan_create (dense)");

    cl_mem q_buf = upload(ctx, q, staging, count), k_buf = upload(ctx, k, staging, count);
    cl_mem v_buf = upload(ctx, v, staging, count), out_buf = NULL;
    check(clpsa_context_alloc(ctx, count * sizeof *staging, &out_buf), ctx, "clpsa_context_alloc");
    const double psa_ms = run(ctx, psa, q_buf, k_buf, v_buf, out_buf, staging, psa_out, count);
    const double dense_ms = run(ctx, dense, q_buf, k_buf, v_buf, out_buf, staging, dense_out, count);

    double diff = 0, norm = 0, text_diff = 0, text_norm = 0;
    for (int b = 0; b < BATCH; ++b)
        for (int t = 0; t < TOKENS; ++t)
            for (int h = 0; h < HEADS; ++h)
                for (int d = 0; d < DIM; ++d) {
                    const size_t i = bnhd(b, t, h, d);
                    const double e = (double)psa_out[i] - dense_out[i];
                    diff += e * e;
                    norm += (double)dense_out[i] * dense_out[i];
                    if (t >= VIDEO) {
                        text_diff += e * e;
                        text_norm += (double)dense_out[i] * dense_out[i];
                    }
                }
    clpsa_level_stats stats;
    check(clpsa_plan_read_stats(psa, &stats), ctx, "clpsa_plan_read_stats");
    const double rel_l2 = sqrt(diff / norm), text_rel_l2 = sqrt(text_diff / text_norm);
    printf("%d clips of %d x %d x %d latent tokens + %d text tokens, %d heads, D = %d, fp16, "
           "[B, N, H, D], Hilbert order\n",
           BATCH, FRAMES, HEIGHT, WIDTH, TEXT, HEADS, DIM);
    printf("PSA   %8.2f ms  density %.3f  relative L2 error vs exact %.4f (text rows %.4f)\n",
           psa_ms, stats.density, rel_l2, text_rel_l2);
    printf("exact %8.2f ms\n", dense_ms);
    const int ok = isfinite(rel_l2) && rel_l2 < 0.1 && stats.density > 0 && stats.density < 1;

    clReleaseMemObject(q_buf);
    clReleaseMemObject(k_buf);
    clReleaseMemObject(v_buf);
    clReleaseMemObject(out_buf);
    clpsa_plan_destroy(psa);
    clpsa_plan_destroy(dense);
    clpsa_context_destroy(ctx);
    free(q);
    free(k);
    free(v);
    free(psa_out);
    free(dense_out);
    free(staging);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
