/* SPDX-License-Identifier: Apache-2.0 */
/* What the stand-alone emulation harnesses (nv_budget_emu.c, nv_estimate_emu.c) share: bf16
 * rounding, normal random numbers, an OpenCL error check that exits, the first CPU device
 * with its context and queue, and building one kernel from a list of source files. They link
 * neither cmocka nor the test support library, so everything is static here. */
#ifndef CLPSA_TESTS_EMU_HOST_H
#define CLPSA_TESTS_EMU_HOST_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/read_text.h"

/* Round to nearest even, as the library stores bf16. */
static inline unsigned short emu_to_bf16(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (unsigned short)(u >> 16);
}

static inline float emu_from_bf16(unsigned short h) {
    const unsigned u = (unsigned)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static inline double emu_uniform(void) {
    return (rand() + 0.5) / ((double)RAND_MAX + 1);
}

/* Box-Muller: one standard normal value. */
static inline double emu_gauss(void) {
    return sqrt(-2 * log(emu_uniform())) * cos(6.283185307179586 * emu_uniform());
}

#define EMU_CHECK(e)                                                                               \
    do {                                                                                           \
        const cl_int emu_err_ = (e);                                                               \
        if (emu_err_ != CL_SUCCESS) {                                                              \
            printf("OpenCL error %d at line %d\n", emu_err_, __LINE__);                            \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef struct emu_device {
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
} emu_device;

/* The first CPU device (the emulation is for devices without the matrix units); false when
 * there is none, so the harness can exit with ctest's skip code. */
static inline bool emu_device_open(emu_device *d) {
    cl_platform_id platforms[8];
    cl_uint count = 0;
    EMU_CHECK(clGetPlatformIDs(8, platforms, &count));
    bool found = false;
    for (cl_uint i = 0; i < count && !found; ++i)
        found = clGetDeviceIDs(platforms[i], CL_DEVICE_TYPE_CPU, 1, &d->device, NULL) == CL_SUCCESS;
    if (!found)
        return false;
    cl_int err;
    d->context = clCreateContext(NULL, 1, &d->device, NULL, NULL, &err);
    EMU_CHECK(err);
    d->queue = clCreateCommandQueue(d->context, d->device, 0, &err);
    EMU_CHECK(err);
    return true;
}

static inline void emu_device_close(emu_device *d) {
    clReleaseCommandQueue(d->queue);
    clReleaseContext(d->context);
}

/* Kernel `name` of the program made of the files (paths from the source tree's root) in order,
 * built with opts; prints the build log and exits when the build fails. */
static inline cl_kernel emu_build(const emu_device *d, const char *const *files, int count,
                                  const char *opts, const char *name) {
    const char *sources[8];
    if (count > 8) {
        printf("emu_build: at most 8 files\n");
        exit(1);
    }
    for (int i = 0; i < count; ++i)
        sources[i] = ts_read_text(files[i]);
    cl_int err;
    cl_program program = clCreateProgramWithSource(d->context, (cl_uint)count, sources, NULL, &err);
    for (int i = 0; i < count; ++i)
        free((char *)sources[i]);
    EMU_CHECK(err);
    if (clBuildProgram(program, 1, &d->device, opts, NULL, NULL) != CL_SUCCESS) {
        static char log[200000];
        clGetProgramBuildInfo(program, d->device, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL);
        printf("build failed (%s):\n%s\n", opts, log);
        exit(1);
    }
    cl_kernel kernel = clCreateKernel(program, name, &err);
    EMU_CHECK(err);
    clReleaseProgram(program); /* the kernel keeps it */
    return kernel;
}

#endif
