/* SPDX-License-Identifier: Apache-2.0 */
/* The staged outputs of run_outputs.h. */
#include "run_outputs.h"

#include "run_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COMMAND CLPSA__RUN_COMMAND

int clpsa__run_outputs_stage(run_outputs *o, const char *path, const char **temp) {
    *temp = NULL;
    if (o->count == CLPSA__RUN_MAX_OUTPUTS)
        return clpsa__tool_fail(COMMAND, "%s: more than %d outputs", path, CLPSA__RUN_MAX_OUTPUTS);
    const size_t size = strlen(path) + 64;
    char *name = malloc(size);
    if (!name)
        return clpsa__tool_fail(COMMAND, "%s: out of memory", path);
    /* O_EXCL: never an existing file, so a temporary is ours alone and can be removed. */
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        snprintf(name, size, "%s.tmp.%ld.%d.%d", path, (long)getpid(), o->count, attempt);
        fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        const int err = errno;
        free(name);
        return clpsa__tool_fail(COMMAND, "%s: cannot create a file next to it: %s", path,
                                strerror(err));
    }
    close(fd);
    o->path[o->count] = path;
    o->temp[o->count] = name;
    o->count++;
    *temp = name;
    return CLPSA__EXIT_OK;
}

int clpsa__run_outputs_commit(run_outputs *o) {
    /* rename() fails only on what stands at the destination (a directory) once the temporary
     * exists in the same directory; check all first so no output is renamed unless all can be. */
    for (int i = 0; i < o->count; ++i) {
        struct stat info;
        if (stat(o->path[i], &info) == 0 && S_ISDIR(info.st_mode)) {
            clpsa__run_outputs_discard(o);
            return clpsa__tool_fail(COMMAND, "%s: is a directory; no output was written",
                                    o->path[i]);
        }
    }
    for (int i = 0; i < o->count; ++i) {
        if (rename(o->temp[i], o->path[i]) != 0) {
            const int err = errno;
            clpsa__run_outputs_discard(o);
            return clpsa__tool_fail(COMMAND, "%s: cannot rename %s into place: %s", o->path[i],
                                    o->temp[i], strerror(err));
        }
        free(o->temp[i]);
        o->temp[i] = NULL;
    }
    o->count = 0;
    return CLPSA__EXIT_OK;
}

void clpsa__run_outputs_discard(run_outputs *o) {
    for (int i = 0; i < o->count; ++i) {
        if (o->temp[i])
            unlink(o->temp[i]);
        free(o->temp[i]);
        o->temp[i] = NULL;
    }
    o->count = 0;
}
