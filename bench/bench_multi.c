/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One plan on one device against a multi-device plan (clpsa_multi.h) over the first two
 * devices of the first platform that has two (PoCL: POCL_DEVICES="pthread pthread"), on the
 * same whole tensors held by device 0. Wall time of run + clFinish, best of --repeat after a
 * warm-up; equal and timed weights.
 *
 *   POCL_DEVICES="pthread pthread" clpsa_bench_multi --heads 8 --seq 4096 --dim 64
 */
#include <clpsa/clpsa.h>
#include <clpsa/clpsa_multi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void check(clpsa_status status, const char *what, const char *detail) {
    if (status == CLPSA_OK)
        return;
    fprintf(stderr, "bench_multi: %s: %s: %s\n", what, clpsa_status_name(status), detail);
    exit(1);
}

int main(int argc, char **argv) {
    int heads = 8, seq = 4096, dim = 64, repeat = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        int *target = !strcmp(argv[i], "--heads")    ? &heads
                      : !strcmp(argv[i], "--seq")    ? &seq
                      : !strcmp(argv[i], "--dim")    ? &dim
                      : !strcmp(argv[i], "--repeat") ? &repeat
                                                     : NULL;
        if (!target) {
            fprintf(stderr, "bench_multi: unknown option %s\n", argv[i]);
            return 2;
        }
        *target = atoi(argv[i + 1]);
    }
    cl_platform_id platforms[8];
    cl_device_id devices[2] = {NULL, NULL};
    cl_uint np = 0, nd = 0;
    clGetPlatformIDs(8, platforms, &np);
    for (cl_uint p = 0; p < np && nd < 2; ++p)
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 2, devices, &nd) != CL_SUCCESS)
            nd = 0;
    if (nd < 2) {
        fprintf(stderr, "bench_multi: no platform with two devices (PoCL: POCL_DEVICES=\"pthread "
                        "pthread\")\n");
        return 1;
    }
    cl_int err = CL_SUCCESS;
    cl_context cl = clCreateContext(NULL, 2, devices, NULL, NULL, &err);
    if (err != CL_SUCCESS)
        return 1;
    clpsa_context *ctx[2];
    for (int i = 0; i < 2; ++i) {
        cl_command_queue queue = clCreateCommandQueue(cl, devices[i], 0, &err);
        clpsa_context_desc d;
        clpsa_context_desc_init(&d);
        d.cl_context = cl;
        d.device = devices[i];
        d.queue = queue;
        check(clpsa_context_create(&d, &ctx[i]), "context", clpsa_context_last_error(NULL));
        clReleaseCommandQueue(queue);
    }
    clpsa_plan_desc desc;
    clpsa_plan_desc_init(&desc);
    desc.batch = 1;
    desc.heads_q = heads;
    desc.seq_q = seq;
    desc.head_dim = dim;
    const size_t n = (size_t)heads * seq * dim;
    float *host = malloc(n * sizeof *host);
    unsigned long long s = 12345;
    for (size_t i = 0; i < n; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        host[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    cl_mem buf[4];
    for (int i = 0; i < 4; ++i) {
        check(clpsa_context_alloc(ctx[0], n * sizeof(float), &buf[i]), "alloc", "");
        clEnqueueWriteBuffer(clpsa_context_queue(ctx[0]), buf[i], CL_TRUE, 0, n * sizeof(float),
                             host, 0, NULL, NULL);
    }
    printf("B=1 H=%d N=%d D=%d fp32 PSA, wall ms of run + finish, best of %d:\n", heads, seq, dim,
           repeat);
    clpsa_plan *plan = NULL;
    check(clpsa_plan_create(ctx[0], &desc, &plan), "plan", clpsa_context_last_error(ctx[0]));
    double best = INFINITY;
    for (int r = 0; r <= repeat; ++r) {
        const double t0 = now_ms();
        check(clpsa_plan_run(plan, NULL, buf[0], buf[1], buf[2], buf[3], 0, NULL, NULL), "run",
              clpsa_context_last_error(ctx[0]));
        clFinish(clpsa_context_queue(ctx[0]));
        if (r > 0 && now_ms() - t0 < best)
            best = now_ms() - t0;
    }
    printf("  one device:            %8.2f ms\n", best);
    const double single = best;
    clpsa_plan_destroy(plan);
    for (int timed = 0; timed < 2; ++timed) {
        clpsa_multi_device list[2] = {{ctx[0], NULL}, {ctx[1], NULL}};
        clpsa_multi_desc m;
        clpsa_multi_desc_init(&m);
        m.devices = list;
        m.num_devices = 2;
        m.timed_weights = timed;
        clpsa_multi_plan *mp = NULL;
        check(clpsa_multi_plan_create(&m, &desc, &mp), "multi plan",
              clpsa_context_last_error(NULL));
        best = INFINITY;
        for (int r = 0; r <= repeat; ++r) {
            const double t0 = now_ms();
            check(clpsa_multi_plan_run(mp, buf[0], buf[1], buf[2], buf[3], 0, NULL, NULL),
                  "multi run", clpsa_multi_plan_last_error(mp));
            clpsa_multi_plan_finish(mp);
            if (r > 0 && now_ms() - t0 < best)
                best = now_ms() - t0;
        }
        clpsa_multi_shard a, b;
        clpsa_multi_plan_shard(mp, 0, &a);
        clpsa_multi_plan_shard(mp, 1, &b);
        printf("  two devices, %s: %8.2f ms (%.2fx), heads %d + %d\n",
               timed ? "timed  " : "equal  ", best, single / best, a.heads_q, b.heads_q);
        clpsa_multi_plan_destroy(mp);
    }
    for (int i = 0; i < 4; ++i)
        clReleaseMemObject(buf[i]);
    free(host);
    clpsa_context_destroy(ctx[0]);
    clpsa_context_destroy(ctx[1]);
    clReleaseContext(cl);
    return 0;
}
