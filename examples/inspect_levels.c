/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example 3: what a PSA run decided, for a program's logs: the level map, the block scores,
 * the density with its per-level histogram, and the time of each pipeline stage.
 *
 * Everything here is read back after clpsa_plan_run: the read-back calls block until the run
 * finished. Stage times come from OpenCL profiling events, so the queue must have profiling
 * enabled; the queue clpsa creates for itself has. clpsa's own log lines are routed into the
 * program's logger through the context's callback.
 *
 * Build: cc inspect_levels.c $(pkg-config --cflags --libs clpsa) -lm
 * Exit status: 0 when the read-backs agree with each other, 1 otherwise.
 */
#include <clpsa/clpsa.h>
#include <clpsa/clpsa_workload.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void check(clpsa_status status, const clpsa_context *ctx, const char *what) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "inspect_levels: %s: %s: %s\n", what, clpsa_status_name(status),
            clpsa_context_last_error(ctx));
    exit(1);
}

/* The program's logger: clpsa's messages arrive here instead of on stderr. */
static void log_line(void *user, clpsa_log_level level, const char *message) {
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    fprintf((FILE *)user, "[clpsa %s] %s\n", names[level], message);
}

static cl_mem upload(clpsa_context *ctx, const float *x, size_t count) {
    cl_mem buffer = NULL;
    check(clpsa_context_alloc(ctx, count * sizeof *x, &buffer), ctx, "clpsa_context_alloc");
    if (clEnqueueWriteBuffer(clpsa_context_queue(ctx), buffer, CL_TRUE, 0, count * sizeof *x, x,
                             0, NULL, NULL) != CL_SUCCESS) {
        fprintf(stderr, "inspect_levels: upload failed\n");
        exit(1);
    }
    return buffer;
}

int main(void) {
    clpsa_context_desc cdesc;
    clpsa_context_desc_init(&cdesc);
    cdesc.log = log_line;
    cdesc.log_user = stdout;
    cdesc.log_level = CLPSA_LOG_INFO; /* device choice, parameter sources, cache use */
    clpsa_context *ctx = NULL;
    check(clpsa_context_create(&cdesc, &ctx), NULL, "clpsa_context_create");

    clpsa_video_workload_desc w;
    clpsa_video_workload_desc_init(&w); /* 8 x 16 x 16 tokens, 2 heads, D = 64 */
    const int tokens = w.frames * w.height * w.width;
    const size_t q_count = (size_t)w.heads_q * tokens * w.head_dim;
    const size_t kv_count = (size_t)w.heads_kv * tokens * w.head_dim;
    float *q = malloc(q_count * sizeof *q), *k = malloc(kv_count * sizeof *k);
    float *v = malloc(kv_count * sizeof *v);
    if (!q || !k || !v) {
        fprintf(stderr, "inspect_levels: out of host memory\n");
        return 1;
    }
    check(clpsa_video_workload_generate(&w, q, k, v), NULL, "clpsa_video_workload_generate");

    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.preset = "wan21-1.3b"; /* thresholds, 128 x 128 blocks, similarity cap */
    desc.batch = 1;
    desc.heads_q = w.heads_q;
    desc.heads_kv = w.heads_kv;
    desc.seq_q = tokens;
    desc.head_dim = w.head_dim;
    clpsa_plan *plan = NULL;
    check(clpsa_plan_create(ctx, &desc, &plan), ctx, "clpsa_plan_create");
    printf("kernel parameters: %s\n", clpsa_plan_parameter_source(plan));

    cl_mem q_buf = upload(ctx, q, q_count), k_buf = upload(ctx, k, kv_count);
    cl_mem v_buf = upload(ctx, v, kv_count), out_buf = NULL;
    check(clpsa_context_alloc(ctx, q_count * sizeof(float), &out_buf), ctx, "clpsa_context_alloc");
    check(clpsa_plan_run(plan, NULL, q_buf, k_buf, v_buf, out_buf, 0, NULL, NULL), ctx,
          "clpsa_plan_run");

    /* ---- the level map, [B, Hq, nq, nk] ---- */
    clpsa_block_grid grid;
    check(clpsa_plan_block_grid(plan, &grid), ctx, "clpsa_plan_block_grid");
    int8_t *levels = malloc(grid.count);
    float *scores = malloc(grid.count * sizeof *scores);
    if (!levels || !scores) {
        fprintf(stderr, "inspect_levels: out of host memory\n");
        return 1;
    }
    check(clpsa_plan_read_levels(plan, levels), ctx, "clpsa_plan_read_levels");
    check(clpsa_plan_read_scores(plan, scores), ctx, "clpsa_plan_read_scores");
    printf("blocks %d x %d tokens; %d query blocks x %d key blocks per head\n", grid.block_q,
           grid.block_k, grid.blocks_q, grid.blocks_k);
    printf("level map of head 0 (# level 1, + 2, - 4, . 8, blank skipped):\n");
    for (int i = 0; i < grid.blocks_q; ++i) {
        char line[1024];
        int n = 0;
        for (int j = 0; j < grid.blocks_k && n < (int)sizeof line - 1; ++j) {
            const int8_t level = levels[(size_t)i * grid.blocks_k + j];
            line[n++] = level == 1 ? '#' : level == 2 ? '+' : level == 4 ? '-' : level == 8 ? '.' : ' ';
        }
        line[n] = '\0';
        printf("  |%s|\n", line);
    }

    /* ---- density and histogram: from the plan, and recomputed from the map ---- */
    clpsa_level_stats stats, recomputed;
    check(clpsa_plan_read_stats(plan, &stats), ctx, "clpsa_plan_read_stats");
    const size_t rows = grid.count / (size_t)grid.blocks_k;
    check(clpsa_level_stats_compute(levels, rows, grid.blocks_k, &recomputed), NULL,
          "clpsa_level_stats_compute");
    printf("density %.4f (sparsity %.4f); blocks at level 0: %llu, 1: %llu, 2: %llu, 4: %llu, "
           "8: %llu\n",
           stats.density, 1 - stats.density, (unsigned long long)stats.histogram[0],
           (unsigned long long)stats.histogram[1], (unsigned long long)stats.histogram[2],
           (unsigned long long)stats.histogram[3], (unsigned long long)stats.histogram[4]);
    int ok = fabs(stats.density - recomputed.density) < 1e-9;
    for (int l = 0; l < 5; ++l)
        ok = ok && stats.histogram[l] == recomputed.histogram[l];

    /* ---- scores: each row a distribution over key blocks ---- */
    double worst_row = 0;
    for (size_t r = 0; r < rows; ++r) {
        double sum = 0;
        for (int j = 0; j < grid.blocks_k; ++j)
            sum += scores[r * grid.blocks_k + j];
        worst_row = fmax(worst_row, fabs(sum - 1));
    }
    printf("block scores: every row sums to 1 within %.1e\n", worst_row);
    ok = ok && worst_row < 1e-4;

    /* ---- stage times of the last run ---- */
    clpsa_stage_times times;
    check(clpsa_plan_read_stage_times(plan, &times), ctx, "clpsa_plan_read_stage_times");
    printf("stage times: pool %.2f ms, estimate %.2f ms, assign %.2f ms, attend %.2f ms, total "
           "%.2f ms\n",
           times.pool_ms, times.estimate_ms, times.assign_ms, times.attend_ms, times.total_ms);
    ok = ok && times.total_ms > 0 && times.attend_ms > 0;

    clReleaseMemObject(q_buf);
    clReleaseMemObject(k_buf);
    clReleaseMemObject(v_buf);
    clReleaseMemObject(out_buf);
    clpsa_plan_destroy(plan);
    clpsa_context_destroy(ctx);
    free(q);
    free(k);
    free(v);
    free(levels);
    free(scores);
    printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
