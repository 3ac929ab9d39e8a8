/* SPDX-License-Identifier: Apache-2.0 */
/* A whole file as a NUL-terminated string, for the stand-alone test programs that build kernel
 * sources themselves (they link neither cmocka nor the test support library). Exits with a
 * message when the file cannot be read; the caller frees the result. */
#ifndef CLPSA_TESTS_READ_TEXT_H
#define CLPSA_TESTS_READ_TEXT_H

#include <stdio.h>
#include <stdlib.h>

static char *ts_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    rewind(f);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: read failed\n", path);
        exit(1);
    }
    s[n] = 0;
    fclose(f);
    return s;
}

#endif
