/* SPDX-License-Identifier: Apache-2.0 */
/* Does wgmma work from OpenCL on this NVIDIA device, and what do its descriptor fields mean?
 * Builds nv_mma.cl + nv_wgmma.cl + wgmma_probe.cl from source, patches the PTX into an sm_90a
 * module (src/ptx_sm90a.c), builds that, multiplies small bf16 matrices with B staged in
 * several layouts against a double-precision host product, and times a wgmma loop.
 *   wgmma_probe CL_DIR OUT_DIR CASE   (CL_DIR: the repository's cl/; OUT_DIR gets the PTX;
 *   CASE: k0..k3 or n0..n3, one layout case, or rate). A wrong descriptor can fault and take the
 *   context down, so each case runs in its own process. */
#define CL_TARGET_OPENCL_VERSION 120
#include "../../src/ptx_sm90a.h"

#include <CL/cl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        cl_int e_ = (call);                                                                        \
        if (e_ != CL_SUCCESS) {                                                                    \
            fprintf(stderr, "%s:%d: %s -> %d\n", __FILE__, __LINE__, #call, e_);                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static char *read_text(const char *dir, const char *name, size_t *size) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n)
        exit(1);
    text[n] = '\0';
    fclose(f);
    *size = (size_t)n;
    return text;
}

static void write_text(const char *dir, const char *name, const char *text, size_t size) {
    if (!dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, size, f);
        fclose(f);
    }
}

static void print_log(cl_program program, cl_device_id device) {
    size_t size = 0;
    clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, NULL, &size);
    char *log = calloc(size + 1, 1);
    clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, size, log, NULL);
    printf("build log:\n%s\n", log);
    free(log);
}

static unsigned short to_bf16(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    return (unsigned short)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static float from_bf16(unsigned short h) {
    unsigned u = (unsigned)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static void fill(unsigned short *m, size_t n, unsigned *seed) {
    for (size_t i = 0; i < n; ++i) {
        *seed = *seed * 1664525u + 1013904223u;
        m[i] = to_bf16((float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f);
    }
}

/* Runs one probe configuration; returns the largest error against the double product. */
static double run_case(cl_context ctx, cl_command_queue queue, cl_kernel kernel, int kmajor,
                       const unsigned lay[4]) {
    const int n_cols = kmajor ? 64 : 128;
    unsigned seed = 12345u;
    unsigned short a[64 * 64], b[64 * 128];
    float c[64 * 128];
    fill(a, 64 * 64, &seed);
    fill(b, (size_t)64 * n_cols, &seed);
    cl_int err;
    cl_mem da = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof a, a, &err);
    cl_mem db = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof b, b, &err);
    for (size_t i = 0; i < 64 * 128; ++i)
        c[i] = NAN; /* poisoned */
    cl_mem dc = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof c, c, &err);
    CHECK(clSetKernelArg(kernel, 0, sizeof da, &da));
    CHECK(clSetKernelArg(kernel, 1, sizeof db, &db));
    CHECK(clSetKernelArg(kernel, 2, sizeof dc, &dc));
    for (int i = 0; i < 4; ++i)
        CHECK(clSetKernelArg(kernel, 3 + i, sizeof(cl_uint), &lay[i]));
    const size_t global = 128, local = 128;
    CHECK(clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &local, 0, NULL, NULL));
    CHECK(clEnqueueReadBuffer(queue, dc, CL_TRUE, 0, sizeof c, c, 0, NULL, NULL));
    double worst = 0.0;
    for (int i = 0; i < 64; ++i)
        for (int j = 0; j < n_cols; ++j) {
            double s = 0.0;
            for (int k = 0; k < 64; ++k)
                s += (double)from_bf16(a[i * 64 + k]) *
                     (kmajor ? from_bf16(b[j * 64 + k]) : from_bf16(b[k * 128 + j]));
            const double e = fabs(s - c[i * n_cols + j]);
            worst = isnan(e) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
        }
    clReleaseMemObject(da);
    clReleaseMemObject(db);
    clReleaseMemObject(dc);
    return worst;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: wgmma_probe CL_DIR OUT_DIR CASE\n");
        return 2;
    }
    const char *out_dir = argv[2];
    const char *which = argv[3];
    cl_platform_id platforms[8];
    cl_uint np = 0;
    CHECK(clGetPlatformIDs(8, platforms, &np));
    cl_device_id device = NULL;
    for (cl_uint i = 0; i < np && !device; ++i)
        if (clGetDeviceIDs(platforms[i], CL_DEVICE_TYPE_GPU, 1, &device, NULL) != CL_SUCCESS)
            device = NULL;
    if (!device) {
        printf("wgmma probe: no GPU\n");
        return 1;
    }
    char name[256], driver[256];
    clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof name, name, NULL);
    clGetDeviceInfo(device, CL_DRIVER_VERSION, sizeof driver, driver, NULL);
    if (which[0] == 'r')
        printf("device: %s, driver %s\n", name, driver);
    cl_int err;
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    CHECK(err);
    cl_command_queue queue = clCreateCommandQueue(ctx, device, CL_QUEUE_PROFILING_ENABLE, &err);
    CHECK(err);

    size_t sizes[3];
    const char *texts[3] = {read_text(argv[1], "nvidia/nv_mma.cl", &sizes[0]),
                            read_text(argv[1], "nvidia/nv_wgmma.cl", &sizes[1]),
                            read_text(argv[1], "../bench/probe/wgmma_probe.cl", &sizes[2])};
    cl_program first = clCreateProgramWithSource(ctx, 3, texts, sizes, &err);
    CHECK(err);
    err = clBuildProgram(first, 1, &device, "-DIN_TYPE=3 -cl-nv-verbose", NULL, NULL);
    if (which[0] == 'r')
        print_log(first, device);
    CHECK(err);
    size_t ptx_size = 0;
    CHECK(clGetProgramInfo(first, CL_PROGRAM_BINARY_SIZES, sizeof ptx_size, &ptx_size, NULL));
    unsigned char *ptx = malloc(ptx_size + 1);
    CHECK(clGetProgramInfo(first, CL_PROGRAM_BINARIES, sizeof ptx, &ptx, NULL));
    ptx[ptx_size] = 0;
    write_text(out_dir, "probe_first.ptx", (const char *)ptx, ptx_size);
    const char *why = NULL;
    size_t patched_size = 0;
    char *patched = clpsa__ptx_enable_sm90a((const char *)ptx, ptx_size, &patched_size, &why);
    if (!patched) {
        printf("patch: %s\n", why);
        return 1;
    }
    write_text(out_dir, "probe_sm90a.ptx", patched, patched_size);
    const unsigned char *bin = (const unsigned char *)patched;
    cl_int bin_status;
    cl_program second =
        clCreateProgramWithBinary(ctx, 1, &device, &patched_size, &bin, &bin_status, &err);
    CHECK(err);
    err = clBuildProgram(second, 1, &device, "-cl-nv-verbose", NULL, NULL);
    if (which[0] == 'r' || err != CL_SUCCESS)
        print_log(second, device);
    CHECK(err);

    cl_kernel kk = clCreateKernel(second, "probe_kmajor", &err);
    CHECK(err);
    cl_kernel kn = clCreateKernel(second, "probe_nmajor", &err);
    CHECK(err);
    /* lay_k, lay_n (the layout), lbo, sbo (the descriptor). */
    static const unsigned kcases[4][4] = {{128, 1024, 128, 1024},
                                          {128, 1024, 1024, 128},
                                          {1024, 128, 1024, 128},
                                          {1024, 128, 128, 1024}};
    static const unsigned ncases[4][4] = {{2048, 128, 2048, 128},
                                          {2048, 128, 128, 2048},
                                          {128, 1024, 128, 1024},
                                          {128, 1024, 1024, 128}};
    const int index = (which[0] == 'k' || which[0] == 'n') ? atoi(which + 1) & 3 : -1;
    if (which[0] == 'k') {
        const unsigned *c = kcases[index];
        printf("| B K-major (m64n64k16) | %u, %u | %u, %u | %.3g |\n", c[0], c[1], c[2], c[3],
               run_case(ctx, queue, kk, 1, c));
        return 0;
    }
    if (which[0] == 'n') {
        const unsigned *c = ncases[index];
        printf("| B N-major (m64n128k16, transposed) | %u, %u | %u, %u | %.3g |\n", c[0], c[1],
               c[2], c[3], run_case(ctx, queue, kn, 0, c));
        return 0;
    }

    cl_kernel kr = clCreateKernel(second, "probe_rate", &err);
    CHECK(err);
    cl_uint units = 0;
    clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    for (int per_sm = 1; per_sm <= 4; per_sm *= 2) {
        const size_t groups = (size_t)units * per_sm, local = 128, global = groups * local;
        cl_mem dout = clCreateBuffer(ctx, CL_MEM_READ_WRITE, global * sizeof(float), NULL, &err);
        const int iters = 4000;
        CHECK(clSetKernelArg(kr, 0, sizeof dout, &dout));
        CHECK(clSetKernelArg(kr, 1, sizeof iters, &iters));
        double best = 1e30;
        for (int rep = 0; rep < 4; ++rep) {
            cl_event ev;
            CHECK(clEnqueueNDRangeKernel(queue, kr, 1, NULL, &global, &local, 0, NULL, &ev));
            CHECK(clWaitForEvents(1, &ev));
            cl_ulong t0, t1;
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
            clReleaseEvent(ev);
            if ((double)(t1 - t0) < best)
                best = (double)(t1 - t0);
        }
        const double flop = (double)groups * iters * 8 * 64.0 * 128 * 16 * 2;
        printf("wgmma m64n128k16 loop, %d warpgroups per SM: %.1f TFLOP/s\n", per_sm,
               flop / best * 1e-3);
        clReleaseMemObject(dout);
    }
    return 0;
}
