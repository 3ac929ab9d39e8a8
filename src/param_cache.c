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

bool clpsa__params_cache_load(clpsa_context *ctx, int *values) {
    for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
        values[id] = 0;
    char path[4300];
    clpsa__params_cache_path(ctx, path, sizeof path);
    if (!path[0])
        return false;
    FILE *file = fopen(path, "rb");
    if (!file)
        return false;
    char text[8192];
    const size_t size = fread(text, 1, sizeof text - 1, file);
    const bool too_long = !feof(file);
    fclose(file);
    text[size] = '\0';
    if (too_long) {
        ignore(ctx, path, "larger than any file clpsa writes (corrupt)");
        return false;
    }
    const char *checksum = strstr(text, "checksum=");
    char expected_device[sizeof ctx->device_key + 16], expected_driver[CLPSA__NAME_CAPACITY + 16];
    snprintf(expected_device, sizeof expected_device, "device=%s\n", ctx->device_key);
    snprintf(expected_driver, sizeof expected_driver, "driver=%s\n", ctx->info.driver_version);
    const size_t magic_length = strlen(CLPSA__PARAMS_MAGIC);
    if (strncmp(text, "clpsa-params ", 13) != 0) {
        ignore(ctx, path, "bad magic (not a clpsa parameter file)");
        return false;
    }
    if (strncmp(text, CLPSA__PARAMS_MAGIC "\n", magic_length + 1) != 0) {
        ignore(ctx, path, "written by another format version");
        return false;
    }
    if (!checksum || (checksum != text && checksum[-1] != '\n')) {
        ignore(ctx, path, "no checksum line (truncated)");
        return false;
    }
    char written[17] = "";
    snprintf(written, sizeof written, "%016llx",
             (unsigned long long)clpsa__hash64(text, (size_t)(checksum - text), CLPSA__HASH_SEED));
    if (strncmp(checksum + 9, written, 16) != 0) {
        ignore(ctx, path, "checksum mismatch (corrupt)");
        return false;
    }
    const char *line = text + magic_length + 1;
    if (strncmp(line, expected_device, strlen(expected_device)) != 0) {
        ignore(ctx, path, "written for another device (stale)");
        return false;
    }
    line += strlen(expected_device);
    if (strncmp(line, expected_driver, strlen(expected_driver)) != 0) {
        ignore(ctx, path, "written for another driver version (stale)");
        return false;
    }
    line += strlen(expected_driver);
    while (line < checksum) {
        const char *end = strchr(line, '\n');
        char one[256];
        snprintf(one, sizeof one, "%.*s", (int)(end - line), line);
        int parsed[CLPSA__PARAM_COUNT];
        char why[256];
        if (!clpsa__params_parse(one, parsed, why, sizeof why)) {
            char message[400];
            snprintf(message, sizeof message, "bad line: %s", why);
            ignore(ctx, path, message);
            for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
                values[id] = 0;
            return false;
        }
        for (int id = 0; id < CLPSA__PARAM_COUNT; ++id)
            if (parsed[id])
                values[id] = parsed[id];
        line = end + 1;
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
