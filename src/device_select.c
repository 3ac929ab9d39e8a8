/* SPDX-License-Identifier: Apache-2.0 */
/* Picks a device when the caller brings none: a spec (index across all platforms, in the order
 * `clpsa devices` lists them, or a substring of the platform or device name), else the first
 * GPU, else the first device. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLPSA__MAX_PLATFORMS 16
#define CLPSA__MAX_DEVICES 64

typedef struct device_entry {
    cl_platform_id platform;
    cl_device_id device;
    cl_device_type type;
    char label[2 * CLPSA__NAME_CAPACITY + 4];
} device_entry;

#ifndef CL_PLATFORM_NOT_FOUND_KHR
#define CL_PLATFORM_NOT_FOUND_KHR -1001 /* cl_khr_icd: the loader found no platform */
#endif

/* Every device of every platform, in `clpsa devices` order. *error is the first failure that
 * is not "none installed" (no platform, a platform without devices): the list is then
 * incomplete, and an index into it would name another device. */
static size_t list_devices(device_entry *entries, size_t capacity, cl_int *error) {
    cl_platform_id platforms[CLPSA__MAX_PLATFORMS];
    cl_uint platform_count = 0;
    *error = CL_SUCCESS;
    const cl_int err = clGetPlatformIDs(CLPSA__MAX_PLATFORMS, platforms, &platform_count);
    if (err != CL_SUCCESS) {
        if (err != CL_PLATFORM_NOT_FOUND_KHR)
            *error = err;
        return 0;
    }
    if (platform_count > CLPSA__MAX_PLATFORMS)
        platform_count = CLPSA__MAX_PLATFORMS;
    size_t count = 0;
    for (cl_uint p = 0; p < platform_count; ++p) {
        cl_device_id devices[CLPSA__MAX_DEVICES];
        cl_uint device_count = 0;
        const cl_int derr = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, CLPSA__MAX_DEVICES,
                                           devices, &device_count);
        if (derr != CL_SUCCESS) {
            if (derr != CL_DEVICE_NOT_FOUND && *error == CL_SUCCESS)
                *error = derr;
            continue;
        }
        if (device_count > CLPSA__MAX_DEVICES)
            device_count = CLPSA__MAX_DEVICES;
        char platform_name[CLPSA__NAME_CAPACITY] = "";
        clGetPlatformInfo(platforms[p], CL_PLATFORM_NAME, sizeof platform_name, platform_name,
                          NULL);
        platform_name[sizeof platform_name - 1] = '\0';
        for (cl_uint d = 0; d < device_count && count < capacity; ++d) {
            device_entry *e = &entries[count++];
            e->platform = platforms[p];
            e->device = devices[d];
            e->type = 0;
            clGetDeviceInfo(devices[d], CL_DEVICE_TYPE, sizeof e->type, &e->type, NULL);
            char device_name[CLPSA__NAME_CAPACITY] = "";
            clGetDeviceInfo(devices[d], CL_DEVICE_NAME, sizeof device_name, device_name, NULL);
            device_name[sizeof device_name - 1] = '\0';
            snprintf(e->label, sizeof e->label, "%s / %s", platform_name, device_name);
        }
    }
    return count;
}

static bool contains_ignoring_case(const char *haystack, const char *needle) {
    const size_t n = strlen(needle);
    for (; *haystack; ++haystack) {
        size_t i = 0;
        while (i < n && haystack[i] &&
               tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
            ++i;
        if (i == n)
            return true;
    }
    return n == 0;
}

static bool parse_index(const char *spec, size_t *index) {
    if (!*spec)
        return false;
    char *end = NULL;
    const unsigned long value = strtoul(spec, &end, 10);
    if (*end != '\0' || !isdigit((unsigned char)spec[0]))
        return false;
    *index = value;
    return true;
}

clpsa_status clpsa__select_device(clpsa_context *ctx, const char *spec, cl_platform_id *platform,
                                  cl_device_id *device) {
    device_entry entries[CLPSA__MAX_DEVICES];
    cl_int error = CL_SUCCESS;
    const size_t count = list_devices(entries, CLPSA__MAX_DEVICES, &error);
    if (error != CL_SUCCESS)
        return clpsa__fail_cl(ctx, error, "listing the OpenCL platforms and devices");
    if (count == 0)
        return clpsa__fail(ctx, CLPSA_ERROR_DEVICE_NOT_FOUND,
                           "no OpenCL platform or device is installed (the ICD loader found "
                           "none; check /etc/OpenCL/vendors or OCL_ICD_VENDORS)");
    const char *source = "device_spec";
    if (!spec || !*spec) {
        spec = getenv("CLPSA_DEVICE");
        source = "CLPSA_DEVICE";
    }
    size_t chosen = count;
    if (spec && *spec) {
        size_t index = 0;
        if (parse_index(spec, &index)) {
            if (index >= count)
                return clpsa__fail(ctx, CLPSA_ERROR_DEVICE_NOT_FOUND,
                                   "%s=%s: device index %zu is out of range (there are %zu "
                                   "devices, numbered from 0)",
                                   source, spec, index, count);
            chosen = index;
        } else {
            for (size_t i = 0; i < count && chosen == count; ++i)
                if (contains_ignoring_case(entries[i].label, spec))
                    chosen = i;
            if (chosen == count)
                return clpsa__fail(ctx, CLPSA_ERROR_DEVICE_NOT_FOUND,
                                   "%s=%s: no platform or device name contains \"%s\"", source,
                                   spec, spec);
        }
        snprintf(ctx->device_reason, sizeof ctx->device_reason, "%s=%s matched device %zu", source,
                 spec, chosen);
    } else {
        for (size_t i = 0; i < count && chosen == count; ++i)
            if (entries[i].type & CL_DEVICE_TYPE_GPU)
                chosen = i;
        if (chosen != count) {
            snprintf(ctx->device_reason, sizeof ctx->device_reason,
                     "first GPU (device %zu); set CLPSA_DEVICE to choose another", chosen);
        } else {
            chosen = 0;
            snprintf(ctx->device_reason, sizeof ctx->device_reason,
                     "no GPU found: first device (device 0); set CLPSA_DEVICE to choose "
                     "another");
        }
    }
    *platform = entries[chosen].platform;
    *device = entries[chosen].device;
    return CLPSA_OK;
}
