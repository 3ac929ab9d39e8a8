/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa bench`: dense attention as an OpenCL user would write it without clpsa, from a BLAS
 * library. Per (batch, head) and per chunk of query rows: S = scale * Q K^T (CLBlastSgemm,
 * row-major), a row softmax kernel in place, O = P V (CLBlastSgemm). The full score matrix of a
 * long sequence does not fit in memory, so rows are taken in chunks that keep S within the
 * device's allocation limit; that is the whole difference from textbook attention. fp32 only:
 * CLBlast's half-precision GEMM is not available everywhere, and fp32 makes it a reference. */
#include "bench_internal.h"

#include <clblast_c.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COMMAND CLPSA__BENCH_COMMAND
/* Largest score buffer: big enough that a chunk amortises the per-call costs of CLBlast, small
 * enough to leave the device room for the inputs on any GPU. */
#define SCORE_BYTES_MAX ((size_t)256 << 20)
#define SOFTMAX_WG_MAX 64

struct bench_clblast {
    cl_program program;
    cl_kernel kernel;
    cl_mem scores;
    bench_shape shape;
    size_t chunk_rows, wg;
};

static int clblast_error(const char *call, CLBlastStatusCode status) {
    /* CLBlast shares the OpenCL codes above -1024; its own codes are listed in clblast_c.h. */
    if (status > -1024)
        return clpsa__tool_cl_error(COMMAND, call, (cl_int)status);
    return clpsa__tool_fail(COMMAND, "%s failed: CLBlast status %d (see clblast_c.h)", call,
                            (int)status);
}

static int build_failed(bench_clblast *b, cl_device_id device, cl_int err) {
    char log[4096] = "";
    clGetProgramBuildInfo(b->program, device, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
    log[sizeof log - 1] = '\0';
    clpsa__tool_cl_error(COMMAND, "clBuildProgram(softmax_rows)", err);
    if (log[0])
        fprintf(stderr, "  build log:\n%s\n", log);
    return CLPSA__EXIT_FAILURE;
}

int clpsa__bench_clblast_create(cl_context context, cl_device_id device, const bench_shape *shape,
                                bench_clblast **out) {
    *out = NULL;
    bench_clblast *b = calloc(1, sizeof *b);
    if (!b)
        return clpsa__tool_fail(COMMAND, "out of memory");
    b->shape = *shape;
    size_t max_wg = 1;
    cl_ulong max_alloc = 0;
    clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg, &max_wg, NULL);
    clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc, &max_alloc, NULL);
    b->wg = SOFTMAX_WG_MAX;
    while (b->wg > 1 && b->wg > max_wg)
        b->wg /= 2;

    int rc = CLPSA__EXIT_OK;
    cl_int err = CL_SUCCESS;
    const char *source = clpsa__bench_softmax_source;
    b->program = clCreateProgramWithSource(context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) {
        rc = clpsa__tool_cl_error(COMMAND, "clCreateProgramWithSource", err);
    } else {
        char options[64];
        snprintf(options, sizeof options, "-DWG=%zu", b->wg);
        err = clBuildProgram(b->program, 1, &device, options, NULL, NULL);
        if (err != CL_SUCCESS)
            rc = build_failed(b, device, err);
    }
    if (rc == CLPSA__EXIT_OK) {
        b->kernel = clCreateKernel(b->program, "softmax_rows", &err);
        if (err != CL_SUCCESS)
            rc = clpsa__tool_cl_error(COMMAND, "clCreateKernel(softmax_rows)", err);
    }
    if (rc == CLPSA__EXIT_OK) {
        const size_t row_bytes = (size_t)shape->seq_k * sizeof(float);
        size_t budget = SCORE_BYTES_MAX;
        if (max_alloc > 0 && max_alloc < budget)
            budget = (size_t)max_alloc;
        b->chunk_rows = budget / row_bytes;
        if (b->chunk_rows < 1)
            b->chunk_rows = 1;
        if (b->chunk_rows > (size_t)shape->seq_q)
            b->chunk_rows = (size_t)shape->seq_q;
        b->scores =
            clCreateBuffer(context, CL_MEM_READ_WRITE, b->chunk_rows * row_bytes, NULL, &err);
        if (err != CL_SUCCESS)
            rc = clpsa__tool_cl_error(COMMAND, "clCreateBuffer(scores)", err);
    }
    const cl_int cols = shape->seq_k;
    if (rc == CLPSA__EXIT_OK) {
        err = clSetKernelArg(b->kernel, 0, sizeof b->scores, &b->scores);
        if (err == CL_SUCCESS)
            err = clSetKernelArg(b->kernel, 1, sizeof cols, &cols);
        if (err != CL_SUCCESS)
            rc = clpsa__tool_cl_error(COMMAND, "clSetKernelArg(softmax_rows)", err);
    }
    if (rc != CLPSA__EXIT_OK) {
        clpsa__bench_clblast_destroy(b);
        return rc;
    }
    *out = b;
    return CLPSA__EXIT_OK;
}

void clpsa__bench_clblast_destroy(bench_clblast *b) {
    if (!b)
        return;
    if (b->scores)
        clReleaseMemObject(b->scores);
    if (b->kernel)
        clReleaseKernel(b->kernel);
    if (b->program)
        clReleaseProgram(b->program);
    free(b);
}

int clpsa__bench_clblast_run(bench_clblast *b, cl_command_queue queue, cl_mem q, cl_mem k, cl_mem v,
                             cl_mem out, float scale, double *ms) {
    const bench_shape *s = &b->shape;
    const size_t d = (size_t)s->dim, nq = (size_t)s->seq_q, nk = (size_t)s->seq_k;
    const int group = s->heads_q / s->heads_kv;
    /* CLBlast returns an event for its last kernel only (a GEMM may be several: padding,
     * transposition, the product), so the whole sequence is timed between two clFinish. */
    cl_int err = clFinish(queue);
    if (err != CL_SUCCESS)
        return clpsa__tool_cl_error(COMMAND, "clFinish", err);
    const double start = clpsa__tool_wall_ms();
    for (int bh = 0; bh < s->batch * s->heads_q; ++bh) {
        const int batch = bh / s->heads_q, head = bh % s->heads_q;
        const size_t q_head = ((size_t)batch * s->heads_q + (size_t)head) * nq * d;
        const size_t kv_head = ((size_t)batch * s->heads_kv + (size_t)(head / group)) * nk * d;
        for (size_t row = 0; row < nq; row += b->chunk_rows) {
            const size_t m = nq - row < b->chunk_rows ? nq - row : b->chunk_rows;
            CLBlastStatusCode status = CLBlastSgemm(
                CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, m, nk, d, scale, q,
                q_head + row * d, d, k, kv_head, d, 0.0f, b->scores, 0, nk, &queue, NULL);
            if (status != CLBlastSuccess)
                return clblast_error("CLBlastSgemm(S = Q K^T)", status);
            const size_t global = m * b->wg;
            err = clEnqueueNDRangeKernel(queue, b->kernel, 1, NULL, &global, &b->wg, 0, NULL, NULL);
            if (err != CL_SUCCESS)
                return clpsa__tool_cl_error(COMMAND, "clEnqueueNDRangeKernel(softmax_rows)", err);
            status = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, m,
                                  d, nk, 1.0f, b->scores, 0, nk, v, kv_head, d, 0.0f, out,
                                  q_head + row * d, d, &queue, NULL);
            if (status != CLBlastSuccess)
                return clblast_error("CLBlastSgemm(O = P V)", status);
        }
    }
    err = clFinish(queue);
    if (err != CL_SUCCESS)
        return clpsa__tool_cl_error(COMMAND, "clFinish", err);
    *ms = clpsa__tool_wall_ms() - start;
    return CLPSA__EXIT_OK;
}
