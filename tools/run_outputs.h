/* SPDX-License-Identifier: Apache-2.0 */
/* All-or-nothing outputs for `clpsa run`: every file is first written under a temporary name
 * next to its destination, and the temporaries are renamed into place only when all of them
 * were written, so a failed run leaves no output of its own behind (and the old files, if
 * any, untouched). */
#ifndef CLPSA_TOOLS_RUN_OUTPUTS_H
#define CLPSA_TOOLS_RUN_OUTPUTS_H

#include <stddef.h>

#define CLPSA__RUN_MAX_OUTPUTS 8

typedef struct run_outputs {
    int count;
    const char *path[CLPSA__RUN_MAX_OUTPUTS]; /* destinations, as given */
    char *temp[CLPSA__RUN_MAX_OUTPUTS];       /* malloc'ed; the file exists until commit/discard */
} run_outputs;

/* Reserves a new temporary file next to `path` (mode 0666 less the umask, as the final file
 * will have) and returns its name in *temp, for the caller to write. On failure prints the
 * reason and returns CLPSA__EXIT_FAILURE. */
int clpsa__run_outputs_stage(run_outputs *o, const char *path, const char **temp);
/* Renames every temporary into place, after checking that each destination can take it (no
 * directory stands there). On failure removes the temporaries not yet renamed and returns
 * CLPSA__EXIT_FAILURE (reported). */
int clpsa__run_outputs_commit(run_outputs *o);
/* Removes every temporary still there (after a failed run, or after commit: a no-op). */
void clpsa__run_outputs_discard(run_outputs *o);

#endif /* CLPSA_TOOLS_RUN_OUTPUTS_H */
