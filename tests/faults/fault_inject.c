/* SPDX-License-Identifier: Apache-2.0 */
/* The wrappers behind fault_inject.h. Each __wrap_X counts the call and, at the armed count,
 * fails the way the real call reports failure, else forwards to __real_X. Retain and release
 * calls never fail here (a failed release would be a leak the caller cannot avoid); they only
 * keep the count of OpenCL objects the library holds, with the creations and the events it
 * asks for. The build links the test with -Wl,--wrap=X for exactly these names
 * (FAULT_WRAPPED in tests/CMakeLists.txt). clSetUserEventStatus is not wrapped: it fails only
 * for an invalid event or a status set twice, and failing it here would leave the commands
 * waiting for that user event hanging, a failure no driver produces. The object count is
 * atomic: the multi-device plans' event callbacks release their events on a driver thread. */
#include "faults/fault_inject.h"

#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static long armed_at; /* 0: fail nothing */
static long counted;  /* calls since fault_arm */
static bool counting; /* between fault_arm and fault_disarm */
static const char *fired_at = "";
static const char *armed_name; /* NULL: every call counts */
static bool tracking;          /* between fault_track(true) and fault_track(false) */
static atomic_long live; /* OpenCL objects created or retained minus released while tracking */

void fault_arm_named(const char *name, long nth) {
    fault_arm(nth);
    armed_name = name;
}

void fault_arm(long nth) {
    armed_name = NULL;
    armed_at = nth;
    counted = 0;
    fired_at = "";
    counting = true;
}

void fault_disarm(void) {
    counting = false;
}

void fault_pause(void) {
    counting = false;
}

void fault_resume(void) {
    counting = true;
}

long fault_calls(void) {
    return counted;
}

bool fault_fired(void) {
    return fired_at[0] != '\0';
}

const char *fault_fired_at(void) {
    return fired_at;
}

void fault_track(bool on) {
    if (on && !tracking)
        atomic_store(&live, 0);
    tracking = on;
}

long fault_live_objects(void) {
    return atomic_load(&live);
}

/* A handle the library now holds (a create, a retain, an event it asked for). */
static void held(const void *handle) {
    if (tracking && handle)
        atomic_fetch_add(&live, 1);
}

/* Counts one call of `name`; true when it is the one to fail. */
static bool fault_hit(const char *name) {
    if (!counting || (armed_name && strcmp(name, armed_name) != 0))
        return false;
    ++counted;
    if (counted != armed_at)
        return false;
    fired_at = name;
    return true;
}

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t size);
char *__real_strdup(const char *s);

void *__wrap_malloc(size_t size) {
    return fault_hit("malloc") ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size) {
    return fault_hit("calloc") ? NULL : __real_calloc(count, size);
}

void *__wrap_realloc(void *p, size_t size) {
    return fault_hit("realloc") ? NULL : __real_realloc(p, size);
}

char *__wrap_strdup(const char *s) {
    return fault_hit("strdup") ? NULL : __real_strdup(s);
}

cl_int __real_clGetPlatformIDs(cl_uint n, cl_platform_id *p, cl_uint *np);
cl_int __wrap_clGetPlatformIDs(cl_uint n, cl_platform_id *p, cl_uint *np) {
    if (fault_hit("clGetPlatformIDs"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetPlatformIDs(n, p, np);
}

cl_int __real_clGetPlatformInfo(cl_platform_id p, cl_platform_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetPlatformInfo(cl_platform_id p, cl_platform_info w, size_t s, void *v,
                                size_t *r) {
    if (fault_hit("clGetPlatformInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetPlatformInfo(p, w, s, v, r);
}

cl_int __real_clGetDeviceIDs(cl_platform_id p, cl_device_type t, cl_uint n, cl_device_id *d,
                             cl_uint *nd);
cl_int __wrap_clGetDeviceIDs(cl_platform_id p, cl_device_type t, cl_uint n, cl_device_id *d,
                             cl_uint *nd) {
    if (fault_hit("clGetDeviceIDs"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetDeviceIDs(p, t, n, d, nd);
}

cl_int __real_clGetDeviceInfo(cl_device_id d, cl_device_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetDeviceInfo(cl_device_id d, cl_device_info w, size_t s, void *v, size_t *r) {
    if (fault_hit("clGetDeviceInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetDeviceInfo(d, w, s, v, r);
}

cl_context __real_clCreateContext(const cl_context_properties *pr, cl_uint n, const cl_device_id *d,
                                  void(CL_CALLBACK *cb)(const char *, const void *, size_t, void *),
                                  void *u, cl_int *e);
cl_context __wrap_clCreateContext(const cl_context_properties *pr, cl_uint n, const cl_device_id *d,
                                  void(CL_CALLBACK *cb)(const char *, const void *, size_t, void *),
                                  void *u, cl_int *e) {
    if (fault_hit("clCreateContext")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_context handle = __real_clCreateContext(pr, n, d, cb, u, e);
    held(handle);
    return handle;
}

cl_int __real_clGetContextInfo(cl_context c, cl_context_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetContextInfo(cl_context c, cl_context_info w, size_t s, void *v, size_t *r) {
    if (fault_hit("clGetContextInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetContextInfo(c, w, s, v, r);
}

cl_command_queue __real_clCreateCommandQueue(cl_context c, cl_device_id d,
                                             cl_command_queue_properties pr, cl_int *e);
cl_command_queue __wrap_clCreateCommandQueue(cl_context c, cl_device_id d,
                                             cl_command_queue_properties pr, cl_int *e) {
    if (fault_hit("clCreateCommandQueue")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_command_queue handle = __real_clCreateCommandQueue(c, d, pr, e);
    held(handle);
    return handle;
}

cl_int __real_clGetCommandQueueInfo(cl_command_queue q, cl_command_queue_info w, size_t s, void *v,
                                    size_t *r);
cl_int __wrap_clGetCommandQueueInfo(cl_command_queue q, cl_command_queue_info w, size_t s, void *v,
                                    size_t *r) {
    if (fault_hit("clGetCommandQueueInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetCommandQueueInfo(q, w, s, v, r);
}

cl_mem __real_clCreateBuffer(cl_context c, cl_mem_flags f, size_t s, void *h, cl_int *e);
cl_mem __wrap_clCreateBuffer(cl_context c, cl_mem_flags f, size_t s, void *h, cl_int *e) {
    if (fault_hit("clCreateBuffer")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_mem handle = __real_clCreateBuffer(c, f, s, h, e);
    held(handle);
    return handle;
}

cl_mem __real_clCreateSubBuffer(cl_mem m, cl_mem_flags f, cl_buffer_create_type t, const void *i,
                                cl_int *e);
cl_mem __wrap_clCreateSubBuffer(cl_mem m, cl_mem_flags f, cl_buffer_create_type t, const void *i,
                                cl_int *e) {
    if (fault_hit("clCreateSubBuffer")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_mem handle = __real_clCreateSubBuffer(m, f, t, i, e);
    held(handle);
    return handle;
}

cl_int __real_clGetMemObjectInfo(cl_mem m, cl_mem_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetMemObjectInfo(cl_mem m, cl_mem_info w, size_t s, void *v, size_t *r) {
    if (fault_hit("clGetMemObjectInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetMemObjectInfo(m, w, s, v, r);
}

cl_program __real_clCreateProgramWithSource(cl_context c, cl_uint n, const char **s,
                                            const size_t *l, cl_int *e);
cl_program __wrap_clCreateProgramWithSource(cl_context c, cl_uint n, const char **s,
                                            const size_t *l, cl_int *e) {
    if (fault_hit("clCreateProgramWithSource")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_program handle = __real_clCreateProgramWithSource(c, n, s, l, e);
    held(handle);
    return handle;
}

cl_program __real_clCreateProgramWithBinary(cl_context c, cl_uint n, const cl_device_id *d,
                                            const size_t *l, const unsigned char **b, cl_int *st,
                                            cl_int *e);
cl_program __wrap_clCreateProgramWithBinary(cl_context c, cl_uint n, const cl_device_id *d,
                                            const size_t *l, const unsigned char **b, cl_int *st,
                                            cl_int *e) {
    if (fault_hit("clCreateProgramWithBinary")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_program handle = __real_clCreateProgramWithBinary(c, n, d, l, b, st, e);
    held(handle);
    return handle;
}

cl_int __real_clBuildProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *o,
                             void(CL_CALLBACK *cb)(cl_program, void *), void *u);
cl_int __wrap_clBuildProgram(cl_program p, cl_uint n, const cl_device_id *d, const char *o,
                             void(CL_CALLBACK *cb)(cl_program, void *), void *u) {
    if (fault_hit("clBuildProgram"))
        return CL_OUT_OF_RESOURCES;
    return __real_clBuildProgram(p, n, d, o, cb, u);
}

cl_int __real_clGetProgramInfo(cl_program p, cl_program_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetProgramInfo(cl_program p, cl_program_info w, size_t s, void *v, size_t *r) {
    if (fault_hit("clGetProgramInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetProgramInfo(p, w, s, v, r);
}

cl_int __real_clGetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info w, size_t s,
                                    void *v, size_t *r);
cl_int __wrap_clGetProgramBuildInfo(cl_program p, cl_device_id d, cl_program_build_info w, size_t s,
                                    void *v, size_t *r) {
    if (fault_hit("clGetProgramBuildInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetProgramBuildInfo(p, d, w, s, v, r);
}

cl_kernel __real_clCreateKernel(cl_program p, const char *n, cl_int *e);
cl_kernel __wrap_clCreateKernel(cl_program p, const char *n, cl_int *e) {
    if (fault_hit("clCreateKernel")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_kernel handle = __real_clCreateKernel(p, n, e);
    held(handle);
    return handle;
}

cl_int __real_clSetKernelArg(cl_kernel k, cl_uint i, size_t s, const void *v);
cl_int __wrap_clSetKernelArg(cl_kernel k, cl_uint i, size_t s, const void *v) {
    if (fault_hit("clSetKernelArg"))
        return CL_OUT_OF_RESOURCES;
    return __real_clSetKernelArg(k, i, s, v);
}

cl_int __real_clGetKernelWorkGroupInfo(cl_kernel k, cl_device_id d, cl_kernel_work_group_info w,
                                       size_t s, void *v, size_t *r);
cl_int __wrap_clGetKernelWorkGroupInfo(cl_kernel k, cl_device_id d, cl_kernel_work_group_info w,
                                       size_t s, void *v, size_t *r) {
    if (fault_hit("clGetKernelWorkGroupInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetKernelWorkGroupInfo(k, d, w, s, v, r);
}

cl_int __real_clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *o,
                                     const size_t *g, const size_t *l, cl_uint n, const cl_event *w,
                                     cl_event *ev);
cl_int __wrap_clEnqueueNDRangeKernel(cl_command_queue q, cl_kernel k, cl_uint dims, const size_t *o,
                                     const size_t *g, const size_t *l, cl_uint n, const cl_event *w,
                                     cl_event *ev) {
    if (fault_hit("clEnqueueNDRangeKernel"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status = __real_clEnqueueNDRangeKernel(q, k, dims, o, g, l, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t o, size_t s,
                                   const void *p, cl_uint n, const cl_event *w, cl_event *ev);
cl_int __wrap_clEnqueueWriteBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t o, size_t s,
                                   const void *p, cl_uint n, const cl_event *w, cl_event *ev) {
    if (fault_hit("clEnqueueWriteBuffer"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status = __real_clEnqueueWriteBuffer(q, m, b, o, s, p, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t o, size_t s,
                                  void *p, cl_uint n, const cl_event *w, cl_event *ev);
cl_int __wrap_clEnqueueReadBuffer(cl_command_queue q, cl_mem m, cl_bool b, size_t o, size_t s,
                                  void *p, cl_uint n, const cl_event *w, cl_event *ev) {
    if (fault_hit("clEnqueueReadBuffer"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status = __real_clEnqueueReadBuffer(q, m, b, o, s, p, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint n, const cl_event *w,
                                          cl_event *ev);
cl_int __wrap_clEnqueueMarkerWithWaitList(cl_command_queue q, cl_uint n, const cl_event *w,
                                          cl_event *ev) {
    if (fault_hit("clEnqueueMarkerWithWaitList"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status = __real_clEnqueueMarkerWithWaitList(q, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clWaitForEvents(cl_uint n, const cl_event *w);
cl_int __wrap_clWaitForEvents(cl_uint n, const cl_event *w) {
    if (fault_hit("clWaitForEvents"))
        return CL_OUT_OF_RESOURCES;
    return __real_clWaitForEvents(n, w);
}

cl_int __real_clFinish(cl_command_queue q);
cl_int __wrap_clFinish(cl_command_queue q) {
    if (fault_hit("clFinish"))
        return CL_OUT_OF_RESOURCES;
    return __real_clFinish(q);
}

cl_int __real_clFlush(cl_command_queue q);
cl_int __wrap_clFlush(cl_command_queue q) {
    if (fault_hit("clFlush"))
        return CL_OUT_OF_RESOURCES;
    return __real_clFlush(q);
}

cl_event __real_clCreateUserEvent(cl_context c, cl_int *e);
cl_event __wrap_clCreateUserEvent(cl_context c, cl_int *e) {
    if (fault_hit("clCreateUserEvent")) {
        if (e)
            *e = CL_OUT_OF_RESOURCES;
        return NULL;
    }
    cl_event handle = __real_clCreateUserEvent(c, e);
    held(handle);
    return handle;
}

cl_int __real_clRetainContext(cl_context x);
cl_int __wrap_clRetainContext(cl_context x) {
    const cl_int status = __real_clRetainContext(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseContext(cl_context x);
cl_int __wrap_clReleaseContext(cl_context x) {
    const cl_int status = __real_clReleaseContext(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clRetainCommandQueue(cl_command_queue x);
cl_int __wrap_clRetainCommandQueue(cl_command_queue x) {
    const cl_int status = __real_clRetainCommandQueue(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseCommandQueue(cl_command_queue x);
cl_int __wrap_clReleaseCommandQueue(cl_command_queue x) {
    const cl_int status = __real_clReleaseCommandQueue(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clRetainMemObject(cl_mem x);
cl_int __wrap_clRetainMemObject(cl_mem x) {
    const cl_int status = __real_clRetainMemObject(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseMemObject(cl_mem x);
cl_int __wrap_clReleaseMemObject(cl_mem x) {
    const cl_int status = __real_clReleaseMemObject(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clRetainProgram(cl_program x);
cl_int __wrap_clRetainProgram(cl_program x) {
    const cl_int status = __real_clRetainProgram(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseProgram(cl_program x);
cl_int __wrap_clReleaseProgram(cl_program x) {
    const cl_int status = __real_clReleaseProgram(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clRetainKernel(cl_kernel x);
cl_int __wrap_clRetainKernel(cl_kernel x) {
    const cl_int status = __real_clRetainKernel(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseKernel(cl_kernel x);
cl_int __wrap_clReleaseKernel(cl_kernel x) {
    const cl_int status = __real_clReleaseKernel(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clRetainEvent(cl_event x);
cl_int __wrap_clRetainEvent(cl_event x) {
    const cl_int status = __real_clRetainEvent(x);
    if (status == CL_SUCCESS)
        held(x);
    return status;
}

cl_int __real_clReleaseEvent(cl_event x);
cl_int __wrap_clReleaseEvent(cl_event x) {
    const cl_int status = __real_clReleaseEvent(x);
    if (status == CL_SUCCESS && tracking)
        atomic_fetch_sub(&live, 1);
    return status;
}

cl_int __real_clGetKernelInfo(cl_kernel k, cl_kernel_info w, size_t s, void *v, size_t *r);
cl_int __wrap_clGetKernelInfo(cl_kernel k, cl_kernel_info w, size_t s, void *v, size_t *r) {
    if (fault_hit("clGetKernelInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetKernelInfo(k, w, s, v, r);
}

cl_int __real_clGetEventProfilingInfo(cl_event e, cl_profiling_info w, size_t s, void *v,
                                      size_t *r);
cl_int __wrap_clGetEventProfilingInfo(cl_event e, cl_profiling_info w, size_t s, void *v,
                                      size_t *r) {
    if (fault_hit("clGetEventProfilingInfo"))
        return CL_OUT_OF_RESOURCES;
    return __real_clGetEventProfilingInfo(e, w, s, v, r);
}

cl_int __real_clSetEventCallback(cl_event e, cl_int t,
                                 void(CL_CALLBACK *cb)(cl_event, cl_int, void *), void *u);
cl_int __wrap_clSetEventCallback(cl_event e, cl_int t,
                                 void(CL_CALLBACK *cb)(cl_event, cl_int, void *), void *u) {
    if (fault_hit("clSetEventCallback"))
        return CL_OUT_OF_RESOURCES;
    return __real_clSetEventCallback(e, t, cb, u);
}

cl_int __real_clEnqueueCopyBufferRect(cl_command_queue q, cl_mem src, cl_mem dst, const size_t *so,
                                      const size_t *d_o, const size_t *region, size_t srp,
                                      size_t ssp, size_t drp, size_t dsp, cl_uint n,
                                      const cl_event *w, cl_event *ev);
cl_int __wrap_clEnqueueCopyBufferRect(cl_command_queue q, cl_mem src, cl_mem dst, const size_t *so,
                                      const size_t *d_o, const size_t *region, size_t srp,
                                      size_t ssp, size_t drp, size_t dsp, cl_uint n,
                                      const cl_event *w, cl_event *ev) {
    if (fault_hit("clEnqueueCopyBufferRect"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status =
        __real_clEnqueueCopyBufferRect(q, src, dst, so, d_o, region, srp, ssp, drp, dsp, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clEnqueueReadBufferRect(cl_command_queue q, cl_mem m, cl_bool b, const size_t *bo,
                                      const size_t *ho, const size_t *region, size_t brp,
                                      size_t bsp, size_t hrp, size_t hsp, void *p, cl_uint n,
                                      const cl_event *w, cl_event *ev);
cl_int __wrap_clEnqueueReadBufferRect(cl_command_queue q, cl_mem m, cl_bool b, const size_t *bo,
                                      const size_t *ho, const size_t *region, size_t brp,
                                      size_t bsp, size_t hrp, size_t hsp, void *p, cl_uint n,
                                      const cl_event *w, cl_event *ev) {
    if (fault_hit("clEnqueueReadBufferRect"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status =
        __real_clEnqueueReadBufferRect(q, m, b, bo, ho, region, brp, bsp, hrp, hsp, p, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}

cl_int __real_clEnqueueWriteBufferRect(cl_command_queue q, cl_mem m, cl_bool b, const size_t *bo,
                                       const size_t *ho, const size_t *region, size_t brp,
                                       size_t bsp, size_t hrp, size_t hsp, const void *p, cl_uint n,
                                       const cl_event *w, cl_event *ev);
cl_int __wrap_clEnqueueWriteBufferRect(cl_command_queue q, cl_mem m, cl_bool b, const size_t *bo,
                                       const size_t *ho, const size_t *region, size_t brp,
                                       size_t bsp, size_t hrp, size_t hsp, const void *p, cl_uint n,
                                       const cl_event *w, cl_event *ev) {
    if (fault_hit("clEnqueueWriteBufferRect"))
        return CL_OUT_OF_RESOURCES;
    const cl_int status =
        __real_clEnqueueWriteBufferRect(q, m, b, bo, ho, region, brp, bsp, hrp, hsp, p, n, w, ev);
    if (status == CL_SUCCESS && ev)
        held(*ev);
    return status;
}
