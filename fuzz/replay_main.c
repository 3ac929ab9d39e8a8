/* SPDX-License-Identifier: Apache-2.0 */
/* Runs a fuzz target on every file of the directories it is given (committed seeds and the
 * inputs of past crashes), without libFuzzer: the normal test run, and its sanitizer build,
 * replay them. A failed property aborts; exits non-zero too when a directory cannot be read or
 * none holds an input (files named .* are not inputs). */
#include "fuzz_check.h"

#include <dirent.h>
#include <string.h>

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t capacity = 4096, size = 0;
    unsigned char *data = malloc(capacity);
    for (size_t n; data && (n = fread(data + size, 1, capacity - size, f)) > 0;) {
        size += n;
        if (size == capacity) {
            unsigned char *grown = realloc(data, capacity *= 2);
            if (!grown)
                free(data);
            data = grown;
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "replay: out of memory for %s\n", path);
        return 1;
    }
    /* Exactly size bytes, as libFuzzer passes them, so overreads are caught. */
    unsigned char *exact = malloc(size ? size : 1);
    if (!exact) {
        free(data);
        return 1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

int main(int argc, char **argv) {
    int failures = 0, total = 0;
    for (int i = 1; i < argc; ++i) {
        DIR *dir = opendir(argv[i]);
        if (!dir) {
            fprintf(stderr, "replay: cannot open directory %s\n", argv[i]);
            return 1;
        }
        int files = 0;
        for (struct dirent *e = readdir(dir); e; e = readdir(dir)) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            failures += replay_file(path);
            files++;
        }
        closedir(dir);
        printf("replay: %d inputs of %s\n", files, argv[i]);
        total += files;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no input at all\n");
        return 1;
    }
    return failures != 0;
}
