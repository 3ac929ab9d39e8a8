/* SPDX-License-Identifier: Apache-2.0 */
/* Device facts, queried once per context. */
#include "internal.h"

#include <string.h>

/* From cl_ext.h's cl_nv_device_attribute_query; repeated so older headers build too. */
#define CLPSA__NV_COMPUTE_CAPABILITY_MAJOR 0x4000
#define CLPSA__NV_COMPUTE_CAPABILITY_MINOR 0x4001

static cl_int query_string(cl_device_id device, cl_device_info what, char *out, size_t cap) {
    out[0] = '\0';
    const cl_int err = clGetDeviceInfo(device, what, cap, out, NULL);
    out[cap - 1] = '\0';
    return err;
}

static bool has_extension(const char *extensions, const char *name) {
    const size_t length = strlen(name);
    for (const char *at = strstr(extensions, name); at; at = strstr(at + 1, name)) {
        const bool starts = at == extensions || at[-1] == ' ';
        const bool ends = at[length] == '\0' || at[length] == ' ';
        if (starts && ends)
            return true;
    }
    return false;
}

clpsa_status clpsa__device_info_query(cl_device_id device, clpsa__device_info *out,
                                      cl_int *cl_error) {
    memset(out, 0, sizeof *out);
    cl_platform_id platform = NULL;
    cl_int err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL);
    if (err == CL_SUCCESS) {
        clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof out->platform_name, out->platform_name,
                          NULL);
        clGetPlatformInfo(platform, CL_PLATFORM_VERSION, sizeof out->platform_version,
                          out->platform_version, NULL);
        out->platform_name[sizeof out->platform_name - 1] = '\0';
        out->platform_version[sizeof out->platform_version - 1] = '\0';
    }
    if (err == CL_SUCCESS)
        err = query_string(device, CL_DEVICE_NAME, out->device_name, sizeof out->device_name);
    if (err == CL_SUCCESS)
        err = query_string(device, CL_DEVICE_VENDOR, out->device_vendor, sizeof out->device_vendor);
    if (err == CL_SUCCESS)
        err = query_string(device, CL_DRIVER_VERSION, out->driver_version,
                           sizeof out->driver_version);
    if (err == CL_SUCCESS)
        err = query_string(device, CL_DEVICE_VERSION, out->device_version,
                           sizeof out->device_version);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_VENDOR_ID, sizeof out->vendor_id, &out->vendor_id,
                              NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof out->type, &out->type, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof out->compute_units,
                              &out->compute_units, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_GROUP_SIZE,
                              sizeof out->max_work_group_size, &out->max_work_group_size, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof out->local_mem_size,
                              &out->local_mem_size, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof out->global_mem_size,
                              &out->global_mem_size, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof out->max_mem_alloc_size,
                              &out->max_mem_alloc_size, NULL);
    if (err == CL_SUCCESS)
        err = clGetDeviceInfo(device, CL_DEVICE_MEM_BASE_ADDR_ALIGN,
                              sizeof out->mem_base_addr_align_bits, &out->mem_base_addr_align_bits,
                              NULL);
    if (err != CL_SUCCESS) {
        *cl_error = err;
        return clpsa__status_from_cl(err);
    }

    size_t ext_size = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_size) == CL_SUCCESS &&
        ext_size > 0) {
        char extensions[8192];
        if (ext_size <= sizeof extensions && clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, ext_size,
                                                             extensions, NULL) == CL_SUCCESS) {
            out->has_fp16 = has_extension(extensions, "cl_khr_fp16");
            out->has_fp64 = has_extension(extensions, "cl_khr_fp64");
            if (has_extension(extensions, "cl_nv_device_attribute_query")) {
                cl_uint major = 0, minor = 0;
                if (clGetDeviceInfo(device, CLPSA__NV_COMPUTE_CAPABILITY_MAJOR, sizeof major,
                                    &major, NULL) == CL_SUCCESS &&
                    clGetDeviceInfo(device, CLPSA__NV_COMPUTE_CAPABILITY_MINOR, sizeof minor,
                                    &minor, NULL) == CL_SUCCESS) {
                    out->nv_compute_major = (int)major;
                    out->nv_compute_minor = (int)minor;
                }
            }
        }
    }
    *cl_error = CL_SUCCESS;
    return CLPSA_OK;
}
