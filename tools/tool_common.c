/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the `clpsa` subcommands. */
#include "tool_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

bool clpsa__tool_option(int argc, char **argv, int *i, const char *name, const char **value) {
    const char *arg = argv[*i];
    const size_t length = strlen(name);
    if (strncmp(arg, name, length) != 0)
        return false;
    if (arg[length] == '=') {
        *value = arg + length + 1;
        return true;
    }
    if (arg[length] != '\0')
        return false;
    /* A following option is never taken as the value: "--q --k k.npy" means --q lacks one. */
    if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        *value = argv[++*i];
    } else {
        *value = NULL;
    }
    return true;
}

bool clpsa__tool_parse_int(const char *text, long min, long max, long *out) {
    if (!text || !*text)
        return false;
    char *end = NULL;
    errno = 0;
    const long value = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || value < min || value > max)
        return false;
    *out = value;
    return true;
}

bool clpsa__tool_parse_double(const char *text, double *out) {
    if (!text || !*text)
        return false;
    char *end = NULL;
    errno = 0;
    const double value = strtod(text, &end);
    if (errno != 0 || *end != '\0' || !isfinite(value))
        return false;
    *out = value;
    return true;
}

int clpsa__tool_usage_error(const char *command, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "clpsa %s: ", command);
    vfprintf(stderr, fmt, args);
    fprintf(stderr, "\nRun 'clpsa %s --help' for the options.\n", command);
    va_end(args);
    return CLPSA__EXIT_USAGE;
}

int clpsa__tool_fail(const char *command, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "clpsa %s: ", command);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    return CLPSA__EXIT_FAILURE;
}

/* The last error line the library logged (and the logger printed), so a failure report does
 * not print its detail twice. */
static char logged_error[4096];

static void tool_log(void *user, clpsa_log_level level, const char *message) {
    (void)user;
    static const char *const names[] = {"off", "error", "warn", "info", "debug", "trace"};
    const char *name = level >= CLPSA_LOG_OFF && level <= CLPSA_LOG_TRACE ? names[level] : "log";
    /* Errors show when they happen: some (a malformed CLPSA_PARAMS) fail no call, and would
     * otherwise never be seen. */
    fprintf(stderr, "clpsa %s: %s\n", name, message);
    if (level == CLPSA_LOG_ERROR)
        snprintf(logged_error, sizeof logged_error, "%s", message);
}

void clpsa__tool_context_desc_init(clpsa_context_desc *desc, const char *device_spec) {
    clpsa_context_desc_init(desc);
    desc->device_spec = device_spec;
    desc->log = tool_log;
    /* CLPSA_LOG decides (log_level 0), except that errors are always shown: "off" and "0"
     * become "error". */
    const char *env = getenv("CLPSA_LOG");
    if (env && (strcasecmp(env, "off") == 0 || strcmp(env, "0") == 0))
        desc->log_level = CLPSA_LOG_ERROR;
}

int clpsa__tool_library_error(const char *command, const char *call, clpsa_status status,
                              const clpsa_context *ctx) {
    fprintf(stderr, "clpsa %s: %s failed: %s (%s)\n", command, call, clpsa_status_name(status),
            clpsa_status_string(status));
    /* Without a context, the calling thread's record (context creation, context-free calls). */
    const char *detail = clpsa_context_last_error(ctx);
    /* The logger printed it already when the library logged it as an error (context creation
     * logs "context creation failed: DETAIL"). */
    if (detail && *detail && !strstr(logged_error, detail))
        fprintf(stderr, "  %s\n", detail);
    return CLPSA__EXIT_FAILURE;
}

const char *clpsa__tool_cl_error_name(cl_int err) {
    return clpsa_opencl_error_name(err);
}

int clpsa__tool_cl_error(const char *command, const char *call, cl_int err) {
    return clpsa__tool_fail(command, "%s failed: %s (%d)", call, clpsa__tool_cl_error_name(err),
                            (int)err);
}

void clpsa__tool_format_bytes(char *text, size_t size, uint64_t bytes) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double value = (double)bytes;
    int unit = 0;
    while (value >= 1024.0 && unit < 4) {
        value /= 1024.0;
        ++unit;
    }
    if (unit == 0)
        snprintf(text, size, "%llu B", (unsigned long long)bytes);
    else
        snprintf(text, size, "%.*f %s", value < 10.0 ? 2 : 1, value, units[unit]);
}

void clpsa__tool_json_string(FILE *out, const char *text) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p; ++p) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

double clpsa__tool_event_ms(cl_event event) {
    cl_ulong start = 0, end = 0;
    if (clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_START, sizeof start, &start, NULL) !=
            CL_SUCCESS ||
        clGetEventProfilingInfo(event, CL_PROFILING_COMMAND_END, sizeof end, &end, NULL) !=
            CL_SUCCESS ||
        end < start)
        return -1.0;
    return (double)(end - start) * 1e-6;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double clpsa__tool_median(double *values, size_t count) {
    if (count == 0)
        return 0.0;
    qsort(values, count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : 0.5 * (values[count / 2 - 1] + values[count / 2]);
}

uint64_t clpsa__tool_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float clpsa__tool_random_signed(uint64_t *state) {
    /* 24 random bits: every value is exactly representable in float. */
    return (float)(clpsa__tool_random(state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

double clpsa__tool_wall_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1e3 + (double)now.tv_nsec * 1e-6;
}

int clpsa__tool_timed_run(const char *command, const clpsa_context *ctx, clpsa_plan *plan,
                          cl_command_queue queue, const cl_mem *buffers, bool staged,
                          clpsa_stage_times *times) {
    cl_event event = NULL;
    const double start = clpsa__tool_wall_ms();
    clpsa_status status = clpsa_plan_run(plan, queue, buffers[0], buffers[1], buffers[2],
                                         buffers[3], 0, NULL, &event);
    if (status != CLPSA_OK)
        return clpsa__tool_library_error(command, "clpsa_plan_run", status, ctx);
    const cl_int err = clWaitForEvents(1, &event);
    const double host = clpsa__tool_wall_ms() - start;
    memset(times, 0, sizeof *times);
    if (err == CL_SUCCESS && !staged)
        times->total_ms = clpsa__tool_event_ms(event);
    clReleaseEvent(event);
    if (err != CL_SUCCESS)
        return clpsa__tool_cl_error(command, "waiting for clpsa_plan_run", err);
    if (staged) {
        status = clpsa_plan_read_stage_times(plan, times);
        if (status != CLPSA_OK)
            return clpsa__tool_library_error(command, "clpsa_plan_read_stage_times", status, ctx);
    }
    /* Without profiling the device times are missing: the host's wall time is the best left. */
    if (!(times->total_ms > 0.0))
        times->total_ms = host;
    return CLPSA__EXIT_OK;
}

int clpsa__tool_parse_block(const char *command, const char *flag, const char *value, bool key,
                            int *out) {
    long n = 0;
    if (!value || !clpsa__tool_parse_int(value, 16, 256, &n) || (key && n % 8 != 0))
        return clpsa__tool_usage_error(command, "%s '%s': need %s from 16 to 256", flag,
                                       value ? value : "", key ? "a multiple of 8" : "an integer");
    *out = (int)n;
    return CLPSA__EXIT_OK;
}

bool clpsa__tool_text_option(const char *command, int argc, char **argv, int *i,
                             const clpsa__tool_text_flag *flags, size_t count, void *options,
                             int *rc) {
    for (size_t f = 0; f < count; ++f) {
        const char *value = NULL;
        if (!clpsa__tool_option(argc, argv, i, flags[f].flag, &value))
            continue;
        if (!value || !*value) {
            *rc = clpsa__tool_usage_error(command, "%s needs a value", flags[f].flag);
        } else {
            *(const char **)((char *)options + flags[f].offset) = value;
            *rc = CLPSA__EXIT_OK;
        }
        return true;
    }
    return false;
}
