/* SPDX-License-Identifier: Apache-2.0 */
/* Rewrites the PTX of an nvidia-wgmma build into an sm_90a module: the OpenCL compiler only
 * emits `.target sm_90`, where the warpgroup instructions do not exist, so nv_wgmma.cl hides
 * them behind a comment marker that this deletes. */
#include "ptx_sm90a.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The start of the line holding `directive` at its beginning, or NULL. */
static const char *find_line(const char *text, const char *end, const char *directive) {
    const size_t n = strlen(directive);
    for (const char *line = text; line < end;) {
        while (line < end && (*line == ' ' || *line == '\t'))
            ++line;
        if ((size_t)(end - line) >= n && memcmp(line, directive, n) == 0)
            return line;
        const char *next = memchr(line, '\n', (size_t)(end - line));
        if (!next)
            break;
        line = next + 1;
    }
    return NULL;
}

char *clpsa__ptx_enable_sm90a(const char *ptx, size_t size, size_t *out_size, const char **why) {
    const char *end = ptx + size;
    const char *target = find_line(ptx, end, ".target sm_90");
    /* sm_90 exactly: not sm_90a already, not sm_900. */
    if (!target || (target + 13 < end && target[13] != ',' && target[13] != ' ' &&
                    target[13] != '\n' && target[13] != '\r')) {
        *why = "the PTX declares no `.target sm_90`";
        return NULL;
    }
    const char *version = find_line(ptx, end, ".version ");
    bool raise_version = false;
    if (version) {
        const int major = atoi(version + 9);
        raise_version = major < 8;
    }
    const size_t marker_length = strlen(CLPSA__SM90A_MARKER);
    /* Room for the extra `a` and a longer version line. */
    char *out = malloc(size + 16);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    size_t n = 0, markers = 0;
    for (const char *p = ptx; p < end;) {
        if (p == version && raise_version) {
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            memcpy(out + n, ".version 8.0", 12);
            n += 12;
            p = eol ? eol : end;
            continue;
        }
        if (p == target) {
            memcpy(out + n, ".target sm_90a", 14);
            n += 14;
            p += 13;
            continue;
        }
        if ((size_t)(end - p) >= marker_length && *p == '/' &&
            memcmp(p, CLPSA__SM90A_MARKER, marker_length) == 0) {
            p += marker_length;
            ++markers;
            continue;
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    if (markers == 0) {
        free(out);
        *why = "the PTX holds no sm_90a marker (the compiler dropped the inline comments)";
        return NULL;
    }
    *out_size = n;
    return out;
}
