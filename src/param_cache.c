/* SPDX-License-Identifier: Apache-2.0 */
/* The tuned-parameter cache on disk: one small text file per device and driver.
 *
 *   clpsa-params 1
 *   device=<normalised device key>
 *   driver=<driver version>
 *   family.NAME=value            (one line per tuned parameter)
 *   checksum=<FNV-1a of every byte above, 16 hex digits>
 *
 * Written to a temporary file and renamed. A file with another first line (magic or version),
 * another device or driver, a bad line or a missing or wrong checksum is ignored with a log
 * line: tuning results are never trusted blindly. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLPSA__PARAMS_MAGIC "clpsa-params 1"
/* What the store below can write (its text buffer, less the NUL). */
#define CLPSA__PARAMS_MAX_FILE 8191

void clpsa__params_cache_path(const clpsa_context *ctx, char *out, size_t size) {
    if (!ctx->cache_dir[0]) {
        out[0] = '\0';
        return;
    }
    char key[sizeof ctx->device_key + CLPSA__NAME_CAPACITY + 2];
    snprintf(key, sizeof key, "%s|%s", ctx->device_key, ctx->info.driver_version);
    snprintf(out, size, "%s/params-%016llx.txt", ctx->cache_dir,
             (unsigned long long)clpsa__hash64(key, strlen(key), CLPSA__HASH_SEED));
}

static void ignore(clpsa_context *ctx, const char *path, const char *why) {
    clpsa__log(ctx, CLPSA_LOG_WARN, "tuned parameters: ignoring %s: %s", path, why);
}

bool clpsa__params_cache_parse(const char *text, size_t size, const char *device_key,
                               const char *driver, int *values, char *why, size_t why_size) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        values[id] = 0;
    /* The checks below read text as a C string: a NUL would hide what follows it. */
    if (memchr(text, '\0', size)) {
        snprintf(why, why_size, "it contains a NUL byte (not a clpsa parameter file)");
        return false;
    }
    const char *checksum = strstr(text, "checksum=");
    const size_t magic_length = strlen(CLPSA__PARAMS_MAGIC);
    if (strncmp(text, "clpsa-params ", 13) != 0) {
        snprintf(why, why_size, "bad magic (not a clpsa parameter file)");
        return false;
    }
    if (strncmp(text, CLPSA__PARAMS_MAGIC "\n", magic_length + 1) != 0) {
        snprintf(why, why_size, "written by another format version");
        return false;
    }
    if (!checksum || checksum[-1] != '\n') {
        snprintf(why, why_size, "no checksum line (truncated)");
        return false;
    }
    char written[17] = "";
    snprintf(written, sizeof written, "%016llx",
             (unsigned long long)clpsa__hash64(text, (size_t)(checksum - text), CLPSA__HASH_SEED));
    if (strncmp(checksum + 9, written, 16) != 0) {
        snprintf(why, why_size, "checksum mismatch (corrupt)");
        return false;
    }
    const char *line = text + magic_length + 1;
    const size_t device_length = strlen(device_key), driver_length = strlen(driver);
    if (strncmp(line, "device=", 7) != 0 || strncmp(line + 7, device_key, device_length) != 0 ||
        line[7 + device_length] != '\n') {
        snprintf(why, why_size, "written for another device (stale)");
        return false;
    }
    line += 7 + device_length + 1;
    if (strncmp(line, "driver=", 7) != 0 || strncmp(line + 7, driver, driver_length) != 0 ||
        line[7 + driver_length] != '\n') {
        snprintf(why, why_size, "written for another driver version (stale)");
        return false;
    }
    line += 7 + driver_length + 1;
    for (int number = 4; line < checksum; ++number) {
        const char *end = strchr(line, '\n'); /* found: checksum[-1] is one */
        /* clpsa writes "family.NAME=value" lines of a few dozen characters; a longer one was
         * never written by it, and cutting it could turn an invalid value into a valid one. */
        char one[256];
        const size_t length = (size_t)(end - line);
        if (length >= sizeof one) {
            snprintf(why, why_size, "line %d has %zu characters, more than the %zu allowed", number,
                     length, sizeof one - 1);
            for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
                values[id] = 0;
            return false;
        }
        memcpy(one, line, length);
        one[length] = '\0';
        int parsed[CLPSA__PARAM_COUNT];
        char reason[256];
        if (!clpsa__params_parse(one, parsed, reason, sizeof reason)) {
            snprintf(why, why_size, "bad line %d: %s", number, reason);
            for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
                values[id] = 0;
            return false;
        }
        for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
            if (parsed[id])
                values[id] = parsed[id];
        line = end + 1;
    }
    return true;
}

bool clpsa__params_cache_load(clpsa_context *ctx, int *values) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        values[id] = 0;
    char path[4300];
    clpsa__params_cache_path(ctx, path, sizeof path);
    if (!path[0])
        return false;
    unsigned char *data = NULL;
    size_t size = 0;
    char why[512];
    const clpsa__file_result read =
        clpsa__file_read_regular(path, CLPSA__PARAMS_MAX_FILE, &data, &size, why, sizeof why);
    if (read == CLPSA__FILE_MISSING)
        return false;
    bool ok = read == CLPSA__FILE_READ &&
              clpsa__params_cache_parse((const char *)data, size, ctx->device_key,
                                        ctx->info.driver_version, values, why, sizeof why);
    free(data);
    if (!ok) {
        ignore(ctx, path, why);
        return false;
    }
    clpsa__log(ctx, CLPSA_LOG_INFO, "tuned parameters loaded from %s", path);
    return true;
}

clpsa_status clpsa__params_cache_store(clpsa_context *ctx, const int *values) {
    char path[4300];
    clpsa__params_cache_path(ctx, path, sizeof path);
    if (!path[0])
        return clpsa__fail(ctx, CLPSA_ERROR_IO,
                           "tuned parameters: the context has no cache directory");
    char text[8192];
    int length = snprintf(text, sizeof text, CLPSA__PARAMS_MAGIC "\ndevice=%s\ndriver=%s\n",
                          ctx->device_key, ctx->info.driver_version);
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        if (values[id])
            length +=
                snprintf(text + length, sizeof text - (size_t)length, "%s.%s=%d\n",
                         clpsa__param_defs[id].family, clpsa__param_defs[id].name, values[id]);
    length += snprintf(text + length, sizeof text - (size_t)length, "checksum=%016llx\n",
                       (unsigned long long)clpsa__hash64(text, (size_t)length, CLPSA__HASH_SEED));
    clpsa__make_dirs(ctx->cache_dir); /* a failure shows as the write's error below */
    char temp[4400];
    snprintf(temp, sizeof temp, "%s.tmp.%ld", path, (long)getpid());
    FILE *file = fopen(temp, "wb");
    bool ok = file && fwrite(text, 1, (size_t)length, file) == (size_t)length;
    if (file)
        ok = fclose(file) == 0 && ok;
    ok = ok && rename(temp, path) == 0;
    if (!ok) {
        const int saved = errno;
        remove(temp);
        return clpsa__fail(ctx, CLPSA_ERROR_IO, "tuned parameters: cannot write %s: %s", path,
                           strerror(saved));
    }
    return CLPSA_OK;
}
