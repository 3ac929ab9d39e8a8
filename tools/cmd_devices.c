/* SPDX-License-Identifier: Apache-2.0 */
/* `clpsa devices`: every OpenCL platform and device with the facts that matter for attention
 * kernels, numbered the way CLPSA_DEVICE and --device count them, then the device clpsa
 * itself would pick and why. */
#include "tool_common.h"

#include <clpsa/clpsa_tuning.h>

#include <stdio.h>
#include <string.h>

/* The same limits as the library's device selection, so the indices printed here are the
 * indices it accepts. */
#define MAX_PLATFORMS 16
#define MAX_DEVICES 64
#define TEXT 512

static void usage(FILE *out) {
    fprintf(out, "usage: clpsa devices [--device SPEC]\n"
                 "\n"
                 "Lists every OpenCL platform and device. Devices are numbered across all\n"
                 "platforms in order; that number (or a substring of the platform or device\n"
                 "name) is what --device and CLPSA_DEVICE accept. Then shows which device clpsa\n"
                 "would use (for SPEC when given, else by CLPSA_DEVICE or its default rule) and\n"
                 "why.\n");
}

static void platform_string(cl_platform_id platform, cl_platform_info what, char *text) {
    text[0] = '\0';
    clGetPlatformInfo(platform, what, TEXT, text, NULL);
    text[TEXT - 1] = '\0';
}

static void device_string(cl_device_id device, cl_device_info what, char *text) {
    text[0] = '\0';
    if (clGetDeviceInfo(device, what, TEXT, text, NULL) != CL_SUCCESS)
        snprintf(text, TEXT, "?");
    text[TEXT - 1] = '\0';
}

static cl_ulong device_ulong(cl_device_id device, cl_device_info what) {
    cl_ulong value = 0;
    clGetDeviceInfo(device, what, sizeof value, &value, NULL);
    return value;
}

static const char *type_name(cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "accelerator";
    if (type & CL_DEVICE_TYPE_CUSTOM)
        return "custom";
    return "other";
}

/* Where the device's kernel parameters come from (override, tuned cache, built-in table or
 * generic default), as the next plan would look them up. */
static void print_parameters(size_t index) {
    char spec[32];
    snprintf(spec, sizeof spec, "%zu", index);
    clpsa_context_desc desc;
    clpsa__tool_context_desc_init(&desc, spec);
    clpsa_context *ctx = NULL;
    if (clpsa_context_create(&desc, &ctx) != CLPSA_OK) {
        printf("    parameters       (no context: %s)\n", "the device could not be opened");
        return;
    }
    char text[4096];
    if (clpsa_context_describe_params(ctx, text, sizeof text) == CLPSA_OK) {
        printf("    key              %s\n", clpsa_context_device_key(ctx));
        const char *label = "parameters";
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            printf("    %-16s %s\n", label, line);
            label = "";
        }
    }
    if (clpsa_context_describe_variants(ctx, text, sizeof text) == CLPSA_OK) {
        const char *label = "kernel variants";
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            printf("    %-16s %s\n", label, line);
            label = "";
        }
    }
    clpsa_context_destroy(ctx);
}

static void print_device(size_t index, cl_device_id device) {
    char name[TEXT], c_version[TEXT], driver[TEXT], version[TEXT];
    device_string(device, CL_DEVICE_NAME, name);
    device_string(device, CL_DEVICE_OPENCL_C_VERSION, c_version);
    device_string(device, CL_DRIVER_VERSION, driver);
    device_string(device, CL_DEVICE_VERSION, version);
    cl_device_type type = 0;
    clGetDeviceInfo(device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    cl_uint units = 0;
    clGetDeviceInfo(device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units, NULL);
    char global[32], alloc[32], local[32];
    clpsa__tool_format_bytes(global, sizeof global,
                             device_ulong(device, CL_DEVICE_GLOBAL_MEM_SIZE));
    clpsa__tool_format_bytes(alloc, sizeof alloc,
                             device_ulong(device, CL_DEVICE_MAX_MEM_ALLOC_SIZE));
    clpsa__tool_format_bytes(local, sizeof local, device_ulong(device, CL_DEVICE_LOCAL_MEM_SIZE));
    printf("  device %zu: %s\n", index, name);
    printf("    type             %s\n", type_name(type));
    printf("    compute units    %u\n", (unsigned)units);
    printf("    global memory    %s\n", global);
    printf("    max allocation   %s\n", alloc);
    printf("    local memory     %s\n", local);
    printf("    OpenCL           %s; %s\n", version, c_version);
    printf("    driver           %s\n", driver);
    print_parameters(index);
}

/* Prints the listing; returns the number of devices. */
static size_t list_devices(void) {
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint platform_count = 0;
    const cl_int err = clGetPlatformIDs(MAX_PLATFORMS, platforms, &platform_count);
    if (err != CL_SUCCESS || platform_count == 0) {
        printf("no OpenCL platform found (clGetPlatformIDs: %s); check /etc/OpenCL/vendors or "
               "OCL_ICD_VENDORS\n",
               err == CL_SUCCESS ? "0 platforms" : clpsa__tool_cl_error_name(err));
        return 0;
    }
    if (platform_count > MAX_PLATFORMS)
        platform_count = MAX_PLATFORMS;
    size_t index = 0;
    for (cl_uint p = 0; p < platform_count; ++p) {
        char name[TEXT], vendor[TEXT], version[TEXT];
        platform_string(platforms[p], CL_PLATFORM_NAME, name);
        platform_string(platforms[p], CL_PLATFORM_VENDOR, vendor);
        platform_string(platforms[p], CL_PLATFORM_VERSION, version);
        printf("platform %u: %s (%s; %s)\n", (unsigned)p, name, vendor, version);
        cl_device_id devices[MAX_DEVICES];
        cl_uint device_count = 0;
        const cl_int derr =
            clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devices, &device_count);
        if (derr != CL_SUCCESS) {
            printf("  no devices (%s)\n", clpsa__tool_cl_error_name(derr));
            continue;
        }
        if (device_count > MAX_DEVICES)
            device_count = MAX_DEVICES;
        for (cl_uint d = 0; d < device_count && index < MAX_DEVICES; ++d)
            print_device(index++, devices[d]);
    }
    return index;
}

int clpsa__cmd_devices(int argc, char **argv) {
    const char *device_spec = NULL;
    for (int i = 1; i < argc; ++i) {
        const char *value = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CLPSA__EXIT_OK;
        } else if (clpsa__tool_option(argc, argv, &i, "--device", &value)) {
            if (!value)
                return clpsa__tool_usage_error("devices", "--device needs a value (an index "
                                                          "or part of a device name)");
            device_spec = value;
        } else {
            return clpsa__tool_usage_error("devices", "unknown option '%s'", argv[i]);
        }
    }

    list_devices();
    fflush(stdout);

    clpsa_context_desc desc;
    clpsa__tool_context_desc_init(&desc, device_spec);
    clpsa_context *ctx = NULL;
    const clpsa_status status = clpsa_context_create(&desc, &ctx);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error("devices", "clpsa_context_create", status, NULL);
    printf("\nclpsa would use: %s\n", clpsa_context_device_name(ctx));
    printf("because:         %s\n", clpsa_context_device_reason(ctx));
    const char *cache = clpsa_context_cache_dir(ctx);
    printf("kernel cache:    %s\n", cache && *cache ? cache : "(disabled)");
    clpsa_context_destroy(ctx);
    return CLPSA__EXIT_OK;
}
