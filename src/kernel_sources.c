/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel text: from the table embedded at build time, or, for kernel development, from the
 * directory named by CLPSA_KERNEL_DIR (so a kernel can be edited without rebuilding). */
#include "kernel_sources.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clpsa_status read_text_file(clpsa_context *ctx, const char *path, char **text,
                                   size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file)
        return clpsa__fail(ctx, CLPSA_ERROR_IO, "CLPSA_KERNEL_DIR: cannot open %s: %s", path,
                           strerror(errno));
    char *buffer = NULL;
    size_t length = 0, capacity = 0;
    for (;;) {
        if (length + 4096 + 1 > capacity) {
            capacity = capacity ? 2 * capacity : 65536;
            char *grown = realloc(buffer, capacity);
            if (!grown) {
                free(buffer);
                fclose(file);
                return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "reading %s: out of host memory",
                                   path);
            }
            buffer = grown;
        }
        const size_t got = fread(buffer + length, 1, 4096, file);
        length += got;
        if (got < 4096)
            break;
    }
    const bool failed = ferror(file);
    fclose(file);
    if (failed) {
        free(buffer);
        return clpsa__fail(ctx, CLPSA_ERROR_IO, "CLPSA_KERNEL_DIR: error reading %s", path);
    }
    buffer[length] = '\0';
    *text = buffer;
    *size = length;
    return CLPSA_OK;
}

clpsa_status clpsa__kernel_source_load(clpsa_context *ctx, const char *name, char **text,
                                       size_t *size) {
    *text = NULL;
    *size = 0;
    const char *dir = getenv("CLPSA_KERNEL_DIR");
    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        clpsa__log(ctx, CLPSA_LOG_DEBUG, "loading kernel source %s (CLPSA_KERNEL_DIR)", path);
        return read_text_file(ctx, path, text, size);
    }
    for (const clpsa__kernel_source *s = clpsa__kernel_sources; s->name; ++s) {
        if (strcmp(s->name, name) != 0)
            continue;
        char *copy = malloc(s->size + 1);
        if (!copy)
            return clpsa__fail(ctx, CLPSA_ERROR_OUT_OF_MEMORY, "copying kernel %s", name);
        memcpy(copy, s->text, s->size);
        copy[s->size] = '\0';
        *text = copy;
        *size = s->size;
        return CLPSA_OK;
    }
    return clpsa__fail(ctx, CLPSA_ERROR_BUILD_FAILED,
                       "kernel file %s is not embedded in this build", name);
}
